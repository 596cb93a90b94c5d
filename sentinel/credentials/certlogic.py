"""CertLogic: the JsonLogic dialect EU DCC business rules are written in.

``evaluate(expr, data)`` follows CertLogic specification 1.3.3 (``SPECIFICATION.md`` in
``../shared/testdata/certlogic``): literals, ``var``, ``if``, ``===``, ``in``, ``+``,
``and``, ``!``, the integer comparisons (binary and ternary), the date-time comparisons
``after``/``before``/``not-after``/``not-before``, ``plusTime``, ``reduce``,
``extractFromUVCI`` and ``dccDateOfBirth``.

Null-safety, as the specification states it ("Operating on a ``null`` value evaluates to
``null`` in most, but not all, cases"): ``var`` of a missing or null value is null; an
operation whose operand evaluates to null yields null (``in`` with a null right operand,
``+``, every comparison and date-time comparison, ``plusTime``, ``dccDateOfBirth``,
``extractFromUVCI``).  The exceptions are where null is a value the operation is defined
on: ``if``/``and``/``!`` take null as falsy, ``===`` compares it (null === null),
``in`` looks for a null *item* in its array, and ``reduce`` over null gives its initial
value (certlogic-js, the spec's reference implementation; the shared suite's patched
reduce).  A rule that evaluates to null has not evaluated to ``true``: it fails.

An invalid expression or a type mismatch
raises ``CertLogicError`` (the spec's "throws"); callers evaluating a rule treat that as
the rule failing.  ``validate(expr)`` lists the structural issues of an expression
without evaluating it.

Evaluation is bounded: nesting depth and ``reduce`` work are capped, so a hostile rule
set cannot exhaust the stack or the CPU.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

MAX_DEPTH = 64
MAX_REDUCE_ITEMS = 10_000

COMPARISONS = (">", "<", ">=", "<=")
DATE_COMPARISONS = ("after", "before", "not-after", "not-before")
TIME_UNITS = ("year", "month", "day", "hour")
OPERATORS = frozenset(
    {"var", "if", "===", "in", "+", "and", "!", "plusTime", "reduce", "extractFromUVCI"}
    | {"dccDateOfBirth"}
    | set(COMPARISONS)
    | set(DATE_COMPARISONS)
)

_DATE_TIME = re.compile(
    r"^(\d{4})(?:-(\d{2})(?:-(\d{2})"
    r"(?:T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{1,2}(?::?\d{2})?)?)?)?)?$"
)
_PATH = re.compile(r"^(?:[^.]+(?:\.[^.]+)*)?$")


class CertLogicError(ValueError):
    """An invalid CertLogic expression, or a type mismatch found while evaluating."""


# --- values ----------------------------------------------------------------------------------


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_truthy(v: Any) -> bool:
    """CertLogic truthy: true, non-empty string/array/object, non-zero integer."""
    if isinstance(v, bool):
        return v
    if _is_int(v):
        return v != 0
    if isinstance(v, str | list | dict):
        return len(v) > 0
    return False


def is_falsy(v: Any) -> bool:
    """CertLogic falsy: false, null, "", 0, [], {} (disjoint from truthy; some are neither)."""
    if v is None or v is False:
        return True
    if _is_int(v):
        return v == 0
    if isinstance(v, str | list | dict):
        return len(v) == 0
    return False


def iso(dt: datetime) -> str:
    """A date-time as JavaScript's ``toISOString`` prints it (UTC, milliseconds)."""
    u = dt.astimezone(UTC)
    return u.strftime("%Y-%m-%dT%H:%M:%S.") + f"{u.microsecond // 1000:03d}Z"


