"""Symbol → verified Credential, routed by the text's prefix."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sentinel.credentials import dcc, healthcode, iddoc
from sentinel.credentials.model import Credential
from sentinel.credentials.trustlist import TrustList
from sentinel.errors import CredentialError, MalformedCredential
from sentinel.reasons import ReasonCode
from sentinel.scan.symbol import Symbol
from sentinel.trust.provider import StatusLookup


@dataclass(frozen=True, slots=True)
class ReadContext:
    trust: TrustList
    now: datetime
    pseudonym_key: bytes = b""
    skew: timedelta = timedelta(minutes=5)
    # The status set of the current bundle (ID documents, health-code subjects), if any.
    status: StatusLookup | None = None
    # Increases by one per presentation (tracker); lets replay checks tell a phone held
    # still (same presentation) from a code shown again by someone else.
    presentation_id: int = 0
    # Health codes: trusted issuing keys, settings and the replay guard, which lives in the
    # Pipeline across presentations; None: health codes are not read.
    healthcode: healthcode.HealthCodeVerifier | None = None


def read(symbol: Symbol, ctx: ReadContext) -> Credential:
    """Verify the symbol's credential; raise CredentialError (with a reason) otherwise."""
    text = symbol.text
    if text.startswith(dcc.PREFIX):
        return dcc.verify(text, ctx.trust, ctx.now, pseudonym_key=ctx.pseudonym_key, skew=ctx.skew)
    if text.startswith(healthcode.PREFIX) and ctx.healthcode is not None:
        return ctx.healthcode.verify(
            text,
            ctx.now,
            presentation_id=ctx.presentation_id,
            status=ctx.status,
            pseudonym_key=ctx.pseudonym_key,
        )
    if iddoc.looks_like_id(symbol.kind, text):
        try:
            return iddoc.to_credential(symbol.kind, text, ctx.now, ctx.status, ctx.pseudonym_key)
        except CredentialError:
            raise
        except Exception as exc:  # any parser slip is a refusal, never a crash (D8)
            raise MalformedCredential(
                ReasonCode.ID_UNREADABLE, f"ID document unreadable ({type(exc).__name__})"
            ) from None
    raise MalformedCredential(ReasonCode.UNREADABLE, f"unknown code kind ({symbol.kind})")
