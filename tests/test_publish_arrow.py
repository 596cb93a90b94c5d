"""Status records from Parquet and Arrow IPC files give the set the same rows as a CSV
give (identities, status, valid-until), and bad tables are one clear error."""

from __future__ import annotations

import csv
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest

from sentinel.authority import arrowin, inputs, status
from sentinel.authority.publish import Inputs, generate_root_key, publish
from sentinel.authority.testing import sync_dir, test_devices
from sentinel.errors import ConfigError
from sentinel.trust import statusset as ss
from sentinel.trust.store import StoreTrust

NOW = datetime(2030, 1, 1, tzinfo=UTC)
NAMES = ["doc_type", "country", "number", "status", "valid_until"]


def _rows(n: int) -> list[list[str]]:
    docs = ["P", "ID", "p<", "I", "AC"]
    countries = ["XXA", "d<<", "UTO", "D"]
    statuses = ["green", "RED", " yellow"]
    return [
        [docs[i % 5], countries[i % 4], f"N{i:07d}" if i % 7 else f"n-{i:07d} x",
         statuses[i % 3], (date(2030, 1, 1) + timedelta(days=i % 40)).isoformat()]
        for i in range(n)
    ]  # fmt: skip


def _csv_chunks(tmp_path: Path, rows: list[list[str]]) -> list[inputs.Chunk]:
    p = tmp_path / "s.csv"
    with p.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(NAMES)
        w.writerows(rows)
    return list(inputs.read_status_table(p))


def _flat(chunks: list) -> tuple[list[bytes], list[int], list[int]]:
    ids = [c.identity(i) for c in chunks for i in range(len(c))]
    st = [int(x) for c in chunks for x in c.status]
    vu = [int(x) for c in chunks for x in c.until]
    return ids, st, vu


def _table(rows: list[list[str]], *, until: str = "text", dict_status: bool = False) -> pa.Table:
    cols = {name: [r[j] for r in rows] for j, name in enumerate(NAMES)}
    arrays: dict[str, pa.Array] = {n: pa.array(cols[n], pa.string()) for n in NAMES[:3]}
    arrays["status"] = pa.array(cols["status"]).dictionary_encode() if dict_status else (
        pa.array(cols["status"], pa.large_string())
    )  # fmt: skip
    days = [date.fromisoformat(v) for v in cols["valid_until"]]
    if until == "date32":
        arrays["valid_until"] = pa.array(days, pa.date32())
    elif until == "timestamp":  # the end of each day, as a naive timestamp (UTC)
        ends = [datetime(d.year, d.month, d.day, 23, 59, 59) for d in days]
        arrays["valid_until"] = pa.array(ends, pa.timestamp("ms"))
    else:
        arrays["valid_until"] = pa.array(cols["valid_until"], pa.string())
    return pa.table(arrays)


@pytest.mark.parametrize(
    ("until", "dict_status", "fmt"),
    [("text", False, "parquet"), ("date32", True, "parquet"), ("timestamp", False, "feather")],
)
def test_table_rows_are_the_csv_rows(tmp_path: Path, monkeypatch, until, dict_status, fmt):
    monkeypatch.setattr(arrowin, "BATCH_ROWS", 300)  # several batches
    rows = _rows(2000)
    rows[33][2] = "Ｎ0000033"  # full width: the NFKC (row by row) path for that batch
    want = _flat(_csv_chunks(tmp_path, rows))
    t = _table(rows, until=until, dict_status=dict_status)
    p = tmp_path / f"s.{fmt}"
    if fmt == "parquet":
        pq.write_table(t, p, row_group_size=700)
    else:
        feather.write_feather(t, p)
    assert arrowin.is_arrow_input(p) and arrowin.row_count(p) == 2000
    got = _flat(list(arrowin.read_arrow_table(p)))
    assert got[0] == want[0]
    assert got[1] == want[1]
    assert got[2] == want[2]


def test_a_parquet_build_is_looked_up_on_the_device(tmp_path: Path) -> None:
    rows = _rows(500)
    p = tmp_path / "status.parquet"
    pq.write_table(_table(rows, until="date32"), p)
    site, data = tmp_path / "site", tmp_path / "data"
    key = generate_root_key()
    pub = publish(site, Inputs(), [key], now=NOW, status_csv=p, devices=test_devices(site),
                  kdf=ss.CHEAP_KDF)  # fmt: skip
    assert pub.manifest.status is not None and pub.manifest.status.count == 500
    sync_dir(data, site, key.public_key(), now=NOW)
    with StoreTrust(data) as trust:
        lookup = trust.status()
        assert lookup is not None
        doc, country, number, st, vu = rows[10]
        e = lookup.lookup_document(doc, country, number)
        assert e is not None and e.status == st.strip().lower()
        assert e.valid_until == datetime.fromisoformat(vu).replace(tzinfo=UTC) + timedelta(
            days=1, seconds=-1
        )


def test_bad_tables_are_clear_errors(tmp_path: Path) -> None:
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(ConfigError, match="junk.parquet: not a readable Parquet/Arrow file"):
        list(arrowin.read_arrow_table(junk))
    few = tmp_path / "few.parquet"
    pq.write_table(pa.table({"number": ["N1"], "status": ["green"]}), few)
    with pytest.raises(ConfigError, match="needs columns"):
        list(arrowin.read_arrow_table(few))
    rows = _rows(20)
    rows[13][3] = "purple"
    bad = tmp_path / "bad.parquet"
    pq.write_table(_table(rows), bad)
    with pytest.raises(ConfigError, match=r"bad.parquet: row 14: status must be"):
        list(arrowin.read_arrow_table(bad))
    t = _table(_rows(20), until="date32")
    nulls = t.set_column(4, "valid_until", pa.array([None] * 5 + [date(2030, 1, 1)] * 15))
    pq.write_table(nulls, tmp_path / "nulls.parquet")
    with pytest.raises(ConfigError, match=r"row 1: valid_until is missing"):
        list(arrowin.read_arrow_table(tmp_path / "nulls.parquet"))
    nums = t.set_column(3, "status", pa.array(np.arange(20)))
    pq.write_table(nums, tmp_path / "nums.parquet")
    with pytest.raises(ConfigError, match="status must be text"):
        list(arrowin.read_arrow_table(tmp_path / "nums.parquet"))


def test_the_table_build_is_the_csv_build(tmp_path: Path) -> None:
    rows = _rows(3000)
    csv_path = tmp_path / "s.csv"
    with csv_path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(NAMES)
        w.writerows(rows)
    pq.write_table(_table(rows, until="date32"), tmp_path / "s.parquet")
    sk, _ = status.load_or_create_key(tmp_path / "state", kdf=ss.CHEAP_KDF)
    a = status.build_columns_csv(csv_path, sk, tmp_path / "state").columns
    b = status.build_columns(
        arrowin.read_arrow_table(tmp_path / "s.parquet"), sk, tmp_path / "state"
    ).columns
    assert a.to_bytes(b"k" * 16) == b.to_bytes(b"k" * 16)


def test_a_long_cell_before_short_ones_is_read_as_the_csv_reads_it(tmp_path: Path) -> None:
    """A 300-byte number first, short cells after it: each cell is gathered with room
    for the widest (an IndexError at the batch's end before the fix)."""
    rows = _rows(50)
    rows[0][2] = "N" * 300
    want = _flat(_csv_chunks(tmp_path, rows))
    pq.write_table(_table(rows), tmp_path / "long.parquet")
    got = _flat(list(arrowin.read_arrow_table(tmp_path / "long.parquet")))
    assert got == want and len(got[0][0]) > 300
