"""The two policy layers, each tested alone and then together.

Ownership (docs/testing.md, "Policy layers"):
- the **venue layer** (``policy.venue_rule_failure``) owns every configurable venue check:
  accepted types, test type/result/age, series, days after vaccination, booster, recovery
  window, ID/health-code status and document expiry;
- the **rule layer** (CertLogic, ``rules.rule_failure``) owns the authority's business
  rules from the bundle's ``rules`` part; the package default set holds only what the
  venue layer lacks (the disease agent, the booster mode rule).

Each venue case runs with an empty rule set, so only the venue layer can refuse; each rule
case runs with a venue config that accepts everything, so only CertLogic can refuse.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from sentinel.config import PolicyConfig
from sentinel.credentials.model import Credential, CredentialKind, Recovery, TestResult, Vaccination
from sentinel.credentials.rules import RuleSet, default_rule_set, parse_rule_set, rule_failure
from sentinel.policy import TrustState, decide
from sentinel.reasons import ReasonCode

NOW = datetime(2022, 5, 1, 12, 0, tzinfo=UTC)
TODAY = NOW.date()
VENUE = PolicyConfig()
NO_RULES = RuleSet()
AUTHORITY = parse_rule_set((Path(__file__).parent / "data" / "authority_rules.json").read_bytes())
# A venue that accepts anything the rule layer might refuse.
LAX = replace(
    VENUE,
    max_test_age_hours=10_000,
    min_days_after_vaccination=0,
    max_days_after_vaccination=None,
    accepted_test_types=["LP6464-4", "LP217198-3"],
)
NEG, POS = True, False


def vac(dn: int = 2, sd: int = 2, days_ago: int = 60) -> Credential:
    v = Vaccination(dn, sd, TODAY - timedelta(days=days_ago), "EU/1/20/1528", "840539006")
    return Credential(CredentialKind.DCC_VACCINATION, vaccination=v, holder_pseudonym="h")


def tst(age: timedelta = timedelta(hours=5), result: bool = NEG) -> Credential:
    t = TestResult("LP6464-4", NOW - age, result, "840539006")
    return Credential(CredentialKind.DCC_TEST, test=t, holder_pseudonym="h")


def rec(valid_from: date, valid_until: date) -> Credential:
    r = Recovery(valid_from - timedelta(days=11), valid_from, valid_until, "840539006")
    return Credential(CredentialKind.DCC_RECOVERY, recovery=r, holder_pseudonym="h")


def venue(cred: Credential, rules: PolicyConfig = VENUE) -> ReasonCode:
    return decide(cred, rules, TrustState(), NOW, rule_set=NO_RULES).reason


def authority(cred: Credential, rule_set: RuleSet = AUTHORITY) -> ReasonCode:
    return decide(cred, LAX, TrustState(), NOW, rule_set=rule_set).reason


H = timedelta(hours=1)
S = timedelta(seconds=1)

VENUE_CASES = [
    # test age: inclusive maximum, at the default and at a venue's own value
    ("test exactly 72 h old", tst(72 * H), VENUE, ReasonCode.ADMIT),
    ("test 72 h + 1 s old", tst(72 * H + S), VENUE, ReasonCode.TEST_TOO_OLD),
    ("test 24 h old, venue max 24", tst(24 * H), replace(VENUE, max_test_age_hours=24), "ADMIT"),
    (
        "test 24 h + 1 s, venue max 24",
        tst(24 * H + S),
        replace(VENUE, max_test_age_hours=24),
        ReasonCode.TEST_TOO_OLD,
    ),
    (
        "test 100 h old, venue max 120",
        tst(100 * H),
        replace(VENUE, max_test_age_hours=120),
        "ADMIT",
    ),
    ("positive test", tst(result=POS), VENUE, ReasonCode.TEST_POSITIVE),
    ("sampled 300 s ahead (the skew)", tst(-300 * S), VENUE, ReasonCode.ADMIT),
    ("sampled 301 s ahead", tst(-301 * S), VENUE, ReasonCode.NOT_YET_VALID),
    ("first of two doses", vac(dn=1), VENUE, ReasonCode.VACCINATION_INCOMPLETE),
    ("14 days after the dose", vac(days_ago=14), VENUE, ReasonCode.ADMIT),
    ("13 days after the dose", vac(days_ago=13), VENUE, ReasonCode.VACCINATION_TOO_RECENT),
    ("20 days, venue min 21", vac(days_ago=20), replace(VENUE, min_days_after_vaccination=21), 0),
    ("21 days, venue min 21", vac(days_ago=21), replace(VENUE, min_days_after_vaccination=21), 1),
    (
        "270 days, venue max 270",
        vac(days_ago=270),
        replace(VENUE, max_days_after_vaccination=270),
        1,
    ),
    (
        "271 days, venue max 270",
        vac(days_ago=271),
        replace(VENUE, max_days_after_vaccination=270),
        ReasonCode.VACCINATION_EXPIRED,
    ),
    ("one-shot vaccine + booster", vac(dn=2, sd=1), replace(VENUE, booster_required=True), 1),
    ("primary series only", vac(dn=2, sd=2), replace(VENUE, booster_required=True), "BOOSTER"),
    ("recovery on its first day", rec(TODAY, TODAY + timedelta(days=90)), VENUE, "ADMIT"),
    ("recovery on its last day", rec(TODAY - timedelta(days=90), TODAY), VENUE, "ADMIT"),
    (
        "recovery from tomorrow",
        rec(TODAY + timedelta(days=1), TODAY + timedelta(days=90)),
        VENUE,
        ReasonCode.RECOVERY_NOT_VALID,
    ),
    (
        "recovery ended yesterday",
        rec(TODAY - timedelta(days=90), TODAY - timedelta(days=1)),
        VENUE,
        ReasonCode.RECOVERY_NOT_VALID,
    ),
]
_SHORT = {0: ReasonCode.VACCINATION_TOO_RECENT, 1: ReasonCode.ADMIT, "ADMIT": ReasonCode.ADMIT}
_SHORT["BOOSTER"] = ReasonCode.BOOSTER_REQUIRED


@pytest.mark.parametrize(
    ("name", "cred", "rules", "want"), VENUE_CASES, ids=[c[0] for c in VENUE_CASES]
)
def test_venue_layer_alone(name: str, cred: Credential, rules: PolicyConfig, want: object) -> None:
    expected = want if isinstance(want, ReasonCode) else _SHORT[want]  # type: ignore[index]
    assert venue(cred, rules) is expected


@pytest.mark.parametrize(
    ("status", "want"),
    [
        ("green", ReasonCode.ADMIT),
        ("red", ReasonCode.STATUS_RED),
        ("yellow", ReasonCode.STATUS_YELLOW),
        ("purple", ReasonCode.STATUS_UNKNOWN),  # a status the device does not know
        (None, ReasonCode.STATUS_UNKNOWN),
    ],
)
def test_venue_layer_status_of_id_documents(status: str | None, want: ReasonCode) -> None:
    cred = Credential(CredentialKind.ID_DOCUMENT, status=status)
    assert venue(cred) is want
    code = Credential(CredentialKind.HEALTH_CODE, status=status)
    health = {ReasonCode.STATUS_RED: ReasonCode.CODE_RED, ReasonCode.STATUS_YELLOW: "CODE_YELLOW"}
    assert venue(code) == health.get(want, want)


AUTHORITY_CASES = [
    ("negative test, 5 h", tst(), ReasonCode.ADMIT),
    ("positive test", tst(result=POS), ReasonCode.TEST_POSITIVE),
    ("test 80 h old", tst(80 * H), ReasonCode.TEST_TOO_OLD),
    ("first of two doses", vac(dn=1), ReasonCode.VACCINATION_INCOMPLETE),
    ("dose 10 days ago", vac(days_ago=10), ReasonCode.VACCINATION_TOO_RECENT),
    ("valid recovery", rec(TODAY - timedelta(days=5), TODAY + timedelta(days=5)), "ADMIT"),
    (
        "recovery not yet valid",
        rec(TODAY + timedelta(days=1), TODAY + timedelta(days=9)),
        ReasonCode.RECOVERY_NOT_VALID,
    ),
    (
        "recovery over",
        rec(TODAY - timedelta(days=9), TODAY - timedelta(days=1)),
        ReasonCode.RECOVERY_NOT_VALID,
    ),
]


@pytest.mark.parametrize(
    ("name", "cred", "want"), AUTHORITY_CASES, ids=[c[0] for c in AUTHORITY_CASES]
)
def test_rule_layer_alone(name: str, cred: Credential, want: object) -> None:
    failed = rule_failure(cred, AUTHORITY, "custom", NOW)  # CertLogic only, no venue checks
    assert (failed.reason if failed else ReasonCode.ADMIT) == want
    assert authority(cred) == want


def _rules(*rules: dict) -> RuleSet:
    return parse_rule_set(json.dumps({"version": "t", "rules": list(rules)}).encode())


def test_a_rule_that_errors_is_a_failed_rule() -> None:
    """CertLogic spec: an evaluation error fails the rule (fail closed), with the rule's
    own reason code when it names one, RULE_FAILED otherwise."""
    missing = {"Identifier": "VR-X-1", "CertificateType": "Vaccination", "Reason": "SCHEMA_INVALID"}
    missing["Logic"] = {
        "before": [{"var": "payload.v.0.nope"}, {"var": "external.validationClock"}]
    }
    unnamed = {"Identifier": "GR-X-2", "CertificateType": "General"}
    unnamed["Logic"] = {"+": [{"var": "payload.v.0.dt"}, 1]}  # a date is not an integer
    assert authority(vac(), _rules(missing)) is ReasonCode.SCHEMA_INVALID
    assert authority(vac(), _rules(unnamed)) is ReasonCode.RULE_FAILED


def test_only_literal_true_passes_a_rule() -> None:
    """CertLogic: a rule passes only when it evaluates to ``true``; a truthy string or a
    non-empty array is not ``true``."""
    for logic in ("yes", [1], 1, {"var": "payload.v.0.mp"}):
        rule = {"Identifier": "GR-X-3", "CertificateType": "General", "Logic": logic}
        assert authority(vac(), _rules(rule)) is ReasonCode.RULE_FAILED, logic
    ok = {"Identifier": "GR-X-4", "CertificateType": "General", "Logic": True}
    assert authority(vac(), _rules(ok)) is ReasonCode.ADMIT


def test_default_rule_set_does_not_repeat_the_venue_layer() -> None:
    """The package defaults carry only rules the venue layer lacks: removing a venue
    check can never be masked by a duplicate CertLogic rule again."""
    ids = {r.identifier for r in default_rule_set().rules}
    assert ids == {"GR-SEN-0001", "VR-SEN-0003"}
    other_disease = replace(
        vac(),
        vaccination=replace(vac().vaccination, disease="12345"),  # type: ignore[type-var]
    )
    assert authority(other_disease, default_rule_set()) is ReasonCode.SCHEMA_INVALID
    assert decide(vac(), replace(VENUE, mode="booster"), TrustState(), NOW).reason is (
        ReasonCode.BOOSTER_REQUIRED
    )
    assert decide(vac(dn=3, sd=2), replace(VENUE, mode="booster"), TrustState(), NOW).admit


@pytest.mark.parametrize(
    ("cred", "rules", "want"),
    [
        (tst(50 * H), replace(VENUE, max_test_age_hours=24), ReasonCode.TEST_TOO_OLD),  # venue
        (tst(80 * H), replace(VENUE, max_test_age_hours=100), ReasonCode.TEST_TOO_OLD),  # rule
        (tst(10 * H), VENUE, ReasonCode.ADMIT),
        (vac(days_ago=16), replace(VENUE, min_days_after_vaccination=21), "VACCINATION_TOO_RECENT"),
    ],
)
def test_layers_together_the_stricter_refuses(
    cred: Credential, rules: PolicyConfig, want: object
) -> None:
    """A venue may be stricter than the authority, never looser: with both layers, each
    one's limit holds."""
    assert decide(cred, rules, TrustState(), NOW, rule_set=AUTHORITY).reason == want


