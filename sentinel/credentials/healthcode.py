"""Health codes: short-lived signed QR codes, ``HC:`` → base45 → COSE_Sign1 → CWT.

A health code is drawn by the authority's app every minute or so; it says who (a
pseudonymous subject id), what (green / yellow / red and until when) and for how long the
code itself may be shown (120 s by default).  See ``docs/healthcode.md`` for the byte
layout.  In short (RFC 9052 §4.2, RFC 8392)::

    HC:<base45( [ bstr{1: alg, 4: kid}, {}, bstr(CWT), signature ] )>
    CWT = {2: sub (text), 4: exp, 6: iat, -65537: [status 0|1|2, status_valid_until]}

Verifying is pure (``verify_code``: bytes, keys and ``now`` in, a ``VerifiedCode`` out,
or a ``CredentialError`` with its reason).  ``HealthCodeVerifier`` adds what lives across
presentations: the ``ReplayGuard``, the trusted keys of the current bundle and the
status-set override.  Each outcome has its own reason code.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from sentinel.config import HealthCodeConfig
from sentinel.credentials import dcc
from sentinel.credentials.healthcode_keys import HealthCodeKeys, IssuingKey
from sentinel.credentials.model import Credential, CredentialKind
from sentinel.errors import (
    ConfigError,
    CredentialError,
    MalformedCredential,
    SignatureError,
    ValidityError,
)
from sentinel.reasons import ReasonCode

if TYPE_CHECKING:
    from sentinel.trust.provider import StatusEntry, StatusLookup

log = logging.getLogger(__name__)

PREFIX = "HC:"
MAX_TEXT_CHARS = 1024  # a real code is under 200 characters
CWT_SUB, CWT_EXP, CWT_IAT = 2, 4, 6  # RFC 8392 §4
CWT_HEALTH = -65537  # private-use claim (RFC 8392 §9.1: below -65536): [status, valid_until]
STATUSES = ("green", "yellow", "red")
MAX_SUBJECT_CHARS = 64
MAX_EPOCH = 2**35 - 1  # year 3058: far beyond any code, and time arithmetic stays in range


# --- verifying (pure) -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VerifiedCode:
    """A health code whose signature and freshness were checked."""

    code_id: bytes  # SHA-256 of the signed bytes: the same code however it is re-encoded
    kid: bytes
    subject: str
    issued_at: datetime
    expires_at: datetime
    status: str
    status_valid_until: datetime


def _schema(cond: bool, what: str) -> None:
    if not cond:
        raise MalformedCredential(ReasonCode.SCHEMA_INVALID, what)


def _epoch(value: Any, what: str) -> datetime:
    _schema(
        isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_EPOCH, what
    )
    return datetime.fromtimestamp(value, UTC)


def _check_signature(cose: dcc.CoseSign1, key: IssuingKey) -> None:
    data = dcc.sig_structure(cose)
    if cose.alg != key.alg:
        raise SignatureError(ReasonCode.BAD_SIGNATURE, f"algorithm {cose.alg} not this key's")
    try:
        if isinstance(key.public_key, ed25519.Ed25519PublicKey):
            key.public_key.verify(cose.signature, data)
        else:
            if len(cose.signature) != 64:
                raise InvalidSignature
            r = int.from_bytes(cose.signature[:32], "big")
            s = int.from_bytes(cose.signature[32:], "big")
            key.public_key.verify(encode_dss_signature(r, s), data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise SignatureError(ReasonCode.BAD_SIGNATURE, "signature does not verify") from None


def _find_key(cose: dcc.CoseSign1, keys: HealthCodeKeys, now: datetime) -> IssuingKey:
    if not keys.issuers:
        raise SignatureError(ReasonCode.NO_TRUST_DATA, "no trusted health-code issuing keys")
    key = dcc.first_verifying(cose, keys.lookup, lambda k: _check_signature(cose, k))
    if (key.not_before and now < key.not_before) or (key.not_after and now > key.not_after):
        raise SignatureError(ReasonCode.SIGNER_NOT_VALID, "issuing key not valid now")
    return key


def decode(text: str) -> dcc.CoseSign1:
    """``HC:`` text → COSE_Sign1 (no signature check)."""
    if len(text) > MAX_TEXT_CHARS:
        raise MalformedCredential(ReasonCode.TOO_LARGE, f"text longer than {MAX_TEXT_CHARS}")
    if not text.startswith(PREFIX):
        raise MalformedCredential(ReasonCode.UNREADABLE, "no HC: prefix")
    return dcc.decode_cose(dcc.b45decode(text[len(PREFIX) :]))


def verify_code(
    text: str,
    keys: HealthCodeKeys,
    now: datetime,
    *,
    skew: timedelta = timedelta(seconds=30),
    max_lifetime: timedelta = timedelta(minutes=10),
) -> VerifiedCode:
    """Signature, claims and freshness of one code at ``now``; CredentialError otherwise.

    Fresh means ``iat - skew <= now <= exp + skew``: a screenshot older than its lifetime
    is CODE_EXPIRED, a code from a phone whose clock runs ahead is CODE_NOT_YET_VALID.
    """
    try:
        cose = decode(text)
        key = _find_key(cose, keys, now)
        claims = dcc.decode_claims(cose.payload)
        sub = claims.get(CWT_SUB)
        _schema(isinstance(sub, str) and 0 < len(sub) <= MAX_SUBJECT_CHARS, "sub missing")
        iat = _epoch(claims.get(CWT_IAT), "iat missing or out of range")
        exp = _epoch(claims.get(CWT_EXP), "exp missing or out of range")
        _schema(iat < exp <= iat + max_lifetime, "code lifetime out of range")
        health = claims.get(CWT_HEALTH)
        _schema(isinstance(health, list) and len(health) == 2, "health claim missing")
        st = health[0]
        _schema(isinstance(st, int) and not isinstance(st, bool) and 0 <= st < 3, "bad status")
        status_until = _epoch(health[1], "status valid-until missing or out of range")
        if now > exp + skew:
            raise ValidityError(ReasonCode.CODE_EXPIRED, "code past its expiry")
        if now < iat - skew:
            raise ValidityError(ReasonCode.CODE_NOT_YET_VALID, "code issued in the future")
        code_id = hashlib.sha256(cose.protected_bytes + cose.payload).digest()[:16]
        return VerifiedCode(code_id, key.kid, sub, iat, exp, STATUSES[st], status_until)
    except CredentialError:
        raise
    except Exception as exc:  # a decoder bug must become a refusal, never a crash
        raise MalformedCredential(ReasonCode.MALFORMED, f"{type(exc).__name__}: {exc}") from None


_RANK = {s: i for i, s in enumerate(STATUSES)}


def apply_status(code: VerifiedCode, entry: StatusEntry | None, now: datetime) -> None:
    """The status set overrides a code whose status is less strict than its newer entry.

    An entry past its valid-until says nothing any more; a stricter code (drawn seconds
    ago) keeps its own status.  Raises CODE_STATUS_CHANGED when the set is stricter.
    """
    if entry is None or entry.valid_until < now or entry.status not in _RANK:
        return
    if _RANK[entry.status] > _RANK[code.status]:
        raise ValidityError(
            ReasonCode.CODE_STATUS_CHANGED, f"status set says {entry.status}, code {code.status}"
        )


# --- across presentations --------------------------------------------------------------------


class ReplayGuard:
    """Which presentation used which code, for as long as the code is valid.

    A code seen again inside its lifetime is a replay only when another presentation
    shows it.  A presentation is a *showing*: the time a code text stays in view, fed per
    frame by ``observe``; a phone held still past the tracker's cool-down is the same
    showing.  Gaps of up to ``absent_frames`` frames (about half a second at 15 fps; more
    than the tracker's) bridge decoder drop-outs: passing a phone or raising a second one
    takes longer.  Codes presented without frames (``Pipeline.present``) fall back to the
    pipeline's presentation id.
    """

    PRUNE_EVERY_S = 10.0

    def __init__(self, *, absent_frames: int = 8, max_codes: int = 100_000) -> None:
        self.absent_frames = absent_frames
        self.max_codes = max_codes
        self._lock = threading.Lock()
        self._frame = 0
        self._next_showing = 0
        self._showing: dict[str, tuple[int, int]] = {}  # text -> (showing, last frame seen)
        self._codes: dict[bytes, tuple[Hashable, float]] = {}  # code_id -> (who, forget at)
        self._next_prune = float("-inf")

    def observe(self, texts: Iterable[str]) -> None:
        """Feed one frame's decoded texts (health codes among them)."""
        with self._lock:
            self._frame += 1
            for text in texts:
                if not text.startswith(PREFIX):
                    continue
                prev = self._showing.get(text)
                if prev is None or self._frame - prev[1] > self.absent_frames:
                    self._next_showing += 1
                    self._showing[text] = (self._next_showing, self._frame)
                else:
                    self._showing[text] = (prev[0], self._frame)
            gone = [
                t for t, (_, f) in self._showing.items() if self._frame - f > self.absent_frames
            ]
            for t in gone:
                del self._showing[t]

    def check(
        self, code_id: bytes, text: str, presentation_id: int, forget_at: float, now: float
    ) -> None:
        """Record that this presentation uses the code; CODE_REPLAY if another did."""
        with self._lock:
            shown = self._showing.get(text)
            who: Hashable = ("showing", shown[0]) if shown else ("presentation", presentation_id)
            if now >= self._next_prune or len(self._codes) >= self.max_codes:
                self._next_prune = now + self.PRUNE_EVERY_S
                for cid in [c for c, (_, t) in self._codes.items() if t < now]:
                    del self._codes[cid]
                while len(self._codes) >= self.max_codes:  # oldest first (insertion order)
                    del self._codes[next(iter(self._codes))]
            seen = self._codes.get(code_id)
            if seen is not None and seen[1] >= now and seen[0] != who:
                raise ValidityError(ReasonCode.CODE_REPLAY, "code shown by another presentation")
            if seen is None or seen[1] < now:
                self._codes[code_id] = (who, forget_at)

    def __len__(self) -> int:
        return len(self._codes)


def holder_pseudonym(subject: str, key: bytes) -> str:
    if not key:
        return ""
    return hmac.new(key, b"hc|" + subject.encode(), hashlib.sha256).hexdigest()[:32]


@dataclass(slots=True)
class HealthCodeVerifier:
    """Per pipeline: trusted keys (bundle part, else keys file), replay guard, settings."""

    config: HealthCodeConfig = field(default_factory=HealthCodeConfig)
    part: Callable[[], bytes | None] = lambda: None  # the bundle's "healthcode_keys" part
    guard: ReplayGuard = field(default_factory=ReplayGuard)
    last_verified: tuple[int, str] | None = None  # (presentation id, subject) of the last code
    _cache: tuple[bytes | None, HealthCodeKeys] | None = None
    _file_keys: HealthCodeKeys | None = None

    @classmethod
    def for_provider(cls, config: HealthCodeConfig, trust: Any) -> HealthCodeVerifier:
        """Keys from ``trust.part("healthcode_keys")``, falling back to ``config.keys_file``."""
        verifier = cls(config, lambda: trust.part("healthcode_keys"))
        if config.keys_file:  # a broken keys file stops the start with one line
            verifier._file_keys = HealthCodeKeys.load(config.keys_file)
        return verifier

    def keys(self) -> HealthCodeKeys:
        """The bundle's keys when it ships them, else the configured keys file."""
        data = self.part()
        if self._cache is not None and self._cache[0] == data:
            return self._cache[1]
        if data is not None:
            try:
                keys = HealthCodeKeys.from_json_bytes(data, "bundle part healthcode_keys")
            except ConfigError as exc:
                log.error("%s; using the keys file, if any", exc)
                keys = self._keys_file()
        else:
            keys = self._keys_file()
        self._cache = (data, keys)
        return keys

    def _keys_file(self) -> HealthCodeKeys:
        if self._file_keys is None:
            path = self.config.keys_file
            try:
                self._file_keys = HealthCodeKeys.load(path) if path else HealthCodeKeys()
            except ConfigError as exc:  # refuse codes (NO_TRUST_DATA), never crash the gate
                log.error("%s", exc)
                return HealthCodeKeys()
        return self._file_keys

    def verify(
        self,
        text: str,
        now: datetime,
        *,
        presentation_id: int = 0,
        status: StatusLookup | None = None,
        pseudonym_key: bytes = b"",
    ) -> Credential:
        """Verified, fresh, not replayed, status-checked code → Credential for the policy."""
        if not self.config.enabled:
            raise MalformedCredential(ReasonCode.UNREADABLE, "health codes are disabled here")
        skew = timedelta(seconds=self.config.clock_skew_s)
        code = verify_code(
            text,
            self.keys(),
            now,
            skew=skew,
            max_lifetime=timedelta(seconds=self.config.max_code_lifetime_s),
        )
        forget_at = (code.expires_at + skew).timestamp()
        self.guard.check(code.code_id, text, presentation_id, forget_at, now.timestamp())
        if status is not None:
            apply_status(code, status.lookup_subject(code.subject), now)
        self.last_verified = (presentation_id, code.subject)
        return Credential(
            kind=CredentialKind.HEALTH_CODE,
            issuer_kid=code.kid.hex(),
            issued_at=code.issued_at,
            expires_at=code.expires_at,
            status=code.status,
            status_valid_until=code.status_valid_until,
            holder_pseudonym=holder_pseudonym(code.subject, pseudonym_key),
        )

    def take_verified(self, presentation_id: int) -> str | None:
        """The subject of the code verified for ``presentation_id`` (once), for records."""
        lv, self.last_verified = self.last_verified, None
        return lv[1] if lv is not None and lv[0] == presentation_id else None
