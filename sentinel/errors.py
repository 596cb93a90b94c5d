"""One error tree for Sentinel.

SentinelError
├── ConfigError            bad or missing configuration: one clear line, exit 2
├── HardwareError          pins, camera, relay: one clear line, exit 3
├── CredentialError        becomes a refusal with a reason code, never escapes the pipeline
│   (carries .reason: ReasonCode; subclasses below are conveniences)
│   ├── MalformedCredential    prefix, base45, zlib, CBOR, COSE, schema
│   ├── SignatureError         unknown signer, bad signature, signer not allowed
│   └── ValidityError          expired, not yet valid, revoked
├── BundleError            a new credential set is refused; the old one keeps serving
│   ├── BundleSignatureError   manifest not signed by the pinned root key
│   ├── BundleHashError        a part's bytes do not match its hash
│   ├── BundleRollbackError    older or equal version than the one applied
│   ├── BundleExpiredError     manifest past its expiry
│   └── BundleFormatError      unparseable manifest or part
├── JournalError           the journal or the audit chain cannot be written or read
│   └── AuditError             the audit chain does not verify (names the entry)
└── FleetError             outbox / broker / central database problems
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sentinel.reasons import ReasonCode


class SentinelError(Exception):
    """Root of every error Sentinel raises on purpose."""


class ConfigError(SentinelError):
    """Configuration is missing, unparseable or of the wrong shape."""


class HardwareError(SentinelError):
    """A device (pins, camera, relay) cannot be used as configured."""


class CredentialError(SentinelError):
    """A presented credential is refused; ``reason`` says why."""

    def __init__(self, reason: ReasonCode, detail: str = "") -> None:
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
        self.reason = reason
        self.detail = detail


class MalformedCredential(CredentialError):
    """The credential text or its inner structures cannot be parsed."""


class SignatureError(CredentialError):
    """The signer is unknown, not allowed, or the signature is wrong."""


class ValidityError(CredentialError):
    """The credential is outside its validity, or revoked."""


class BundleError(SentinelError):
    """A credential-set bundle is refused; the previous good data stays in use."""


class BundleSignatureError(BundleError):
    """The manifest signature does not verify against the pinned root key."""


class BundleHashError(BundleError):
    """A part's bytes do not match the hash the manifest lists."""


class BundleRollbackError(BundleError):
    """The bundle is not newer than the one applied."""


class BundleExpiredError(BundleError):
    """The manifest is past its expiry time."""


class BundleFormatError(BundleError):
    """The manifest or a part cannot be parsed."""


class JournalError(SentinelError):
    """The journal or audit chain cannot be written or read."""


class AuditError(JournalError):
    """The audit chain does not verify; ``index`` names the first bad entry."""

    def __init__(self, message: str, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


class FleetError(SentinelError):
    """Outbox, broker or central database problem."""
