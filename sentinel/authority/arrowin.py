"""Status records from Parquet or Arrow IPC (Feather v2) files, a record batch at a time.

``sentinel publish build --status status.parquet`` (or ``.arrow`` / ``.feather``): the
same columns as the CSV (``doc_type, country, number, status, valid_until`` and/or
``subject_id``; names case-insensitive).  ``valid_until`` may be an ISO string (as in
the CSV), a ``date32``/``date64`` (end of that day, UTC) or a ``timestamp`` (a naive one
is UTC); ``status`` a string or a dictionary of strings.  ASCII cells go through the
same column-at-a-time cleaning as the CSV (``csvfast.py``), straight from the Arrow
buffers; a batch with non-ASCII cells or subjects takes the row-by-row normalization.

pyarrow (optional extra ``parquet``) reads the files: chosen over polars by measurement
(README, dependencies).  It is imported only when such a file is given.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from sentinel.authority import csvfast
from sentinel.authority.chunks import Chunk, parse_status, parse_until
from sentinel.errors import ConfigError
from sentinel.progress import Bar
from sentinel.trust import statusset as ss

BATCH_ROWS = 1 << 18
SUFFIXES = (".parquet", ".pq", ".arrow", ".feather", ".ipc")
_COLUMNS = ("doc_type", "country", "number", "status", "valid_until", "subject_id")


def is_arrow_input(path: str | Path) -> bool:
    """A Parquet or Arrow IPC file (by its name, or its magic bytes)."""
    p = Path(path)
    if p.suffix.lower() in SUFFIXES:
        return True
    try:
        with p.open("rb") as f:
            head = f.read(6)
    except OSError:
        return False
    return head[:4] == b"PAR1" or head == b"ARROW1"


def _pyarrow() -> Any:
    try:
        import pyarrow as pa
        import pyarrow.dataset as ds
    except ImportError:
        raise ConfigError(
            "Parquet/Arrow status input needs pyarrow (pip install 'sentinel[parquet]')"
        ) from None
    return pa, ds


def row_count(path: str | Path) -> int | None:
    pa, ds = _pyarrow()
    try:
        return int(_dataset(Path(path), ds).count_rows())
    except (OSError, pa.ArrowException):
        return None


def _dataset(p: Path, ds: Any) -> Any:
    with p.open("rb") as f:
        fmt = "parquet" if f.read(4) == b"PAR1" else "ipc"
    return ds.dataset(str(p), format=fmt)


def read_arrow_table(path: str | Path, bar: Bar | None = None) -> Iterator[Chunk]:
    """The rows of a Parquet/Arrow file as chunks (``bar`` advances by rows)."""
    pa, ds = _pyarrow()
    p = Path(path)
    try:
        data = _dataset(p, ds)
        names = {f.name.strip().lower(): f.name for f in data.schema}
    except (OSError, pa.ArrowException) as exc:
        raise ConfigError(f"{p}: not a readable Parquet/Arrow file: {exc}") from None
    if not {"status", "valid_until"} <= names.keys() or not (
        {"number", "subject_id"} & names.keys()
    ):
        raise ConfigError(
            f"{p}: status table needs columns doc_type,country,number,status,valid_until "
            "(or subject_id,status,valid_until)"
        )
    cols = [names[c] for c in _COLUMNS if c in names]
    row0 = 1
    cache: dict[str, int] = {}
    try:
        for batch in data.to_batches(columns=cols, batch_size=BATCH_ROWS):
            if batch.num_rows:
                get = {c: batch.column(names[c]) for c in _COLUMNS if c in names}
                yield _batch(p, pa, get, batch.num_rows, row0, cache)
                if bar is not None:
                    bar.update(batch.num_rows)
            row0 += batch.num_rows
    except pa.ArrowException as exc:
        raise ConfigError(f"{p}: cannot read the status table: {exc}") from None


def _strings(pa: Any, arr: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(bytes with room after them, cell starts, cell ends) of a string column (nulls as
    empty cells); None when the column holds something else."""
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    t = arr.type
    if pa.types.is_string_view(t) or pa.types.is_binary_view(t):
        arr, t = arr.cast(pa.large_string()), pa.large_string()
    if pa.types.is_string(t) or pa.types.is_binary(t):
        width = np.int32
    elif pa.types.is_large_string(t) or pa.types.is_large_binary(t):
        width = np.int64
    else:
        return None
    if arr.null_count:
        import pyarrow.compute as pc

        arr = pc.fill_null(arr, pa.scalar(b"" if pa.types.is_binary(t) else "", t))
    _validity, offsets, data = arr.buffers()[:3]
    n = len(arr)
    offs = np.frombuffer(offsets, dtype=width)[arr.offset : arr.offset + n + 1].astype(np.int64)
    raw = np.frombuffer(data, np.uint8) if data is not None else np.empty(0, np.uint8)
    ap = np.zeros(len(raw) + 4 * csvfast.MAX_FIELD, np.uint8)
    ap[: len(raw)] = raw
    return ap, offs[:-1], offs[1:]


