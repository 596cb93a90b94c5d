"""Every verifier refuses what it must, for each credential type, through the real chain.

Each case issues a real, signed credential and checks the refusal *and* that the same
credential without the defect is admitted, so a check that is removed or widened fails here.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sentinel.authority import dcc_issue as di
from sentinel.config import PolicyConfig
from sentinel.credentials import dcc
from sentinel.credentials.rules import RuleSet
from sentinel.credentials.trustlist import TrustList
from sentinel.errors import CredentialError
from sentinel.policy import TrustState, decide
from sentinel.reasons import ReasonCode

NOW = datetime(2022, 5, 1, 12, 0, tzinfo=UTC)


def _issue(entry: dict, signer: di.IssuerKey, days: int = 30, **holder: str) -> str:
    return di.issue(
        entry,
        signer,
        issued_at=NOW - timedelta(days=1),
        expires_at=NOW + timedelta(days=days),
        holder=di.person(**holder) if holder else None,
    )


def _decide(text: str, trust: TrustList, now: datetime = NOW) -> ReasonCode:
    """Chain + venue layer only (no CertLogic), so the reading itself is under test."""
    try:
        cred = dcc.verify(text, trust, now)
    except CredentialError as exc:
        return exc.reason
    return decide(cred, PolicyConfig(), TrustState(), now, rule_set=RuleSet()).reason


@pytest.mark.parametrize("algorithm", ["ES256", "PS256"])
def test_positive_test_certificate_is_refused(
    algorithm: str, signer: di.IssuerKey, rsa_signer: di.IssuerKey, trust: TrustList
) -> None:
    key = signer if algorithm == "ES256" else rsa_signer
    sampled = NOW - timedelta(hours=5)
    negative = _issue(di.test(sampled), key)
    positive = _issue(di.test(sampled, negative=False), key)
    assert _decide(negative, trust) is ReasonCode.ADMIT
    assert _decide(positive, trust) is ReasonCode.TEST_POSITIVE


def test_recovery_window_is_the_signed_one(signer: di.IssuerKey, trust: TrustList) -> None:
    text = _issue(di.recovery("2022-03-01", "2022-03-12", "2022-06-30"), signer, days=365)
    assert _decide(text, trust, datetime(2022, 6, 30, 23, tzinfo=UTC)) is ReasonCode.ADMIT
    assert _decide(text, trust, datetime(2022, 7, 1, 1, tzinfo=UTC)) is (
        ReasonCode.RECOVERY_NOT_VALID
    )
    early = _issue(di.recovery("2022-04-20", "2022-05-02", "2022-10-30"), signer)
    assert _decide(early, trust) is ReasonCode.RECOVERY_NOT_VALID  # valid from tomorrow


def test_signer_certificate_before_its_validity_is_refused() -> None:
    """A DSC used before its notBefore (a key published in advance) signs nothing yet."""
    future = di.make_signer(
        "XX",
        not_before=NOW + timedelta(days=10),
        not_after=NOW + timedelta(days=400),
    )
    trust = TrustList.from_certificates([future.der], country="XX")
    text = _issue(di.vaccination(on="2022-01-10"), future)
    assert _decide(text, trust) is ReasonCode.SIGNER_NOT_VALID
    assert _decide(text, trust, NOW + timedelta(days=11)) is ReasonCode.ADMIT


def test_signer_certificate_after_its_validity_is_refused() -> None:
    old = di.make_signer(
        "XX", not_before=NOW - timedelta(days=400), not_after=NOW - timedelta(days=1)
    )
    trust = TrustList.from_certificates([old.der], country="XX")
    text = _issue(di.vaccination(on="2022-01-10"), old)
    assert _decide(text, trust) is ReasonCode.SIGNER_NOT_VALID


@pytest.mark.parametrize("step", ["check_signer_validity", "check_key_usage", "check_times"])
def test_a_decoder_bug_in_any_step_is_a_refusal(
    step: str, signer: di.IssuerKey, trust: TrustList, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The chain's catch-all turns an unexpected exception (a bug, not a CredentialError)
    into a MALFORMED refusal: it fails closed, never counts the step as passed."""
    text = _issue(di.vaccination(on="2022-01-10"), signer)
    assert _decide(text, trust) is ReasonCode.ADMIT

    def broken(*_args: object, **_kw: object) -> None:
        raise KeyError("a bug")

    monkeypatch.setattr(dcc, step, broken)
    report = dcc.verify_steps(text, trust, NOW)
    assert report.credential is None and report.error is not None
    assert report.error.reason is ReasonCode.MALFORMED
    failed = [s for s in report.steps if not s.ok]
    assert len(failed) == 1 and "KeyError" in failed[0].detail
    assert _decide(text, trust) is ReasonCode.MALFORMED


