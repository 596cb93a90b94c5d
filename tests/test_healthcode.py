"""Health codes: format, signature, freshness, replay, status set, every reason code."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import base45
import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sentinel.authority import healthcode_issue as hci
from sentinel.config import Config, HealthCodeConfig, PolicyConfig, replace
from sentinel.credentials import healthcode as hc
from sentinel.credentials.healthcode_keys import HealthCodeKeys, IssuingKey
from sentinel.credentials.model import CredentialKind
from sentinel.credentials.reader import ReadContext, read
from sentinel.credentials.trustlist import TrustList
from sentinel.errors import ConfigError, CredentialError
from sentinel.policy import TrustState, decide
from sentinel.reasons import MESSAGES, ReasonCode
from sentinel.scan import Symbol
from sentinel.trust import StatusEntry

NOW = datetime(2022, 5, 1, 12, 0, tzinfo=UTC)
SKEW = timedelta(seconds=30)
DAY = timedelta(days=1)
SUBJECT = "K7Q2M9X4T1B8"


@pytest.fixture(scope="module", params=["EdDSA", "ES256"])
def issuer(request: pytest.FixtureRequest) -> hci.Issuer:
    return hci.Issuer.generate(request.param)


@pytest.fixture(scope="module")
def keys(issuer: hci.Issuer) -> HealthCodeKeys:
    return HealthCodeKeys((issuer.trusted(),))


def code(issuer: hci.Issuer, status: str = "green", at: datetime = NOW, **kw: object) -> str:
    kw.setdefault("status_valid_until", NOW + DAY)
    return hci.issue(issuer, SUBJECT, status, issued_at=at, **kw)  # type: ignore[arg-type]


def reason_of(fn, *args, **kw) -> ReasonCode:  # type: ignore[no-untyped-def]
    with pytest.raises(CredentialError) as exc:
        fn(*args, **kw)
    return exc.value.reason


def verifier(keys: HealthCodeKeys, **cfg: object) -> hc.HealthCodeVerifier:
    data = keys.to_json_bytes()
    return hc.HealthCodeVerifier(HealthCodeConfig(**cfg), lambda: data)  # type: ignore[arg-type]


def test_round_trip_and_size(issuer: hci.Issuer, keys: HealthCodeKeys) -> None:
    text = code(issuer)
    assert text.startswith("HC:")
    # base45 alphabet == QR alphanumeric set: the whole text encodes in alphanumeric mode
    alnum = set("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:")
    assert set(text) <= alnum
    cose = base45.b45decode(text[3:])
    assert len(cose) <= 125  # 64-byte signature + ~60 bytes of headers and claims
    v = hc.verify_code(text, keys, NOW)
    assert (v.subject, v.status, v.kid) == (SUBJECT, "green", issuer.kid)
    assert v.expires_at - v.issued_at == timedelta(seconds=120)
    assert v.status_valid_until == NOW + DAY


def test_keys_json_round_trip(issuer: hci.Issuer) -> None:
    k = issuer.trusted(not_before=NOW - DAY, not_after=NOW + DAY)
    keys = HealthCodeKeys.from_json_bytes(HealthCodeKeys((k,)).to_json_bytes())
    assert keys.issuers[0].kid == issuer.kid and keys.issuers[0].alg == issuer.alg
    assert keys.issuers[0].not_after == NOW + DAY
    hc.verify_code(code(issuer), keys, NOW)


@pytest.mark.parametrize(
    "doc",
    [
        b"not json",
        b'{"format": "other"}',
        b'{"format": "sentinel-healthcode-keys", "issuers": [{"alg": "EdDSA"}]}',
        b'{"format": "sentinel-healthcode-keys", "issuers": '
        b'[{"alg": "RS256", "public_key": "AAAA"}]}',
    ],
)
def test_bad_keys_json_is_one_config_error(doc: bytes) -> None:
    with pytest.raises(ConfigError, match="healthcode keys|health-code keys"):
        HealthCodeKeys.from_json_bytes(doc, "healthcode keys")


def test_key_of_wrong_type_for_alg(issuer: hci.Issuer) -> None:
    doc = json.loads(HealthCodeKeys((issuer.trusted(),)).to_json_bytes())
    doc["issuers"][0]["alg"] = "ES256" if issuer.alg == hc_alg("EdDSA") else "EdDSA"
    with pytest.raises(ConfigError):
        HealthCodeKeys.from_json_bytes(json.dumps(doc).encode())


def hc_alg(name: str) -> int:
    return {"EdDSA": -8, "ES256": -7}[name]


# --- freshness: the clock-skew edge on both sides ----------------------------------------------


def test_expiry_edge(issuer: hci.Issuer, keys: HealthCodeKeys) -> None:
    text = code(issuer)  # exp = NOW + 120 s
    last_ok = NOW + timedelta(seconds=120) + SKEW
    hc.verify_code(text, keys, last_ok, skew=SKEW)
    r = reason_of(hc.verify_code, text, keys, last_ok + timedelta(seconds=1), skew=SKEW)
    assert r is ReasonCode.CODE_EXPIRED


def test_not_yet_valid_edge(issuer: hci.Issuer, keys: HealthCodeKeys) -> None:
    text = code(issuer)  # iat = NOW: a phone whose clock runs ahead of ours
    first_ok = NOW - SKEW
    hc.verify_code(text, keys, first_ok, skew=SKEW)
    r = reason_of(hc.verify_code, text, keys, first_ok - timedelta(seconds=1), skew=SKEW)
    assert r is ReasonCode.CODE_NOT_YET_VALID


def test_lifetime_longer_than_allowed(issuer: hci.Issuer, keys: HealthCodeKeys) -> None:
    text = code(issuer, lifetime_s=3600)
    r = reason_of(hc.verify_code, text, keys, NOW, max_lifetime=timedelta(minutes=10))
    assert r is ReasonCode.SCHEMA_INVALID


# --- signature and signer ------------------------------------------------------------------------


def test_forged_status_is_bad_signature(issuer: hci.Issuer, keys: HealthCodeKeys) -> None:
    forged = hci.tamper_status(code(issuer, "red"), "green")
    assert reason_of(hc.verify_code, forged, keys, NOW) is ReasonCode.BAD_SIGNATURE


def test_unknown_signer_and_no_keys(issuer: hci.Issuer, keys: HealthCodeKeys) -> None:
    rogue = hci.Issuer.generate()
    assert reason_of(hc.verify_code, code(rogue), keys, NOW) is ReasonCode.UNKNOWN_SIGNER
    r = reason_of(hc.verify_code, code(issuer), HealthCodeKeys(), NOW)
    assert r is ReasonCode.NO_TRUST_DATA


def test_rogue_key_claiming_trusted_kid(issuer: hci.Issuer) -> None:
    rogue = hci.Issuer.generate("EdDSA" if issuer.alg == -8 else "ES256")
    # the device trusts the real issuer's kid but (wrongly) holds another key for it
    bad = HealthCodeKeys((IssuingKey(rogue.kid, rogue.alg, issuer.private_key.public_key()),))
    assert reason_of(hc.verify_code, code(rogue), bad, NOW) is ReasonCode.BAD_SIGNATURE


def test_issuing_key_outside_validity(issuer: hci.Issuer) -> None:
    keys = HealthCodeKeys((issuer.trusted(not_after=NOW - DAY),))
    assert reason_of(hc.verify_code, code(issuer), keys, NOW) is ReasonCode.SIGNER_NOT_VALID


def test_kid_collision_tries_each_key(issuer: hci.Issuer) -> None:
    other = hci.Issuer.generate("EdDSA" if issuer.alg == -8 else "ES256")
    wrong = IssuingKey(issuer.kid, issuer.alg, other.private_key.public_key())
    keys = HealthCodeKeys((wrong, issuer.trusted()))
    assert hc.verify_code(code(issuer), keys, NOW).kid == issuer.kid


# --- damaged input -----------------------------------------------------------------------------


def test_damaged_codes(issuer: hci.Issuer, keys: HealthCodeKeys) -> None:
    text = code(issuer)
    assert reason_of(hc.verify_code, text[:-7], keys, NOW) is ReasonCode.MALFORMED
    assert reason_of(hc.verify_code, "HC:!!!!", keys, NOW) is ReasonCode.MALFORMED
    assert reason_of(hc.verify_code, "HC:" + "A" * 2000, keys, NOW) is ReasonCode.TOO_LARGE
    not_cose = "HC:" + base45.b45encode(cbor2.dumps({"a": 1})).decode()
    assert reason_of(hc.verify_code, not_cose, keys, NOW) is ReasonCode.MALFORMED


def test_signed_but_schema_invalid(issuer: hci.Issuer, keys: HealthCodeKeys) -> None:
    """A validly signed code with a bad claim: the authority's bug, refused by name."""
    prot = cbor2.dumps({1: issuer.alg, 4: issuer.kid})
    payload = cbor2.dumps({2: SUBJECT, 4: int(NOW.timestamp()) + 60, 6: int(NOW.timestamp())})
    text = sign_raw(issuer, prot, payload)
    assert reason_of(hc.verify_code, text, keys, NOW) is ReasonCode.SCHEMA_INVALID


