"""The trust benchmark script runs end to end at a tiny size (figures: see the script)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_trust.py"


def test_bench_trust_runs_small(tmp_path) -> None:
    args = ["--sizes", "3000", "--samples", "400", "--cold", "20", "--sd-iops", "0"]
    out = subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--workdir", str(tmp_path)],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    line = out.stdout.splitlines()[0]
    assert line.startswith("trust 3000: build ") and " s (baseline " in line
    assert " MB, delta1% apply " in line and " µs cold " in line and line.endswith(" µs")
    bar = next(x for x in out.stdout.splitlines() if x.startswith("  bar lookup p99 < 1 ms: "))
    assert "base: warm " in bar and "; after the delta (2 files): warm " in bar
    assert bar.count(" PASS") + bar.count(" FAIL") == 2
    out = subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--json", "--workdir", str(tmp_path)],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    (r,) = json.loads(out.stdout)["sizes"]
    assert r["n"] == 3000
    assert r["disk_B_per_entry"] == 17.0 + 32 / 3000  # 17-byte records plus the header
    assert r["wire_B_per_entry"] < r["disk_B_per_entry"]
    assert r["lookup_hits"] == 200  # half the lookups are for present documents
    changed = sum(1 for i in range(3000) if i % 200 == 0)
    removed = sum(1 for i in range(3000) if i % 400 == 1)
    assert r["delta_entries"] == changed + removed + 3000 // 400
    assert r["delta_vs_full_bytes"] < 0.1
    assert r["baseline_s"] is not None and r["lookup_cold_p99_us"] is not None
