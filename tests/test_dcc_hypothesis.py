"""Hostile input at every parsing stage: a refusal with a reason code, never an exception,
never unbounded memory or time (property-based, hypothesis)."""

from __future__ import annotations

import contextlib
import time
import zlib
from datetime import UTC, datetime, timedelta

import base45
import cbor2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sentinel.authority import dcc_issue as di
from sentinel.credentials import certlogic, dcc
from sentinel.credentials.trustlist import TrustList
from sentinel.errors import CredentialError
from sentinel.reasons import ReasonCode

NOW = datetime(2022, 5, 1, 12, 0, tzinfo=UTC)
SIGNER = di.make_signer(
    not_before=datetime(2021, 1, 1, tzinfo=UTC), not_after=datetime(2030, 1, 1, tzinfo=UTC)
)
TRUST = TrustList.from_certificates([SIGNER.der])
GOOD = di.issue(
    di.vaccination(on="2022-01-10"),
    SIGNER,
    issued_at=NOW - timedelta(days=1),
    expires_at=NOW + timedelta(days=300),
)
GOOD_COSE = dcc.decode(GOOD)
# A few thousand examples per parsing stage in CI, well under a minute in total.
_QUIET = [HealthCheck.too_slow]
FAST = settings(max_examples=2500, deadline=None, suppress_health_check=_QUIET)
TEXT = settings(max_examples=1500, deadline=None, suppress_health_check=_QUIET)
SOME = settings(max_examples=1000, deadline=None, suppress_health_check=_QUIET)
REFUSALS = set(ReasonCode) - {ReasonCode.ADMIT}


def refused(text: str) -> ReasonCode | None:
    """Verify; None when verified (only possible for the untouched code)."""
    t0 = time.perf_counter()
    report = dcc.verify_steps(text, TRUST, NOW)
    # a bound against hangs and bombs (a verification takes well under 1 ms), not a timing
    # test: loose enough for a CI machine under heavy load
    assert time.perf_counter() - t0 < 10.0
    if report.error is None:
        return None
    assert isinstance(report.error, CredentialError)
    assert report.error.reason in REFUSALS
    assert report.steps and not report.steps[-1].ok
    return report.error.reason


def cose_text(obj: object) -> str:
    return di.encode_hc1(cbor2.dumps(obj))


@TEXT
@given(st.text(max_size=200))
def test_any_text(text: str) -> None:
    refused(text)


@TEXT
@given(st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:", max_size=400))
def test_base45_alphabet(body: str) -> None:
    assert refused("HC1:" + body) is not None


@FAST
@given(st.integers(min_value=4, max_value=len(GOOD) - 1))
def test_truncated_real_code(cut: int) -> None:
    assert refused(GOOD[:cut]) is not None


@FAST
@given(st.integers(min_value=4, max_value=len(GOOD) - 1), st.sampled_from("0AZ $%*+-./:"))
def test_one_character_changed(pos: int, ch: str) -> None:
    text = GOOD[:pos] + ch + GOOD[pos + 1 :]
    if refused(text) is None:
        # a change in unused deflate padding bits inflates to the very same signed COSE
        assert dcc.decode(text) == GOOD_COSE


@FAST
@given(st.binary(max_size=600))
def test_any_bytes_after_base45(data: bytes) -> None:
    refused("HC1:" + base45.b45encode(data).decode())


@FAST
@given(st.binary(max_size=600))
def test_any_bytes_after_zlib(data: bytes) -> None:
    refused(di.encode_hc1(data))


@FAST
@given(st.integers(min_value=0, max_value=len(GOOD_COSE.payload) - 1), st.integers(1, 255))
def test_payload_byte_flipped(pos: int, xor: int) -> None:
    payload = bytearray(GOOD_COSE.payload)
    payload[pos] ^= xor
    msg = cbor2.CBORTag(18, [GOOD_COSE.protected_bytes, {}, bytes(payload), GOOD_COSE.signature])
    assert refused(cose_text(msg)) is not None


cbor_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.text(max_size=20)
    | st.binary(max_size=20)
    | st.floats(allow_nan=True),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.integers(-300, 10) | st.text(max_size=3), inner, max_size=4)
    ),
    max_leaves=20,
)


@SOME
@given(cbor_values)
def test_any_cbor_structure(obj: object) -> None:
    refused(cose_text(obj))
    refused(
        cose_text(cbor2.CBORTag(18, [b"\xa1\x01\x26", {4: SIGNER.kid}, cbor2.dumps(obj), b"x"]))
    )


hcert_entries = st.dictionaries(
    st.sampled_from(["tg", "dn", "sd", "dt", "tt", "sc", "tr", "fr", "df", "du", "ci", "co", "mp"]),
    cbor_values,
    max_size=8,
)


@settings(max_examples=600, deadline=None, suppress_health_check=_QUIET)
@given(st.sampled_from("vtr"), hcert_entries, cbor_values)
def test_signed_but_malformed_payload(t: str, entry: dict, dob: object) -> None:
    """Correctly signed, schema-hostile: must be SCHEMA_INVALID or a validity refusal."""
    dgc = {"ver": "1.3.0", "nam": {"fnt": "X"}, "dob": dob, t: [entry]}
    text = di.issue(
        {},
        SIGNER,
        issued_at=NOW - timedelta(days=1),
        expires_at=NOW + timedelta(days=1),
        holder=dgc,
    )
    reason = refused(text)
    # "is" (the issuer) is required in every v/t/r entry (DCC JSON schema) and never drawn
    # here, so no example is a valid certificate: each must be refused as content, never
    # verified (None) and never mistaken for a signature or signer problem.
    assert reason in (ReasonCode.SCHEMA_INVALID, ReasonCode.MALFORMED, ReasonCode.TOO_LARGE)


def test_oversized_and_bombs_are_bounded() -> None:
    assert refused("HC1:" + "A" * 100_000) is ReasonCode.TOO_LARGE
    bomb = zlib.compress(b"\x00" * (20 * 1024 * 1024), 9)
    assert refused("HC1:" + base45.b45encode(bomb[:5000]).decode()) in (
        ReasonCode.TOO_LARGE,
        ReasonCode.MALFORMED,
    )


@SOME
@given(cbor_values, cbor_values)
def test_certlogic_never_escapes(expr: object, data: object) -> None:
    with contextlib.suppress(certlogic.CertLogicError):
        certlogic.evaluate(expr, data)
    assert isinstance(certlogic.validate(expr), list)