def sign_raw(issuer: hci.Issuer, prot: bytes, payload: bytes) -> str:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    data = cbor2.dumps(["Signature1", prot, b"", payload])
    k = issuer.private_key
    if isinstance(k, ed25519.Ed25519PrivateKey):
        sig = k.sign(data)
    else:
        r, s = decode_dss_signature(k.sign(data, ec.ECDSA(hashes.SHA256())))
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return "HC:" + base45.b45encode(cbor2.dumps([prot, {}, payload, sig])).decode()


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300))
def test_hostile_bytes_only_ever_refuse(data: bytes) -> None:
    keys = HealthCodeKeys((hci.Issuer(_FUZZ_KEY).trusted(),))
    with pytest.raises(CredentialError):
        hc.verify_code("HC:" + base45.b45encode(data).decode(), keys, NOW)


_FUZZ_KEY = hci.Issuer.generate().private_key


# --- replay -------------------------------------------------------------------------------------


def test_same_presentation_is_not_a_replay(issuer: hci.Issuer, keys: HealthCodeKeys) -> None:
    v = verifier(keys)
    text = code(issuer)
    v.verify(text, NOW, presentation_id=1)
    v.verify(text, NOW + timedelta(seconds=5), presentation_id=1)
    r = reason_of(v.verify, text, NOW + timedelta(seconds=10), presentation_id=2)
    assert r is ReasonCode.CODE_REPLAY