def same_value(a: Any, b: Any) -> bool:
    """Strict JSON equality (no bool/int confusion); date-times compare by ISO string."""
    if isinstance(a, datetime):
        a = iso(a)
    if isinstance(b, datetime):
        b = iso(b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    if isinstance(a, float) and a.is_integer():
        a = int(a)
    if isinstance(b, float) and b.is_integer():
        b = int(b)
    return type(a) is type(b) and a == b


# --- date-times ------------------------------------------------------------------------------


def _last_day(year: int, month: int) -> int:
    return calendar.monthrange(year, month)[1]


def _offset(text: str | None) -> timezone:
    if not text or text == "Z":
        return UTC
    sign = -1 if text[0] == "-" else 1
    body = text[1:]
    if ":" in body:
        h, m = body.split(":")
    elif len(body) <= 2:
        h, m = body, "0"
    else:
        h, m = body[:-2], body[-2:]
    return timezone(sign * timedelta(hours=int(h), minutes=int(m)))


def parse_date_time(text: Any) -> datetime:
    """A CertLogic date(-time) string → aware datetime at millisecond precision."""
    if not isinstance(text, str):
        raise CertLogicError(f"not a date-time string: {text!r}")
    m = _DATE_TIME.match(text)
    if not m:
        raise CertLogicError(f"not a date-time in an allowed format: {text!r}")
    year, month, day, hh, mi, ss, frac, off = m.groups()
    try:
        y = int(year)
        if month is None:  # YYYY: the last day consistent with it (dccDateOfBirth rule)
            return datetime(y, 12, 31, tzinfo=UTC)
        mo = int(month)
        if day is None:
            return datetime(y, mo, _last_day(y, mo), tzinfo=UTC)
        if hh is None:
            return datetime(y, mo, int(day), tzinfo=UTC)
        ms = int((frac or "0")[:3].ljust(3, "0"))
        return datetime(
            y, mo, int(day), int(hh), int(mi), int(ss), ms * 1000, tzinfo=_offset(off)
        ).astimezone(UTC)
    except ValueError as exc:  # "2021-09-99": undefined by the spec; we refuse
        raise CertLogicError(f"invalid date-time {text!r}: {exc}") from None


def plus_time(dt: datetime, amount: int, unit: str) -> datetime:
    """Offset like JavaScript ``setUTC<Unit>(getUTC<Unit>() + amount)`` (overflow rolls)."""
    if unit == "hour":
        return dt + timedelta(hours=amount)
    if unit == "day":
        return dt + timedelta(days=amount)
    if unit == "month":
        total = dt.year * 12 + (dt.month - 1) + amount
        y, m = divmod(total, 12)
        y, m = y, m + 1
    else:
        y, m = dt.year + amount, dt.month
    if not 1 <= y <= 9999:
        raise CertLogicError("date-time out of range")
    # day-of-month overflow rolls into the next month (2020-02-29 + 1 year = 2021-03-01)
    first = dt.replace(year=y, month=m, day=1)
    return first + timedelta(days=dt.day - 1)


def dcc_date_of_birth(text: Any) -> datetime:
    """``YYYY`` → Dec 31, ``YYYY-MM`` → last day of the month, ``YYYY-MM-DD`` as is."""
    if not isinstance(text, str) or not re.fullmatch(r"\d{4}(?:-\d{2}(?:-\d{2})?)?", text):
        raise CertLogicError(f"not a DCC date of birth: {text!r}")
    return parse_date_time(text)


# --- evaluation ------------------------------------------------------------------------------


def _operands(expr: Mapping[str, Any]) -> tuple[str, Any]:
    if len(expr) != 1:
        raise CertLogicError(f"expression object must have exactly one key, has {len(expr)}")
    ((op, values),) = expr.items()
    if op not in OPERATORS:
        raise CertLogicError(f"unrecognised operator: {op!r}")
    if op != "var" and not isinstance(values, list):
        raise CertLogicError(f'operation not of the form {{ "{op}": [ <values...> ] }}')
    return op, values


def _arity(op: str, values: list, *counts: int) -> None:
    if len(values) not in counts:
        raise CertLogicError(f"{op} takes {' or '.join(map(str, counts))} operands")


def _var(path: Any, data: Any) -> Any:
    if not isinstance(path, str):
        raise CertLogicError('not of the form { "var": "<path>" }')
    if path == "":
        return data
    cur = data
    for frag in path.split("."):
        if cur is None:
            return None
        if isinstance(cur, list):
            if not frag.isdigit():
                return None
            i = int(frag)
            cur = cur[i] if i < len(cur) else None
        elif isinstance(cur, dict):
            cur = cur.get(frag)
        else:
            return None
    return cur


def _compare(op: str, values: list[Any]) -> bool:
    if op in COMPARISONS:
        if not all(_is_int(v) for v in values):
            raise CertLogicError(f"{op}: all operands must be integers")
    elif not all(isinstance(v, datetime) for v in values):
        raise CertLogicError(f"{op}: all operands must be date-times")
    test = {
        ">": lambda a, b: a > b,
        "after": lambda a, b: a > b,
        "<": lambda a, b: a < b,
        "before": lambda a, b: a < b,
        ">=": lambda a, b: a >= b,
        "not-before": lambda a, b: a >= b,
        "<=": lambda a, b: a <= b,
        "not-after": lambda a, b: a <= b,
    }[op]
    return all(test(a, b) for a, b in zip(values, values[1:], strict=False))


def _uvci(value: Any, index: Any) -> str | None:
    if not _is_int(index):
        raise CertLogicError("extractFromUVCI: index must be an integer")
    if value is None:
        return None
    if not isinstance(value, str):
        raise CertLogicError("extractFromUVCI: operand must be a string or null")
    parts = re.split(r"[/#:]", value)
    if value.startswith("URN:UVCI:"):
        parts = parts[2:]
    return parts[index] if 0 <= index < len(parts) else None


def _eval(expr: Any, data: Any, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise CertLogicError("expression nested too deeply")
    if isinstance(expr, bool | str) or _is_int(expr):
        return expr
    if isinstance(expr, float):
        if expr.is_integer():
            return int(expr)
        raise CertLogicError(f"{expr} is a non-integer number")
    if isinstance(expr, list):
        return [_eval(e, data, depth + 1) for e in expr]
    if not isinstance(expr, dict):
        raise CertLogicError("invalid CertLogic expression")
    op, values = _operands(expr)
    ev = lambda e: _eval(e, data, depth + 1)  # noqa: E731
    if op == "var":
        return _var(values, data)
    if op == "if":
        _arity(op, values, 3)
        guard = ev(values[0])
        if is_truthy(guard):
            return ev(values[1])
        if is_falsy(guard):
            return ev(values[2])
        raise CertLogicError(f"if: guard is neither truthy nor falsy: {guard!r}")
    if op == "===":
        _arity(op, values, 2)
        return same_value(ev(values[0]), ev(values[1]))
    if op == "in":
        _arity(op, values, 2)
        item, seq = ev(values[0]), ev(values[1])
        if seq is None:  # null-safety: operating on null gives null (a null item is a value)
            return None
        if not isinstance(seq, list):
            raise CertLogicError("in: right operand must be an array")
        return any(same_value(item, x) for x in seq)
    if op == "+":
        _arity(op, values, 2)
        a, b = ev(values[0]), ev(values[1])
        if a is None or b is None:
            return None
        if not (_is_int(a) and _is_int(b)):
            raise CertLogicError("+: operands must be integers")
        return a + b
    if op == "and":
        if len(values) < 2:
            raise CertLogicError("and takes at least 2 operands")
        result: Any = None
        for v in values:
            result = ev(v)
            if is_falsy(result):
                return result
            if not is_truthy(result):
                raise CertLogicError(f"and: operand neither truthy nor falsy: {result!r}")
        return result
    if op == "!":
        _arity(op, values, 1)
        v = ev(values[0])
        if is_truthy(v):
            return False
        if is_falsy(v):
            return True
        raise CertLogicError(f"!: operand neither truthy nor falsy: {v!r}")
    if op in COMPARISONS or op in DATE_COMPARISONS:
        _arity(op, values, 2, 3)
        operands = [ev(v) for v in values]
        return None if any(v is None for v in operands) else _compare(op, operands)
    if op == "plusTime":
        _arity(op, values, 3)
        amount, unit = values[1], values[2]
        if not _is_int(amount) or unit not in TIME_UNITS:
            raise CertLogicError("plusTime: [<date-time>, <integer>, <year|month|day|hour>]")
        when = ev(values[0])
        return None if when is None else plus_time(parse_date_time(when), amount, unit)
    if op == "dccDateOfBirth":
        _arity(op, values, 1)
        dob = ev(values[0])
        return None if dob is None else dcc_date_of_birth(dob)
    if op == "extractFromUVCI":
        _arity(op, values, 2)
        return _uvci(ev(values[0]), values[1])
    # reduce
    _arity(op, values, 3)
    operand, lam, initial = ev(values[0]), values[1], ev(values[2])
    if operand is None:
        return initial
    if not isinstance(operand, list):
        raise CertLogicError("reduce: operand must be an array or null")
    if len(operand) > MAX_REDUCE_ITEMS:
        raise CertLogicError("reduce: operand too long")
    acc = initial
    for cur in operand:
        # "data" gives the lambda the original context (the spec's announced extension)
        acc = _eval(lam, {"current": cur, "accumulator": acc, "data": data}, depth + 1)
    return acc


def evaluate(expr: Any, data: Any) -> Any:
    """Evaluate a CertLogic expression against a data context; raise CertLogicError."""
    try:
        return _eval(expr, data, 0)
    except RecursionError:
        raise CertLogicError("expression nested too deeply") from None


# --- validation ------------------------------------------------------------------------------


def validate(expr: Any, _depth: int = 0) -> list[str]:
    """Structural issues of ``expr`` (empty when it is a valid CertLogic expression)."""
    if _depth > MAX_DEPTH:
        return ["expression nested too deeply"]
    if isinstance(expr, bool | str) or _is_int(expr):
        return []
    if isinstance(expr, float):
        return [] if expr.is_integer() else [f"{expr} is a non-integer number"]
    if isinstance(expr, list):
        return [i for e in expr for i in validate(e, _depth + 1)]
    if not isinstance(expr, dict):
        return ["invalid CertLogic expression"]
    if len(expr) != 1:
        return [f"expression object must have exactly one key, but it has {len(expr)}"]
    ((op, values),) = expr.items()
    if op == "var":
        if not isinstance(values, str):
            return ['not of the form { "var": "<path>" }']
        return [] if _PATH.match(values) else [f"data access path invalid: {values}"]
    if not isinstance(values, list):
        return [f'operation not of the form {{ "{op}": [ <values...> ] }}']
    if op not in OPERATORS:
        return [f'unrecognised operator: "{op}"']
    n = len(values)
    arity_ok = {
        "if": n == 3,
        "===": n == 2,
        "in": n == 2,
        "+": n == 2,
        "and": n >= 2,
        "!": n == 1,
        "plusTime": n == 3 and _is_int(values[1]) and values[2] in TIME_UNITS,
        "reduce": n == 3,
        "extractFromUVCI": n == 2 and _is_int(values[1]),
        "dccDateOfBirth": n == 1,
    }.get(op, n in (2, 3))
    issues = [] if arity_ok else [f"{op}: wrong number or kind of operands"]
    return issues + [i for v in values for i in validate(v, _depth + 1)]
