"""ID documents: ICAO 9303 machine-readable zones, the Chinese resident identity number,
and barcodes on ID documents, parsed and verified into an ``IdDocument``.

Pure: text in, ``IdDocument`` out, or ``CredentialError(ID_UNREADABLE)``.  A document is
returned only when every check passes (each check digit, the composite, real dates, the
character classes of every field), so a misread asks for another frame instead of
becoming another person's number.

The number lives only in memory: it is excluded from ``repr``, and callers turn it into
the keyed hash the status set uses (``status_key``) or a masked display (``mask_number``).
"""

from __future__ import annotations

import contextlib
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import TYPE_CHECKING

from sentinel.credentials import icao_codes
from sentinel.credentials.identity import identity_pseudonym
from sentinel.credentials.model import Credential, CredentialKind
from sentinel.errors import CredentialError
from sentinel.reasons import ReasonCode

if TYPE_CHECKING:
    from sentinel.trust.provider import StatusLookup

MRZ_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789<")
_WEIGHTS = (7, 3, 1)
# (lines, line length) of the ICAO 9303 formats
MRZ_FORMATS = {"TD1": (3, 30), "TD2": (2, 36), "TD3": (2, 44)}
# machine readable visas (ICAO 9303-7) share the TD3 and TD2 shapes; the document code
# (V) tells them apart, never the shape or which parse happens to pass
MRV_OF_SHAPE = {"TD3": "MRV-A", "TD2": "MRV-B"}
# ISO 7064 MOD 11-2 weights for the 17 body digits of a GB 11643 number: 2^(17-i) mod 11
_CN_WEIGHTS = tuple(pow(2, 17 - i, 11) for i in range(17))
# GB/T 2260 province-level prefixes (first two digits of the region code)
_CN_PROVINCES = frozenset(
    {11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46}
    | {50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82, 83}
)


@dataclass(frozen=True, slots=True)
class IdDocument:
    """A verified ID document, held in memory only until its status key is computed.

    ``doc_type`` is the MRZ document code ("P", "I", "ID", "AC", ...) or "ID" for the
    Chinese resident identity card; ``issuing_country`` an ICAO 3-letter code ("CHN",
    "D" for Germany).  Number, names and birth date are left out of ``repr``.
    """

    doc_type: str
    issuing_country: str
    number: str = field(repr=False)
    expiry: date | None
    birth_date: date | None = field(default=None, repr=False)
    surname: str = field(default="", repr=False)
    given_names: str = field(default="", repr=False)
    nationality: str = ""
    source: str = ""  # "TD1", "TD2", "TD3", "MRV-A", "MRV-B", "CN_ID", "AAMVA"

    @property
    def masked_number(self) -> str:
        return mask_number(self.number)


def _unreadable(detail: str) -> CredentialError:
    return CredentialError(ReasonCode.ID_UNREADABLE, detail)


# --- ICAO 9303 --------------------------------------------------------------------------


def char_value(ch: str) -> int:
    """ICAO 9303-3 §4.9: digits are their value, A–Z are 10–35, the filler ``<`` is 0."""
    if ch.isdigit() and ch.isascii():
        return ord(ch) - 48
    if "A" <= ch <= "Z":
        return ord(ch) - 55
    if ch == "<":
        return 0
    raise ValueError(f"not an MRZ character: {ch!r}")


def check_digit(data: str) -> str:
    """ICAO 9303-3 §4.9: weights 7, 3, 1 repeating, sum modulo 10."""
    return str(sum(char_value(c) * _WEIGHTS[i % 3] for i, c in enumerate(data)) % 10)


def _check(data: str, digit: str, what: str) -> None:
    if not digit.isdigit() or check_digit(data) != digit:
        raise _unreadable(f"MRZ check digit of the {what} does not match")


def _check_optional(data: str, digit: str, what: str) -> None:
    # ICAO 9303-4 §4.2.2: an all-filler optional field may carry '<' as its check digit
    if digit == "<" and set(data) <= {"<"}:
        return
    _check(data, digit, what)


def _yymmdd(s: str, what: str) -> tuple[int, int, int]:
    if len(s) != 6 or not (s.isascii() and s.isdigit()):  # "²".isdigit() is True
        raise _unreadable(f"MRZ {what} is not a date")
    return int(s[:2]), int(s[2:4]), int(s[4:])