def test_phone_held_still_past_cooldown_is_one_showing(
    issuer: hci.Issuer, keys: HealthCodeKeys
) -> None:
    """The tracker re-presents a code held still after its cool-down: same showing."""
    v = verifier(keys)
    text = code(issuer)
    for _ in range(3):
        v.guard.observe([text, "https://example.invalid"])
    v.verify(text, NOW, presentation_id=1)
    for _ in range(80):  # still in view, frame after frame
        v.guard.observe([text])
    v.verify(text, NOW + timedelta(seconds=6), presentation_id=2)
    for _ in range(2):  # a decoder drop-out of two frames: still the same showing
        v.guard.observe([])
    v.guard.observe([text])
    v.verify(text, NOW + timedelta(seconds=7), presentation_id=3)
    for _ in range(9):  # taken away ...
        v.guard.observe([])
    v.guard.observe([text])  # ... and shown again: another showing
    r = reason_of(v.verify, text, NOW + timedelta(seconds=8), presentation_id=4)
    assert r is ReasonCode.CODE_REPLAY


def test_replay_memory_ends_with_the_code(issuer: hci.Issuer, keys: HealthCodeKeys) -> None:
    guard = hc.ReplayGuard()
    for k in range(200):
        guard.check(bytes([k % 256, k // 256]), f"HC:{k}", k, forget_at=1000.0 + k, now=999.0)
    guard.check(b"new", "HC:new", 999, forget_at=5000.0, now=2000.0)  # all others expired
    assert len(guard) == 1


def test_replay_guard_is_bounded() -> None:
    guard = hc.ReplayGuard(max_codes=10)
    for k in range(50):
        guard.check(k.to_bytes(2, "big"), f"HC:{k}", k, forget_at=1e9, now=0.0)
    assert len(guard) <= 10


def test_ecdsa_re_signed_code_is_still_the_same_code(keys: HealthCodeKeys) -> None:
    """ECDSA signatures are malleable; the replay key is the signed bytes, not the text."""
    es = hci.Issuer.generate("ES256")
    keys = HealthCodeKeys((es.trusted(),))
    text = code(es)
    cose = cbor2.loads(base45.b45decode(text[3:]))
    n = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    s = int.from_bytes(cose[3][32:], "big")
    cose[3] = cose[3][:32] + (n - s).to_bytes(32, "big")
    twin = "HC:" + base45.b45encode(cbor2.dumps(cose)).decode()
    assert twin != text
    v = verifier(keys)
    v.verify(text, NOW, presentation_id=1)
    assert reason_of(v.verify, twin, NOW, presentation_id=2) is ReasonCode.CODE_REPLAY


# --- status set and policy ---------------------------------------------------------------------


STATUS_CASES = [
    # code status, status-set entry (status, valid for), expected reason
    ("green", None, ReasonCode.ADMIT),
    ("green", ("green", DAY), ReasonCode.ADMIT),
    ("green", ("red", DAY), ReasonCode.CODE_STATUS_CHANGED),
    ("green", ("yellow", DAY), ReasonCode.CODE_STATUS_CHANGED),
    ("yellow", ("red", DAY), ReasonCode.CODE_STATUS_CHANGED),
    ("green", ("red", -DAY), ReasonCode.ADMIT),  # an entry past its valid-until says nothing
    ("green", ("red", timedelta(0)), ReasonCode.CODE_STATUS_CHANGED),  # holds until then
    ("red", ("green", DAY), ReasonCode.CODE_RED),  # the code, seconds old, is stricter
    ("yellow", None, ReasonCode.CODE_YELLOW),
    ("red", None, ReasonCode.CODE_RED),
]


@pytest.mark.parametrize(("status", "entry", "expected"), STATUS_CASES)
def test_status_set_and_policy(
    issuer: hci.Issuer,
    keys: HealthCodeKeys,
    status: str,
    entry: tuple[str, timedelta] | None,
    expected: ReasonCode,
) -> None:
    entries = {SUBJECT: StatusEntry(entry[0], NOW + entry[1])} if entry else {}
    ctx = ReadContext(
        trust=TrustList(),
        now=NOW,
        status=hci.SubjectStatusSet(entries),
        presentation_id=1,
        healthcode=verifier(keys),
    )
    sym = Symbol("QRCODE", code(issuer, status), b"")
    try:
        cred = read(sym, ctx)
    except CredentialError as exc:
        assert exc.reason is expected
        return
    assert cred.kind is CredentialKind.HEALTH_CODE
    assert decide(cred, PolicyConfig(), TrustState(), NOW).reason is expected


def test_the_verified_subject_is_handed_out_once_for_its_presentation(
    issuer: hci.Issuer, keys: HealthCodeKeys
) -> None:
    """The check-in recorder takes the subject of the code just admitted, once."""
    v = verifier(keys)
    v.verify(code(issuer), NOW, presentation_id=7, pseudonym_key=b"k" * 32)
    assert v.take_verified(8) is None  # another presentation's: nothing, and it is used up
    other = hci.issue(issuer, "someone-else", "green", issued_at=NOW, status_valid_until=NOW + DAY)
    v.verify(other, NOW, presentation_id=9, pseudonym_key=b"k" * 32)
    assert v.take_verified(9) == "someone-else"
    assert v.take_verified(9) is None


def test_status_valid_until_past_is_status_expired(
    issuer: hci.Issuer, keys: HealthCodeKeys
) -> None:
    text = code(issuer, status_valid_until=NOW - timedelta(minutes=1))
    cred = verifier(keys).verify(text, NOW, presentation_id=1, pseudonym_key=b"k" * 32)
    assert cred.holder_pseudonym and SUBJECT not in cred.holder_pseudonym
    assert decide(cred, PolicyConfig(), TrustState(), NOW).reason is ReasonCode.STATUS_EXPIRED


def test_disabled_or_unrouted_health_codes_are_unreadable(
    issuer: hci.Issuer, keys: HealthCodeKeys
) -> None:
    sym = Symbol("QRCODE", code(issuer), b"")
    off = verifier(keys, enabled=False)
    for ctx in (
        ReadContext(trust=TrustList(), now=NOW, healthcode=off),
        ReadContext(trust=TrustList(), now=NOW),
    ):
        assert reason_of(read, sym, ctx) is ReasonCode.UNREADABLE


def test_keys_file_fallback_and_bundle_part_preferred(
    tmp_path, issuer: hci.Issuer, keys: HealthCodeKeys
) -> None:  # type: ignore[no-untyped-def]
    from sentinel.trust import StaticTrust

    path = tmp_path / "keys.json"
    path.write_bytes(keys.to_json_bytes())
    cfg = replace(HealthCodeConfig(), keys_file=str(path))
    v = hc.HealthCodeVerifier.for_provider(cfg, StaticTrust(TrustList()))
    assert v.verify(code(issuer), NOW, presentation_id=1).status == "green"
    other = HealthCodeKeys((hci.Issuer.generate().trusted(),)).to_json_bytes()
    v = hc.HealthCodeVerifier.for_provider(
        cfg, StaticTrust(TrustList(), parts={"healthcode_keys": other})
    )
    assert reason_of(v.verify, code(issuer), NOW, presentation_id=1) is (ReasonCode.UNKNOWN_SIGNER)
    path.write_text("{broken", encoding="utf-8")
    with pytest.raises(ConfigError, match="keys.json"):
        hc.HealthCodeVerifier.for_provider(cfg, StaticTrust(TrustList()))


def test_every_health_code_reason_has_both_messages() -> None:
    for r in (
        ReasonCode.CODE_EXPIRED,
        ReasonCode.CODE_NOT_YET_VALID,
        ReasonCode.CODE_REPLAY,
        ReasonCode.CODE_RED,
        ReasonCode.CODE_YELLOW,
        ReasonCode.CODE_STATUS_CHANGED,
    ):
        en, zh = MESSAGES[r]
        assert en and zh and en != zh


def test_config_keys_load_from_toml(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from sentinel import config

    p = tmp_path / "s.toml"
    p.write_text("[healthcode]\nclock_skew_s = 10\nkeys_file = 'k.json'\n", encoding="utf-8")
    cfg = config.load(p)
    assert cfg.healthcode.clock_skew_s == 10.0
    assert cfg.healthcode.keys_file == str(tmp_path / "k.json")  # next to the config file
    assert Config().healthcode.checkin_records is False


def test_a_keys_file_broken_under_a_running_verifier_refuses_codes_not_the_gate(
    tmp_path, issuer: hci.Issuer
) -> None:  # type: ignore[no-untyped-def]
    """A verifier built without the start-up check (no bundle part, the keys file broken
    or gone): codes are refused for want of trust data, the verifier keeps answering."""
    path = tmp_path / "keys.json"
    path.write_text("{broken", encoding="utf-8")
    v = hc.HealthCodeVerifier(replace(HealthCodeConfig(), keys_file=str(path)))
    assert isinstance(v.keys(), HealthCodeKeys)
    assert reason_of(v.verify, code(issuer), NOW, presentation_id=1) is ReasonCode.NO_TRUST_DATA
    assert reason_of(v.verify, code(issuer), NOW, presentation_id=2) is ReasonCode.NO_TRUST_DATA


def test_no_pseudonym_key_gives_no_pseudonym() -> None:
    """Without a key there is no pseudonym (an empty string, never a hash of the bare
    subject that anyone could recompute)."""
    assert hc.holder_pseudonym("subject-1", b"") == ""
    a, b = hc.holder_pseudonym("subject-1", b"k" * 32), hc.holder_pseudonym("subject-2", b"k" * 32)
    assert len(a) == 32 and a != b


def test_a_drop_out_up_to_absent_frames_is_the_same_showing(
    issuer: hci.Issuer, keys: HealthCodeKeys
) -> None:
    """Seen again 8 frames (absent_frames) after it was last seen: the same showing; 9
    frames after: another one, so a code still in memory is a replay."""
    v = verifier(keys)
    text = code(issuer)
    v.guard.observe([text])
    v.verify(text, NOW, presentation_id=1)
    for _ in range(7):
        v.guard.observe([])
    v.guard.observe([text])  # 8 frames after the last sighting
    v.verify(text, NOW + timedelta(seconds=1), presentation_id=2)
    for _ in range(8):
        v.guard.observe([])
    v.guard.observe([text])  # 9 frames after
    r = reason_of(v.verify, text, NOW + timedelta(seconds=2), presentation_id=3)
    assert r is ReasonCode.CODE_REPLAY


def test_holder_pseudonym_is_the_hmac_the_openssl_cli_computes() -> None:
    """HMAC-SHA-256 under the device key over b"hc|" + subject, its first 128 bits in hex:
    computed by the openssl CLI, so a journal's pseudonyms stay comparable across
    releases."""
    import os
    import shutil
    import subprocess

    if shutil.which("openssl") is None and not os.environ.get("CI"):
        pytest.skip("needs the openssl CLI")
    key = bytes(range(32))
    out = subprocess.run(
        ["openssl", "dgst", "-sha256", "-mac", "HMAC", "-macopt", f"hexkey:{key.hex()}"],
        input=f"hc|{SUBJECT}".encode(),
        capture_output=True,
        check=True,
    ).stdout.decode()
    mac = out.strip().rsplit("= ", 1)[-1]
    assert len(mac) == 64
    assert hc.holder_pseudonym(SUBJECT, key) == mac[:32]
    assert hc.holder_pseudonym(SUBJECT, b"") == ""  # no key: no pseudonym


def test_a_broken_keys_part_is_logged_once_not_per_code(
    issuer: hci.Issuer, caplog: pytest.LogCaptureFixture
) -> None:
    """A bundle part that does not parse is reported once (a gate reads 15 frames a
    second), and codes are refused, not crashed on."""
    v = hc.HealthCodeVerifier(HealthCodeConfig(), lambda: b"{broken")
    with caplog.at_level("ERROR", logger="sentinel.credentials.healthcode"):
        for k in range(3):
            r = reason_of(v.verify, code(issuer), NOW, presentation_id=k)
            assert r is ReasonCode.NO_TRUST_DATA
    errors = [rec.getMessage() for rec in caplog.records if rec.levelname == "ERROR"]
    assert len(errors) == 1 and "healthcode_keys" in errors[0]


def test_a_keys_file_broken_after_the_start_is_logged_and_refuses(
    tmp_path, issuer: hci.Issuer, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "keys.json"
    path.write_text("{broken", encoding="utf-8")
    v = hc.HealthCodeVerifier(replace(HealthCodeConfig(), keys_file=str(path)))
    with caplog.at_level("ERROR", logger="sentinel.credentials.healthcode"):
        r = reason_of(v.verify, code(issuer), NOW, presentation_id=1)
    assert r is ReasonCode.NO_TRUST_DATA
    assert any("keys.json" in rec.getMessage() for rec in caplog.records)


def test_two_presentations_of_one_code_at_the_same_moment_are_one_admission() -> None:
    """Two threads (two camera pipelines, one guard) check the same code for two different
    presentations at once: exactly one is refused as a replay. The guard's lock makes the
    look-up and the insert one step; the barrier inside the look-up proves it: with the
    lock, the second thread cannot reach it while the first waits there (the barrier
    times out after 1 s and the first goes on alone); without it, both would read the
    code as unused before either records it, and both be admitted."""
    import contextlib
    import threading

    from sentinel.credentials.healthcode import ReplayGuard
    from sentinel.errors import ValidityError

    guard = ReplayGuard()
    barrier = threading.Barrier(2, timeout=1.0)

    class Meeting(dict):
        def get(self, key, default=None):  # type: ignore[no-untyped-def, override]
            value = super().get(key, default)  # read, then wait for the other thread
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait()
            return value

    guard._codes = Meeting()
    results: list[str] = []

    def present(pid: int) -> None:
        try:
            guard.check(b"code", "HC:same", pid, forget_at=100.0, now=1.0)
            results.append("admitted")
        except ValidityError as exc:
            results.append(exc.reason.value)

    threads = [threading.Thread(target=present, args=(p,)) for p in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert sorted(results) == ["CODE_REPLAY", "admitted"]


def test_a_decoder_bug_is_a_malformed_refusal_not_a_crash(
    issuer: hci.Issuer, keys: HealthCodeKeys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``verify_code`` promises a CredentialError for anything it cannot verify: a bug in
    a step below it (here the CWT claims decoder raising KeyError) is a MALFORMED refusal
    naming the exception, not the bare exception for the caller to meet."""
    text = code(issuer)
    assert hc.verify_code(text, keys, NOW).status == "green"

    def broken(_payload: bytes) -> dict:
        raise KeyError("a bug")

    monkeypatch.setattr(hc.dcc, "decode_claims", broken)
    with pytest.raises(CredentialError) as exc:
        hc.verify_code(text, keys, NOW)
    assert exc.value.reason is ReasonCode.MALFORMED and "KeyError" in str(exc.value)


def test_the_verifier_uses_the_configured_skew_and_lifetime(
    issuer: hci.Issuer, keys: HealthCodeKeys
) -> None:
    """``[healthcode] clock_skew_s`` and ``max_code_lifetime_s`` reach the check: a code
    from a phone 60 s ahead passes under a 90 s skew and not under the 30 s default; a
    code valid 300 s is refused where codes may live 200 s at most."""
    ahead = code(issuer, at=NOW + timedelta(seconds=60))
    assert verifier(keys, clock_skew_s=90.0).verify(ahead, NOW).kind is CredentialKind.HEALTH_CODE
    assert reason_of(verifier(keys).verify, ahead, NOW) is ReasonCode.CODE_NOT_YET_VALID
    long = code(issuer, lifetime_s=300.0)
    assert verifier(keys).verify(long, NOW).kind is CredentialKind.HEALTH_CODE
    short = verifier(keys, max_code_lifetime_s=200.0)
    assert reason_of(short.verify, long, NOW) is ReasonCode.SCHEMA_INVALID  # lifetime
