"""One presentation: symbol → credential → decision → gate, journal, listeners.

Used the same way by ``sentinel run`` (daemon), ``sentinel demo`` and the tests.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from sentinel.config import Config
from sentinel.credentials.healthcode import HealthCodeVerifier
from sentinel.credentials.reader import ReadContext, read
from sentinel.errors import CredentialError
from sentinel.credentials.model import Credential
from sentinel.journal import Event, Journal, Personal
from sentinel.policy import Decision, decide, refuse
from sentinel.reasons import ReasonCode
from sentinel.scan import PresentationTracker, Scanner, Symbol
from sentinel.trust import TrustProvider

log = logging.getLogger(__name__)

# Listeners see every journaled event: presentations (with their Decision) and device
# events such as faults, alarms, overrides and exits (decision None).
Listener = Callable[[Event, Decision | None], None]


@dataclass(slots=True)
class Outcome:
    symbol: Symbol
    decision: Decision
    event_id: str
    detail: str = ""


@dataclass(slots=True)
class Pipeline:
    config: Config
    trust: TrustProvider
    gate: Any  # sentinel.gate.Gate or anything with admit()/refuse()
    journal: Journal
    scanner: Scanner | None = None
    tracker: PresentationTracker | None = None
    pseudonym_key: bytes = b""
    listeners: list[Listener] = field(default_factory=list)
    presentations: int = 0
    # Health-code keys, settings and replay guard; lives across presentations.
    healthcode: HealthCodeVerifier | None = None

    def __post_init__(self) -> None:
        if self.healthcode is None:
            self.healthcode = HealthCodeVerifier.for_provider(self.config.healthcode, self.trust)
        if self.scanner is None:
            self.scanner = Scanner(self.config.scan.backend, self.config.scan.fallback)
        if self.tracker is None:
            self.tracker = PresentationTracker(self.config.scan.cooldown_s)

    def process_frame(self, frame: np.ndarray, now: datetime, mono: float) -> list[Outcome]:
        """Decode a frame; decide once per new presentation."""
        assert self.scanner is not None and self.tracker is not None
        symbols = self.scanner.decode(frame)
        if self.healthcode is not None:  # a phone held still stays one presentation
            self.healthcode.guard.observe(s.text for s in symbols)
        return [self.present(s, now) for s in self.tracker.update(symbols, mono)]

    def decide(self, symbol: Symbol, now: datetime) -> tuple[Decision, str]:
        """The decision for one symbol (no side effects)."""
        decision, detail, _cred = self._read_and_decide(symbol, now)
        return decision, detail

    def _read_and_decide(
        self, symbol: Symbol, now: datetime
    ) -> tuple[Decision, str, Credential | None]:
        state = self.trust.state()
        ctx = ReadContext(
            trust=self.trust.trust_list(),
            now=now,
            pseudonym_key=self.pseudonym_key,
            skew=timedelta(seconds=self.config.policy.clock_skew_s),
            status=self.trust.status(),
            presentation_id=self.presentations,
            healthcode=self.healthcode,
        )
        try:
            cred = read(symbol, ctx)
        except CredentialError as exc:
            d = refuse(exc.reason)
            return Decision.of(d.reason, bundle_version=state.bundle_version), exc.detail, None
        return decide(cred, self.config.policy, state, now), "", cred

    def present(self, symbol: Symbol, now: datetime | None = None) -> Outcome:
        """Decide on one presentation and act on it: gate, journal, listeners."""
        now = now or datetime.now(UTC)
        self.presentations += 1
        decision, detail, cred = self._read_and_decide(symbol, now)
        if decision.admit:
            self.gate.admit()
        else:
            self.gate.refuse()
        event = Event(
            time=now,
            venue=self.config.venue.id,
            gate=self.config.gate.id,
            decision="admit" if decision.admit else "refuse",
            reason=decision.reason.value,
            credential_kind=decision.credential_kind.value,
            bundle_version=decision.bundle_version,
        )
        # Encrypted under the day key in the journal; never given to listeners.
        personal = Personal(
            display_name=decision.display_name,
            pseudonym=cred.holder_pseudonym if cred is not None else "",
        )
        event_id = self.notify(event, decision, personal=personal)
        return Outcome(symbol, decision, event_id, detail)

    def notify(
        self, event: Event, decision: Decision | None = None, *, personal: Personal | None = None
    ) -> str:
        """Journal ``event`` and tell every listener; return the event id.

        Device events (camera fault, door alarm, override, exit) come through here too,
        with ``decision=None`` and ``event.decision`` set to "event", "override" or "exit".
        """
        event_id = self.journal.record(event, personal=personal)
        for listener in self.listeners:
            try:
                listener(event, decision)
            except Exception:  # a broken screen must not stop the gate
                log.exception("event listener failed")
        return event_id

    def device_event(
        self,
        reason: ReasonCode,
        kind: str = "event",
        now: datetime | None = None,
    ) -> str:
        """Journal a device event (no personal data) and tell the listeners."""
        return self.notify(
            Event(
                time=now or datetime.now(UTC),
                venue=self.config.venue.id,
                gate=self.config.gate.id,
                decision=kind,
                reason=reason.value,
                credential_kind="",
                bundle_version=self.trust.state().bundle_version,
            )
        )
