"""The journal benchmark script runs (tiny sizes) and prints its figures."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_journal.py"


def test_bench_journal_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("bench_journal", SCRIPT)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    argv = ["--events", "20", "--day-events", "300", "--repeat", "1", "--dir", str(tmp_path)]
    assert mod.main(argv) == 0
    out = capsys.readouterr().out
    for figure in ("synchronous=NORMAL", "synchronous=FULL", "size per event", "purge of that day"):
        assert figure in out
    assert list(tmp_path.iterdir()) == []  # cleaned up