def test_2g_plus_needs_the_same_holder_even_without_a_pseudonym_key() -> None:
    """Without a pseudonym key both pseudonyms are ""; the masked names must agree too."""
    mode = replace(VENUE, mode="2G+")
    first = replace(vac(), holder_pseudonym="", display_name="M***, 1974")
    same = replace(tst(), holder_pseudonym="", display_name="M***, 1974")
    other = replace(tst(), holder_pseudonym="", display_name="L***, 1985")
    assert decide(same, mode, TrustState(), NOW, companion=first).reason is ReasonCode.ADMIT
    assert decide(other, mode, TrustState(), NOW, companion=first).reason is (
        ReasonCode.IDENTITY_MISMATCH
    )


def test_2g_plus_rechecks_the_first_certificate_at_the_second_showing() -> None:
    """The companion is re-checked: revoked or no longer valid since it was shown."""
    mode = replace(VENUE, mode="2G+")
    first = replace(vac(), revocation_keys=("UCI:aa",))
    revoked = TrustState(is_revoked=lambda keys: "UCI:aa" in keys)
    assert decide(tst(), mode, TrustState(), NOW, companion=first).admit
    assert decide(tst(), mode, revoked, NOW, companion=first).reason is ReasonCode.REVOKED
    stricter = replace(mode, max_days_after_vaccination=30)  # first dose 60 days ago
    assert decide(tst(), stricter, TrustState(), NOW, companion=first).reason is (
        ReasonCode.VACCINATION_EXPIRED
    )


