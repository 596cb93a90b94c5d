"""The vectorised path of a status CSV: plain ASCII rows, a whole column at a time (numpy).

A chunk of rows without quotes, carriage returns or non-ASCII bytes (what registries
export) is split at its newlines and commas, each field gathered into a zero-padded
matrix (one whole-word copy a row from a byte-strided view, its tail masked), cleaned like
``statusset._clean`` (upper case, letters and digits only) and placed straight into the
fixed-length CBC-MAC messages the tags are computed from.  Status and valid-until cells
are mapped once per distinct value.  Anything else returns None: the ``csv`` module's
row-by-row path (``inputs.py``) then reads the chunk, with the same normalization and
errors; ``tests/test_publish_inputs.py`` checks that both agree.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from sentinel.authority.chunks import Chunk, message_width, parse_status, parse_until
from sentinel.errors import ConfigError
from sentinel.trust import statusset as ss

MAX_FIELD = 64  # longer fields take the row-by-row path (and its errors)
_SAMPLE = 4096  # rows sampled for the distinct values of a status / valid-until column
_PLAIN = bytes(range(48, 58)) + bytes(range(65, 91)) + b",\0"  # a normalized identity


class Layout:
    """Which column is which, from the CSV header."""

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


def _field(ap: np.ndarray, start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's cell as a zero-padded (n, width) matrix, and the cells' lengths.

    ``ap``: the chunk's bytes, best followed by zeros (a copy is padded otherwise)."""
    lens = end - start
    w = int(lens.max()) if len(lens) else 0
    if w == 0:
        return np.zeros((len(lens), 1), np.uint8), lens
    return _gather(ap, start, lens, w), lens


