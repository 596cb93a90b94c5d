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


def test_bench_small_scans_runs_small(capsys: pytest.CaptureFixture[str]) -> None:
    """benchmarks/bench_small_scans.py on 4 scans: both rows, and the reader's default
    scale restored after it."""
    import sys

    from sentinel.scan import mrz

    path = BENCH.parent / "bench_small_scans.py"
    sys.path.insert(0, str(path.parent))
    try:
        spec = importlib.util.spec_from_file_location("bench_small_scans", path)
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        default = mrz.SMALL_UPSCALE
        assert mod.main(["--n", "4", "--seed", "1"]) == 0
        assert default == mrz.SMALL_UPSCALE
    finally:
        sys.path.remove(str(path.parent))
    out = capsys.readouterr().out
    assert "| as scanned (1.0×) |" in out and f"| {default}× (the default) |" in out
    assert out.count("/4 (") == 2
