"""Venue modes (3G, 2G, 2G+, booster) and CertLogic rule sets in the decision."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from sentinel.authority import dcc_issue as di
from sentinel.config import Config, PolicyConfig
from sentinel.config import replace as creplace
from sentinel.credentials.model import Credential, CredentialKind, Recovery, TestResult, Vaccination
from sentinel.credentials.rules import default_rule_set, parse_rule_set, rule_set_from_part
from sentinel.credentials.trustlist import TrustList
from sentinel.errors import BundleFormatError
from sentinel.gate import Gate
from sentinel.journal import Journal
from sentinel.pipeline import Pipeline
from sentinel.policy import TrustState, decide
from sentinel.reasons import ReasonCode
from sentinel.scan import Symbol
from sentinel.trust import StaticTrust

NOW = datetime(2022, 5, 1, 12, 0, tzinfo=UTC)
TRUST = TrustState(bundle_version="9", updated_at=NOW - timedelta(hours=1))
R = ReasonCode


def vac(dn: int = 2, sd: int = 2, days: int = 60, who: str = "h1") -> Credential:
    v = Vaccination(dn, sd, (NOW - timedelta(days=days)).date(), "EU/1/20/1528", "840539006")
    return Credential(CredentialKind.DCC_VACCINATION, vaccination=v, holder_pseudonym=who)


def test_(hours: float = 5, who: str = "h1", tg: str = "840539006") -> Credential:
    t = TestResult("LP6464-4", NOW - timedelta(hours=hours), True, tg)
    return Credential(CredentialKind.DCC_TEST, test=t, holder_pseudonym=who)


test_.__test__ = False  # type: ignore[attr-defined]


def rec() -> Credential:
    d = NOW.date()
    r = Recovery(
        d - timedelta(days=30), d - timedelta(days=19), d + timedelta(days=100), "840539006"
    )
    return Credential(CredentialKind.DCC_RECOVERY, recovery=r, holder_pseudonym="h1")


def mode(name: str) -> PolicyConfig:
    return replace(PolicyConfig(), mode=name)


CASES = [
    ("3G test", "3G", test_(), None, R.ADMIT),
    ("3G recovery", "3G", rec(), None, R.ADMIT),
    ("2G test alone", "2G", test_(), None, R.TYPE_NOT_ACCEPTED),
    ("2G vaccination", "2G", vac(), None, R.ADMIT),
    ("2G+ vaccination alone", "2G+", vac(), None, R.SECOND_CREDENTIAL_REQUIRED),
    ("2G+ test alone", "2G+", test_(), None, R.SECOND_CREDENTIAL_REQUIRED),
    ("2G+ vaccination then test", "2G+", test_(), vac(), R.ADMIT),
    ("2G+ recovery then test", "2G+", test_(), rec(), R.ADMIT),
    # two credentials, neither pair the mode accepts ({v,t} or {r,t}): a test is missing
    ("2G+ vaccination and recovery, no test", "2G+", rec(), vac(), R.TYPE_NOT_ACCEPTED),
    ("2G+ two holders", "2G+", test_(who="h2"), vac(), R.IDENTITY_MISMATCH),
    ("2G+ old test with vaccination", "2G+", test_(hours=80), vac(), R.TEST_TOO_OLD),
    ("booster: two doses", "booster", vac(), None, R.BOOSTER_REQUIRED),
    ("booster: third dose", "booster", vac(3, 3), None, R.ADMIT),
    ("booster: test", "booster", test_(), None, R.TYPE_NOT_ACCEPTED),
    ("not COVID-19 (CertLogic rule)", "3G", test_(tg="123456789"), None, R.SCHEMA_INVALID),
]


@pytest.mark.parametrize(("name", "m", "cred", "first", "reason"), CASES, ids=[c[0] for c in CASES])
def test_modes(name: str, m: str, cred: Credential, first: Credential | None, reason: R) -> None:
    d = decide(cred, mode(m), TRUST, NOW, rule_set=default_rule_set(), companion=first)
    assert d.reason is reason
    assert d.admit == (reason is R.ADMIT)


def test_bundle_rules_part_is_used_and_named_reason_given() -> None:
    doc = json.loads(
        (Path(__file__).parents[1] / "sentinel/credentials/rulesets/default.json").read_text()
    )
    doc["rules"].append(
        {
            "Identifier": "TR-XX-0001",
            "CertificateType": "Test",
            "Logic": {
                "not-before": [
                    {"plusTime": [{"var": "payload.t.0.sc"}, 0, "hour"]},
                    {"plusTime": [{"var": "external.validationClock"}, -24, "hour"]},
                ]
            },
        }
    )
    rs = rule_set_from_part(json.dumps(doc).encode())
    assert decide(test_(hours=30), PolicyConfig(), TRUST, NOW, rule_set=rs).reason is R.RULE_FAILED
    assert decide(test_(hours=3), PolicyConfig(), TRUST, NOW, rule_set=rs).reason is R.ADMIT


def test_bad_rule_sets() -> None:
    for bad in (
        b"{",
        b'{"rules": [{"Identifier": "x", "Logic": {"nope": []}}]}',
        b'{"rules": [{"Identifier": "x", "Logic": true, "Reason": "NO_SUCH"}]}',
    ):
        with pytest.raises(BundleFormatError):
            parse_rule_set(bad)
        assert rule_set_from_part(bad) is default_rule_set()  # the gate keeps deciding


def test_pipeline_takes_two_certificates_in_one_presentation(
    tmp_path: Path, signer: di.IssuerKey, trust: TrustList, now: datetime
) -> None:
    day = timedelta(days=1)
    v = di.issue(di.vaccination(on="2022-01-10"), signer, issued_at=now - day, expires_at=now + day)
    t = di.issue(
        di.test(now - timedelta(hours=3)), signer, issued_at=now - day, expires_at=now + day
    )
    other = di.issue(
        di.test(now - timedelta(hours=3)),
        signer,
        issued_at=now - day,
        expires_at=now + day,
        holder=di.person("Chen", "Wei", "1990-03-04"),
    )
    cfg = creplace(Config(), data_dir=str(tmp_path))
    cfg = creplace(cfg, policy=replace(cfg.policy, mode="2G+", second_credential_s=20.0))
    sym = lambda text: Symbol("QRCODE", text, text.encode(), ())  # noqa: E731
    with Gate(cfg.gate, pin_factory=MockFactory()) as gate, Journal(tmp_path / "j.db") as j:
        pipe = Pipeline(cfg, StaticTrust(trust), gate, j, pseudonym_key=b"k" * 32)
        steps = [
            (v, now),
            (t, now + timedelta(seconds=5)),  # both within the window: admit
            (v, now + timedelta(seconds=60)),
            (t, now + timedelta(seconds=95)),  # too late
            (v, now + timedelta(seconds=200)),
            (other, now + timedelta(seconds=201)),
        ]
        reasons = [pipe.present(sym(x), at).decision.reason for x, at in steps]
    assert reasons == [
        R.SECOND_CREDENTIAL_REQUIRED,
        R.ADMIT,
        R.SECOND_CREDENTIAL_REQUIRED,
        R.SECOND_CREDENTIAL_REQUIRED,
        R.SECOND_CREDENTIAL_REQUIRED,
        R.IDENTITY_MISMATCH,
    ]
    assert gate.pulses == 1