def test_mode_types_apply_before_the_venue_rules() -> None:
    """In 2G a test is not accepted, whatever its age: TYPE_NOT_ACCEPTED, not TEST_TOO_OLD."""
    mode = replace(VENUE, mode="2G")
    assert decide(tst(80 * H), mode, TrustState(), NOW).reason is ReasonCode.TYPE_NOT_ACCEPTED


@pytest.mark.parametrize("kind", [CredentialKind.ID_DOCUMENT, CredentialKind.HEALTH_CODE])
def test_status_entry_valid_until_is_inclusive(kind: CredentialKind) -> None:
    def at(until: datetime) -> ReasonCode:
        return venue(Credential(kind, status="green", status_valid_until=until))

    assert at(NOW) is ReasonCode.ADMIT
    assert at(NOW - S) is ReasonCode.STATUS_EXPIRED
    assert venue(Credential(kind, status="green")) is ReasonCode.ADMIT  # no end: valid


def test_trust_data_is_stale_only_past_its_maximum_age() -> None:
    def at(age: timedelta, action: str = "refuse") -> ReasonCode:
        trust = TrustState(updated_at=NOW - age, max_age=48 * H, stale_action=action)
        return decide(vac(), VENUE, trust, NOW, rule_set=NO_RULES).reason

    assert at(48 * H) is ReasonCode.ADMIT
    assert at(48 * H + S) is ReasonCode.DATA_STALE
    assert at(48 * H + S, "warn") is ReasonCode.ADMIT_STALE_DATA
    never = TrustState(updated_at=None)  # a local trust file: never stale
    assert decide(vac(), VENUE, never, NOW + 1000 * H, rule_set=NO_RULES).admit


def test_the_rules_see_every_field_of_the_minimized_credential_under_its_eu_name() -> None:
    """CertLogic rules address the DCC's own field names (eu-dcc-schema: v.tg, dn, sd, dt,
    mp; t.tg, tt, sc, tr; r.tg, fr, df, du): each minimized field reaches them."""
    from sentinel.credentials.rules import rule_payload

    v = vac(days_ago=30)
    assert rule_payload(v) == {
        "v": [
            {
                "tg": "840539006",
                "dn": 2,
                "sd": 2,
                "dt": (TODAY - timedelta(days=30)).isoformat(),
                "mp": "EU/1/20/1528",
            }
        ]
    }
    t = rule_payload(tst())["t"][0]
    assert set(t) == {"tg", "tt", "sc", "tr"} and t["tr"] == "260415000"
    r = rule_payload(rec(TODAY - timedelta(days=5), TODAY + timedelta(days=100)))["r"][0]
    assert set(r) == {"tg", "fr", "df", "du"}
    assert (r["df"], r["du"]) == (
        (TODAY - timedelta(days=5)).isoformat(),
        (TODAY + timedelta(days=100)).isoformat(),
    )
