"""Schema-level checks of the DCC payload fields a decision uses.

Not the whole published JSON schema (value sets, lengths of free-text fields): exactly the
fields that reach ``Credential`` and the rules, each with a clear ``SCHEMA_INVALID`` detail.
References: eHealth Network "Guidelines on Technical Specifications for EU Digital COVID
Certificates, JSON Schema Specification" (DCC.combined-schema 1.3.x), value sets.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from sentinel.errors import MalformedCredential
from sentinel.reasons import ReasonCode

CWT_HCERT = -260
_DOB = re.compile(r"^(?:(?:19|20)\d{2}(?:-\d{2}(?:-\d{2})?)?)?$")  # schema: YYYY[-MM[-DD]] or ""
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")
_CO = re.compile(r"^[A-Z]{1,10}$")  # ISO 3166 alpha-2 plus the schema's "UN"/"UNHCR" etc.
_VER = re.compile(r"^\d+\.\d+\.\d+$")
_SNOMED = re.compile(r"^\d{5,18}$")


def schema(cond: bool, what: str) -> None:
    """Raise SCHEMA_INVALID with ``what`` unless ``cond``."""
    if not cond:
        raise MalformedCredential(ReasonCode.SCHEMA_INVALID, what)


def to_date(value: Any, what: str) -> date:
    schema(isinstance(value, str) and bool(_DATE.match(value)), f"{what} missing or not a date")
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        raise MalformedCredential(ReasonCode.SCHEMA_INVALID, f"{what} not a date") from None


def to_datetime(value: Any, what: str) -> datetime:
    """An RFC 3339 date-time; a time without offset is read as UTC (as the EU apps do)."""
    if isinstance(value, datetime):  # CBOR tag 0 decoded by cbor2
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    schema(isinstance(value, str) and bool(_DATE.match(value)), f"{what} missing or not a time")
    s = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    if len(s) > 5 and s[-5] in "+-" and s[-4:].isdigit():
        s = s[:-2] + ":" + s[-2:]
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        raise MalformedCredential(ReasonCode.SCHEMA_INVALID, f"{what} not a time") from None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def dose(value: Any, what: str) -> int:
    ok = isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 9
    schema(ok, f"{what} missing or out of range 1..9")
    return int(value)


def _text(
    entry: Mapping[str, Any], key: str, what: str, *, pattern: re.Pattern | None = None
) -> str:
    v = entry.get(key)
    schema(isinstance(v, str) and 0 < len(v) <= 256, f"{what}.{key} missing")
    if pattern is not None:
        schema(bool(pattern.match(v)), f"{what}.{key} malformed")
    return v


def _common(dgc: Mapping[str, Any]) -> None:
    schema(isinstance(dgc.get("ver"), str) and bool(_VER.match(dgc["ver"])), "ver missing")
    nam = dgc.get("nam")
    schema(isinstance(nam, Mapping), "nam missing")
    fnt = nam.get("fnt")
    schema(isinstance(fnt, str) and 0 < len(fnt) <= 80, "nam.fnt missing")
    for k in ("fn", "gn", "gnt"):
        schema(nam.get(k) is None or isinstance(nam[k], str), f"nam.{k} not text")
    dob = dgc.get("dob")
    schema(isinstance(dob, str) and bool(_DOB.match(dob[:10])), "dob missing or malformed")


def hcert_entry(claims: Mapping[Any, Any]) -> tuple[str, Mapping[str, Any], Mapping[str, Any]]:
    """(type, entry, dgc) of the single v/t/r entry of the hcert claim."""
    h = claims.get(CWT_HCERT)
    schema(isinstance(h, Mapping) and isinstance(h.get(1), Mapping), "hcert claim missing")
    dgc = h[1]
    entries = [(t, dgc[t]) for t in ("v", "t", "r") if t in dgc]
    schema(len(entries) == 1, "exactly one of v, t, r expected")
    t, lst = entries[0]
    schema(isinstance(lst, list | tuple) and len(lst) == 1, f"'{t}' must hold one entry")
    schema(isinstance(lst[0], Mapping), f"'{t}' entry not a map")
    return t, lst[0], dgc


def validate_payload(claims: Mapping[Any, Any]) -> tuple[str, Mapping[str, Any]]:
    """Check the hcert payload's decision fields; return (type, entry)."""
    t, e, dgc = hcert_entry(claims)
    _common(dgc)
    _text(e, "tg", t, pattern=_SNOMED)
    _text(e, "ci", t)  # the UCI: revocation is matched on it
    for k in ("co", "is"):  # shown, never decided on: text when present
        schema(e.get(k) is None or isinstance(e[k], str), f"{t}.{k} not text")
    if t == "v":
        _text(e, "mp", "v")
        dose(e.get("dn"), "v.dn")
        dose(e.get("sd"), "v.sd")
        to_date(e.get("dt"), "v.dt")
    elif t == "t":
        _text(e, "tt", "t")
        _text(e, "tr", "t", pattern=_SNOMED)
        to_datetime(e.get("sc"), "t.sc")
    else:
        for k in ("fr", "df", "du"):
            to_date(e.get(k), f"r.{k}")
    return t, e
