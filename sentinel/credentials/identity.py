"""One holder identity for every credential type: the keyed pseudonym of a person.

A DCC and an ID document of the same person must give the same pseudonym, so the
identity match (``scan.identity_match``) and the 2G+ same-holder check can compare two
credentials without keeping a name.  Both sides go through :func:`identity_pseudonym`:

- names as the MRZ writes them (ICAO 9303-3 §6: upper case A–Z, transliterated, ``<``
  for spaces and other characters), which is also what a DCC's ``fnt``/``gnt`` carry
  (EU DCC JSON schema, "nam/fnt": ICAO 9303 transliteration);
- only the **first** part of the family and of the given names, because an MRZ name field
  is truncated when it is too long (ICAO 9303-3 §4.6: TD1 has 30 characters for both
  names, TD3 39), while a DCC keeps the full name;
- the full date of birth, ``YYYY-MM-DD``.  A DCC with a partial date of birth (``1974`` or
  ``1974-05``, allowed by the DCC schema) gives a pseudonym no ID document matches:
  such a holder is refused ``IDENTITY_MISMATCH`` (the safe side), never admitted.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata

_TRANSLIT = str.maketrans({"Ä": "AE", "Ö": "OE", "Ü": "UE", "ß": "SS", "Å": "AA", "Æ": "AE"})
_TRANSLIT.update({ord("Ø"): "OE", ord("Þ"): "TH", ord("Ð"): "D", ord("Ŀ"): "L"})


def icao_name(name: str) -> str:
    """A name as the MRZ writes it (ICAO 9303-3 §6 transliteration, fillers for spaces)."""
    t = unicodedata.normalize("NFKC", name).upper().translate(_TRANSLIT)
    t = "".join(c for c in unicodedata.normalize("NFKD", t) if not unicodedata.combining(c))
    t = re.sub(r"[^A-Z]+", "<", t)
    return t.strip("<")


def identity_pseudonym(family: str, given: str, birth_date: str, key: bytes) -> str:
    """The keyed pseudonym of a holder: HMAC-SHA256 over the first ICAO name parts and the
    date of birth, 128 bits in hex; "" without a key or without a family name."""
    fam = icao_name(family).split("<")[0]
    giv = icao_name(given).split("<")[0]
    if not key or not fam:
        return ""
    ident = "|".join((fam, giv, birth_date.strip()))
    return hmac.new(key, ident.encode(), hashlib.sha256).hexdigest()[:32]
