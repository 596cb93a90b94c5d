"""The vectorised CSV path gives exactly what the row-by-row path (the reference) gives."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sentinel.authority import inputs
from sentinel.errors import ConfigError

HEADER = ["doc_type", "country", "number", "status", "valid_until", "subject_id"]
_text = st.text(alphabet="abcXYZ019<- _/.", max_size=12)
_row = st.tuples(
    _text,
    _text,
    _text.filter(lambda t: t.strip() != ""),
    st.sampled_from(["green", "RED", " yellow "]),
    st.sampled_from(["2030-01-01", "2030-01-01T12:00:00Z", "2031-06-30"]),
)


def _both(tmp_path: Path, body: bytes) -> tuple[inputs.Chunk, inputs.Chunk]:
    c = inputs._Columns(tmp_path, HEADER)
    fast = inputs._rows_fast(tmp_path, body, c, 2, {})
    assert fast is not None  # plain ASCII rows take the vectorised path
    slow = inputs._rows_slow(tmp_path, body.decode(), c, 2, {})
    return fast, slow


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(_row, min_size=1, max_size=30))
def test_fast_and_slow_paths_agree(rows, tmp_path_factory) -> None:
    body = "".join(",".join([*r, ""]) + "\n" for r in rows).encode()
    fast, slow = _both(tmp_path_factory.mktemp("csv"), body)
    assert [fast.identity(i) for i in range(len(fast))] == [
        slow.identity(i) for i in range(len(slow))
    ]
    assert fast.status.tolist() == slow.status.tolist()
    assert fast.until.tolist() == slow.until.tolist()
    assert (fast.messages() == slow.messages()).all()


def test_known_rows(tmp_path: Path) -> None:
    body = b"ID,D<<,t22000129,yellow,2030-01-01,\nP<,xxa,C01 X00-T47,green,2030-01-01,\n"
    fast, _ = _both(tmp_path, body)
    assert fast.identity(0) == b"doc|I|D|T22000129"
    assert fast.identity(1) == b"doc|P|XXA|C01X00T47"


def test_whole_file_with_both_paths_and_errors(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(inputs, "CHUNK_BYTES", 64)  # many chunks, rows cut across reads
    p = tmp_path / "s.csv"
    rows = [f"P,XXA,N{i:04d},green,2030-01-01," for i in range(50)]
    rows[20] = 'P,XXA,"N0020",green,2030-01-01,'  # a quoted row: the csv-module path
    rows[30] = "P,XXA,Ｎ0030,green,2030-01-01,"  # full width: NFKC on the slow path
    p.write_text(",".join(HEADER) + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    got = [c.identity(i) for c in inputs.read_status_table(p) for i in range(len(c))]
    assert got == [f"doc|P|XXA|N{i:04d}".encode() for i in range(50)]
    p.write_text(",".join(HEADER) + "\nP,XXA,N1,blue,2030-01-01,\n")
    with pytest.raises(ConfigError, match=r"s\.csv:2: status must be"):
        list(inputs.read_status_table(p))