def _real_date(y: int, m: int, d: int, what: str) -> date:
    try:
        return date(y, m, d)
    except ValueError:
        raise _unreadable(f"MRZ {what} is not a real date") from None


def _birth(s: str, today: date) -> date:
    yy, mm, dd = _yymmdd(s, "birth date")
    year = 2000 + yy if 2000 + yy <= today.year else 1900 + yy
    born = _real_date(year, mm, dd, "birth date")
    if born > today:  # same year, later day: a 1900s birth
        born = _real_date(year - 100, mm, dd, "birth date")
    return born


def _expiry(s: str) -> date:
    yy, mm, dd = _yymmdd(s, "expiry date")
    # ICAO documents are valid at most a few decades: 2000-2099 covers every live one
    return _real_date(2000 + yy, mm, dd, "expiry date")


def _country(s: str, what: str, specimens: bool = False) -> str:
    # letters, right-padded with fillers ("D<<"); never digits; and one of the closed
    # list of ICAO 9303-3 (no check digit covers it: a misread "XUT" must not pass).
    # "UTO", the fictional state of 9303's specimens, only when asked for (tests).
    if not re.fullmatch(r"[A-Z]{1,3}<{0,2}", s):
        raise _unreadable(f"MRZ {what} is not a country code")
    if not (icao_codes.state_ok(s) or (specimens and s == icao_codes.SPECIMEN_STATE)):
        raise _unreadable(f"MRZ {what} is not a country code")
    return s.rstrip("<")


def _names(s: str) -> tuple[str, str]:
    if not re.fullmatch(r"[A-Z<]+", s):
        raise _unreadable("MRZ name field holds digits")
    surname, _, given = s.partition("<<")
    return surname.replace("<", " ").strip(), given.replace("<", " ").strip()


def _doc_number(field9: str, digit: str, optional: str) -> tuple[str, str]:
    """The document number and the text its check digit covers (ICAO 9303-5 §4.2.4).

    A number longer than nine characters continues in the optional data, which then ends
    with the check digit; the check-digit position holds '<'.
    """
    if digit == "<" and optional[:1] not in ("", "<"):
        rest = optional.split("<", 1)[0]
        if len(rest) < 2:
            raise _unreadable("MRZ long document number is cut short")
        body = field9 + rest[:-1]
        _check(body, rest[-1], "document number")
        return body, body
    _check(field9, digit, "document number")
    number = field9.rstrip("<")
    if not number or "<" in number:  # fillers only at the end of a number
        raise _unreadable("MRZ document number is malformed")
    return number, field9


def _doc_code(s: str, fmt: str) -> str:
    # ICAO 9303-4/5/6 §4.2.2: P for passports (TD3), A/C/I for TD1 and TD2 documents
    if not re.fullmatch(r"[A-Z][A-Z<]", s) or not icao_codes.document_code_ok(fmt, s):
        raise _unreadable("MRZ document code is not one of ICAO 9303")
    return s.rstrip("<")


def _sex(s: str) -> None:
    if s not in ("M", "F", "X", "<"):
        raise _unreadable("MRZ sex field is malformed")


def normalize_mrz(text: str) -> list[str]:
    """MRZ lines from OCR or barcode text: upper-case, spaces dropped, blank lines gone."""
    t = unicodedata.normalize("NFKC", text).upper()
    lines = [re.sub(r"\s+", "", ln) for ln in t.replace("\r", "\n").split("\n")]
    return [ln for ln in lines if ln]


def mrz_format(lines: list[str]) -> str | None:
    """ "TD1", "TD2", "TD3", "MRV-A" or "MRV-B" when the line count and lengths fit one,
    else None.  A two-line zone is a visa exactly when its document code starts with V
    (ICAO 9303-7 §4.2.2.1): a passport whose line 2 fails the TD3 checks is never tried
    as a visa, which has fewer check digits (no personal-number, no composite digit)."""
    for name, (n, width) in MRZ_FORMATS.items():
        if len(lines) == n and all(len(ln) == width for ln in lines):
            if name in MRV_OF_SHAPE and lines[0][:1] == "V":
                return MRV_OF_SHAPE[name]
            return name
    return None


