"""CertLogic: the published test suite, plus the edges the spec calls out."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

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


# --- null-safety: "operating on a null value evaluates to null in most, but not all, cases" --

NULL = {"var": "missing"}
DT = {"plusTime": ["2021-06-01", 0, "day"]}


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ({"in": ["a", NULL]}, None),  # the issue's example: no error, null
        ({"in": [NULL, {"var": "arr"}]}, True),  # a null *item* is a value to look for
        ({"in": [NULL, ["a"]]}, False),
        ({"+": [NULL, 1]}, None),
        ({"+": [1, NULL]}, None),
        ({"<": [NULL, 1]}, None),
        ({">=": [1, NULL]}, None),
        ({"<=": [0, NULL, 2]}, None),  # ternary form
        ({"after": [NULL, DT]}, None),
        ({"not-before": [DT, NULL]}, None),
        ({"before": [DT, NULL, DT]}, None),
        ({"plusTime": [NULL, 1, "day"]}, None),
        ({"dccDateOfBirth": [NULL]}, None),
        ({"extractFromUVCI": [NULL, 1]}, None),
        ({"var": "a.b.c"}, None),
        ({"var": "list.7"}, None),
        # the exceptions: null is falsy, comparable by ===, and reduce starts from its initial
        ({"if": [NULL, "then", "else"]}, "else"),
        ({"and": [True, NULL, False]}, None),
        ({"!": [NULL]}, True),
        ({"===": [NULL, NULL]}, True),
        ({"===": [NULL, 0]}, False),
        ({"reduce": [NULL, {"+": [{"var": "accumulator"}, 1]}, 5]}, 5),
        # null flows through nested operations without an error
        ({"!": [{"in": ["a", NULL]}]}, True),
        ({"after": [{"plusTime": [NULL, 1, "day"]}, DT]}, None),
        ({"<": [{"+": [NULL, 1]}, 3]}, None),
    ],
)
def test_null_operands(expr: object, expected: object) -> None:
    assert cl.same_value(cl.evaluate(expr, {"list": [1], "arr": ["a", None]}), expected)


@pytest.mark.parametrize(
    "expr",
    [
        {"in": ["a", "abc"]},  # a non-null non-array is still an error
        {"+": ["x", 1]},
        {"after": [DT, "2021-06-01"]},  # a string is not a date-time
        {"plusTime": [NULL, NULL, "day"]},  # the amount is a literal integer, always
        {"dccDateOfBirth": [5]},
    ],
)
def test_null_safety_is_not_type_laxity(expr: object) -> None:
    with pytest.raises(cl.CertLogicError):
        cl.evaluate(expr, {})


def test_a_rule_evaluating_to_null_fails(now: datetime) -> None:
    """A rule counts as passed only when it evaluates to true: null (no value set) fails."""
    from sentinel.authority import dcc_issue as di
    from sentinel.credentials import dcc, rules
    from sentinel.credentials.trustlist import TrustList

    doc = {
        "rules": [
            {
                "Identifier": "VR-XX-0001",
                "CertificateType": "Vaccination",
                "Logic": {"in": [{"var": "payload.v.0.mp"}, {"var": "external.valueSets.nope"}]},
            }
        ]
    }
    rs = rules.parse_rule_set(json.dumps(doc).encode())
    key = di.make_signer(not_before=now - timedelta(days=9), not_after=now + timedelta(days=9))
    text = di.issue(di.vaccination(), key, issued_at=now, expires_at=now + timedelta(days=1))
    cred = dcc.verify(text, TrustList.from_certificates([key.der]), now)
    failed = rules.rule_failure(cred, rs, "3G", now)
    assert failed is not None and failed.identifier == "VR-XX-0001"


@contextlib.contextmanager
def _system_zone(name: str) -> Iterator[None]:
    """The process's time zone (``TZ``, what a naive datetime's ``astimezone`` reads)."""
    import time

    old = os.environ.get("TZ")
    os.environ["TZ"] = name
    time.tzset()
    try:
        yield
    finally:
        if old is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = old
        time.tzset()


@pytest.mark.parametrize("tz_hours", [2, -5, None])
def test_the_validation_clock_is_the_same_instant_in_any_time_zone(
    now: datetime, tz_hours: int | None
) -> None:
    """A device clock given with an offset (+02:00, -05:00): the rules see the same instant,
    not the local wall time relabelled as UTC; a naive clock (None) is UTC even on a device
    whose system zone is not (here UTC+8). The rule admits only before a boundary one hour
    after ``now`` (CertLogic's own ``before`` on ISO times)."""
    with _system_zone("Etc/GMT-8") if tz_hours is None else contextlib.nullcontext():
        _clock_case(now, tz_hours)


def _clock_case(now: datetime, tz_hours: int | None) -> None:
    from datetime import timezone

    from sentinel.authority import dcc_issue as di
    from sentinel.credentials import dcc, rules
    from sentinel.credentials.trustlist import TrustList

    utc_now = now.astimezone(UTC)
    boundary = (utc_now + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    doc = {
        "rules": [
            {
                "Identifier": "VR-XX-0002",
                "CertificateType": "Vaccination",
                "Logic": {
                    "before": [
                        {"plusTime": [{"var": "external.validationClock"}, 0, "hour"]},
                        {"plusTime": [boundary, 0, "hour"]},
                    ]
                },
            }
        ]
    }
    rs = rules.parse_rule_set(json.dumps(doc).encode())
    key = di.make_signer(not_before=now - timedelta(days=9), not_after=now + timedelta(days=9))
    text = di.issue(di.vaccination(), key, issued_at=now, expires_at=now + timedelta(days=1))
    cred = dcc.verify(text, TrustList.from_certificates([key.der]), now)
    if tz_hours is None:
        local = utc_now.replace(tzinfo=None)
    else:
        local = utc_now.astimezone(timezone(timedelta(hours=tz_hours)))
    assert rules.rule_failure(cred, rs, "3G", local) is None  # an hour before the boundary
    later = local + timedelta(hours=2)
    failed = rules.rule_failure(cred, rs, "3G", later)
    assert failed is not None and failed.identifier == "VR-XX-0002"


def test_a_python_stack_shallower_than_the_depth_cap_still_gives_a_certlogic_error() -> None:
    """The depth cap (MAX_DEPTH) is CertLogic's own check; the RecursionError handler is the
    backstop for an interpreter whose stack ends first (a smaller recursion limit): the
    rule still errs as CertLogic, never with Python's RecursionError."""
    import inspect
    import sys

    from sentinel.credentials import certlogic as cl

    expr: object = {"var": "x"}
    for _ in range(cl.MAX_DEPTH - 2):
        expr = {"if": [True, expr, None]}
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack()) + 40)  # far fewer frames than the cap
    try:
        with pytest.raises(cl.CertLogicError, match="nested too deeply"):
            cl.evaluate(expr, {"x": 1})
    finally:
        sys.setrecursionlimit(old)
    assert cl.evaluate(expr, {"x": 1}) == 1  # with the usual stack: within the cap


