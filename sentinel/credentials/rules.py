"""Venue rule sets in CertLogic, and the named venue modes built from them.

A rule set is JSON (the bundle part ``rules``; ``rulesets/default.json`` in this package when
the bundle has none)::

    {"version": "...",
     "modes": {"2G+": {"accept": [["v", "t"], ["r", "t"]], "rules": ["..."]}, ...},
     "rules": [{"Identifier": "TR-SEN-0002", "CertificateType": "Test",
                "Reason": "TEST_TOO_OLD", "Logic": {<CertLogic>}, "Description": [...]}]}

Rules follow the EU business-rule shape (``Identifier``, ``CertificateType`` of
General/Vaccination/Test/Recovery, ``Logic``) plus ``Reason``, the reason code a failure
gives (RULE_FAILED when absent).  A rule listed in some mode's ``rules`` applies only in
that mode; every other rule always applies.  A mode's ``accept`` lists the alternatives:
each is the set of certificate types ("v", "t", "r") that together admit, so ``2G+`` needs
two certificates in one presentation.

Rules see only the minimized credential (``payload``: v/t/r with the decision fields),
``external.validationClock``/``validationDay`` and ``external.valueSets`` (``{id: [codes]}``:
the package's EU value sets, or the bundle's ``valuesets`` part over them, see
``valuesets.py``); a rule that errors, or evaluates to anything but ``true``, fails (spec).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from importlib import resources
from typing import Any

from sentinel.credentials import certlogic
from sentinel.credentials.model import Credential, CredentialKind
from sentinel.credentials.valuesets import ValueSets, default_valuesets, valuesets_from_part
from sentinel.errors import BundleFormatError
from sentinel.reasons import ReasonCode

log = logging.getLogger(__name__)
MAX_RULES_BYTES = 1024 * 1024
TYPE_LETTER = {
    CredentialKind.DCC_VACCINATION: "v",
    CredentialKind.DCC_TEST: "t",
    CredentialKind.DCC_RECOVERY: "r",
}
_CERT_TYPES = {"General": "", "Vaccination": "v", "Test": "t", "Recovery": "r"}


@dataclass(frozen=True, slots=True)
class Rule:
    identifier: str
    cert_type: str  # "v", "t", "r", or "" for every type
    logic: Any
    reason: ReasonCode
    description: str = ""


@dataclass(frozen=True, slots=True)
class Mode:
    name: str
    accept: tuple[frozenset[str], ...]
    rules: frozenset[str] = frozenset()

    @property
    def types(self) -> frozenset[str]:
        """Every certificate type that takes part in some alternative."""
        return frozenset().union(*self.accept) if self.accept else frozenset()


@dataclass(frozen=True, slots=True)
class RuleSet:
    version: str = ""
    rules: tuple[Rule, ...] = ()
    modes: Mapping[str, Mode] = field(default_factory=dict)
    value_sets: ValueSets = field(default_factory=default_valuesets)

    def applicable(self, letter: str, mode: str) -> list[Rule]:
        """Rules for a certificate of type ``letter`` in venue mode ``mode``."""
        mode_only = {r for m in self.modes.values() for r in m.rules}
        active = self.modes[mode].rules if mode in self.modes else frozenset()
        return [
            r
            for r in self.rules
            if r.cert_type in ("", letter)
            and (r.identifier not in mode_only or r.identifier in active)
        ]


def parse_rule_set(data: bytes, source: str = "rules") -> RuleSet:
    """Parse and validate a rule-set document; BundleFormatError names what is wrong."""
    if len(data) > MAX_RULES_BYTES:
        raise BundleFormatError(f"{source}: rule set larger than {MAX_RULES_BYTES} bytes")
    try:
        doc = json.loads(data)
        rules = []
        for r in doc.get("rules", []):
            ident = str(r["Identifier"])
            issues = certlogic.validate(r["Logic"])
            if issues:
                raise ValueError(f"rule {ident}: {issues[0]}")
            desc = next(
                (d.get("desc", "") for d in r.get("Description", []) if d.get("lang") == "en"), ""
            )
            rules.append(
                Rule(
                    ident,
                    _CERT_TYPES[r.get("CertificateType", "General")],
                    r["Logic"],
                    ReasonCode(r.get("Reason", ReasonCode.RULE_FAILED.value)),
                    str(desc),
                )
            )
        modes = {
            str(name): Mode(
                str(name),
                tuple(frozenset(str(t) for t in alt) for alt in m["accept"]),
                frozenset(str(x) for x in m.get("rules", [])),
            )
            for name, m in doc.get("modes", {}).items()
        }
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BundleFormatError(f"{source}: not a valid rule set: {exc}") from None
    return RuleSet(str(doc.get("version", "")), tuple(rules), modes)


@lru_cache(maxsize=1)
def default_rule_set() -> RuleSet:
    """The rule sets shipped with the package (``rulesets/default.json``)."""
    data = resources.files("sentinel.credentials").joinpath("rulesets/default.json").read_bytes()
    return parse_rule_set(data, "rulesets/default.json")


@lru_cache(maxsize=4)
def _cached(digest: str, data: bytes) -> RuleSet:
    return parse_rule_set(data, f"bundle rules {digest[:12]}")


@lru_cache(maxsize=4)
def _with_valuesets(rules_digest: str, vs_digest: str, part: bytes | None, vs: bytes) -> RuleSet:
    from dataclasses import replace

    return replace(_rules_only(part), value_sets=valuesets_from_part(vs))


def _rules_only(part: bytes | None) -> RuleSet:
    if not part:
        return default_rule_set()
    try:
        return _cached(hashlib.sha256(part).hexdigest(), part)
    except BundleFormatError as exc:
        # the bundle was applied (its signature holds) but its rules do not parse: keep
        # deciding with the package's rules rather than stopping the gate
        log.error("%s; using the default rule set", exc)
        return default_rule_set()


def rule_set_from_part(part: bytes | None, valuesets: bytes | None = None) -> RuleSet:
    """The bundle's ``rules`` part (defaults when absent), with the bundle's ``valuesets``
    part over the package value sets; each parsed once per content."""
    if not valuesets:
        return _rules_only(part)
    rd = hashlib.sha256(part).hexdigest() if part else ""
    return _with_valuesets(rd, hashlib.sha256(valuesets).hexdigest(), part, valuesets)


def rule_payload(cred: Credential) -> dict[str, Any]:
    """The minimized credential as a CertLogic ``payload`` (EU field names)."""
    if cred.vaccination is not None:
        v = cred.vaccination
        entry = {
            "tg": v.disease,
            "dn": v.dose_number,
            "sd": v.series_doses,
            "dt": v.vaccinated_on.isoformat(),
            "mp": v.product,
        }
        return {"v": [entry]}
    if cred.test is not None:
        t = cred.test
        sc = t.sampled_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        tr = "260415000" if t.not_detected else "260373001"
        return {"t": [{"tg": t.disease, "tt": t.test_type, "sc": sc, "tr": tr}]}
    if cred.recovery is not None:
        r = cred.recovery
        entry = {
            "tg": r.disease,
            "fr": r.first_positive_on.isoformat(),
            "df": r.valid_from.isoformat(),
            "du": r.valid_until.isoformat(),
        }
        return {"r": [entry]}
    return {}


def rule_failure(cred: Credential, rule_set: RuleSet, mode: str, now: datetime) -> Rule | None:
    """The first applicable rule ``cred`` fails at ``now``, or None."""
    letter = TYPE_LETTER.get(cred.kind)
    if letter is None:
        return None
    clock = certlogic.iso(now if now.tzinfo else now.replace(tzinfo=UTC))
    data = {
        "payload": rule_payload(cred),
        "external": {
            "validationClock": clock,
            "validationDay": clock[:10],
            "valueSets": rule_set.value_sets.for_rules(),
        },
    }
    for rule in rule_set.applicable(letter, mode):
        try:
            ok = certlogic.evaluate(rule.logic, data) is True
        except certlogic.CertLogicError:
            ok = False  # the spec: an erroring rule is a failed rule
        if not ok:
            return rule
    return None