def parse_mrz(text: str, *, today: date | None = None, specimens: bool = False) -> IdDocument:
    """Parse and verify an ICAO 9303 MRZ (TD1, TD2, TD3, MRV-A or MRV-B); every check
    digit the format has must match, and the document code, issuing state and
    nationality must be on 9303's lists.

    ``today`` resolves the century of the birth date (default: the local date);
    ``specimens`` also accepts 9303's specimen state "UTO" (tests against the specimens).
    """
    today = today or date.today()
    lines = normalize_mrz(text)
    fmt = mrz_format(lines)
    if fmt is None:
        raise _unreadable("not a TD1, TD2, TD3 or MRV machine-readable zone")
    if any(ch not in MRZ_CHARS for ln in lines for ch in ln):
        raise _unreadable("MRZ holds characters outside A-Z 0-9 <")
    if fmt in ("MRV-A", "MRV-B"):
        return _parse_mrv(lines, fmt, today, specimens)
    if fmt == "TD1":
        l1, l2, l3 = lines
        code, country = _doc_code(l1[0:2], fmt), _country(l1[2:5], "issuing state", specimens)
        number, _ = _doc_number(l1[5:14], l1[14], l1[15:30])
        born_s, expiry_s = l2[0:6], l2[8:14]
        _check(born_s, l2[6], "birth date")
        _sex(l2[7])
        _check(expiry_s, l2[14], "expiry date")
        nationality = _country(l2[15:18], "nationality", specimens)
        # ICAO 9303-5 §4.2.2: composite over upper line 6-30, middle 1-7, 9-15, 19-29
        _check(l1[5:30] + l2[0:7] + l2[8:15] + l2[18:29], l2[29], "composite")
        surname, given = _names(l3)
    else:
        l1, l2 = lines
        width = len(l1)
        code, country = _doc_code(l1[0:2], fmt), _country(l1[2:5], "issuing state", specimens)
        surname, given = _names(l1[5:])
        if fmt == "TD3":
            number, _ = _doc_number(l2[0:9], l2[9], "")
            _check_optional(l2[28:42], l2[42], "personal number")
        else:  # TD2: a long number continues in the optional data
            number, _ = _doc_number(l2[0:9], l2[9], l2[28 : width - 1])
        born_s, expiry_s = l2[13:19], l2[21:27]
        _check(born_s, l2[19], "birth date")
        _sex(l2[20])
        _check(expiry_s, l2[27], "expiry date")
        nationality = _country(l2[10:13], "nationality", specimens)
        # ICAO 9303-4 §4.2.2.2 (TD3) and 9303-6 (TD2): composite over number, birth, expiry
        # and the optional data, each with its check digit
        _check(l2[0:10] + l2[13:20] + l2[21 : width - 1], l2[width - 1], "composite")
    return IdDocument(
        doc_type=code,
        issuing_country=country,
        number=number,
        expiry=_expiry(expiry_s),
        birth_date=_birth(born_s, today),
        surname=surname,
        given_names=given,
        nationality=nationality,
        source=fmt,
    )


def _parse_mrv(lines: list[str], fmt: str, today: date, specimens: bool) -> IdDocument:
    """A machine readable visa (ICAO 9303-7 §4.2.2): line 1 as on a passport; line 2 the
    number and its check digit, nationality, birth date and expiry each with theirs, sex,
    then optional data (16 characters on MRV-A, 8 on MRV-B) that no digit covers, and no
    composite.  Every check digit the format has must match."""
    l1, l2 = lines
    code, country = _doc_code(l1[0:2], fmt), _country(l1[2:5], "issuing state", specimens)
    surname, given = _names(l1[5:])
    number, _ = _doc_number(l2[0:9], l2[9], "")
    nationality = _country(l2[10:13], "nationality", specimens)
    born_s, expiry_s = l2[13:19], l2[21:27]
    _check(born_s, l2[19], "birth date")
    _sex(l2[20])
    _check(expiry_s, l2[27], "expiry date")
    return IdDocument(
        doc_type=code,
        issuing_country=country,
        number=number,
        expiry=_expiry(expiry_s),
        birth_date=_birth(born_s, today),
        surname=surname,
        given_names=given,
        nationality=nationality,
        source=fmt,
    )


