"""The publisher's inputs: status records (CSV, streamed and vectorised), signers, revocations.

A status CSV (``doc_type,country,number,status,valid_until[,subject_id]``) is read in
chunks of ``CHUNK_BYTES``.  A chunk of plain ASCII rows without quotes (what registries
export) is split, cleaned and assembled into identities with numpy, a whole column at a
time; any other chunk (quotes, non-ASCII numbers needing NFKC, short rows) goes through
the ``csv`` module row by row, with the same normalization (``statusset.normalize_*``)
and the same errors.  Both give ``Chunk``s: identities, status codes, valid-until epochs.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from sentinel.credentials.trustlist import Signer, TrustList, kid_of
from sentinel.errors import ConfigError
from sentinel.progress import Bar
from sentinel.trust import statusset as ss

CHUNK_BYTES = 32 << 20
MAX_FIELD = 64  # longer fields take the row-by-row path (and its errors)


@dataclass(slots=True)
class Chunk:
    """Identities (``flat[starts[i]:starts[i]+lens[i]]``), status codes, valid-until."""

    flat: bytes
    starts: np.ndarray  # int64
    lens: np.ndarray  # int64
    status: np.ndarray  # u1
    until: np.ndarray  # <u4
    msgs: np.ndarray | None = None  # the CBC-MAC messages, when built along the way

    def __len__(self) -> int:
        return len(self.lens)

    def identity(self, i: int) -> bytes:
        s, n = int(self.starts[i]), int(self.lens[i])
        return self.flat[s : s + n]

    def messages(self) -> np.ndarray:
        """Every identity as a fixed-length CBC-MAC message (``statusset.mac_message``)."""
        if self.msgs is not None:
            return self.msgs
        n, w = len(self), ss.MAC_BYTES - 1
        lens = self.lens
        if n and int(lens.max()) > w:
            raise ConfigError(f"a normalized identity is longer than {w} bytes")
        flat = np.frombuffer(self.flat, dtype=np.uint8)
        out = np.zeros((n, ss.MAC_BYTES), dtype=np.uint8)
        out[:, 0] = lens
        if n and len(flat):
            ar = np.arange(w)
            idx = np.minimum(self.starts[:, None] + ar, len(flat) - 1)
            out[:, 1:] = np.where(ar < lens[:, None], flat[idx], 0)
        return out

    @classmethod
    def of(cls, idents: list[bytes], status: list[int], until: list[int]) -> Chunk:
        lens = np.array([len(x) for x in idents], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64)
        return cls(
            b"".join(idents),
            starts,
            lens,
            np.array(status, dtype=np.uint8),
            np.array(until, dtype=ss.UNTIL_DTYPE),
        )


def parse_until(text: str, cache: dict[str, int], where: str) -> int:
    hit = cache.get(text)
    if hit is not None:
        return hit
    try:
        t = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{where}: valid_until {text!r} is not an ISO date/time") from None
    if t.tzinfo is None:  # a bare date or time: UTC, end of that day for a bare date
        t = t.replace(tzinfo=UTC)
        if len(text.strip()) == 10:
            t += timedelta(days=1, seconds=-1)
    cache[text] = v = ss.to_epoch(t)
    return v


class _Columns:
    def __init__(self, p: Path, header: list[str]) -> None:
        col = {name: i for i, name in enumerate(header)}
        if not {"status", "valid_until"} <= col.keys() or not (
            {"number", "subject_id"} & col.keys()
        ):
            raise ConfigError(
                f"{p}: status CSV needs columns doc_type,country,number,status,valid_until "
                "(or subject_id,status,valid_until)"
            )
        self.width = len(header)
        self.st, self.vu = col["status"], col["valid_until"]
        self.dt, self.co = col.get("doc_type"), col.get("country")
        self.no, self.su = col.get("number"), col.get("subject_id")


def _rows_slow(p: Path, text: str, c: _Columns, line0: int, cache: dict[str, int]) -> Chunk:
    idents: list[bytes] = []
    status: list[int] = []
    until: list[int] = []
    codes = ss.STATUS_CODES
    for line, row in enumerate(csv.reader(io.StringIO(text)), start=line0):
        if len(row) < c.width:
            row += [""] * (c.width - len(row))
        code = codes.get(row[c.st].strip().lower())
        if code is None:
            raise ConfigError(f"{p}:{line}: status must be green, yellow or red")
        subj = row[c.su].strip() if c.su is not None else ""
        number = row[c.no] if c.no is not None else ""
        if subj:
            ident = ss.normalize_subject(subj)
        elif number.strip():
            ident = ss.normalize_document(
                row[c.dt] if c.dt is not None else "",
                row[c.co] if c.co is not None else "",
                number,
            )
        else:
            raise ConfigError(f"{p}:{line}: row has neither number nor subject_id")
        idents.append(ident)
        status.append(code)
        until.append(parse_until(row[c.vu], cache, f"{p}:{line}"))
    return Chunk.of(idents, status, until)


def _field(a: np.ndarray, start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lens = end - start
    w = int(lens.max()) if len(lens) else 0
    if w == 0:
        return np.zeros((len(lens), 1), np.uint8), lens
    ar = np.arange(w)
    idx = np.minimum(start[:, None] + ar, len(a) - 1)
    return np.where(ar < lens[:, None], a[idx], 0).astype(np.uint8), lens


def _clean(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Upper-case, keep [A-Z0-9] (ASCII ``statusset._clean``), packed to the left."""
    m = m.copy()
    low = (m >= 97) & (m <= 122)
    if low.any():
        m[low] -= 32
    keep = ((m >= 48) & (m <= 57)) | ((m >= 65) & (m <= 90))
    lens = keep.sum(axis=1)
    first_gap = np.where(keep.all(axis=1), m.shape[1], np.argmin(keep, axis=1))
    if bool(np.all(first_gap >= lens)):  # already clean: letters and digits, then padding
        return m, lens
    order = np.argsort(~keep, axis=1, kind="stable")
    packed = np.take_along_axis(np.where(keep, m, 0), order, axis=1)
    return packed.astype(np.uint8), keep.sum(axis=1)


