"""EU value sets: package defaults, a bundle part over them, rules and product names."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from sentinel.authority import dcc_issue as di
from sentinel.config import Config, replace
from sentinel.credentials import rules
from sentinel.credentials.trustlist import TrustList
from sentinel.credentials.valuesets import (
    default_valuesets,
    parse_valuesets,
    valuesets_from_part,
)
from sentinel.errors import BundleFormatError
from sentinel.gate import Gate
from sentinel.journal import Journal
from sentinel.pipeline import Pipeline
from sentinel.reasons import ReasonCode
from sentinel.scan.symbol import Symbol
from sentinel.trust import StaticTrust

DAY = timedelta(days=1)
SHARED = Path(__file__).parents[1].parent / "shared" / "testdata" / "dcc-valuesets"

# the shape of the EU rule VR-EU-0000: the product must be in the value set
RULES = {
    "rules": [
        {
            "Identifier": "VR-EU-0000",
            "CertificateType": "Vaccination",
            "Reason": "RULE_FAILED",
            "Logic": {
                "in": [
                    {"var": "payload.v.0.mp"},
                    {"var": "external.valueSets.vaccines-covid-19-names"},
                ]
            },
        }
    ]
}


def test_package_defaults_are_the_published_sets() -> None:
    vs = default_valuesets()
    assert vs.display("vaccines-covid-19-names", "EU/1/20/1528") == "Comirnaty"
    assert vs.display("covid-19-lab-test-type", "LP6464-4").startswith("Nucleic acid")
    assert "EU/1/20/1528" in vs.for_rules()["vaccines-covid-19-names"]
    assert vs.display("vaccines-covid-19-names", "NOT-A-CODE") == "NOT-A-CODE"
    for p in SHARED.glob("*.json"):
        doc = json.loads(p.read_bytes())
        assert set(vs.sets[doc["valueSetId"]]) == set(doc["valueSetValues"])


def test_bundle_part_replaces_a_set_and_keeps_the_others() -> None:
    part = json.dumps(
        [{"valueSetId": "vaccines-covid-19-names", "valueSetValues": {"X-1": {"display": "Xv"}}}]
    ).encode()
    vs = valuesets_from_part(part)
    assert vs.for_rules()["vaccines-covid-19-names"] == ["X-1"]
    assert vs.display("vaccines-covid-19-names", "X-1") == "Xv"
    assert "LP6464-4" in vs.for_rules()["covid-19-lab-test-type"]  # untouched


@pytest.mark.parametrize(
    "data", [b"[1]", b'{"valueSetId": 5}', b"not json", b'[{"valueSetId": "a"}]', b"x" * 3_000_000]
)
def test_bad_parts_are_refused_by_name(data: bytes) -> None:
    with pytest.raises(BundleFormatError, match="valuesets"):
        parse_valuesets(data)
    assert valuesets_from_part(data) == default_valuesets()  # the device keeps deciding


def test_rules_see_external_value_sets(signer: di.IssuerKey, now: datetime) -> None:
    rules_part = json.dumps(RULES).encode()
    unknown = json.dumps(
        {"valueSetId": "vaccines-covid-19-names", "valueSetValues": {"X": {"display": "X"}}}
    ).encode()
    from sentinel.credentials import dcc

    trust = TrustList.from_certificates([signer.der])
    text = di.issue(di.vaccination(), signer, issued_at=now - DAY, expires_at=now + DAY)
    cred = dcc.verify(text, trust, now)
    assert rules.rule_failure(cred, rules.rule_set_from_part(rules_part), "3G", now) is None
    failed = rules.rule_failure(cred, rules.rule_set_from_part(rules_part, unknown), "3G", now)
    assert failed is not None and failed.identifier == "VR-EU-0000"


def test_value_sets_part_through_the_pipeline(
    tmp_path: Path, signer: di.IssuerKey, now: datetime
) -> None:
    """A bundle whose value sets drop the product refuses the certificate at the door."""
    cfg = replace(Config(), data_dir=str(tmp_path))
    text = di.issue(
        di.vaccination(on="2022-01-10"), signer, issued_at=now - DAY, expires_at=now + DAY
    )
    trust = TrustList.from_certificates([signer.der])
    narrowed = json.dumps(
        {"valueSetId": "vaccines-covid-19-names", "valueSetValues": {"EU/1/20/1507": {}}}
    ).encode()
    reasons = []
    for parts in ({"rules": json.dumps(RULES).encode()},
                  {"rules": json.dumps(RULES).encode(), "valuesets": narrowed}):  # fmt: skip
        with (
            Gate(cfg.gate, pin_factory=MockFactory()) as gate,
            Journal(tmp_path / f"j{len(reasons)}.db") as journal,
        ):
            pipe = Pipeline(cfg, StaticTrust(trust, parts=parts), gate, journal)
            out = pipe.present(Symbol("QRCODE", text, text.encode()), now)
            reasons.append(out.decision.reason)
    assert reasons == [ReasonCode.ADMIT, ReasonCode.RULE_FAILED]


def test_check_shows_the_product_name(
    tmp_path: Path, signer: di.IssuerKey, now: datetime, capsys: pytest.CaptureFixture[str]
) -> None:
    from sentinel.cli import main

    trust = tmp_path / "trust.json"
    trust.write_bytes(TrustList.from_certificates([signer.der]).to_json_bytes())
    text = di.issue(di.vaccination(), signer, issued_at=now - DAY, expires_at=now + DAY)
    main(["check", "--json", "--trust", str(trust), "--at", now.isoformat(), text])
    row = json.loads(capsys.readouterr().out)
    assert row["credential"]["product"] == "Comirnaty"


def test_a_bundle_with_value_sets_but_no_rules_part_keeps_the_package_rules() -> None:
    part = json.dumps(
        [{"valueSetId": "vaccines-covid-19-names", "valueSetValues": {"X-1": {"display": "Xv"}}}]
    ).encode()
    assert rules.rule_set_from_part(None) is rules.default_rule_set()
    rs = rules.rule_set_from_part(None, part)
    assert rs.rules == rules.default_rule_set().rules and rs.modes == rules.default_rule_set().modes
    assert rs.value_sets.display("vaccines-covid-19-names", "X-1") == "Xv"
