"""EU DCC value sets: package defaults, replaced by a bundle's ``valuesets`` part.

A value set is the eHealth Network document ``{"valueSetId", "valueSetDate",
"valueSetValues": {code: {"display", "lang", "active", "system", "version"}}}``
(``eu_valuesets/`` holds release 2.12.0 of ehn-dcc-development/ehn-dcc-valuesets, Apache-2.0,
see ``eu_valuesets/NOTICE``).  Two uses:

- business rules read them as ``external.valueSets`` — ``{valueSetId: [code, ...]}``, the
  shape the EU rule engines pass (e.g. rule VR-EU-0000 tests ``payload.v.0.mp`` ``in``
  ``external.valueSets.vaccines-covid-19-names``);
- a venue shows the product, test type or disease by name (``display``).

The bundle part ``valuesets`` (published with ``sentinel publish build --part
valuesets=FILE``) is a JSON array of such documents, or an object mapping ids to them; a
document in the part replaces the package's document of the same id, the others stay.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

from sentinel.errors import BundleFormatError

log = logging.getLogger(__name__)
MAX_VALUESETS_BYTES = 2 * 1024 * 1024

# which value set names the codes of each payload field (EU DCC schema "valueset-uri")
FIELD_VALUESET = {
    "tg": "disease-agent-targeted",
    "vp": "sct-vaccines-covid-19",
    "mp": "vaccines-covid-19-names",
    "ma": "vaccines-covid-19-auth-holders",
    "tt": "covid-19-lab-test-type",
    "tr": "covid-19-lab-result",
    "ma_test": "covid-19-lab-test-manufacturer-and-name",
    "co": "country-2-codes",
}


@dataclass(frozen=True, slots=True)
class ValueSets:
    """Value sets by id: ``{id: {code: display}}`` plus each set's date."""

    sets: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    dates: Mapping[str, str] = field(default_factory=dict)
    _rules_view: dict[str, list[str]] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        view = {vid: sorted(codes) for vid, codes in self.sets.items()}
        object.__setattr__(self, "_rules_view", view)

    def display(self, valueset_id: str, code: str) -> str:
        """The display name of ``code`` (the code itself when unknown)."""
        return self.sets.get(valueset_id, {}).get(code, code)

    def for_rules(self) -> dict[str, list[str]]:
        """``external.valueSets`` as EU business rules expect it (built once per set)."""
        return self._rules_view

    def merged(self, other: ValueSets) -> ValueSets:
        """``other``'s sets replace these of the same id."""
        return ValueSets({**self.sets, **other.sets}, {**self.dates, **other.dates})


def _document(doc: Any, where: str) -> tuple[str, dict[str, str], str]:
    if not isinstance(doc, Mapping) or not isinstance(doc.get("valueSetId"), str):
        raise ValueError(f"{where}: not a value-set document (no valueSetId)")
    values = doc.get("valueSetValues")
    if not isinstance(values, Mapping):
        raise ValueError(f"{where}: valueSetValues missing")
    codes = {}
    for code, v in values.items():
        if not isinstance(code, str) or not isinstance(v, Mapping):
            raise ValueError(f"{where}: malformed entry {str(code)[:40]!r}")
        codes[code] = str(v.get("display", code))
    return doc["valueSetId"], codes, str(doc.get("valueSetDate", ""))


def parse_valuesets(data: bytes, source: str = "valuesets") -> ValueSets:
    """Parse a ``valuesets`` part; BundleFormatError names what is wrong."""
    if len(data) > MAX_VALUESETS_BYTES:
        raise BundleFormatError(f"{source}: larger than {MAX_VALUESETS_BYTES} bytes")
    try:
        doc = json.loads(data)
        if isinstance(doc, Mapping) and "valueSetId" in doc:
            docs: list[Any] = [doc]
        elif isinstance(doc, Mapping):
            docs = list(doc.values())
        elif isinstance(doc, list):
            docs = doc
        else:
            raise ValueError("expected a value-set document, an array or an object of them")
        sets, dates = {}, {}
        for i, d in enumerate(docs):
            vid, codes, date = _document(d, f"entry {i}")
            sets[vid], dates[vid] = codes, date
    except (ValueError, RecursionError) as exc:
        raise BundleFormatError(f"{source}: not valid value sets: {exc}") from None
    return ValueSets(sets, dates)


@lru_cache(maxsize=1)
def default_valuesets() -> ValueSets:
    """The value sets shipped with the package (``eu_valuesets/*.json``)."""
    folder = resources.files("sentinel.credentials").joinpath("eu_valuesets")
    docs = [
        json.loads(p.read_bytes())
        for p in sorted(folder.iterdir(), key=lambda p: p.name)
        if p.name.endswith(".json")
    ]
    return parse_valuesets(json.dumps(docs).encode(), "package value sets")


@lru_cache(maxsize=4)
def _cached(digest: str, data: bytes) -> ValueSets:
    return default_valuesets().merged(parse_valuesets(data, f"bundle valuesets {digest[:12]}"))


def valuesets_from_part(part: bytes | None) -> ValueSets:
    """The bundle's ``valuesets`` part over the defaults; the defaults alone when absent
    or unparsable (the bundle's signature held; deciding goes on with known sets)."""
    if not part:
        return default_valuesets()
    try:
        return _cached(hashlib.sha256(part).hexdigest(), part)
    except BundleFormatError as exc:
        log.error("%s; using the package value sets", exc)
        return default_valuesets()
