"""What the pipeline asks of the cached credential set."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from sentinel.config import TrustConfig
from sentinel.credentials.trustlist import TrustList
from sentinel.policy import TrustState


@dataclass(frozen=True, slots=True)
class StatusEntry:
    """One status-set answer: "green" / "yellow" / "red" and until when it holds."""

    status: str
    valid_until: datetime


class StatusLookup(Protocol):
    """The status set: keyed hashes only; the raw number never leaves the caller."""

    def lookup_document(self, doc_type: str, country: str, number: str) -> StatusEntry | None: ...

    def lookup_subject(self, subject_id: str) -> StatusEntry | None: ...


class TrustProvider(Protocol):
    def trust_list(self) -> TrustList: ...
    def state(self) -> TrustState: ...
    def status(self) -> StatusLookup | None: ...
    def part(self, name: str) -> bytes | None:
        """Raw bytes of a named bundle part ("rules", "healthcode_keys", ...), if present."""
        ...


class FileTrust:
    """Trust from a local trust-list file, with no revocations and no sync."""

    def __init__(self, path: str | Path, config: TrustConfig | None = None) -> None:
        self._list = TrustList.load(path)
        self._parts: dict[str, bytes] = {}
        cfg = config or TrustConfig()
        self._state = TrustState(
            bundle_version=f"file:{Path(path).name}",
            updated_at=None,
            max_age=timedelta(hours=cfg.max_data_age_hours),
            stale_action=cfg.stale_action,
        )

    def trust_list(self) -> TrustList:
        return self._list

    def state(self) -> TrustState:
        return self._state

    def status(self) -> StatusLookup | None:
        return None

    def part(self, name: str) -> bytes | None:
        return self._parts.get(name)


class StaticTrust:
    """Trust from values in memory (tests, conformance runs)."""

    def __init__(
        self,
        trust: TrustList,
        state: TrustState | None = None,
        *,
        status: StatusLookup | None = None,
        parts: dict[str, bytes] | None = None,
    ) -> None:
        self._list = trust
        self._state = state or TrustState()
        self._status = status
        self._parts = dict(parts or {})

    def trust_list(self) -> TrustList:
        return self._list

    def state(self) -> TrustState:
        return self._state

    def status(self) -> StatusLookup | None:
        return self._status

    def part(self, name: str) -> bytes | None:
        return self._parts.get(name)
