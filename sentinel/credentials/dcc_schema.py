"""The DCC payload against the official JSON schema of its version, then the decision fields.

The schemas are the published ones, every released version (``schemas/``, vendored unchanged
from ehn-dcc-development/ehn-dcc-schema, Apache-2.0, see ``schemas/NOTICE``).  Which one
applies, and the relaxations, follow what the reference verifiers do:

1. The schema of the payload's ``ver``.  A ``ver`` without an exact match (a patch or minor
   release published after this copy, e.g. ``1.3.4``) is checked against the newest released
   schema of the same major version, as the dgc-testdata reference test does for versions it
   does not know (``tests/test_ehealth_certs.py`` ``_get_hcert_schema``: the latest schema).
   Another major version, or a ``ver`` that is not ``N.N.N``, is refused.
2. A payload that fails the schema of an older declared version is accepted when it is valid
   under the newest released schema: certificates were issued under newer rules while still
   declaring the old version (e.g. 80-character fields, partial dates of birth).  Source:
   hcert-kotlin ``DefaultSchemaValidationService`` (falls back to 1.3.0 when ``ver`` < 1.3.0,
   "certificates may only conform to this newer schema, even though they declare otherwise")
   and the DGCA apps raising maxLength 50 → 80 (dgca-app-core-android #32/#33, iOS #59).
   The newest schema (1.3.3) differs from 1.3.0 only by also accepting a name with ``gnt``
   alone (1.3.2).
3. ``format`` ("date", "date-time") is an annotation, not an assertion (JSON Schema 2020-12
   §7.2, the default format-annotation vocabulary; the reference test validates with
   ``jsonschema.validate``, which does not assert formats either).  The fields a decision
   uses are then parsed strictly here (``to_date``, ``to_datetime``, ``dose``) with a
   ``SCHEMA_INVALID`` detail of their own.
4. Exactly one of ``v``/``t``/``r`` (the reference test's "DGC adheres to schema but contains
   multiple certificates"); a decision further needs exactly one entry in it.

Validation uses fastjsonschema, chosen by measurement over jsonschema on the 402 published
payloads of known versions: median 8.9 µs vs 207 µs per payload, identical verdicts
(``benchmarks/bench_dcc.py`` prints both; the test suite cross-checks the two).  The schemas
use only keywords whose meaning is the same in draft-07 and 2020-12 (type, required,
properties, oneOf/anyOf, $ref to $defs, pattern, maxLength, minItems/maxItems, minimum).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import fastjsonschema

from sentinel.errors import MalformedCredential
from sentinel.reasons import ReasonCode

CWT_HCERT = -260
SCHEMA_DIR = Path(__file__).with_name("schemas")
_VER = re.compile(r"^(\d{1,4})\.(\d{1,4})\.(\d{1,4})$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")


def schema(cond: bool, what: str) -> None:
    """Raise SCHEMA_INVALID with ``what`` unless ``cond``."""
    if not cond:
        raise MalformedCredential(ReasonCode.SCHEMA_INVALID, what)


def _version_key(ver: str) -> tuple[int, int, int] | None:
    m = _VER.match(ver)
    return (int(m[1]), int(m[2]), int(m[3])) if m else None


@functools.cache
def released_versions() -> tuple[str, ...]:
    """The vendored schema versions, oldest first."""
    names = (p.name.removesuffix(".combined-schema.json") for p in SCHEMA_DIR.glob("*.json"))
    found = [(k, v) for v in names if (k := _version_key(v)) is not None]
    return tuple(v for _, v in sorted(found))


@functools.cache
def _raw_schema(version: str) -> dict[str, Any]:
    return json.loads((SCHEMA_DIR / f"{version}.combined-schema.json").read_bytes())


@functools.cache
def _validator(version: str) -> Any:
    # the vendored files are trusted input to the code generator; formats are annotations (3.)
    return fastjsonschema.compile(_raw_schema(version), use_formats=False)


def warm() -> None:
    """Compile every schema once (≈150 ms each here): a device does it at start-up so the
    first visitor's decision is not the one that pays for it."""
    for v in released_versions():
        _validator(v)