def _put(out: np.ndarray, piece: np.ndarray, plen: np.ndarray, off: np.ndarray) -> None:
    if len(plen) and int(plen.min()) == int(plen.max()) and int(off.min()) == int(off.max()):
        o, w = int(off[0]), int(plen[0])  # one layout for all rows: a block copy
        out[:, o : o + w] = piece[:, :w]
        return
    ar = np.arange(piece.shape[1])
    mask = ar < plen[:, None]
    rows = np.broadcast_to(np.arange(len(out))[:, None], mask.shape)
    out[rows[mask], (off[:, None] + ar)[mask]] = piece[mask]


def _values(m: np.ndarray, lens: np.ndarray, fn: object) -> np.ndarray:
    """Map each distinct field value through ``fn(text, first_row)`` (few distinct values)."""
    view = np.ascontiguousarray(m).view(np.dtype((np.void, m.shape[1]))).ravel()
    uniq, first, inverse = np.unique(view, return_index=True, return_inverse=True)
    mapped = [
        fn(bytes(m[r, : lens[r]]).decode("ascii"), int(r))  # type: ignore[operator]
        for r in first
    ]
    return np.asarray(mapped)[inverse.ravel()]


def _rows_fast(p: Path, buf: bytes, c: _Columns, line0: int, cache: dict[str, int]) -> Chunk | None:
    """The vectorised path; None when the chunk needs the row-by-row one."""
    if b'"' in buf or b"\r" in buf or not buf.isascii():
        return None
    a = np.frombuffer(buf, dtype=np.uint8)
    nl = np.flatnonzero(a == 10)
    n = len(nl)
    if n == 0:
        return Chunk.of([], [], [])
    starts = np.concatenate([[0], nl[:-1] + 1])
    commas = np.flatnonzero(a == 44)
    if len(commas) != n * (c.width - 1):
        return None
    per_line = np.bincount(np.searchsorted(nl, commas), minlength=n)
    if not bool(np.all(per_line == c.width - 1)):
        return None
    cm = commas.reshape(n, c.width - 1)
    fs = np.empty((n, c.width), dtype=np.int64)
    fe = np.empty((n, c.width), dtype=np.int64)
    fs[:, 0], fs[:, 1:] = starts, cm + 1
    fe[:, :-1], fe[:, -1] = cm, nl
    if bool(np.any(fe - fs > MAX_FIELD)):
        return None

    def col(j: int | None) -> tuple[np.ndarray, np.ndarray]:
        if j is None:
            return np.zeros((n, 1), np.uint8), np.zeros(n, np.int64)
        return _field(a, fs[:, j], fe[:, j])

    codes = ss.STATUS_CODES

    def status_of(text: str, row: int) -> int:
        code = codes.get(text.strip().lower())
        if code is None:
            raise ConfigError(f"{p}:{line0 + row}: status must be green, yellow or red")
        return code

    st = _values(*col(c.st), status_of).astype(np.uint8)
    vu = _values(*col(c.vu), lambda t, r: parse_until(t, cache, f"{p}:{line0 + r}")).astype(
        ss.UNTIL_DTYPE
    )
    if c.su is not None:  # subjects (health codes) take the row-by-row path
        su, su_len = col(c.su)
        if bool(np.any((su > 32) & (np.arange(su.shape[1]) < su_len[:, None]))):
            return None
    raw_no, raw_len = col(c.no)
    blank = ~np.any((raw_no > 32) & (np.arange(raw_no.shape[1]) < raw_len[:, None]), axis=1)
    if bool(np.any(blank)):
        row = int(np.flatnonzero(blank)[0])
        raise ConfigError(f"{p}:{line0 + row}: row has neither number nor subject_id")
    cat, lcat = _clean(col(c.dt)[0])
    lcat = np.minimum(lcat, 1)
    co, lco = _clean(col(c.co)[0])
    no, lno = _clean(raw_no)
    total = 6 + lcat + lco + lno
    if int(total.max()) >= ss.MAC_BYTES:
        return None  # the row-by-row path refuses it with the line
    msgs = np.zeros((n, ss.MAC_BYTES), dtype=np.uint8)
    msgs[:, 0] = total
    out = msgs[:, 1:]  # the identity, right after the CBC-MAC message's length byte
    out[:, :4] = np.frombuffer(b"doc|", np.uint8)
    _put(out, cat[:, :1], lcat, np.full(n, 4))
    _put(out, np.full((n, 1), ord("|"), np.uint8), np.ones(n, np.int64), 4 + lcat)
    _put(out, co, lco, 5 + lcat)
    _put(out, np.full((n, 1), ord("|"), np.uint8), np.ones(n, np.int64), 5 + lcat + lco)
    _put(out, no, lno, 6 + lcat + lco)
    w = ss.MAC_BYTES
    starts = np.arange(n, dtype=np.int64) * w + 1
    return Chunk(msgs.tobytes(), starts, total.astype(np.int64), st, vu, msgs)


