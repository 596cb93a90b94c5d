"""Status-set scale: publisher build, bytes per entry, device apply (full and 1% delta),
peak memory, lookup latency.

    .venv/bin/python benchmarks/bench_trust.py --sizes 1000000 10000000

Each step runs in its own process so its peak RSS (ru_maxrss) is its own.  The publisher
reads a real CSV (doc_type,country,number,status,valid_until), like `sentinel publish`.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

NOW = datetime(2022, 5, 1, 12, 0, tzinfo=UTC)


def _number(i: int) -> str:
    return f"N{i:09d}"


def _write_csv(path: Path, n: int, version: int) -> None:
    """v1: entries 0..n-1.  v2 (1% change): 0.5% new status, 0.25% removed, 0.25% added."""
    statuses = ("green", "yellow", "red")
    days = [(NOW + timedelta(days=d)).date().isoformat() for d in range(1, 31)]
    with path.open("w", buffering=1 << 20) as f:
        f.write("doc_type,country,number,status,valid_until\n")
        for i in range(n):
            if version == 2 and i % 400 == 1:
                continue  # removed
            st = statuses[i % 3]
            if version == 2 and i % 200 == 0:
                st = statuses[(i + 1) % 3]  # changed
            f.write(f"P,XXA,{_number(i)},{st},{days[i % 30]}\n")
        if version == 2:
            for j in range(n // 400):
                f.write(f"I,XXA,{_number(n + j)},green,{days[j % 30]}\n")  # added


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def step_publish(work: Path, version: int) -> dict:
    from sentinel.authority.publish import Inputs, load_private_key, publish, read_status_csv

    key = load_private_key(work / "root_key.pem")
    t = time.perf_counter()
    pub = publish(
        work / "site",
        Inputs(revocations=[]),
        [key],
        now=NOW,
        status_rows=read_status_csv(work / f"status{version}.csv"),
    )
    dt = time.perf_counter() - t
    m = pub.manifest
    return {
        "seconds": dt,
        "peak_mb": _peak_mb(),
        "status_bytes": m.parts["status"].size,
        "status_raw_bytes": m.parts["status"].raw_size,
        "delta_bytes": m.parts["status_delta"].size if "status_delta" in m.parts else None,
        "delta_entries": pub.delta_entries,
        "count": m.status.count if m.status else 0,
    }


def step_apply(work: Path) -> dict:
    from sentinel.authority.testing import sync_dir
    from sentinel.trust.bundle import load_public_key

    root = load_public_key((work / "root_pub.pem").read_bytes())
    t = time.perf_counter()
    r = sync_dir(work / "data", work / "site", root, now=NOW)
    dt = time.perf_counter() - t
    return {"seconds": dt, "peak_mb": _peak_mb(), "delta": r.delta, "bytes": r.downloaded_bytes}


def step_lookup(work: Path, n: int, samples: int) -> dict:
    from sentinel.trust.store import StoreTrust

    rng = random.Random(7)
    with StoreTrust(work / "data") as trust:
        status = trust.status()
        assert status is not None
        lat = []
        hits = 0
        for k in range(samples):
            i = rng.randrange(n) if k % 2 == 0 else n * 10 + k  # half hits, half misses
            t = time.perf_counter_ns()
            e = status.lookup_document("P", "XXA", _number(i))
            lat.append(time.perf_counter_ns() - t)
            hits += e is not None
    lat.sort()
    return {
        "median_us": statistics.median(lat) / 1000,
        "p99_us": lat[int(len(lat) * 0.99)] / 1000,
        "max_us": lat[-1] / 1000,
        "hits": hits,
        "peak_mb": _peak_mb(),
    }


def _run(step: str, work: Path, *extra: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--step", step, "--work", str(work), *extra],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench(n: int, samples: int, keep: Path | None) -> dict:
    from sentinel.authority.publish import generate_root_key, write_root_key

    work = Path(tempfile.mkdtemp(prefix=f"bench-trust-{n}-", dir=keep))
    try:
        write_root_key(generate_root_key(), work / "root_key.pem", work / "root_pub.pem")
        _write_csv(work / "status1.csv", n, 1)
        _write_csv(work / "status2.csv", n, 2)
        pub1 = _run("publish", work, "--version", "1")
        app1 = _run("apply", work)
        look = _run("lookup", work, "--n", str(n), "--samples", str(samples))
        pub2 = _run("publish", work, "--version", "2")
        app2 = _run("apply", work)
        disk = sum(p.stat().st_size for p in (work / "data" / "trust" / "status").iterdir())
        return {
            "n": n,
            "publish_s": pub1["seconds"],
            "publish_peak_mb": pub1["peak_mb"],
            "wire_B_per_entry": pub1["status_bytes"] / n,
            "disk_B_per_entry": pub1["status_raw_bytes"] / n,
            "apply_full_s": app1["seconds"],
            "apply_full_peak_mb": app1["peak_mb"],
            "lookup_median_us": look["median_us"],
            "lookup_p99_us": look["p99_us"],
            "lookup_max_us": look["max_us"],
            "lookup_hits": look["hits"],
            "publish_delta_s": pub2["seconds"],
            "delta_entries": pub2["delta_entries"],
            "delta_bytes": pub2["delta_bytes"],
            "delta_vs_full_bytes": pub2["delta_bytes"] / pub1["status_bytes"],
            "apply_delta_s": app2["seconds"],
            "apply_delta_peak_mb": app2["peak_mb"],
            "delta_vs_full_apply_time": app2["seconds"] / app1["seconds"],
            "disk_after_delta_B_per_entry": disk / pub2["count"],
        }
    finally:
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000_000])
    ap.add_argument("--samples", type=int, default=20000, help="lookups timed per size")
    ap.add_argument("--workdir", type=Path, default=None, help="where to put temp files")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--step", help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--version", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.step:
        if args.step == "publish":
            r = step_publish(args.work, args.version)
        elif args.step == "apply":
            r = step_apply(args.work)
        else:
            r = step_lookup(args.work, args.n, args.samples)
        print(json.dumps(r))
        return 0
    if args.json:
        print(json.dumps([bench(n, args.samples, args.workdir) for n in args.sizes], indent=1))
        return 0
    for n in args.sizes:
        r = bench(n, args.samples, args.workdir)
        print(f"--- {r['n']:,} status entries")
        print(
            f"publisher build (CSV → signed bundle)  {r['publish_s']:.1f} s, "
            f"peak {r['publish_peak_mb']:.0f} MB"
        )
        print(
            f"bundle bytes per entry                 wire {r['wire_B_per_entry']:.2f} B, "
            f"disk {r['disk_B_per_entry']:.2f} B"
        )
        print(
            f"device apply, full                     {r['apply_full_s']:.2f} s, "
            f"peak {r['apply_full_peak_mb']:.0f} MB"
        )
        print(
            f"lookup latency                         median {r['lookup_median_us']:.1f} µs, "
            f"p99 {r['lookup_p99_us']:.1f} µs ({r['lookup_hits']} hits)"
        )
        print(
            f"1% delta: {r['delta_entries']:,} entries   publish {r['publish_delta_s']:.1f} s, "
            f"{r['delta_bytes']:,} B = {r['delta_vs_full_bytes']:.1%} of full"
        )
        print(
            f"device apply, 1% delta                 {r['apply_delta_s']:.2f} s "
            f"({r['delta_vs_full_apply_time']:.0%} of full), "
            f"peak {r['apply_delta_peak_mb']:.0f} MB",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
