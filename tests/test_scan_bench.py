"""Smoke test: benchmarks/bench_scan.py runs end to end on a tiny corpus."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_scan.py"


def test_bench_scan_runs_small(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("bench_scan", BENCH)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    args = ["--limit", "2", "--sizes", "320x240", "--ids", "2", "--tesseract", "0"]
    args += ["--corpus", "1", "--sequences", "1", "--engines", "template"]
    assert mod.main(args) == 0
    out = capsys.readouterr().out
    assert "| zxing | 320×240 |" in out
    assert "## Empty frames" in out and "| template | 2 |" in out
    assert "## QR options on the hard corpus" in out and "| Sentinel scanner (default) |" in out
    assert "## ID documents on the hard corpus" in out
    assert "## Time to decision on video sequences" in out and "| TD1 | " in out
