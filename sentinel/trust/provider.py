"""What the pipeline asks of the cached credential set."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

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


@dataclass(frozen=True, slots=True)
class TrustSnapshot:
    """One bundle version, taken at once: what one decision reads, start to end.

    Calling ``trust_list()``, ``state()``, ``status()`` and ``part()`` on a provider one
    after the other may straddle a bundle applied in between; a snapshot cannot.
    """

    trust_list: TrustList
    state: TrustState
    status: StatusLookup | None = None
    parts: Mapping[str, bytes] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def bundle_version(self) -> str:
        return self.state.bundle_version

    def part(self, name: str) -> bytes | None:
        """Raw bytes of a named bundle part of this version, if present."""
        return self.parts.get(name)


class TrustProvider(Protocol):
    def trust_list(self) -> TrustList: ...
    def state(self) -> TrustState: ...
    def status(self) -> StatusLookup | None: ...
    def part(self, name: str) -> bytes | None:
        """Raw bytes of a named bundle part ("rules", "healthcode_keys", ...), if present."""
        ...

    def snapshot(self) -> TrustSnapshot:
        """All of the above from one bundle version, taken atomically."""
        ...


def snapshot_of(trust: Any) -> TrustSnapshot:
    """``trust.snapshot()``; for an older provider without it, the calls in a row
    (consistent only if that provider never changes underneath)."""
    take = getattr(trust, "snapshot", None)
    if callable(take):
        return take()
    return TrustSnapshot(trust.trust_list(), trust.state(), trust.status(), _LazyParts(trust))


class _LazyParts(Mapping[str, bytes]):
    """Parts of a provider that cannot list them: looked up by name when asked."""

    def __init__(self, trust: Any) -> None:
        self._trust = trust

    def __getitem__(self, name: str) -> bytes:
        data = self._trust.part(name)
        if data is None:
            raise KeyError(name)
        return data

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


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

    def snapshot(self) -> TrustSnapshot:
        return TrustSnapshot(self._list, self._state, None, MappingProxyType(self._parts))


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

    def snapshot(self) -> TrustSnapshot:
        return TrustSnapshot(self._list, self._state, self._status, MappingProxyType(self._parts))
