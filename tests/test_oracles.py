"""Expected values that do not come from the code under test.

- DCCs signed by the ``openssl`` command-line tool (keys, self-signed DSC certificates and
  signatures), assembled here from the EU DCC specification (COSE_Sign1 per RFC 9052 §4.4,
  CWT per RFC 8392, HC1 = base45(zlib(COSE)), kid = first 8 bytes of SHA-256(DER)), never
  with ``dcc_issue``: ES256 and PS256, each genuine and forged.
- Revocation hashes computed by hand from the EU DCC revocation specification's definitions
  (UCI, COUNTRYCODEUCI = CWT issuer + UCI, SIGNATURE = ES256 ``r`` / the whole RSA
  signature; each the first 128 bits of SHA-256).
- MRZ check digits from ICAO 9303-3 §4.9's own worked examples; the GB 11643-1999 example.
- The audit entry hash from the layout documented in ``journal/audit.py``, hashed here.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import base45
import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from sentinel.config import PolicyConfig
from sentinel.credentials import dcc, iddoc
from sentinel.credentials.trustlist import TrustList
from sentinel.errors import CredentialError
from sentinel.policy import TrustState, decide
from sentinel.reasons import ReasonCode

# openssl 3.0 (Debian bookworm) cannot back-date a certificate, so its validity starts at
# the real time of the run; decisions are taken a day later.
NOW = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
UCI = "URN:UVCI:01:AT:10807843F94AEE0EE5093FBC254BD813#B"
DGC = {  # the EU DCC schema's vaccination example (ehn-dcc-development/ehn-dcc-schema)
    "ver": "1.3.0",
    "nam": {"fn": "Musterfrau", "fnt": "MUSTERFRAU", "gn": "Erika", "gnt": "ERIKA"},
    "dob": "1964-08-12",
    "v": [
        {
            "tg": "840539006",
            "vp": "1119349007",
            "mp": "EU/1/20/1528",
            "ma": "ORG-100030215",
            "dn": 2,
            "sd": 2,
            "dt": "2021-05-29",
            "co": "AT",
            "is": "Ministry of Health, Austria",
            "ci": UCI,
        }
    ],
}

# The openssl CLI is the independent signer: installed by scripts/setup.sh --test; a missing
# one skips only off CI (on CI it fails).
needs_openssl = pytest.mark.skipif(
    shutil.which("openssl") is None and not os.environ.get("CI"), reason="needs the openssl CLI"
)


def _openssl(*args: str, data: bytes | None = None) -> bytes:
    return subprocess.run(["openssl", *args], input=data, capture_output=True, check=True).stdout


class OpensslSigner:
    """A key and self-signed DSC certificate made by the openssl CLI."""

    def __init__(self, tmp: Path, kind: str) -> None:
        self.kind, self.key = kind, tmp / f"{kind}.key"
        if kind == "ES256":
            gen = ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]
        else:
            gen = ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]
        _openssl("genpkey", *gen, "-out", str(self.key))
        pem = tmp / f"{kind}.pem"
        _openssl(
            "req", "-x509", "-new", "-key", str(self.key), "-subj", "/C=AT/CN=DSC test",
            "-days", "3650", "-set_serial", "1", "-out", str(pem),
        )  # fmt: skip
        self.der = _openssl("x509", "-in", str(pem), "-outform", "DER")
        self.kid = hashlib.sha256(self.der).digest()[:8]  # EU DCC: kid = SHA-256(DSC)[0:8]

    def sign(self, data: bytes) -> bytes:
        if self.kind == "ES256":
            der = _openssl("dgst", "-sha256", "-sign", str(self.key), data=data)
            r, s = decode_dss_signature(der)  # COSE wants r || s, 32 bytes each (RFC 9053 §2.1)
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return _openssl(
            "dgst", "-sha256", "-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:32",
            "-sigopt", "rsa_mgf1_md:sha256", "-sign", str(self.key), data=data,
        )  # fmt: skip

    @property
    def alg(self) -> int:
        return -7 if self.kind == "ES256" else -37


def hc1(
    signer: OpensslSigner, dgc: dict, *, forge: bool = False, iss: str | None = "AT"
) -> tuple[str, bytes]:
    """An HC1 text signed by openssl, and its signature; ``forge``: the payload changed
    after signing (a higher dose number), signature kept."""
    protected = cbor2.dumps({1: signer.alg, 4: signer.kid})
    claims: dict = {4: int((NOW + timedelta(days=300)).timestamp())}
    if iss is not None:
        claims[1] = iss
    claims[6] = int((NOW - timedelta(days=1)).timestamp())
    claims[-260] = {1: dgc}
    payload = cbor2.dumps(claims)
    to_sign = cbor2.dumps(["Signature1", protected, b"", payload])  # RFC 9052 §4.4
    signature = signer.sign(to_sign)
    if forge:
        changed = json.loads(json.dumps(dgc))
        changed["v"][0]["dn"] = 3
        claims[-260] = {1: changed}
        payload = cbor2.dumps(claims)
    cose = cbor2.dumps(cbor2.CBORTag(18, [protected, {}, payload, signature]))
    return "HC1:" + base45.b45encode(zlib.compress(cose, 9)).decode(), signature


@pytest.fixture(scope="module", params=["ES256", "PS256"])
def openssl_signer(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    if shutil.which("openssl") is None and not os.environ.get("CI"):
        pytest.skip("needs the openssl CLI")
    return OpensslSigner(tmp_path_factory.mktemp(request.param), request.param)


@needs_openssl
def test_openssl_signed_dcc_verifies_and_is_admitted(openssl_signer: OpensslSigner) -> None:
    text, _ = hc1(openssl_signer, DGC)
    trust = TrustList.from_certificates([openssl_signer.der], country="AT")
    cred = dcc.verify(text, trust, NOW)
    assert cred.kind.value == "dcc-vaccination" and cred.issuer_country == "AT"
    assert decide(cred, PolicyConfig(), TrustState(), NOW).reason is ReasonCode.ADMIT


@needs_openssl
def test_openssl_signed_but_altered_dcc_is_a_bad_signature(openssl_signer: OpensslSigner) -> None:
    text, _ = hc1(openssl_signer, DGC, forge=True)
    trust = TrustList.from_certificates([openssl_signer.der], country="AT")
    with pytest.raises(CredentialError) as exc:
        dcc.verify(text, trust, NOW)
    assert exc.value.reason is ReasonCode.BAD_SIGNATURE


@needs_openssl
def test_signature_of_another_key_with_the_trusted_kid_is_refused(
    openssl_signer: OpensslSigner, tmp_path: Path
) -> None:
    """A forger who knows the kid signs with a key of their own (same algorithm)."""
    forger = OpensslSigner(tmp_path, openssl_signer.kind)
    forger.kid, forger.der = openssl_signer.kid, openssl_signer.der
    text, _ = hc1(forger, DGC)
    trust = TrustList.from_certificates([openssl_signer.der], country="AT")
    with pytest.raises(CredentialError) as exc:
        dcc.verify(text, trust, NOW)
    assert exc.value.reason is ReasonCode.BAD_SIGNATURE


@needs_openssl
def test_revocation_hashes_as_the_eu_specification_defines_them(
    openssl_signer: OpensslSigner,
) -> None:
    """EU DCC revocation (eHealth Network, "DCC revocation", hash types): each value is
    SHA-256 truncated to its first 128 bits; COUNTRYCODEUCI hashes the CWT issuer country
    followed by the UCI; SIGNATURE hashes ECDSA's r (first half of r||s) or the whole RSA
    signature."""
    text, signature = hc1(openssl_signer, DGC)
    trust = TrustList.from_certificates([openssl_signer.der], country="AT")
    cred = dcc.verify(text, trust, NOW)
    signed = signature[:32] if openssl_signer.kind == "ES256" else signature

    def first128(b: bytes) -> str:
        return hashlib.sha256(b).hexdigest()[:32]

    assert set(cred.revocation_keys) == {
        "UCI:" + first128(UCI.encode()),
        "COUNTRYCODEUCI:" + first128(("AT" + UCI).encode()),
        "SIGNATURE:" + first128(signed),
    }
    # the same, once more, through the openssl CLI's own SHA-256
    uci_hash = _openssl("dgst", "-sha256", "-r", data=UCI.encode()).split()[0][:32].decode()
    assert "UCI:" + uci_hash in cred.revocation_keys
    revoked = TrustState(is_revoked=lambda keys: "UCI:" + uci_hash in keys)
    assert decide(cred, PolicyConfig(), revoked, NOW).reason is ReasonCode.REVOKED


def test_icao_check_digit_worked_examples() -> None:
    """ICAO 9303-3 §4.9: "520727" has check digit 3, "AB2134<<<" has 5 (weights 7-3-1)."""
    assert iddoc.check_digit("520727") == "3"
    assert iddoc.check_digit("AB2134<<<") == "5"
    assert iddoc.check_digit("L898902C3") == "6"  # the TD3 specimen's document number
    assert iddoc.check_digit("D23145890") == "7"  # the TD1/TD2 specimen's document number


def test_gb11643_worked_example() -> None:
    """GB 11643-1999 §8 example: 11010519491231002X (ISO 7064 MOD 11-2 gives X)."""
    assert iddoc.cn_check_char("11010519491231002") == "X"
    doc = iddoc.parse_cn_id("11010519491231002X", today=NOW.date())
    assert doc.birth_date is not None and doc.birth_date.isoformat() == "1949-12-31"


def test_audit_entry_hash_layout_is_the_documented_one(tmp_path: Path) -> None:
    """journal/audit.py documents the entry hash as SHA-256 over the compact JSON array
    [seq, time, kind, details, prev_hash] (details: canonical JSON text, sorted keys), the
    first prev_hash being 64 zeros, and an Ed25519 signature over the hash bytes; computed
    here by hand from the rows on disk."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from sentinel.journal.audit import AuditLog

    db = tmp_path / "audit.db"
    with AuditLog(db, tmp_path / "device.key") as log:
        log.append("export", {"rows": 2, "b": "x"})
        log.append("purge", {"day": "2021-01-01"})
        public: Ed25519PublicKey = log.public_key
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT seq, time, kind, details, prev_hash, hash, signature FROM audit")
    prev = "0" * 64
    n = 0
    for seq, time, kind, details, prev_hash, h, sig in rows.fetchall():
        assert details == json.dumps(json.loads(details), sort_keys=True, separators=(",", ":"))
        body = json.dumps([seq, time, kind, details, prev], separators=(",", ":"))
        assert h == hashlib.sha256(body.encode()).hexdigest()
        assert prev_hash == prev
        public.verify(bytes.fromhex(sig), bytes.fromhex(h))  # raises if not
        prev, n = h, n + 1
    conn.close()
    assert n == 2


