"""CertLogic: the published test suite, plus the edges the spec calls out."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sentinel.credentials import certlogic as cl
from sentinel.credentials import conformance as conf

SUITE = conf.repo_default("certlogic")


def test_published_suite_passes() -> None:
    results = conf.run_certlogic(SUITE)
    assert len(results) >= 200
    failed = [f"{a.suite} / {a.case} #{a.index}: {a.detail}" for a in results if not a.passed]
    assert not failed, "\n".join(failed)


@pytest.mark.parametrize(
    ("start", "amount", "unit", "expected"),
    [
        ("2020-02-29", 1, "day", "2020-03-01T00:00:00.000Z"),
        ("2020-02-29", 1, "month", "2020-03-29T00:00:00.000Z"),
        ("2020-02-29", 1, "year", "2021-03-01T00:00:00.000Z"),
        ("2021-01-31", 1, "month", "2021-03-03T00:00:00.000Z"),
        ("2021-06-01T00:00:00+02", 0, "hour", "2021-05-31T22:00:00.000Z"),
        ("2021-06-01T00:00:00.123456Z", -1, "hour", "2021-05-31T23:00:00.123Z"),
        ("2021", 0, "day", "2021-12-31T00:00:00.000Z"),
        ("2021-02", 0, "day", "2021-02-28T00:00:00.000Z"),
    ],
)
def test_plus_time(start: str, amount: int, unit: str, expected: str) -> None:
    got = cl.evaluate({"plusTime": [start, amount, unit]}, {})
    assert cl.iso(got) == expected


@pytest.mark.parametrize(
    "expr",
    [
        {"foo": [1]},
        {"if": [1, 2]},
        {"+": [1, "a"]},
        {"<": [1, {"plusTime": ["2021", 0, "day"]}]},
        {"after": [1, 2]},
        {"!": [{"plusTime": ["2021", 0, "day"]}]},
        {"in": [1, 2]},
        {"plusTime": ["2021-13-45", 0, "day"]},
        {"plusTime": ["2021", {"var": "x"}, "day"]},
        {"reduce": [5, 0, 0]},
        None,
        3.5,
    ],
)
def test_invalid_or_mismatched_expressions_raise(expr: object) -> None:
    with pytest.raises(cl.CertLogicError):
        cl.evaluate(expr, {"x": 1})


def test_truthiness_is_disjoint() -> None:
    for v in (True, "a", 1, [0], {"a": 1}):
        assert cl.is_truthy(v) and not cl.is_falsy(v)
    for v in (False, None, "", 0, [], {}):
        assert cl.is_falsy(v) and not cl.is_truthy(v)
    dt = datetime(2021, 1, 1, tzinfo=UTC)
    assert not cl.is_truthy(dt) and not cl.is_falsy(dt)


def test_deep_nesting_is_refused_not_crashing() -> None:
    expr: object = True
    for _ in range(5000):
        expr = {"!": [expr]}
    with pytest.raises(cl.CertLogicError):
        cl.evaluate(expr, {})
    assert cl.validate(expr)


def test_extract_from_uvci() -> None:
    uci = "URN:UVCI:01:NL:187/37512422923"
    assert cl.evaluate({"extractFromUVCI": [{"var": "u"}, 1]}, {"u": uci}) == "NL"
    assert cl.evaluate({"extractFromUVCI": [{"var": "u"}, 9]}, {"u": uci}) is None
    assert cl.evaluate({"extractFromUVCI": [{"var": "u"}, 0]}, {}) is None


def test_cli(capsys: pytest.CaptureFixture[str]) -> None:
    from sentinel.cli import main

    assert main(["conformance", "certlogic", "--dir", str(SUITE)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].endswith(" passed, 0 failed")
