"""The bundle's ``rules`` part: size cap, fallback to the package rules, descriptions."""

from __future__ import annotations

import hashlib
import json
import logging

import pytest

from sentinel.credentials import rules
from sentinel.errors import BundleFormatError

RULE = {
    "Identifier": "GR-X-0001",
    "CertificateType": "General",
    "Logic": True,
    "Description": [{"lang": "de", "desc": "Immer"}, {"lang": "en", "desc": "Always"}],
}


def _doc(n_pad: int = 0) -> bytes:
    body = json.dumps({"version": "7", "rules": [RULE]}).encode()
    return body + b" " * n_pad


def test_rule_set_at_the_cap_parses_one_byte_more_is_refused() -> None:
    at_cap = _doc(rules.MAX_RULES_BYTES - len(_doc()))
    assert len(at_cap) == rules.MAX_RULES_BYTES
    assert rules.parse_rule_set(at_cap).version == "7"
    with pytest.raises(BundleFormatError, match="larger than"):
        rules.parse_rule_set(at_cap + b" ")


def test_the_english_description_is_kept() -> None:
    (rule,) = rules.parse_rule_set(_doc()).rules
    assert rule.description == "Always"


def test_a_broken_rules_part_falls_back_to_the_package_rules_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broken = b'{"rules": [{"Identifier": "X"}]}'  # no Logic
    with caplog.at_level(logging.ERROR, logger="sentinel.credentials.rules"):
        got = rules.rule_set_from_part(broken)
    assert got is rules.default_rule_set()
    digest = hashlib.sha256(broken).hexdigest()
    assert any(
        f"bundle rules {digest[:12]}" in r.getMessage() and "default rule set" in r.getMessage()
        for r in caplog.records
    ), caplog.text
    assert f"bundle rules {digest[:13]}" not in caplog.text  # the short digest only
    good = rules.rule_set_from_part(_doc())
    assert good.version == "7" and rules.rule_set_from_part(_doc()) is good  # parsed once


def test_certlogic_rules_apply_to_certificates_only() -> None:
    """ID documents and health codes carry no DCC payload: no rule applies to them, not
    even a General one (it would fail on the missing fields and refuse every ID card)."""
    from datetime import UTC, datetime

    from sentinel.credentials.model import Credential, CredentialKind

    now = datetime(2022, 5, 1, tzinfo=UTC)
    general = rules.parse_rule_set(
        json.dumps({"rules": [{**RULE, "Logic": {"var": "payload.v.0.tg"}}]}).encode()
    )
    for kind in (CredentialKind.ID_DOCUMENT, CredentialKind.HEALTH_CODE):
        cred = Credential(kind, status="green")
        assert rules.rule_failure(cred, general, "custom", now) is None
        assert rules.rule_failure(cred, rules.default_rule_set(), "custom", now) is None


@pytest.mark.parametrize(
    "modes",
    [
        {"2G": {"accept": 5}},  # not a list: TypeError
        {"2G": {"accept": [["v"]], "rules": 7}},  # rules not a list: TypeError
        {"2G": {}},  # no accept: KeyError
        {"2G": ["v"]},  # a mode that is not an object: TypeError
        ["2G"],  # modes a list, not an object: AttributeError
    ],
)
def test_a_rule_set_whose_modes_have_the_wrong_shape_is_a_format_error(modes: object) -> None:
    """A signed rules part is still data: a mode of the wrong shape is refused as a bad
    rule set (the previous rules stay), never a crash of the sync."""
    doc = json.dumps({"version": "7", "rules": [RULE], "modes": modes}).encode()
    with pytest.raises(BundleFormatError, match="not a valid rule set"):
        rules.parse_rule_set(doc)
