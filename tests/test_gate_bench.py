"""The gate benchmark script runs (tiny sizes)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest


def test_bench_gate_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_gate.py"
    spec = importlib.util.spec_from_file_location("bench_gate", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--n", "5", "--relocks", "2", "--pulse-s", "0.01", "--steps", "100"]) == 0
    out = capsys.readouterr().out
    assert "admit -> relay released: median" in out and "door machine:" in out
