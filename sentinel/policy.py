"""Credential + trust data + venue rules + clock → Decision.  Pure: no I/O, no clock.

Order of checks (the first failing one is the reason):
1. trust data freshness (DATA_STALE, or a warning if the venue says ``stale_action="warn"``)
2. revocation (REVOKED), for every certificate of the presentation
3. certificate type accepted by the venue or its mode (TYPE_NOT_ACCEPTED)
4. type-specific venue rules from config: test age/type/result, vaccination series/age,
   recovery window (each its own reason code)
5. the CertLogic rule set (bundle part "rules", else the package defaults): each failing
   rule gives its own reason code (RULE_FAILED when the rule names none)
6. the venue mode (3G, 2G, 2G+, booster): a mode needing two certificates answers
   SECOND_CREDENTIAL_REQUIRED until the presentation holds both (``companion``)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from sentinel.config import PolicyConfig
from sentinel.credentials.model import Credential, CredentialKind
from sentinel.credentials.rules import RuleSet, default_rule_set, rule_failure
from sentinel.reasons import ReasonCode, is_admit, messages

_TYPE_LETTER = {
    CredentialKind.DCC_VACCINATION: "v",
    CredentialKind.DCC_TEST: "t",
    CredentialKind.DCC_RECOVERY: "r",
}


def _never_revoked(_keys: Sequence[str]) -> bool:
    return False


@dataclass(frozen=True, slots=True)
class TrustState:
    """What the policy needs to know about the cached credential set."""

    bundle_version: str = ""
    updated_at: datetime | None = None  # last good sync; None: never (local trust file)
    max_age: timedelta = timedelta(hours=48)
    stale_action: str = "refuse"  # or "warn"
    is_revoked: Callable[[Sequence[str]], bool] = field(default=_never_revoked)


@dataclass(frozen=True, slots=True)
class Decision:
    admit: bool
    reason: ReasonCode
    message_en: str
    message_zh: str
    credential_kind: CredentialKind = CredentialKind.UNKNOWN
    display_name: str = ""
    warnings: tuple[str, ...] = ()
    bundle_version: str = ""

    @classmethod
    def of(
        cls,
        reason: ReasonCode,
        kind: CredentialKind = CredentialKind.UNKNOWN,
        *,
        display_name: str = "",
        warnings: tuple[str, ...] = (),
        bundle_version: str = "",
    ) -> Decision:
        en, zh = messages(reason)
        return cls(is_admit(reason), reason, en, zh, kind, display_name, warnings, bundle_version)


def refuse(reason: ReasonCode, kind: CredentialKind = CredentialKind.UNKNOWN) -> Decision:
    """A refusal for a credential that could not be read or verified."""
    return Decision.of(reason, kind)


def venue_rule_failure(cred: Credential, rules: PolicyConfig, now: datetime) -> ReasonCode | None:
    """The first venue rule ``cred`` fails, or None."""
    letter = _TYPE_LETTER.get(cred.kind)
    if letter is not None and letter not in rules.accepted_types:
        return ReasonCode.TYPE_NOT_ACCEPTED
    if cred.test is not None:
        t = cred.test
        if t.test_type not in rules.accepted_test_types:
            return ReasonCode.TEST_TYPE_NOT_ACCEPTED
        if not t.not_detected:
            return ReasonCode.TEST_POSITIVE
        if now - t.sampled_at > timedelta(hours=rules.max_test_age_hours):
            return ReasonCode.TEST_TOO_OLD
        if t.sampled_at - now > timedelta(seconds=rules.clock_skew_s):
            return ReasonCode.NOT_YET_VALID
    if cred.vaccination is not None:
        v = cred.vaccination
        if v.dose_number < v.series_doses:
            return ReasonCode.VACCINATION_INCOMPLETE
        if rules.booster_required and v.dose_number <= 2 and v.dose_number <= v.series_doses:
            return ReasonCode.BOOSTER_REQUIRED
        age_days = (now.date() - v.vaccinated_on).days
        if age_days < rules.min_days_after_vaccination:
            return ReasonCode.VACCINATION_TOO_RECENT
        if rules.max_days_after_vaccination is not None and (
            age_days > rules.max_days_after_vaccination
        ):
            return ReasonCode.VACCINATION_EXPIRED
    expired = cred.expires_at is not None and now > cred.expires_at
    if cred.kind is CredentialKind.ID_DOCUMENT and expired:  # its own expiry (MRZ, AAMVA DBA)
        return ReasonCode.DOCUMENT_EXPIRED
    if cred.kind in (CredentialKind.HEALTH_CODE, CredentialKind.ID_DOCUMENT):
        health = cred.kind is CredentialKind.HEALTH_CODE
        if cred.status is None:
            return ReasonCode.STATUS_UNKNOWN
        if cred.status == "red":
            return ReasonCode.CODE_RED if health else ReasonCode.STATUS_RED
        if cred.status == "yellow":
            return ReasonCode.CODE_YELLOW if health else ReasonCode.STATUS_YELLOW
        if cred.status != "green":
            return ReasonCode.STATUS_UNKNOWN
        if cred.status_valid_until is not None and now > cred.status_valid_until:
            return ReasonCode.STATUS_EXPIRED
    if cred.recovery is not None:
        r = cred.recovery
        if not (r.valid_from <= now.date() <= r.valid_until):
            return ReasonCode.RECOVERY_NOT_VALID
    return None


def _mode_types(rules: PolicyConfig, rule_set: RuleSet) -> PolicyConfig:
    """Config with the accepted types of its named mode (custom: as configured)."""
    mode = rule_set.modes.get(rules.mode)
    if mode is None:
        return rules
    return replace(rules, accepted_types=sorted(mode.types))


def decide(
    cred: Credential,
    rules: PolicyConfig,
    trust: TrustState,
    now: datetime,
    *,
    rule_set: RuleSet | None = None,
    companion: Credential | None = None,
) -> Decision:
    """Decide on one verified credential at ``now``.

    ``companion`` is a credential shown earlier in the same presentation (2G+: a
    vaccination, then a test); both must pass, belong to the same holder, and together
    satisfy one of the mode's alternatives.
    """
    warnings: tuple[str, ...] = ()
    rule_set = rule_set or default_rule_set()

    def out(reason: ReasonCode) -> Decision:
        return Decision.of(
            reason,
            cred.kind,
            display_name=cred.display_name,
            warnings=warnings,
            bundle_version=trust.bundle_version,
        )

    stale = trust.updated_at is not None and now - trust.updated_at > trust.max_age
    if stale:
        if trust.stale_action != "warn":
            return out(ReasonCode.DATA_STALE)
        warnings = ("trust data is older than its maximum age",)
    shown = [c for c in (companion, cred) if c is not None]
    if companion is not None and (
        companion.holder_pseudonym != cred.holder_pseudonym
        or companion.display_name != cred.display_name
    ):
        return out(ReasonCode.IDENTITY_MISMATCH)
    effective = _mode_types(rules, rule_set)
    for c in shown:
        if c.revocation_keys and trust.is_revoked(c.revocation_keys):
            return out(ReasonCode.REVOKED)
    for c in shown:
        failure = venue_rule_failure(c, effective, now)
        if failure is not None:
            return out(failure)
        failed = rule_failure(c, rule_set, rules.mode, now)
        if failed is not None:
            return out(failed.reason)
    mode = rule_set.modes.get(rules.mode)
    letters = {_TYPE_LETTER[c.kind] for c in shown if c.kind in _TYPE_LETTER}
    if mode is not None and letters and not any(alt <= letters for alt in mode.accept):
        if any(letters < alt for alt in mode.accept):
            return out(ReasonCode.SECOND_CREDENTIAL_REQUIRED)
        return out(ReasonCode.TYPE_NOT_ACCEPTED)
    return out(ReasonCode.ADMIT_STALE_DATA if stale else ReasonCode.ADMIT)