V = {"var": "payload.x"}


@pytest.mark.parametrize(
    ("valid", "invalid"),
    [
        ({"if": [True, 1, 2]}, {"if": [True, 1]}),
        ({"===": [V, 1]}, {"===": [V, 1, 2]}),
        ({"in": [V, [1, 2]]}, {"in": [V, [1], [2]]}),
        ({"+": [V, 1]}, {"+": [V, 1, 2]}),
        ({"and": [True, True, True, True]}, {"and": [True]}),
        ({"!": [V]}, {"!": [V, V]}),
        ({"plusTime": [V, 1, "day"]}, {"plusTime": [V, "1", "day"]}),
        ({"plusTime": [V, -2, "hour"]}, {"plusTime": [V, 1, "fortnight"]}),
        ({"reduce": [V, {"+": [{"var": "accumulator"}, 1]}, 0]}, {"reduce": [V, 0]}),
        ({"extractFromUVCI": [V, 1]}, {"extractFromUVCI": [V, "1"]}),
        ({"dccDateOfBirth": [V]}, {"dccDateOfBirth": [V, V]}),
        # comparisons: two operands, or three for "between" (the middle one tested)
        ({"<": [1, V, 3]}, {"<": [1, V, 3, 4]}),
        ({"not-after": [V, V, V]}, {"not-after": [V]}),
    ],
    ids=lambda e: next(iter(e)),
)
def test_each_operation_takes_the_operands_the_specification_gives_it(
    valid: dict, invalid: dict
) -> None:
    """CertLogic specification, "Operations": if (3), === / in / + (2), and (2 or more),
    ! (1), plusTime (3: an integer amount and a time unit), reduce (3), extractFromUVCI
    (2: an integer index), dccDateOfBirth (1).  The validator refuses other forms."""
    assert cl.validate(valid) == []
    assert cl.validate(invalid)