@pytest.mark.parametrize("algorithm", ["ES256", "PS256"])
def test_forged_signature_under_a_trusted_kid_is_refused(
    algorithm: str, signer: di.IssuerKey, rsa_signer: di.IssuerKey, trust: TrustList
) -> None:
    """A forger's own key of the same algorithm, presenting a trusted signer's kid."""
    trusted = signer if algorithm == "ES256" else rsa_signer
    forger = di.make_signer(
        "XX",
        rsa_key=algorithm == "PS256",
        not_before=datetime(2021, 1, 1, tzinfo=UTC),
        not_after=datetime(2030, 1, 1, tzinfo=UTC),
    )
    fake = di.IssuerKey(forger.private_key, trusted.certificate)  # kid of the trusted one
    genuine = _issue(di.vaccination(on="2022-01-10"), trusted)
    forged = _issue(di.vaccination(on="2022-01-10"), fake)
    assert dcc.decode(forged).kid == trusted.kid
    assert _decide(genuine, trust) is ReasonCode.ADMIT
    assert _decide(forged, trust) is ReasonCode.BAD_SIGNATURE


def test_cose_structure_edges(signer: di.IssuerKey, trust: TrustList) -> None:
    """RFC 9052 §4.2: COSE_Sign1 is tag 18 (or untagged; a CWT tag 61 may wrap it); any other
    tag, a 3- or 5-element array, or headers of the wrong type are MALFORMED."""
    import zlib

    import base45
    import cbor2

    text = _issue(di.vaccination(on="2022-01-10"), signer)
    cose = dcc.decode(text)
    parts = [cose.protected_bytes, dict(cose.unprotected), cose.payload, cose.signature]

    def hc1(obj: object) -> str:
        return "HC1:" + base45.b45encode(zlib.compress(cbor2.dumps(obj))).decode()

    assert _decide(hc1(cbor2.CBORTag(18, parts)), trust) is ReasonCode.ADMIT
    assert _decide(hc1(parts), trust) is ReasonCode.ADMIT  # untagged
    assert _decide(hc1(cbor2.CBORTag(61, cbor2.CBORTag(18, parts))), trust) is ReasonCode.ADMIT
    for bad in (
        cbor2.CBORTag(98, parts),  # COSE_Sign, not COSE_Sign1
        cbor2.CBORTag(17, parts),  # COSE_Mac0
        parts[:3],
        [*parts, b""],
        [cose.protected_bytes, [], cose.payload, cose.signature],
        [cose.protected_bytes, {}, "text payload", cose.signature],
        [cbor2.dumps([1, 2]), {}, cose.payload, cose.signature],  # protected not a map
    ):
        assert _decide(hc1(bad), trust) is ReasonCode.MALFORMED, bad


def test_key_usage_restricts_what_a_signer_may_sign() -> None:
    """DCC Vol. 3 §5 (EKU OIDs): a test-only signer signs no vaccinations."""
    only_t = di.make_signer(
        "XX", cert_types="t", not_before=NOW - timedelta(days=9), not_after=NOW + timedelta(days=9)
    )
    trust = TrustList.from_certificates([only_t.der], country="XX")
    assert dcc.certificate_types(only_t.certificate) == frozenset("t")
    test = _issue(di.test(NOW - timedelta(hours=5)), only_t)
    vac = _issue(di.vaccination(on="2022-01-10"), only_t)
    assert _decide(test, trust) is ReasonCode.ADMIT
    assert _decide(vac, trust) is ReasonCode.SIGNER_NOT_ALLOWED


# hcert specification, "Key Usage Policy Identifiers" (DCC Vol. 3 §5): the published OIDs,
# written here from the specification (not from ``dcc.EKU_TYPES``), and the alternative
# arc some issuers used
PUBLISHED_EKU = {
    "1.3.6.1.4.1.1847.2021.1.1": "t",
    "1.3.6.1.4.1.1847.2021.1.2": "v",
    "1.3.6.1.4.1.1847.2021.1.3": "r",
    "1.3.6.1.4.1.0.1847.2021.1.1": "t",
    "1.3.6.1.4.1.0.1847.2021.1.2": "v",
    "1.3.6.1.4.1.0.1847.2021.1.3": "r",
}