def find_mrz(text: str) -> str | None:
    """The first run of consecutive lines in ``text`` shaped like a TD1/TD2/TD3 MRZ (an
    MRV has the shape of a TD3 or TD2 zone)."""
    lines = normalize_mrz(text)
    for name, (n, width) in MRZ_FORMATS.items():
        del name
        for i in range(len(lines) - n + 1):
            if all(len(ln) == width for ln in lines[i : i + n]):
                return "\n".join(lines[i : i + n])
    return None


# --- GB 11643: Chinese resident identity number ----------------------------------------


def cn_check_char(body17: str) -> str:
    """ISO 7064 MOD 11-2 check character of the 17 body digits (GB 11643-1999 §6)."""
    if len(body17) != 17 or not body17.isdigit() or not body17.isascii():
        raise ValueError("the body is 17 digits")
    s = sum(int(c) * w for c, w in zip(body17, _CN_WEIGHTS, strict=True))
    return "0123456789X"[(12 - s % 11) % 11]


def parse_cn_id(text: str, *, today: date | None = None) -> IdDocument:
    """Parse and verify an 18-character resident identity number (region, birth date,
    sequence, check character)."""
    today = today or date.today()
    t = unicodedata.normalize("NFKC", text).strip().upper().replace(" ", "")
    if not re.fullmatch(r"\d{17}[\dX]", t) or not t.isascii():
        raise _unreadable("not an 18-character resident identity number")
    if cn_check_char(t[:17]) != t[17]:
        raise _unreadable("identity number check character does not match")
    if int(t[:2]) not in _CN_PROVINCES:
        raise _unreadable("identity number region code is unknown")
    born = None
    with contextlib.suppress(ValueError):
        born = date(int(t[6:10]), int(t[10:12]), int(t[12:14]))
    if born is None or born.year < 1900 or born > today:
        raise _unreadable("identity number birth date is not a real date")
    return IdDocument("ID", "CHN", t, None, born, source="CN_ID")


def find_cn_id(text: str) -> str | None:
    """The first 18-character run shaped like a resident identity number in OCR text."""
    t = unicodedata.normalize("NFKC", text).upper()
    m = re.search(r"(?<![0-9A-Z])\d{17}[\dX](?![0-9A-Z])", re.sub(r"[ \t]", "", t))
    return m.group(0) if m else None


# --- barcodes on ID documents ----------------------------------------------------------

_AAMVA_FIELD = re.compile(r"^(D[A-Z]{2})(.*)$")


def _aamva_date(s: str, country: str) -> date:
    s = s.strip()
    if len(s) != 8 or not (s.isascii() and s.isdigit()):  # "199²" passed isdigit (D8)
        raise _unreadable("AAMVA date is malformed")
    # AAMVA DL/ID 2020 §D.12.5: MMDDCCYY in the USA, CCYYMMDD in Canada
    if country == "CAN":
        return _real_date(int(s[:4]), int(s[4:6]), int(s[6:]), "AAMVA date")
    return _real_date(int(s[4:]), int(s[:2]), int(s[2:4]), "AAMVA date")


def parse_aamva(text: str) -> IdDocument:
    """A North-American driver licence / ID card PDF417 (AAMVA DL/ID card design standard).

    The PDF417 symbology's Reed–Solomon code guarantees the bytes; the fields must be there.
    """
    if not text.startswith("@") or "ANSI " not in text[:32] and "AAMVA" not in text[:32]:
        raise _unreadable("not an AAMVA ID barcode")
    fields: dict[str, str] = {}
    for raw in re.split(r"[\n\r\x1e]+", text):
        # the header line runs into the first subfile: "...DL00410278ZC03190008DLDAQ..."
        line = re.sub(r"^(?:ANSI |AAMVA).*?(?:DL|ID)(?=D[A-Z]{2})", "", raw.strip())
        m = _AAMVA_FIELD.match(line)
        if m and m.group(1) not in fields:
            fields[m.group(1)] = m.group(2).strip()
    number = fields.get("DAQ", "")
    country = {"USA": "USA", "CAN": "CAN"}.get(fields.get("DCG", "USA"), "")
    if not re.fullmatch(r"[A-Z0-9\- ]{4,25}", number) or not country:
        raise _unreadable("AAMVA barcode lacks a document number or country")
    return IdDocument(
        doc_type="DL",
        issuing_country=country,
        number=number.replace(" ", "").replace("-", ""),
        expiry=_aamva_date(fields.get("DBA", ""), country),
        birth_date=_aamva_date(fields.get("DBB", ""), country) if "DBB" in fields else None,
        surname=fields.get("DCS", ""),
        given_names=fields.get("DAC", fields.get("DCT", "")),
        source="AAMVA",
    )