def schema_version_for(ver: Any) -> str:
    """The released schema a payload declaring ``ver`` is checked against (rule 1)."""
    schema(isinstance(ver, str), "ver missing or not text")
    if ver in released_versions():
        return ver
    key = _version_key(ver)
    schema(key is not None, f"ver {ver[:20]!r} is not a schema version")
    major = key[0] if key else -1
    same_major = [v for v in released_versions() if v.split(".")[0] == str(major)]
    schema(bool(same_major), f"schema version {ver} not supported")
    return same_major[-1]


_PLAIN = (str, int, float, bool, type(None))


def to_json(obj: Any, depth: int = 0) -> Any:
    """CBOR values as the JSON the schemas describe (tag-0 dates as RFC 3339 text)."""
    t = type(obj)
    if t in _PLAIN:
        return obj
    if depth > 32:
        raise MalformedCredential(ReasonCode.MALFORMED, "payload nested too deeply")
    if t is dict:
        return {k if type(k) is str else str(k): to_json(v, depth + 1) for k, v in obj.items()}
    if t is list:
        return [to_json(v, depth + 1) for v in obj]
    if isinstance(obj, Mapping):
        return {str(k): to_json(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_json(v, depth + 1) for v in obj]
    if isinstance(obj, datetime):
        return obj.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(obj, date):
        return obj.isoformat()
    if isinstance(obj, bytes | bytearray):
        return {"bytes": obj.hex()}  # not a JSON type: fails any "type" the schemas state
    return obj


def _errors(version: str, doc: Any) -> str:
    try:
        _validator(version)(doc)
    except fastjsonschema.JsonSchemaException as exc:
        return str(getattr(exc, "message", exc)).replace("data.", "", 1)[:200]
    return ""


def check_schema(dgc: Any) -> str:
    """Validate one hcert payload (as JSON) by rules 1–4; return the schema version used."""
    schema(isinstance(dgc, Mapping), "hcert payload not a map")
    doc = to_json(dgc)
    declared = schema_version_for(doc.get("ver"))
    err = _errors(declared, doc)
    used = declared
    newest = released_versions()[-1]
    if err and declared != newest and not _errors(newest, doc):
        used, err = newest, ""  # rule 2: declared older, valid under the newest
    schema(not err, f"schema {declared}: {err}")
    schema(("v" in doc) + ("t" in doc) + ("r" in doc) == 1, "exactly one of v, t, r expected")
    return used


# --- the decision fields ----------------------------------------------------------------------


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
    ok = isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 99
    schema(ok, f"{what} missing or not a dose number")
    return int(value)


def hcert_entry(claims: Mapping[Any, Any]) -> tuple[str, Mapping[str, Any], Mapping[str, Any]]:
    """(type, entry, dgc) of the single v/t/r entry of the hcert claim."""
    h = claims.get(CWT_HCERT)
    schema(isinstance(h, Mapping) and isinstance(h.get(1), Mapping), "hcert claim missing")
    dgc = h[1]
    entries = [(t, dgc[t]) for t in ("v", "t", "r") if t in dgc]
    schema(len(entries) == 1, "exactly one of v, t, r expected")
    t, lst = entries[0]
    # DCC schema 1.3.0 'v'/'t'/'r' maxItems 1: one event per certificate, one to decide on
    schema(isinstance(lst, list | tuple) and len(lst) == 1, f"'{t}' must hold one entry")
    schema(isinstance(lst[0], Mapping), f"'{t}' entry not a map")
    return t, lst[0], dgc


def validate_payload(claims: Mapping[Any, Any]) -> tuple[str, Mapping[str, Any]]:
    """Official schema (rules 1–4), then the decision fields; return (type, entry)."""
    h = claims.get(CWT_HCERT)
    schema(isinstance(h, Mapping) and isinstance(h.get(1), Mapping), "hcert claim missing")
    check_schema(h[1])
    t, e, _ = hcert_entry(claims)
    schema(isinstance(e.get("ci"), str) and bool(e["ci"]), f"{t}.ci missing")  # revocation key
    if t == "v":
        dose(e.get("dn"), "v.dn")
        dose(e.get("sd"), "v.sd")
        to_date(e.get("dt"), "v.dt")
    elif t == "t":
        to_datetime(e.get("sc"), "t.sc")
    else:
        for k in ("fr", "df", "du"):
            to_date(e.get(k), f"r.{k}")
    return t, e