@needs_openssl
@pytest.mark.parametrize(("iss", "country"), [("DE", "DE"), (None, "AT")])
def test_countrycodeuci_takes_the_cwt_issuer_else_the_entry_country(
    openssl_signer: OpensslSigner, iss: str | None, country: str
) -> None:
    """The CWT issuer (claim 1) is the country of COUNTRYCODEUCI, even when the entry's
    ``co`` differs (a certificate issued by DE for a vaccination given in AT); without an
    issuer claim the entry's country is used."""
    text, _ = hc1(openssl_signer, DGC, iss=iss)
    trust = TrustList.from_certificates([openssl_signer.der], country="AT")
    cred = dcc.verify(text, trust, NOW)
    want = "COUNTRYCODEUCI:" + hashlib.sha256((country + UCI).encode()).hexdigest()[:32]
    assert want in cred.revocation_keys


@needs_openssl
def test_the_cwt_times_are_the_issuers_own(openssl_signer: OpensslSigner) -> None:
    """iat (claim 6) and exp (claim 4), put into the CWT by this test with cbor2 and signed
    by openssl, come back as the credential's issued_at and expires_at, to the second."""
    text, _ = hc1(openssl_signer, DGC)
    trust = TrustList.from_certificates([openssl_signer.der], country="AT")
    cred = dcc.verify(text, trust, NOW)
    want_iat = datetime.fromtimestamp(int((NOW - timedelta(days=1)).timestamp()), UTC)
    want_exp = datetime.fromtimestamp(int((NOW + timedelta(days=300)).timestamp()), UTC)
    assert (cred.issued_at, cred.expires_at) == (want_iat, want_exp)
