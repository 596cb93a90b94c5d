"""Each reason code the policy can give, table-driven, with the clock passed in."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from sentinel.config import PolicyConfig
from sentinel.credentials.model import (
    Credential,
    CredentialKind,
    Recovery,
    TestResult,
    Vaccination,
)
from sentinel.policy import Decision, TrustState, decide, refuse
from sentinel.reasons import MESSAGES, ReasonCode

NOW = datetime(2022, 5, 1, 12, 0, tzinfo=UTC)
RULES = PolicyConfig()
FRESH = TrustState(bundle_version="7", updated_at=NOW - timedelta(hours=1))


def vac(dn: int = 2, sd: int = 2, days_ago: int = 60) -> Credential:
    v = Vaccination(dn, sd, (NOW - timedelta(days=days_ago)).date(), "EU/1/20/1528", "840539006")
    return Credential(CredentialKind.DCC_VACCINATION, vaccination=v, revocation_keys=("UCI:ab",))


def a_test(hours_ago: float = 5, negative: bool = True, tt: str = "LP6464-4") -> Credential:
    t = TestResult(tt, NOW - timedelta(hours=hours_ago), negative, "840539006")
    return Credential(CredentialKind.DCC_TEST, test=t)


def rec(valid_from: date, valid_until: date) -> Credential:
    r = Recovery(valid_from - timedelta(days=11), valid_from, valid_until, "840539006")
    return Credential(CredentialKind.DCC_RECOVERY, recovery=r)


CASES = [
    ("complete vaccination", vac(), RULES, FRESH, ReasonCode.ADMIT),
    ("recent negative test", a_test(), RULES, FRESH, ReasonCode.ADMIT),
    ("valid recovery", rec(date(2022, 4, 1), date(2022, 9, 1)), RULES, FRESH, ReasonCode.ADMIT),
    ("first of two doses", vac(dn=1), RULES, FRESH, ReasonCode.VACCINATION_INCOMPLETE),
    ("dose last week", vac(days_ago=7), RULES, FRESH, ReasonCode.VACCINATION_TOO_RECENT),
    (
        "old vaccination",
        vac(days_ago=400),
        replace(RULES, max_days_after_vaccination=270),
        FRESH,
        ReasonCode.VACCINATION_EXPIRED,
    ),
    (
        "booster required",
        vac(),
        replace(RULES, booster_required=True),
        FRESH,
        ReasonCode.BOOSTER_REQUIRED,
    ),
    (
        "booster given",
        vac(dn=3, sd=3),
        replace(RULES, booster_required=True),
        FRESH,
        ReasonCode.ADMIT,
    ),
    ("test 73 h old", a_test(hours_ago=73), RULES, FRESH, ReasonCode.TEST_TOO_OLD),
    ("test 71 h old", a_test(hours_ago=71), RULES, FRESH, ReasonCode.ADMIT),
    ("positive test", a_test(negative=False), RULES, FRESH, ReasonCode.TEST_POSITIVE),
    ("unknown test type", a_test(tt="X-1"), RULES, FRESH, ReasonCode.TEST_TYPE_NOT_ACCEPTED),
    ("test from the future", a_test(hours_ago=-2), RULES, FRESH, ReasonCode.NOT_YET_VALID),
    (
        "recovery over",
        rec(date(2021, 1, 1), date(2021, 7, 1)),
        RULES,
        FRESH,
        ReasonCode.RECOVERY_NOT_VALID,
    ),
    (
        "tests not accepted",
        a_test(),
        replace(RULES, accepted_types=["v", "r"]),
        FRESH,
        ReasonCode.TYPE_NOT_ACCEPTED,
    ),
    (
        "revoked",
        vac(),
        RULES,
        replace(FRESH, is_revoked=lambda keys: "UCI:ab" in keys),
        ReasonCode.REVOKED,
    ),
    (
        "stale data",
        vac(),
        RULES,
        replace(FRESH, updated_at=NOW - timedelta(days=3)),
        ReasonCode.DATA_STALE,
    ),
    (
        "stale data, venue warns",
        vac(),
        RULES,
        replace(FRESH, updated_at=NOW - timedelta(days=3), stale_action="warn"),
        ReasonCode.ADMIT_STALE_DATA,
    ),
]


@pytest.mark.parametrize(
    ("name", "cred", "rules", "trust", "reason"), CASES, ids=[c[0] for c in CASES]
)
def test_reason(
    name: str, cred: Credential, rules: PolicyConfig, trust: TrustState, reason: ReasonCode
) -> None:
    d = decide(cred, rules, trust, NOW)
    assert d.reason is reason
    assert d.admit == (reason in (ReasonCode.ADMIT, ReasonCode.ADMIT_STALE_DATA))
    assert (d.message_en, d.message_zh) == MESSAGES[reason]
    assert d.bundle_version == "7"


def test_every_reason_has_both_messages() -> None:
    for r in ReasonCode:
        en, zh = MESSAGES[r]
        assert en and zh and en != zh


def test_stale_warning_is_carried() -> None:
    trust = replace(FRESH, updated_at=NOW - timedelta(days=3), stale_action="warn")
    d = decide(vac(), RULES, trust, NOW)
    assert d.admit and d.warnings


def test_refusal_of_unreadable() -> None:
    """Nothing was read: no holder's name for the kiosk, no bundle version, no warning
    (the kiosk shows the name field of every decision; the journal keeps the version)."""
    d = Decision.of(ReasonCode.UNREADABLE)
    assert not d.admit and d.credential_kind is CredentialKind.UNKNOWN
    assert (d.display_name, d.bundle_version, d.warnings) == ("", "", ())
    assert (
        refuse(ReasonCode.MALFORMED).display_name,
        refuse(ReasonCode.MALFORMED).bundle_version,
    ) == ("", "")


@pytest.mark.parametrize(
    "reason", [ReasonCode.BAD_SIGNATURE, ReasonCode.UNREADABLE, ReasonCode.MALFORMED]
)
def test_refuse_is_a_refusal_with_its_reason_and_message(reason: ReasonCode) -> None:
    d = refuse(reason, CredentialKind.DCC_TEST)
    assert isinstance(d, Decision)
    assert (d.admit, d.reason, d.credential_kind) == (False, reason, CredentialKind.DCC_TEST)
    assert d.message_en == MESSAGES[reason][0] and d.message_zh == MESSAGES[reason][1]


def test_the_decision_carries_the_holders_masked_name_for_staff() -> None:
    """The kiosk shows staff the masked name to compare with the visitor's ID: the policy
    puts it on the decision, admitted or refused."""
    cred = replace(vac(), display_name="B**** A*****, 1974")
    assert decide(cred, RULES, FRESH, NOW).display_name == "B**** A*****, 1974"
    refused = decide(replace(cred, vaccination=vac(dn=1).vaccination), RULES, FRESH, NOW)
    assert not refused.admit and refused.display_name == "B**** A*****, 1974"


def test_a_refusal_of_something_unread_is_of_no_kind() -> None:
    d = refuse(ReasonCode.MALFORMED)
    assert d.credential_kind is CredentialKind.UNKNOWN and d.reason is ReasonCode.MALFORMED
    assert not d.admit
    test = refuse(ReasonCode.EXPIRED, CredentialKind.DCC_TEST)
    assert test.credential_kind is CredentialKind.DCC_TEST