def test_date_times_compare_by_their_iso_text_on_either_side() -> None:
    # JSON has no date-time: CertLogic's === sees a date-time as its toISOString text
    # (JavaScript's Date.prototype.toISOString, UTC with milliseconds), whichever side it is on
    dt = datetime(2021, 6, 1, 12, 30, 5, 250000, tzinfo=UTC)
    text = "2021-06-01T12:30:05.250Z"
    assert cl.same_value(dt, text) and cl.same_value(text, dt)
    assert not cl.same_value(dt, "2021-06-01T12:30:05Z")
    assert not cl.same_value("2021-06-01T12:30:05Z", dt)
    assert cl.same_value("a", "a") and not cl.same_value("a", "b")
    expr = {"===": [{"plusTime": ["2021-06-01T12:30:05.250Z", 0, "day"]}, {"var": "t"}]}
    assert cl.evaluate(expr, {"t": text}) is True
    expr = {"===": [{"var": "t"}, {"plusTime": ["2021-06-01T12:30:05.250Z", 0, "day"]}]}
    assert cl.evaluate(expr, {"t": text}) is True


@pytest.mark.parametrize(
    "offset", ["Z", "+00:00", "+02:00", "+0530", "+05:30", "-08:00", "-0330", "+14:00", "+01"]
)
def test_utc_offsets_read_as_python_reads_them(offset: str) -> None:
    """Every offset shape CertLogic's date-times carry, against Python's own ISO 8601 reader
    (datetime.fromisoformat, an implementation apart from certlogic's)."""
    text = f"2021-06-01T12:30:05{offset}"
    want = datetime.fromisoformat(text if offset != "+01" else text + ":00").astimezone(UTC)
    assert cl.parse_date_time(text) == want


@pytest.mark.parametrize("other", ["a", 1, None, True, [], ["a"]])
def test_an_object_is_never_the_same_value_as_a_non_object(other) -> None:
    assert not cl.same_value({"a": 1}, other) and not cl.same_value(other, {"a": 1})
    assert not cl.same_value({}, other) and not cl.same_value(other, {})
    assert cl.evaluate({"===": [{"var": "o"}, {"var": "x"}]}, {"o": {"a": 1}, "x": other}) is False


def test_extract_from_uvci_with_and_without_its_urn_prefix() -> None:
    """CertLogic spec, extractFromUVCI: the optional ``URN:UVCI:`` prefix is not a
    fragment; fragments are split on '/', '#' and ':'. The spec's example UVCI, both ways."""
    for uvci in ("URN:UVCI:01:NL:187/37512422923", "01:NL:187/37512422923"):
        got = [cl.evaluate({"extractFromUVCI": [{"var": "u"}, i]}, {"u": uvci}) for i in range(5)]
        assert got == ["01", "NL", "187", "37512422923", None], uvci


@pytest.mark.parametrize("dob", ["1990-01-01T00:00:00Z", "1990-01-01T00:00:00", "90-01-01", ""])
def test_dcc_date_of_birth_takes_only_the_three_dcc_date_shapes(dob: str) -> None:
    """CertLogic spec, dccDateOfBirth: YYYY, YYYY-MM or YYYY-MM-DD (the DCC schema's dob);
    a date-time or another shape is an error, not a date."""
    with pytest.raises(cl.CertLogicError):
        cl.dcc_date_of_birth(dob)
    expr = {"not-before": [{"dccDateOfBirth": [{"var": "d"}]}, "1900-01-01T00:00:00Z"]}
    with pytest.raises(cl.CertLogicError):
        cl.evaluate(expr, {"d": dob})
    assert cl.dcc_date_of_birth("1990-02") == datetime(1990, 2, 28, tzinfo=UTC)


def test_objects_are_the_same_value_only_with_the_same_values_under_the_same_keys() -> None:
    assert cl.same_value({"a": 1, "b": [1, "x"]}, {"b": [1, "x"], "a": 1})
    assert not cl.same_value({"a": 1}, {"a": 2})
    assert not cl.same_value({"a": [1]}, {"a": [2]})
    assert not cl.same_value({"a": 1}, {"b": 1})