@pytest.mark.parametrize(
    ("oids", "kind"),
    [([oid], kind) for oid, kind in sorted(PUBLISHED_EKU.items())]
    + [
        (["1.3.6.1.5.5.7.3.1"], "vtr"),  # serverAuth only: no restriction (the spec)
        (["1.3.6.1.5.5.7.3.1", "1.3.6.1.4.1.1847.2021.1.3"], "r"),  # other purposes beside
    ],
)
def test_each_published_key_usage_oid_restricts_the_signer_to_its_type(
    oids: list[str], kind: str
) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "XX")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=1))
        .add_extension(
            x509.ExtendedKeyUsage([x509.ObjectIdentifier(o) for o in oids]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    assert dcc.certificate_types(cert) == frozenset(kind)


def test_colliding_kids_are_each_tried(signer: di.IssuerKey) -> None:
    """Two trusted certificates under one kid (kids are 8 bytes): the one that verifies
    signs, whichever comes first; neither verifying is a bad signature."""
    from sentinel.credentials.trustlist import Signer

    other = di.make_signer(
        "XX",
        not_before=datetime(2021, 1, 1, tzinfo=UTC),
        not_after=datetime(2030, 1, 1, tzinfo=UTC),
    )
    text = _issue(di.vaccination(on="2022-01-10"), signer)
    kid = signer.kid
    for order in ((other, signer), (signer, other)):
        trust = TrustList(Signer(kid, "XX", k.certificate) for k in order)
        assert _decide(text, trust) is ReasonCode.ADMIT
    wrong = TrustList([Signer(kid, "XX", other.certificate)])
    assert _decide(text, wrong) is ReasonCode.BAD_SIGNATURE


def test_expiry_and_issue_time_edges_with_the_clock_skew(signer: di.IssuerKey) -> None:
    """exp is honoured up to the skew (5 min by default), iat may lie up to the skew ahead."""
    trust = TrustList.from_certificates([signer.der], country="XX")
    skew = timedelta(minutes=5)
    exp = NOW + timedelta(days=1)
    text = di.issue(di.vaccination(on="2022-01-10"), signer, issued_at=NOW, expires_at=exp)
    assert _decide(text, trust, exp + skew) is ReasonCode.ADMIT
    assert _decide(text, trust, exp + skew + timedelta(seconds=1)) is ReasonCode.EXPIRED
    assert _decide(text, trust, NOW - skew) is ReasonCode.ADMIT
    assert _decide(text, trust, NOW - skew - timedelta(seconds=1)) is ReasonCode.NOT_YET_VALID


def _detail(text: str, trust: TrustList) -> str:
    report = dcc.verify_steps(text, trust, NOW)
    assert report.error is not None
    return report.error.detail


def test_zlib_layer_names_what_is_wrong(signer: di.IssuerKey, trust: TrustList) -> None:
    """DCC Vol. 3 §3.2: the COSE must be zlib-compressed (vector common/Z2): an uncompressed
    COSE is refused as "not a zlib stream" (RFC 1950 §2.2 header), not by accident."""
    import base45

    cose = dcc.inflate(dcc.b45decode(dcc.unprefix(_issue(di.vaccination(on="2022-01-10"), signer))))
    raw = "HC1:" + base45.b45encode(cose).decode()
    assert "not a zlib stream" in _detail(raw, trust)
    assert "not a zlib stream" in _detail("HC1:" + base45.b45encode(b"x").decode(), trust)


def test_inflate_cap_is_inclusive() -> None:
    import zlib

    data = zlib.compress(b"x" * 1000)
    assert len(dcc.inflate(data, max_bytes=1000)) == 1000
    with pytest.raises(CredentialError) as exc:
        dcc.inflate(data, max_bytes=999)
    assert exc.value.reason is ReasonCode.TOO_LARGE


def test_cose_header_and_payload_must_be_byte_strings(
    signer: di.IssuerKey, trust: TrustList
) -> None:
    import zlib

    import base45
    import cbor2

    cose = dcc.decode(_issue(di.vaccination(on="2022-01-10"), signer))

    def hc1(obj: object) -> str:
        return "HC1:" + base45.b45encode(zlib.compress(cbor2.dumps(obj))).decode()

    for prot, payload in (({1: -7}, cose.payload), (cose.protected_bytes, {1: "x"})):
        text = hc1(cbor2.CBORTag(18, [prot, {}, payload, cose.signature]))
        assert "not bytes" in _detail(text, trust)


def test_protected_header_must_be_a_map(signer: di.IssuerKey, trust: TrustList) -> None:
    import zlib

    import base45
    import cbor2

    cose = dcc.decode(_issue(di.vaccination(on="2022-01-10"), signer))
    obj = cbor2.CBORTag(18, [cbor2.dumps([1, -7]), {}, cose.payload, cose.signature])
    text = "HC1:" + base45.b45encode(zlib.compress(cbor2.dumps(obj))).decode()
    assert "protected header not a map" in _detail(text, trust)


def test_cwt_payload_must_be_a_map(signer: di.IssuerKey, trust: TrustList) -> None:
    import zlib

    import base45
    import cbor2

    cose = dcc.decode(_issue(di.vaccination(on="2022-01-10"), signer))
    obj = cbor2.CBORTag(18, [cose.protected_bytes, {}, cbor2.dumps([1, 2]), cose.signature])
    text = "HC1:" + base45.b45encode(zlib.compress(cbor2.dumps(obj))).decode()
    assert "payload not a map" in _detail(text, trust)


@pytest.mark.parametrize("algorithm", ["ES256", "PS256"])
def test_a_key_of_the_other_family_under_a_trusted_kid_is_a_bad_signature(
    algorithm: str, signer: di.IssuerKey, rsa_signer: di.IssuerKey, trust: TrustList
) -> None:
    """An ES256 signature presented under an RSA signer's kid (and PS256 under an EC one):
    refused as a bad signature, never a crash into MALFORMED."""
    key = signer if algorithm == "ES256" else rsa_signer
    other = rsa_signer if algorithm == "ES256" else signer
    text = _issue(di.vaccination(on="2022-01-10"), di.IssuerKey(key.private_key, other.certificate))
    assert _decide(text, trust) is ReasonCode.BAD_SIGNATURE


def test_unknown_or_missing_kid_is_refused_at_the_signer_step(
    signer: di.IssuerKey, trust: TrustList
) -> None:
    import zlib

    import base45
    import cbor2

    cose = dcc.decode(_issue(di.vaccination(on="2022-01-10"), signer))

    def failed_step(protected: dict) -> tuple[str, ReasonCode]:
        obj = cbor2.CBORTag(18, [cbor2.dumps(protected), {}, cose.payload, cose.signature])
        text = "HC1:" + base45.b45encode(zlib.compress(cbor2.dumps(obj))).decode()
        report = dcc.verify_steps(text, trust, NOW)
        step = next(s for s in report.steps if not s.ok)
        return step.name, step.reason  # type: ignore[return-value]

    assert failed_step({1: -7}) == ("signer", ReasonCode.UNKNOWN_SIGNER)  # no kid at all
    assert failed_step({1: -7, 4: b"\0" * 8}) == ("signer", ReasonCode.UNKNOWN_SIGNER)


def test_cwt_times_must_be_numbers(signer: di.IssuerKey, trust: TrustList) -> None:
    """RFC 8392 §3.1.4: exp is a NumericDate; a signed text date is named, not a crash."""
    import cbor2

    cose = dcc.decode(_issue(di.vaccination(on="2022-01-10"), signer))
    claims = cbor2.loads(cose.payload)
    claims[4] = "2030-01-01"
    text = di.encode_hc1(di.sign_cose(cbor2.dumps(claims), signer))
    assert "not a time" in _detail(text, trust)


def test_cwt_times_past_2_40_seconds_are_not_times(signer: di.IssuerKey, trust: TrustList) -> None:
    """An exp of 2**41 s (year ~71700) would mean "never expires": refused, not admitted."""
    import cbor2

    cose = dcc.decode(_issue(di.vaccination(on="2022-01-10"), signer))
    claims = cbor2.loads(cose.payload)
    claims[4] = 2**41
    text = di.encode_hc1(di.sign_cose(cbor2.dumps(claims), signer))
    assert _decide(text, trust) is ReasonCode.MALFORMED
    claims[4] = 2**35  # year 3058: a time, far in the future
    text = di.encode_hc1(di.sign_cose(cbor2.dumps(claims), signer))
    assert _decide(text, trust) is ReasonCode.ADMIT