def read_status_table(path: str | Path, bar: Bar | None = None) -> Iterator[Chunk]:
    """The rows of a status CSV, a chunk at a time (``bar`` advances by bytes read)."""
    p = Path(path)
    try:
        f = p.open("rb")
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read status CSV: {exc.strerror}") from None
    cache: dict[str, int] = {}
    with f:
        head = f.readline()
        header = [h.strip().lower() for h in next(csv.reader([head.decode("utf-8")]), [])]
        c = _Columns(p, header)
        line0 = 2
        rest = b""
        while True:
            block = f.read(CHUNK_BYTES)
            if bar is not None:
                bar.update(len(block))
            buf = rest + block
            if not block:
                if buf and not buf.endswith(b"\n"):
                    buf += b"\n"
                rest = b""
            else:
                cut = buf.rfind(b"\n") + 1
                buf, rest = buf[:cut], buf[cut:]
            if buf:
                chunk = _rows_fast(p, buf, c, line0, cache)
                if chunk is None:
                    try:
                        text = buf.decode("utf-8")
                    except UnicodeDecodeError:
                        raise ConfigError(f"{p}: status CSV is not UTF-8") from None
                    chunk = _rows_slow(p, text, c, line0, cache)
                line0 += buf.count(b"\n")
                yield chunk
            if not block:
                return


def load_signers(paths: list[str | Path] | tuple[str | Path, ...]) -> TrustList:
    """Signer certificates from trust-list JSON files, PEM or DER certificate files."""
    signers: list[Signer] = []
    for path in paths:
        p = Path(path)
        try:
            data = p.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{p}: cannot read signers: {exc.strerror}") from None
        if data.lstrip().startswith(b"{"):
            signers.extend(TrustList.from_json_bytes(data, str(p)))
            continue
        try:
            if b"-----BEGIN CERTIFICATE" in data:
                certs = x509.load_pem_x509_certificates(data)
            else:
                certs = [x509.load_der_x509_certificate(data)]
        except ValueError as exc:
            raise ConfigError(f"{p}: not a certificate or trust list: {exc}") from None
        for cert in certs:
            der = cert.public_bytes(serialization.Encoding.DER)
            attrs = cert.subject.get_attributes_for_oid(x509.NameOID.COUNTRY_NAME)
            country = str(attrs[0].value) if attrs else ""
            signers.append(Signer(kid_of(der), country, cert))
    return TrustList(signers)


def load_revocations(path: str | Path) -> list[str]:
    """Revocation keys: a JSON list / {"keys": [...]} or one ``UCI:<hex>`` per line."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read revocations: {exc.strerror}") from None
    if text.lstrip().startswith(("[", "{")):
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"{p}: not JSON: {exc}") from None
        keys = doc["keys"] if isinstance(doc, dict) else doc
    else:
        keys = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    out = []
    for k in keys:
        kind, _, hexpart = str(k).partition(":")
        if kind not in ("UCI", "COUNTRYCODEUCI", "SIGNATURE") or not hexpart:
            raise ConfigError(f"{p}: revocation key {k!r} is not UCI:/COUNTRYCODEUCI:/SIGNATURE:")
        try:
            bytes.fromhex(hexpart)
        except ValueError:
            raise ConfigError(f"{p}: revocation key {k!r} is not hex") from None
        out.append(f"{kind}:{hexpart.lower()}")
    return out