def parse_symbol_text(kind: str, text: str, *, today: date | None = None) -> IdDocument:
    """Route one symbol's text to the right parser; raise ID_UNREADABLE when none fits."""
    kind = kind.upper()
    if kind == "MRZ":
        return parse_mrz(text, today=today)
    if kind == "ID_NUMBER":
        return parse_cn_id(text, today=today)
    if kind in ("PDF417", "CODE128"):
        if text.startswith("@"):
            return parse_aamva(text)
        mrz = find_mrz(text)
        if mrz is not None:
            return parse_mrz(mrz, today=today)
        if find_cn_id(text) is not None and len(text.strip()) == 18:
            return parse_cn_id(text, today=today)
    raise _unreadable(f"{kind} symbol is not an ID document")


def looks_like_id(kind: str, text: str) -> bool:
    """Whether a symbol should be routed to this module rather than refused as unknown."""
    kind = kind.upper()
    if kind in ("MRZ", "ID_NUMBER"):
        return True
    if kind in ("PDF417", "CODE128"):
        t = text.strip()
        return (
            t.startswith("@")
            or find_mrz(t) is not None
            or (len(t) == 18 and find_cn_id(t) is not None)
        )
    return False


# --- privacy ---------------------------------------------------------------------------


def mask_number(number: str) -> str:
    """``L8*****2C``-style display: the first and last two characters, the rest starred."""
    n = len(number)
    if n <= 4:
        return "*" * n
    return number[:2] + "*" * (n - 4) + number[-2:]


def mask_names(doc: IdDocument) -> str:
    """``M********* E****, 1974``: masked as on DCC displays (``dcc.mask_name``: words of
    one or two characters are all stars), and the birth year."""
    from sentinel.credentials.dcc import mask_name

    name = " ".join(p for p in (mask_name(doc.surname), mask_name(doc.given_names)) if p)
    year = f", {doc.birth_date.year}" if doc.birth_date else ""
    return (name + year).strip(", ")


def status_key(doc: IdDocument, hmac_key: bytes) -> bytes:
    """The keyed hash the status set holds for this document (never the number itself)."""
    from sentinel.trust.statusset import entry_key, normalize_document

    return entry_key(hmac_key, normalize_document(doc.doc_type, doc.issuing_country, doc.number))


# --- into the pipeline -------------------------------------------------------------


def doc_pseudonym(doc: IdDocument, key: bytes) -> str:
    """The holder pseudonym a DCC of the same person gets (one function for both:
    ``identity.identity_pseudonym``); "" without a key or a birth date."""
    if doc.birth_date is None:
        return ""
    return identity_pseudonym(doc.surname, doc.given_names, doc.birth_date.isoformat(), key)


def to_credential(
    kind: str, text: str, now: datetime, status: StatusLookup | None, pseudonym_key: bytes
) -> Credential:
    """An ID-document symbol → a minimized ``Credential``; the number is used for the
    status-set lookup and then dropped (only a masked form reaches the display)."""
    doc = parse_symbol_text(kind, text, today=now.date())
    entry = (
        status.lookup_document(doc.doc_type, doc.issuing_country, doc.number)
        if status is not None
        else None
    )
    expires = (
        datetime.combine(doc.expiry, time(23, 59, 59), tzinfo=UTC)
        if doc.expiry is not None
        else None
    )
    display = mask_names(doc) or doc.masked_number
    return Credential(
        kind=CredentialKind.ID_DOCUMENT,
        issuer_country=doc.issuing_country,
        expires_at=expires,
        status=entry.status if entry is not None else None,
        status_valid_until=entry.valid_until if entry is not None else None,
        holder_pseudonym=doc_pseudonym(doc, pseudonym_key),
        display_name=display,
    )