def _gather(ap: np.ndarray, start: np.ndarray, lens: np.ndarray, w: int) -> np.ndarray:
    """``ap[start[r]:start[r]+lens[r]]`` of every row, zero-padded to ``w`` bytes (a view
    of a fresh matrix).  Each row is one copy of a whole-word cell (a void item of a
    byte-strided view of ``ap``), its tail cleared by a word mask of its length."""
    w8 = -(-w // 8) * 8
    if len(start) and int(start.max()) + w8 > len(ap):  # a long cell: pad a copy
        ap = np.concatenate([ap, np.zeros(int(start.max()) + w8 - len(ap), np.uint8)])
    cells = np.ndarray((len(ap) - w8 + 1,), np.dtype((np.void, w8)), buffer=ap, strides=(1,))
    m = cells[start].view(np.uint8).reshape(-1, w8)
    if int(lens.min()) < w8:
        m.view("<u8")[:] &= _word_masks(w8)[lens]
    return m[:, :w]


_MASKS: dict[int, np.ndarray] = {}


def _word_masks(w8: int) -> np.ndarray:
    """Row L: ``w8`` bytes, the first L of them 0xFF, as little-endian words."""
    got = _MASKS.get(w8)
    if got is None:
        b = (np.arange(w8) < np.arange(w8 + 1)[:, None]).astype(np.uint8) * np.uint8(255)
        got = _MASKS[w8] = b.view("<u8")
    return got


def _clean(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Upper-case, keep [A-Z0-9] (ASCII ``statusset._clean``), packed to the left, zeros
    after; and the cleaned lengths."""
    low = (m >= 97) & (m <= 122)
    if low.any():
        m = m - (low.view(np.uint8) << 5)
    keep = ((m >= 48) & (m <= 57)) | ((m >= 65) & (m <= 90))
    lens = np.count_nonzero(keep, axis=1)
    kept = m * keep
    if m.shape[1] < 2 or not bool(np.any(keep[:, 1:] & ~keep[:, :-1])):
        return kept, lens  # the kept bytes are each row's prefix already
    order = np.argsort(~keep, axis=1, kind="stable")
    return np.take_along_axis(kept, order, axis=1), lens


def _sample(n: int) -> np.ndarray:
    """Rows to sample: spread by a multiplicative hash (the same every run, and no stride
    that periodic data could alias)."""
    if n <= _SAMPLE:
        return np.arange(n)
    return (np.arange(_SAMPLE, dtype=np.uint64) * np.uint64(2654435761)) % np.uint64(n)


def _distinct_u64(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(a row holding each distinct value, each row's value index) of a u64 column: the
    distinct values of a sample first (few, typically), a sort only for the rest."""
    n = len(x)
    cands = np.unique(x[_sample(n)])
    pos = np.searchsorted(cands, x)
    np.minimum(pos, len(cands) - 1, out=pos)
    hit = cands[pos] == x
    if not bool(hit.all()):
        miss = np.flatnonzero(~hit)
        extra, inv_m = np.unique(x[miss], return_inverse=True)
        pos[miss] = len(cands) + inv_m.ravel()
        cands = np.concatenate([cands, extra])
    reps = np.empty(len(cands), np.int64)
    reps[pos] = np.arange(n)
    return reps, pos


def _distinct(m: np.ndarray, lens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(a row holding each distinct cell, each row's cell index): exact."""
    n, w = m.shape
    if w <= 7:  # the bytes and the length are the key itself
        b = np.zeros((n, 8), np.uint8)
        b[:, :w] = m
        b[:, 7] = lens
        return _distinct_u64(b.view("<u8").ravel())
    b = np.zeros((n, -(-w // 8) * 8), np.uint8)
    b[:, :w] = m
    words = b.view("<u8")
    x = lens.astype(np.uint64)
    for col in words.T:  # a 64-bit FNV-style hash of the cell, then checked
        x = (x * np.uint64(0x100000001B3)) ^ col
    reps, inv = _distinct_u64(x)
    r = reps[inv]
    if bool(np.array_equal(lens, lens[r])) and all(
        bool(np.array_equal(col, col[r])) for col in words.T
    ):
        return reps, inv
    rows = np.concatenate([m, lens[:, None].astype(np.uint8)], axis=1)
    view = np.ascontiguousarray(rows).view(np.dtype((np.void, rows.shape[1]))).ravel()
    _, reps, inv = np.unique(view, return_index=True, return_inverse=True)
    return reps, inv.ravel()


def _values(
    m: np.ndarray, lens: np.ndarray, fns: list[Callable[[str, int], int]]
) -> list[np.ndarray]:
    """``fns[i](part i of the cell, row)`` for every row, each called once per distinct
    cell (a cell of adjacent columns: its parts are split at the commas); an error names
    the first row, in file order, that a function refuses (the earlier column first)."""
    reps, inv = _distinct(m, lens)
    texts = [bytes(m[r, : lens[r]]).decode("ascii").split(",") for r in reps]
    mapped: list[list[int]] = [[] for _ in fns]
    for parts, r in zip(texts, reps, strict=True):
        try:
            for fn, part, out in zip(fns, parts, mapped, strict=True):
                out.append(fn(part, int(r)))
        except ConfigError:
            bad = []
            for j, t in enumerate(texts):
                for k, (fn, part) in enumerate(zip(fns, t, strict=True)):
                    try:
                        fn(part, 0)
                    except ConfigError:
                        bad.append((int(np.argmax(inv == j)), k, part, fn))
            row, _, part, fn = min(bad, key=lambda b: b[:2])
            fn(part, row)
            raise
    return [np.asarray(v, dtype=np.int64)[inv] for v in mapped]


def _place(out: np.ndarray, piece: np.ndarray, off: np.ndarray) -> None:
    """``out[r, off[r]:off[r]+w] = piece[r]`` for every row; ``piece`` is zero after each
    row's content, which must fit ``out``.  Rows are copied in groups of one offset."""
    w = piece.shape[1]
    lo, hi = int(off.min()), int(off.max())
    if lo == hi:
        e = min(lo + w, out.shape[1])
        out[:, lo:e] = piece[:, : e - lo]
        return
    for o in np.unique(off).tolist():
        rows = np.flatnonzero(off == o)
        e = min(o + w, out.shape[1])
        out[rows, o:e] = piece[rows, : e - o]


def _plain_identity(
    ap: np.ndarray, fs: Callable[[int], np.ndarray], fe: np.ndarray, c: Layout
) -> tuple[np.ndarray, np.ndarray] | None:
    """``CAT|COUNTRY|NUMBER`` of every row, as a zero-padded matrix, when these are three
    adjacent columns in that order and already normalized (one-letter document code,
    upper-case letters and digits only: what a registry export usually is): one gather
    of the three cells with their commas; None otherwise (the per-column path)."""
    if c.dt is None or c.co != c.dt + 1 or c.no != c.dt + 2:
        return None
    s, e = fs(c.dt), fe[:, c.no]
    if bool(np.any(fe[:, c.dt] - s != 1)) or bool(np.any(fe[:, c.no] == fs(c.no))):
        return None
    lens = e - s
    w = int(lens.max())
    if w > MAX_FIELD:
        return None
    cells = _gather(ap, s, lens, w).tobytes()
    # [0-9A-Z] and the two commas (the padding zeros pass), the commas then made bars
    if cells.translate(None, _PLAIN):
        return None
    return np.frombuffer(cells.replace(b",", b"|"), np.uint8).reshape(-1, w), lens


def document_messages(
    dt: np.ndarray, co: np.ndarray, no: np.ndarray, blank: Callable[[int], str]
) -> tuple[np.ndarray, np.ndarray] | None:
    """The CBC-MAC messages of ``doc|CAT|COUNTRY|NUMBER`` from the raw, zero-padded cells
    (``statusset.normalize_document`` of ASCII cells), and the identities' lengths; None
    when one is too long for a message.  ``blank(row)``: the error of a row whose number
    is blank."""
    n = len(no)
    empty = ~np.any(no > 32, axis=1)
    if bool(np.any(empty)):
        raise ConfigError(blank(int(np.flatnonzero(empty)[0])))
    cat, lcat = _clean(dt)
    lcat = np.minimum(lcat, 1)
    cc, lco = _clean(co)
    nn, lno = _clean(no)
    total = 6 + lcat + lco + lno
    if int(total.max()) >= ss.MAC_BYTES:
        return None
    msgs = np.zeros((n, message_width(total)), dtype=np.uint8)
    msgs.view("<u4")[:, 0] = int.from_bytes(b"\0doc", "little")
    out = msgs[:, 1:]
    out[:, 3] = ord("|")
    rows = np.arange(n)
    _place(out, cat[:, :1], np.full(n, 4))
    out[rows, 4 + lcat] = ord("|")
    _place(out, cc, 5 + lcat)
    out[rows, 5 + lcat + lco] = ord("|")
    _place(out, nn, 6 + lcat + lco)
    msgs[:, 0] = total
    return msgs, total.astype(np.int64)


def rows_fast(p: Path, buf: bytes, c: Layout, line0: int, cache: dict[str, int]) -> Chunk | None:
    """The rows of ``buf`` (whole lines), or None when they need the row-by-row path."""
    if b'"' in buf or b"\r" in buf or not buf.isascii():
        return None
    a = np.frombuffer(buf, dtype=np.uint8)
    sep = np.flatnonzero((a == 44) | (a == 10))
    width = c.width
    if len(sep) % width or not len(sep):
        return None if len(sep) else Chunk.of([], [], [])
    n = len(sep) // width
    fe = sep.reshape(n, width)  # each cell ends at its comma or newline
    if buf.count(b"\n") != n or not bool(np.all(a[fe[:, -1]] == 10)):
        return None  # a line with another number of cells (n newlines, each row's last)

    def fs(j: int) -> np.ndarray:  # where each row's cell j starts
        if j:
            return fe[:, j - 1] + 1
        out = np.empty(n, fe.dtype)
        out[0], out[1:] = 0, fe[:-1, -1] + 1
        return out

    if int(sep[0]) > MAX_FIELD or bool(np.any(np.diff(sep) > MAX_FIELD + 1)):
        return None
    ap = np.zeros(len(a) + 3 * MAX_FIELD + 8, np.uint8)  # room for a word-padded window
    ap[: len(a)] = a

    def col(j: int | None) -> tuple[np.ndarray, np.ndarray]:
        if j is None:
            return np.zeros((n, 1), np.uint8), np.zeros(n, np.int64)
        return _field(ap, fs(j), fe[:, j])

    def status_of(text: str, row: int) -> int:
        return parse_status(text, f"{p}:{line0 + row}")

    if c.su is not None:  # subjects (health codes) take the row-by-row path
        su, _ = col(c.su)
        if bool(np.any(su > 32)):
            return None

    def until_of(text: str, row: int) -> int:
        return parse_until(text, cache, f"{p}:{line0 + row}")

    if abs(c.st - c.vu) == 1:  # adjacent: one cell "status,valid_until" (or reversed)
        j = min(c.st, c.vu)
        fns = [status_of, until_of] if c.st < c.vu else [until_of, status_of]
        got = _values(*_field(ap, fs(j), fe[:, j + 1]), fns)
        st, vu = got if c.st < c.vu else got[::-1]
    else:
        (st,) = _values(*col(c.st), [status_of])
        (vu,) = _values(*col(c.vu), [until_of])
    st = st.astype(np.uint8)
    plain = _plain_identity(ap, fs, fe, c)
    if plain is not None:
        m, lens = plain
        total = 4 + lens
        if int(total.max()) >= ss.MAC_BYTES:
            return None  # the row-by-row path refuses it with the line
        msgs = np.zeros((n, message_width(total)), dtype=np.uint8)
        # bytes 0-3 of each message, the length byte and "doc", as one little-endian u32
        msgs.view("<u4")[:, 0] = int.from_bytes(b"\0doc", "little")
        msgs[:, 4] = ord("|")
        msgs[:, 5 : 5 + m.shape[1]] = m
    else:
        msgs_total = document_messages(
            col(c.dt)[0],
            col(c.co)[0],
            col(c.no)[0],
            lambda r: f"{p}:{line0 + r}: row has neither number nor subject_id",
        )
        if msgs_total is None:
            return None  # the row-by-row path refuses it with the line
        msgs, total = msgs_total
    msgs[:, 0] = total
    return Chunk(None, None, total.astype(np.int64), st, vu.astype(ss.UNTIL_DTYPE), msgs)
