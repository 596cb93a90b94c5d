"""One presentation: symbol → credential → decision → gate, journal, listeners.

Used the same way by ``sentinel run`` (daemon), ``sentinel demo`` and the tests.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from sentinel.config import Config
from sentinel.credentials import iddoc
from sentinel.credentials.dcc_schema import warm as warm_schemas
from sentinel.credentials.healthcode import HealthCodeVerifier
from sentinel.credentials.model import Credential, CredentialKind
from sentinel.credentials.reader import ReadContext, read
from sentinel.credentials.rules import rule_set_from_part
from sentinel.errors import CredentialError
from sentinel.journal import Event, Journal, Personal
from sentinel.journal.space import DiskFull
from sentinel.policy import Decision, decide, refuse
from sentinel.reasons import ReasonCode
from sentinel.scan import PresentationTracker, Scanner, Symbol
from sentinel.trust import TrustProvider
from sentinel.trust.provider import TrustSnapshot, snapshot_of

log = logging.getLogger(__name__)

# Listeners see every journaled event: presentations (with their Decision) and device
# events such as faults, alarms, overrides and exits (decision None).
Listener = Callable[[Event, Decision | None], None]
# Hint listeners get what the kiosk may tell a visitor who is not shown a decision yet
# ("card_back": turn the card over).  Not an event: nothing is journaled, no personal data.
HintListener = Callable[[str], None]
HINT_REPEAT_S = 4.0  # the same hint again after this long (the card is still wrong side up)


_ID_KINDS = frozenset({"MRZ", "ID_NUMBER", "PDF417", "CODE128"})


def presentation_key(symbol: Symbol) -> str:
    """What a symbol presents, for the tracker: an ID document by its type, issuing state
    and number (check-digit protected), so reads of one card that differ in a name are one
    presentation; anything else by its text.  Held in memory only."""
    if symbol.kind.upper() in _ID_KINDS:
        return _document_key(symbol.kind, symbol.text)
    return symbol.text


@functools.lru_cache(maxsize=32)
def _document_key(kind: str, text: str) -> str:
    # called on every frame a card stays in view: the parse (~30 µs) once per read text
    try:
        doc = iddoc.parse_symbol_text(kind, text)
    except CredentialError:
        return text
    return f"id:{doc.doc_type}:{doc.issuing_country}:{doc.number}"


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
    # 2G+: the first certificate of a two-certificate presentation, and when it was shown.
    pending: tuple[Credential, datetime] | None = None
    # Identity match: (pseudonym, decision, time) of a certificate waiting for its ID.
    identity_pending: tuple[str, Decision, datetime] | None = None
    # The bundle the decision in progress reads (None between decisions).
    snapshot: TrustSnapshot | None = field(default=None, init=False, repr=False)
    # Full disk: when journal writes began to fail (None while they work), and how many
    # events the gate acted on meanwhile without a journal row (kiosk, heartbeat).
    disk_full_since: datetime | None = field(default=None, init=False)
    unjournaled: int = field(default=0, init=False)
    hint_listeners: list[HintListener] = field(default_factory=list)
    _last_hint: tuple[str, float] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.healthcode is None:  # its keys part comes from the decision's snapshot
            self.healthcode = HealthCodeVerifier.for_provider(
                self.config.healthcode, _DecisionTrust(self)
            )
        if self.scanner is None:
            self.scanner = Scanner.from_config(self.config.scan, self.config.camera)
        if self.tracker is None:
            self.tracker = PresentationTracker(self.config.scan.cooldown_s, key=presentation_key)
        warm_schemas()  # compile the DCC schemas now, not at the first visitor's scan

    def process_frame(self, frame: np.ndarray, now: datetime, mono: float) -> list[Outcome]:
        """Decode a frame; decide once per new presentation."""
        assert self.scanner is not None and self.tracker is not None
        symbols = self.scanner.scan(frame)  # skips the decode on a still, empty scene
        if self.healthcode is not None:  # a phone held still stays one presentation
            self.healthcode.guard.observe(s.text for s in symbols)
        hint = getattr(self.scanner, "hint", None)
        if hint and not symbols:
            self.hint(hint, mono)
        return [self.present(s, now) for s in self.tracker.update(symbols, mono)]

    def hint(self, name: str, mono: float) -> None:
        """Tell the hint listeners ``name`` (once, then again every ``HINT_REPEAT_S``
        while it holds): a hint is not a decision and is not journaled."""
        last = self._last_hint
        if last is not None and last[0] == name and 0 <= mono - last[1] < HINT_REPEAT_S:
            return
        self._last_hint = (name, mono)
        for listener in self.hint_listeners:
            try:
                listener(name)
            except Exception:  # a broken screen must not stop the gate
                log.exception("hint listener failed")

    def decide(self, symbol: Symbol, now: datetime) -> tuple[Decision, str]:
        """The decision for one symbol (no side effects but the health-code replay memory)."""
        decision, detail, _cred = self._read_and_decide(symbol, now)
        return decision, detail

    def _read_and_decide(
        self, symbol: Symbol, now: datetime
    ) -> tuple[Decision, str, Credential | None]:
        # One snapshot per presentation: a bundle applied by the sync meanwhile waits for
        # the next one, so trust list, status set, rules, health-code keys and the
        # recorded bundle version all come from the same version.
        snap = snapshot_of(self.trust)
        self.snapshot = snap
        try:
            return self._decide_with(symbol, now, snap)
        finally:
            self.snapshot = None

    def _decide_with(
        self, symbol: Symbol, now: datetime, snap: TrustSnapshot
    ) -> tuple[Decision, str, Credential | None]:
        state = snap.state
        ctx = ReadContext(
            trust=snap.trust_list,
            now=now,
            pseudonym_key=self.pseudonym_key,
            skew=timedelta(seconds=self.config.policy.clock_skew_s),
            status=snap.status,
            presentation_id=self.presentations,
            healthcode=self.healthcode,
        )
        try:
            cred = read(symbol, ctx)
        except CredentialError as exc:
            d = refuse(exc.reason)
            return Decision.of(d.reason, bundle_version=state.bundle_version), exc.detail, None
        except Exception as exc:  # last resort (D8): a reader bug refuses, never crashes
            # Only the type: the message may quote scanned text.
            log.error("reader failed on a %s symbol: %s", symbol.kind, type(exc).__name__)
            detail = f"unreadable ({type(exc).__name__})"
            return (
                Decision.of(ReasonCode.MALFORMED, bundle_version=state.bundle_version),
                detail,
                None,
            )
        wait_s, held = self.config.policy.second_credential_s, self.pending
        held = held if held and 0 <= (now - held[1]).total_seconds() <= wait_s else None
        rules = rule_set_from_part(snap.part("rules"), snap.part("valuesets"))
        policy = self.config.policy
        companion = held[0] if held else None
        return decide(cred, policy, state, now, rule_set=rules, companion=companion), "", cred

    def present(self, symbol: Symbol, now: datetime | None = None) -> Outcome:
        """Decide on one presentation and act on it: gate, journal, listeners."""
        now = now or datetime.now(UTC)
        self.presentations += 1
        decision, detail, cred = self._read_and_decide(symbol, now)
        if cred is not None and self.config.scan.identity_match:
            decision = self._match_identity(cred, decision, now)
        if cred is not None:  # 2G+: hold the first certificate until the second is shown
            second = decision.reason is ReasonCode.SECOND_CREDENTIAL_REQUIRED
            self.pending = (cred, now) if second else None
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

    def _match_identity(self, cred: Credential, decision: Decision, now: datetime) -> Decision:
        """Identity match: an admitted certificate waits for an ID document of the same
        person (same keyed pseudonym of ICAO names and birth date) within the window."""
        held, self.identity_pending = self.identity_pending, None
        window = timedelta(seconds=self.config.scan.identity_window_s)
        if cred.kind is CredentialKind.ID_DOCUMENT:
            if held is None or not (timedelta(0) <= now - held[2] <= window):
                return decision
            if cred.holder_pseudonym and cred.holder_pseudonym == held[0]:
                return held[1]
            return Decision.of(
                ReasonCode.IDENTITY_MISMATCH, cred.kind, bundle_version=decision.bundle_version
            )
        if decision.admit:
            self.identity_pending = (cred.holder_pseudonym, decision, now)
            return Decision.of(
                ReasonCode.ID_REQUIRED, cred.kind, bundle_version=decision.bundle_version
            )
        return decision

    def notify(
        self,
        event: Event,
        decision: Decision | None = None,
        *,
        personal: Personal | None = None,
        audit: tuple[str, dict[str, Any]] | None = None,
    ) -> str:
        """Journal ``event`` and tell every listener; return the event id ("" when the
        disk is full: the gate has acted, the listeners are told, a DISK_FULL event
        goes to them once per episode and to the journal once space is back).

        Device events (camera fault, door alarm, override, exit) come through here too,
        with ``decision=None`` and ``event.decision`` set to "event", "override" or "exit".
        ``audit`` = (kind, details): the audit entry the event owes, committed with it.
        """
        try:
            if audit is None:
                event_id = self.journal.record(event, personal=personal)
            else:
                event_id = self.journal.record_audited(event, *audit, personal=personal)
        except DiskFull as exc:
            event_id = ""
            self._disk_full(exc, event.time)
        else:
            if self.disk_full_since is not None:
                self._disk_recovered(event.time)
        self._tell(event, decision)
        return event_id

    def _disk_full(self, exc: DiskFull, now: datetime) -> None:
        self.unjournaled += 1
        if self.disk_full_since is not None:
            return
        self.disk_full_since = now
        log.error("journal write failed, the gate keeps working: %s", exc)
        self._tell(self._device_event_of(ReasonCode.DISK_FULL, "event", now), None)

    def _disk_recovered(self, now: datetime) -> None:
        since, self.disk_full_since = self.disk_full_since, None
        assert since is not None
        log.warning("journal writes work again (%d event(s) not journaled)", self.unjournaled)
        # The outage goes into the journal at the time it began (the listeners were told
        # then), then its end.
        try:
            self.journal.record(self._device_event_of(ReasonCode.DISK_FULL, "event", since))
        except DiskFull as exc:
            self._disk_full(exc, now)
            return
        self.notify(self._device_event_of(ReasonCode.DISK_RECOVERED, "event", now))

    def _tell(self, event: Event, decision: Decision | None) -> None:
        for listener in self.listeners:
            try:
                listener(event, decision)
            except Exception:  # a broken screen must not stop the gate
                log.exception("event listener failed")

    def device_event(
        self,
        reason: ReasonCode,
        kind: str = "event",
        now: datetime | None = None,
    ) -> str:
        """Journal a device event (no personal data) and tell the listeners."""
        return self.notify(self._device_event_of(reason, kind, now or datetime.now(UTC)))

    def _device_event_of(self, reason: ReasonCode, kind: str, now: datetime) -> Event:
        return Event(
            time=now,
            venue=self.config.venue.id,
            gate=self.config.gate.id,
            decision=kind,
            reason=reason.value,
            credential_kind="",
            bundle_version=self.trust.state().bundle_version,
        )


@dataclass(frozen=True, slots=True)
class _DecisionTrust:
    """Parts for the pipeline's health-code verifier: from the snapshot of the decision
    in progress, else (outside a decision) from the provider."""

    pipeline: Pipeline

    def part(self, name: str) -> bytes | None:
        snap = self.pipeline.snapshot
        return snap.part(name) if snap is not None else self.pipeline.trust.part(name)
