"""SIGKILL at random points (a few dozen here; ``benchmarks/bench_crash.py --kills 300``
is the long run): overrides and bundle applies always end with their audit entry after
the next start, and a daemon-like writer with a CLI command (purge, sync, override) on
the same data directory, both killed, loses no acknowledgement and breaks no chain."""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_crash.py"


@pytest.fixture(scope="module")
def bench() -> object:
    spec = importlib.util.spec_from_file_location("bench_crash", SCRIPT)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize(("target", "kills"), [("override", 8), ("bundle", 6), ("two", 8)])
def test_random_kills_leave_no_gap(bench: object, tmp_path: Path, target: str, kills: int) -> None:
    r = bench.run(target, kills, tmp_path, random.Random(kills))  # type: ignore[attr-defined]
    assert r["kills"] >= kills
    assert (r["lost"], r["gaps"], r["chain"]) == (0, 0, 0), r
    if target != "bundle":
        assert r["acknowledged"] > 0
