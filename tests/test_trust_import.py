"""Trust lists as authorities publish them, imported by ``sentinel publish build``."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from sentinel.authority.trustimport import import_signers
from sentinel.cli import main
from sentinel.credentials.trustlist import kid_of
from sentinel.errors import ConfigError
from sentinel.trust.store import StoreTrust

NOW = datetime.now(UTC)
DAY = timedelta(days=1)


def cert(
    country: str = "XX",
    *,
    rsa_key: bool = False,
    days: tuple[int, int] = (-30, 300),
    ca: bool | None = None,
    digital_signature: bool | None = None,
) -> x509.Certificate:
    key: Any = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if rsa_key
        else ec.generate_private_key(ec.SECP256R1())
    )
    name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, country)])
    b = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW + days[0] * DAY)
        .not_valid_after(NOW + days[1] * DAY)
    )
    if ca is not None:
        b = b.add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    if digital_signature is not None:
        ku = dict.fromkeys(
            ("content_commitment", "key_encipherment", "data_encipherment", "key_agreement",
             "crl_sign", "encipher_only", "decipher_only"), False)  # fmt: skip
        b = b.add_extension(
            x509.KeyUsage(
                digital_signature=digital_signature, key_cert_sign=not digital_signature, **ku
            ),  # fmt: skip
            critical=True,
        )
    return b.sign(key, hashes.SHA256())


def der(c: x509.Certificate) -> bytes:
    return c.public_bytes(Encoding.DER)


def dgcg_entry(c: x509.Certificate, **over: Any) -> dict[str, Any]:
    """One entry as the DCC Gateway's trust list serves it (dgc-gateway TrustListDto)."""
    e = {
        "kid": base64.b64encode(kid_of(der(c))).decode(),
        "timestamp": "2021-06-01T10:00:00+02:00",
        "country": "XX",
        "certificateType": "DSC",
        "thumbprint": hashlib.sha256(der(c)).hexdigest(),
        "signature": "MIAGCSqGSIb3DQEHAqCAMIACAQExDTALBglghkgBZQMEAgEw",
        "rawData": base64.b64encode(der(c)).decode(),
    }
    return {**e, **over}


def test_dgcg_trust_list_with_each_check(tmp_path: Path) -> None:
    good_ec, good_rsa, pem_entry = cert("AT"), cert("DE", rsa_key=True), cert("FR")
    csca = cert()
    entries = [
        dgcg_entry(good_ec, country="AT"),
        dgcg_entry(good_rsa, country="DE"),
        dgcg_entry(pem_entry, rawData=pem_entry.public_bytes(Encoding.PEM).decode()),
        dgcg_entry(csca, certificateType="CSCA"),
        dgcg_entry(cert(), thumbprint="00" * 32),
        dgcg_entry(cert(), kid=base64.b64encode(b"12345678").decode()),
        dgcg_entry(cert(days=(-400, -1))),
        dgcg_entry(cert(ca=True)),
        dgcg_entry(cert(digital_signature=False)),
        dgcg_entry(cert(), rawData="not base64!"),
    ]
    src = tmp_path / "trustlist.json"
    src.write_text(json.dumps(entries))
    got = import_signers([src], NOW)
    assert [s.certificate for s in got.signers] == [good_ec, good_rsa, pem_entry]
    assert [s.country for s in got.signers] == ["AT", "DE", "XX"]
    why = "\n".join(got.notes)
    for reason in ("CSCA is not a signer", "thumbprint does not match", "is not the certificate",
                   "expired", "a CA certificate", "digitalSignature", "left out"):  # fmt: skip
        assert reason in why, reason
    assert len(got.notes) == 7


def test_national_signed_list_and_certificates_wrapper(tmp_path: Path) -> None:
    """A signature line before the JSON and {"certificates": [...]} (as national backends)."""
    c = cert("DE")
    body = json.dumps({"certificates": [dgcg_entry(c, country="DE")]})
    src = tmp_path / "DSC.txt"
    src.write_text("MEUCIQDsignatureoverthebody==\n" + body)
    assert [s.certificate for s in import_signers([src], NOW).signers] == [c]


def test_folder_of_pem_and_der_nested_with_links(tmp_path: Path) -> None:
    a, b, d = cert("AT"), cert("BE"), cert("CZ")
    deep = tmp_path / "certs" / "AT" / "2022"
    deep.mkdir(parents=True)
    (deep / "two.pem").write_bytes(a.public_bytes(Encoding.PEM) + b.public_bytes(Encoding.PEM))
    (tmp_path / "certs" / "cz.cer").write_bytes(der(d))
    (tmp_path / "certs" / "README.md").write_text("how we got these")
    (deep / "again").symlink_to(tmp_path / "certs", target_is_directory=True)
    (tmp_path / "certs" / "expired.pem").write_bytes(
        cert(days=(-90, -2)).public_bytes(Encoding.PEM)
    )
    got = import_signers([tmp_path / "certs"], NOW)
    assert sorted(s.country for s in got.signers) == ["AT", "BE", "CZ"]
    assert any("expired" in n for n in got.notes) and any("already visited" in n for n in got.notes)


def test_empty_or_unusable_sources_are_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no certificate or trust-list files"):
        import_signers([tmp_path / "empty"], NOW)
    (tmp_path / "only_csca.json").write_text(
        json.dumps([dgcg_entry(cert(), certificateType="CSCA")])
    )
    with pytest.raises(ConfigError, match="no usable signer"):
        import_signers([tmp_path / "only_csca.json"], NOW)
    (tmp_path / "other.json").write_text('{"hello": 1}')
    with pytest.raises(ConfigError, match="neither a DGCG trust list"):
        import_signers([tmp_path / "other.json"], NOW)


def test_publish_build_imports_a_dgcg_list_and_a_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    auth = tmp_path / "authority"
    assert main(["publish", "keygen", "--out", str(auth)]) == 0
    dg, folder_cert = cert("AT"), cert("BE")
    (tmp_path / "dgcg.json").write_text(
        json.dumps([dgcg_entry(dg, country="AT"), dgcg_entry(cert(), certificateType="CSCA")])
    )
    (tmp_path / "pems").mkdir()
    (tmp_path / "pems" / "be.pem").write_bytes(folder_cert.public_bytes(Encoding.PEM))
    rc = main(["publish", "build", "--key", str(auth / "root_key.pem"), "--out",
               str(tmp_path / "site"), "--signers", str(tmp_path / "dgcg.json"),
               "--signers", str(tmp_path / "pems")])  # fmt: skip
    assert rc == 0
    assert "certificateType CSCA is not a signer" in capsys.readouterr().err
    cfg = tmp_path / "s.toml"
    cfg.write_text(
        f'data_dir = "{tmp_path / "var"}"\n[trust]\nroot_key = "{auth / "root_pub.pem"}"\n'
    )
    assert main(["sync", "-c", str(cfg), "--from", str(tmp_path / "site")]) == 0
    trust = StoreTrust(tmp_path / "var")
    try:
        got = {s.kid: s.country for s in trust.trust_list()}
    finally:
        trust.close()
    assert got == {kid_of(der(dg)): "AT", kid_of(der(folder_cert)): "BE"}
