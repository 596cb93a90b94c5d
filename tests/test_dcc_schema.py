"""The official DCC schemas per version: selection, relaxations, and the library cross-check."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sentinel.authority import dcc_issue as di
from sentinel.credentials import conformance as conf
from sentinel.credentials import dcc, dcc_schema
from sentinel.errors import MalformedCredential

DGC = conf.repo_default("dgc")


def payloads() -> list[dict[str, Any]]:
    out = []
    for p in conf.dgc_case_files(DGC):
        case = json.loads(p.read_bytes())
        if isinstance(case, dict) and isinstance(case.get("COSE"), str):
            try:
                claims = dcc.decode_claims(dcc.decode_cose(bytes.fromhex(case["COSE"])).payload)
                out.append(dcc_schema.to_json(claims[dcc.CWT_HCERT][1]))
            except Exception:  # noqa: S112 - broken vectors are the conformance test's business
                continue
    return out


def holder(**over: Any) -> dict[str, Any]:
    return {**di.person(), **di.vaccination(), **over}


def test_every_released_version_is_vendored_with_its_license() -> None:
    assert dcc_schema.released_versions() == (
        "1.0.0", "1.0.1", "1.1.0", "1.2.0", "1.2.1", "1.3.0", "1.3.1", "1.3.2", "1.3.3",
    )  # fmt: skip
    here = dcc_schema.SCHEMA_DIR
    assert "Apache License" in (here / "LICENSE").read_text()
    assert "ehn-dcc-schema" in (here / "NOTICE").read_text()
    for v in dcc_schema.released_versions():
        src = DGC.parent / "dcc-schema" / f"{v}.combined-schema.json"
        assert (here / f"{v}.combined-schema.json").read_bytes() == src.read_bytes()


def test_fastjsonschema_agrees_with_the_reference_implementation() -> None:
    """jsonschema (Draft 2020-12, the schemas' own dialect) is the oracle for every verdict."""
    jsonschema = pytest.importorskip("jsonschema")
    docs = payloads()
    assert len(docs) > 350
    mutated = [dict(d, dob="1815-01-01") for d in docs[:40]] + [
        {**d, "nam": {"gn": "X"}} for d in docs[40:80]
    ]
    checked = 0
    for v in dcc_schema.released_versions():
        ref = jsonschema.Draft202012Validator(dcc_schema._raw_schema(v))
        fast = dcc_schema._validator(v)
        for d in docs + mutated:
            try:
                fast(d)
                ok = True
            except Exception:
                ok = False
            assert ok == ref.is_valid(d), (v, d)
            checked += 1
    assert checked > 3500


@pytest.mark.parametrize(
    ("ver", "used"),
    [("1.0.0", "1.0.0"), ("1.2.1", "1.2.1"), ("1.3.3", "1.3.3"), ("1.3.9", "1.3.3"),
     ("1.4.0", "1.3.3")],
)  # fmt: skip
def test_version_selection(ver: str, used: str) -> None:
    assert dcc_schema.schema_version_for(ver) == used


@pytest.mark.parametrize("ver", ["2.0.0", "1.3", "v1.3.0", "", None, 130])
def test_unknown_major_or_malformed_version_refused(ver: Any) -> None:
    with pytest.raises(MalformedCredential) as exc:
        dcc_schema.schema_version_for(ver)
    assert exc.value.reason.value == "SCHEMA_INVALID"


def test_older_declared_version_valid_under_newest_is_accepted() -> None:
    """Rule 2 (hcert-kotlin): 1.0.0 caps 'is' at 50, 1.3.x at 80."""
    doc = holder(ver="1.0.0")
    doc["v"] = [dict(doc["v"][0], **{"is": "I" * 70})]
    assert dcc_schema.check_schema(doc) == "1.3.3"
    doc["v"] = [dict(doc["v"][0], **{"is": "I" * 81})]
    with pytest.raises(MalformedCredential, match="too long|must be shorter|longer"):
        dcc_schema.check_schema(doc)


def test_schema_refusals_name_the_field() -> None:
    doc = holder()
    doc["v"] = [dict(doc["v"][0], dn=0)]
    with pytest.raises(MalformedCredential, match="dn"):
        dcc_schema.check_schema(doc)
    with pytest.raises(MalformedCredential, match="exactly"):
        dcc_schema.check_schema(
            {**holder(), **di.recovery("2021-01-01", "2021-01-10", "2021-06-01")}
        )
    with pytest.raises(MalformedCredential, match="fnt|gnt"):
        dcc_schema.check_schema({**holder(), "nam": {"fn": "Müller"}})


def test_format_is_an_annotation_but_decision_dates_are_parsed() -> None:
    """JSON Schema 2020-12 §7.2: 'format' does not fail the schema; the decision then does."""
    doc = holder()
    doc["v"] = [dict(doc["v"][0], dt="2021-02-30")]
    assert dcc_schema.check_schema(doc)
    with pytest.raises(MalformedCredential, match="v.dt not a date"):
        dcc_schema.validate_payload({dcc.CWT_HCERT: {1: doc}})


def test_vendored_schemas_ship_in_the_package(tmp_path: Path) -> None:
    import tomllib

    data = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    pkg = data["tool"]["setuptools"]["package-data"]["sentinel"]
    assert "**/*.json" in pkg and "**/LICENSE" in pkg and "**/NOTICE" in pkg


def test_warm_compiles_every_version_before_the_first_decision() -> None:
    dcc_schema.warm()
    assert dcc_schema._validator.cache_info().currsize == len(dcc_schema.released_versions())