def _until(pa: Any, arr: Any, where: Any, cache: dict[str, int]) -> np.ndarray:
    """valid-until epochs of a string, date or timestamp column."""
    t = arr.type
    if arr.null_count:
        row = next(i for i, v in enumerate(arr.is_valid().to_pylist()) if not v)
        raise ConfigError(f"{where(row)}: valid_until is missing")
    if pa.types.is_date32(t) or pa.types.is_date64(t):
        days = arr.cast(pa.date32()).cast(pa.int32()).to_numpy().astype(np.int64)
        secs = days * 86400 + 86399  # a date: the end of that day (as in the CSV)
    elif pa.types.is_timestamp(t):
        per = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}[t.unit]
        secs = arr.cast(pa.int64()).to_numpy() // per  # a naive time: UTC, as in the CSV
    else:
        cells = _strings(pa, arr)
        if cells is None:
            raise ConfigError(f"{where(0)}: valid_until must be a date, a timestamp or text")
        m, lens = csvfast._field(*cells)
        if not _ascii(m):
            return np.array(
                [parse_until(str(v), cache, where(i)) for i, v in enumerate(arr.to_pylist())],
                dtype=ss.UNTIL_DTYPE,
            )
        (secs,) = csvfast._values(m, lens, [lambda s, r: parse_until(s, cache, where(r))])
    return np.clip(secs, 0, 0xFFFFFFFF).astype(ss.UNTIL_DTYPE)


def _ascii(m: np.ndarray) -> bool:
    return not bool(np.any(m >= 0x80))


def _batch(
    p: Path, pa: Any, get: dict[str, Any], n: int, row0: int, cache: dict[str, int]
) -> Chunk:
    def where(r: int) -> str:
        return f"{p}: row {row0 + r}"

    def status_of(text: str, r: int) -> int:
        return parse_status(text, where(r))

    cells = _strings(pa, get["status"])
    if cells is None:
        raise ConfigError(f"{where(0)}: status must be text (green, yellow or red)")
    m, lens = csvfast._field(*cells)
    if not _ascii(m):
        st = np.array([status_of(str(v), i) for i, v in enumerate(get["status"].to_pylist())])
    else:
        (st,) = csvfast._values(m, lens, [status_of])
    vu = _until(pa, get["valid_until"], where, cache)
    text = {
        c: _strings(pa, get[c]) for c in ("doc_type", "country", "number", "subject_id") if c in get
    }
    if any(v is None for v in text.values()):
        bad = next(c for c, v in text.items() if v is None)
        raise ConfigError(f"{where(0)}: {bad} must be text")
    mats = {c: csvfast._field(*v) for c, v in text.items()}  # type: ignore[misc]
    fast = all(_ascii(m) for m, _ in mats.values()) and not (
        "subject_id" in mats and bool(np.any(mats["subject_id"][0] > 32))
    )
    if fast and "number" in mats:

        def blank(r: int) -> str:
            return f"{where(r)}: row has neither number nor subject_id"

        got = csvfast.document_messages(
            mats.get("doc_type", (np.zeros((n, 8), np.uint8), None))[0],
            mats.get("country", (np.zeros((n, 8), np.uint8), None))[0],
            mats["number"][0],
            blank,
        )
        if got is not None:
            msgs, total = got
            return Chunk(None, None, total, st.astype(np.uint8), vu, msgs)
    # row by row: non-ASCII cells (NFKC), subjects, identities too long for the fast path
    cols = {c: get[c].to_pylist() for c in text}
    idents = []
    for i in range(n):
        subj = str(cols["subject_id"][i] or "").strip() if "subject_id" in cols else ""
        number = str(cols["number"][i] or "") if "number" in cols else ""
        if subj:
            idents.append(ss.normalize_subject(subj))
        elif number.strip():
            idents.append(
                ss.normalize_document(
                    str(cols["doc_type"][i] or "") if "doc_type" in cols else "",
                    str(cols["country"][i] or "") if "country" in cols else "",
                    number,
                )
            )
        else:
            raise ConfigError(f"{where(i)}: row has neither number nor subject_id")
    return Chunk.of(idents, st.astype(np.uint8).tolist(), vu.tolist())
