"""Status-set scale (issue #21): publisher build, device apply, 1% delta, lookups.

    .venv/bin/python benchmarks/bench_trust.py --sizes 10000000 80000000

For each size it prints one line (and a few detail lines)::

    trust <size>: build <s> s (baseline <s> s), apply <s> s peak RSS <MB> MB,
                  delta1% apply <s> s, lookup p99 warm <µs> µs cold <µs> µs

* build: ``publish`` from a CSV (doc_type,country,number,status,valid_until) to a signed
  bundle, the streamed, vectorised path, its blocks parsed by ``--workers`` processes (the
  CPUs by default, as ``publish build``; the CPU seconds are printed beside the wall
  time, so a gain from the second core is told apart from the code's); tags with
  ``--kdf`` (default ``aes-cbc-mac``: the Argon2id cost is per new identity, paid once
  at ingestion and cached, measured on its own line: ``kdf``).  baseline: the row-by-row
  path main had before (csv module, one Python HMAC per row, bytes sort), run on the same
  CSV in the same run, up to 10 M.
* apply: ``sentinel sync --from`` of the full bundle into an empty data dir; peak RSS is
  that process's ``ru_maxrss``.  delta1% apply: the next version (0.5% changed, 0.25%
  removed, 0.25% added).
* lookup: ``lookup_document`` on the applied set (half hits); warm = page cache warm;
  cold = the status files' pages evicted (``posix_fadvise(DONTNEED)``) before every
  lookup, and, where the blkio cgroup is writable (root), reads throttled to an SD card
  (``--sd-iops``, ``--sd-bps``: 1500 IOPS, 40 MB/s by default), the cold lookups then
  spaced 1.5 / IOPS apart so that the bench stays under the card's IOPS (``_gap``).

Each step runs in its own process.  Timings on a shared machine are noisy: one run.
"""

from __future__ import annotations

import argparse
import array
import contextlib
import csv
import hashlib
import hmac
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

NOW = datetime(2022, 5, 1, 12, 0, tzinfo=UTC)
CGROUP = Path("/sys/fs/cgroup/blkio/sentinel-bench-sd")


def _number(i: int) -> str:
    return f"N{i:09d}"


def _write_csv(path: Path, n: int, version: int) -> None:
    """v1: entries 0..n-1.  v2 (1% change): 0.5% new status, 0.25% removed, 0.25% added."""
    statuses = ("green", "yellow", "red")
    days = [(NOW + timedelta(days=d)).date().isoformat() for d in range(1, 31)]
    step = 1 << 20
    with path.open("w", buffering=1 << 22) as f:
        f.write("doc_type,country,number,status,valid_until\n")
        for lo in range(0, n, step):
            lines = []
            for i in range(lo, min(n, lo + step)):
                if version == 2 and i % 400 == 1:
                    continue  # removed
                st = statuses[i % 3]
                if version == 2 and i % 200 == 0:
                    st = statuses[(i + 1) % 3]  # changed
                lines.append(f"P,XXA,N{i:09d},{st},{days[i % 30]}\n")
            f.write("".join(lines))
        if version == 2:
            f.write(
                "".join(f"I,XXA,{_number(n + j)},green,{days[j % 30]}\n" for j in range(n // 400))
            )


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---- the baseline: main's build path before issue #21, on the same CSV ----------------


def _baseline_build(csv_path: Path, out: Path) -> None:
    """Row by row: csv module, normalize, HMAC, a bytes sort, columnar write, zlib."""
    import numpy as np

    from sentinel.authority.inputs import parse_until
    from sentinel.trust import statusset as ss

    key = b"k" * 32
    keys = bytearray()
    status = bytearray()
    until = array.array("I")
    cache: dict[str, int] = {}
    with csv_path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = [h.strip().lower() for h in next(reader)]
        col = {name: i for i, name in enumerate(header)}
        for line, row in enumerate(reader, start=2):
            code = ss.STATUS_CODES[row[col["status"]].strip().lower()]
            ident = ss.normalize_document(row[col["doc_type"]], row[col["country"]], row[3])
            keys += hmac.digest(key, ident, "sha256")[:12]
            status.append(code)
            until.append(parse_until(row[col["valid_until"]], cache, f"{csv_path}:{line}"))
    k = np.frombuffer(bytes(keys), dtype="S12")
    order = np.argsort(k, kind="stable")
    s = np.frombuffer(bytes(status), dtype=np.uint8)[order]
    u = np.frombuffer(until.tobytes(), dtype="<u4")[order]
    k = k[order]
    out.mkdir(parents=True, exist_ok=True)
    raw = out / "raw"
    with raw.open("wb") as fo:
        fo.write(ss.HEADER.pack(ss.MAGIC, ss.FORMAT, 0, len(k), b"\0" * 16))
        fo.write(k.tobytes())
        fo.write(s.tobytes())
        fo.write(u.tobytes())
    h = hashlib.sha256(raw.read_bytes()).hexdigest()
    (out / h).write_bytes(zlib.compress(raw.read_bytes(), 6))


# ---- steps (each in its own process) -------------------------------------------------


def _cpu() -> float:
    """CPU seconds of this process and its finished children (worker processes)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def step_baseline(work: Path) -> dict:
    t, c = time.perf_counter(), _cpu()
    _baseline_build(work / "status1.csv", work / "baseline")
    dt, dc = time.perf_counter() - t, _cpu() - c
    shutil.rmtree(work / "baseline", ignore_errors=True)
    return {"seconds": dt, "cpu_seconds": dc, "peak_mb": _peak_mb()}


def step_publish(work: Path, version: int, kdf: str, workers: int) -> dict:
    from sentinel.authority.publish import Inputs, load_private_key, publish
    from sentinel.authority.testing import test_devices
    from sentinel.trust import statusset as ss

    key = load_private_key(work / "root_key.pem")
    t, c = time.perf_counter(), _cpu()
    pub = publish(
        work / "site",
        Inputs(revocations=[]),
        [key],
        now=NOW,
        status_csv=work / f"status{version}.csv",
        devices=test_devices(work / "site"),
        kdf=ss.CHEAP_KDF if kdf == "aes-cbc-mac" else None,
        workers=workers,
    )
    dt, dc = time.perf_counter() - t, _cpu() - c
    m = pub.manifest
    return {
        "seconds": dt,
        "cpu_seconds": dc,
        "peak_mb": _peak_mb(),
        "status_bytes": m.parts["status"].size,
        "status_raw_bytes": m.parts["status"].raw_size,
        "delta_bytes": m.parts["status_delta"].size if "status_delta" in m.parts else None,
        "delta_entries": pub.delta_entries,
        "count": m.status.count if m.status else 0,
        "new_tags": pub.new_tags,
    }


def step_apply(work: Path) -> dict:
    from sentinel.authority.testing import sync_dir
    from sentinel.trust.bundle import load_public_key

    root = load_public_key((work / "root_pub.pem").read_bytes())
    t = time.perf_counter()
    r = sync_dir(work / "data", work / "site", root, now=NOW)
    dt = time.perf_counter() - t
    return {"seconds": dt, "peak_mb": _peak_mb(), "delta": r.delta, "bytes": r.downloaded_bytes}


def _throttle(iops: int, bps: int) -> str:
    """Put this process in a blkio cgroup limiting reads of the data's disk (SD card)."""
    try:
        dev = _root_dev()
        CGROUP.mkdir(exist_ok=True)
        for name, value in (("read_iops_device", iops), ("read_bps_device", bps)):
            (CGROUP / f"blkio.throttle.{name}").write_text(f"{dev} {value}\n")
        (CGROUP / "cgroup.procs").write_text(str(os.getpid()))
        return f"blkio throttle {iops} IOPS, {bps // 1_000_000} MB/s on disk {dev}"
    except OSError as exc:
        return f"no throttle ({exc.strerror}): page cache evicted only"


def _root_dev() -> str:
    """major:minor of the whole disk holding the working directory."""
    dev = os.stat(Path.cwd()).st_dev
    sysfs = Path(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}")
    if (sysfs / "partition").exists():
        return (sysfs.resolve().parent / "dev").read_text().strip()
    if sysfs.exists():
        return f"{os.major(dev)}:{os.minor(dev)}"
    for disk in Path("/sys/block").iterdir():  # an overlay/bind mount: its first real disk
        if not disk.name.startswith(("loop", "zram", "ram")):
            return (disk / "dev").read_text().strip()
    raise OSError(2, "no block device")


def step_lookup(work: Path, n: int, samples: int, cold: int, iops: int, bps: int) -> dict:
    from sentinel.trust.store import StoreTrust

    rng = random.Random(7)
    out: dict = {}
    with StoreTrust(work / "data") as trust:
        status = trust.status()
        assert status is not None
        files = trust._snap.status_files
        # warm = every page of the status files in the page cache: read them once.  The
        # base file after a delta is the one the previous step's cold lookups evicted, so
        # without this the "warm" lookups after the delta were mostly disk reads.
        for f in files:
            _read_through(f.path)
        lat, own = [], []
        hits = 0
        for k in range(samples):
            i = rng.randrange(n) if k % 2 == 0 else n * 10 + k  # half hits, half misses
            q = _queued_ns()
            t = time.perf_counter_ns()
            e = status.lookup_document("P", "XXA", _number(i))
            dt = time.perf_counter_ns() - t
            lat.append(dt)
            own.append(max(0, dt - (_queued_ns() - q)))
            hits += e is not None
        out.update(
            warm_median_us=_pct(lat, 0.5),
            warm_p99_us=_pct(lat, 0.99),
            warm_p99_unqueued_us=_pct(own, 0.99),
            hits=hits,
        )
        out["throttle"] = _throttle(iops, bps) if cold and iops > 0 else "page cache evicted"
        out["files"] = len(files)
        gap = _gap(iops) if out["throttle"].startswith("blkio") else 0
        lat, own = [], []
        before = _io()
        start = time.perf_counter_ns()
        for k in range(cold):
            i = rng.randrange(n) if k % 2 == 0 else n * 10 + k
            _pace(start + k * gap)
            for f in files:
                f.evict()
            q = _queued_ns()
            t = time.perf_counter_ns()
            status.lookup_document("P", "XXA", _number(i))
            dt = time.perf_counter_ns() - t
            lat.append(dt)
            own.append(max(0, dt - (_queued_ns() - q)))
        after = _io()
        if lat:
            out.update(
                cold_median_us=_pct(lat, 0.5),
                cold_p99_us=_pct(lat, 0.99),
                cold_p99_unqueued_us=_pct(own, 0.99),
                # what the lookups asked of the disk (/proc/self/io), per lookup
                cold_read_bytes=(after["read_bytes"] - before["read_bytes"]) / cold,
                cold_reads=(after["syscr"] - before["syscr"]) / cold - 2,  # less 2 schedstat
            )
            out.update(_disk_floor(files[0], cold, rng, gap))
    out["peak_mb"] = _peak_mb()
    return out


def _read_through(path: Path) -> None:
    """Read a file once, start to end, so that its pages are in the page cache."""
    with path.open("rb", buffering=0) as f:
        while f.read(1 << 20):
            pass


def _pct(ns: list[int], q: float) -> float:
    """The q-quantile of nanosecond samples, in µs (the bench's p99: index 0.99·n)."""
    s = sorted(ns)
    return s[min(len(s) - 1, int(len(s) * q))] / 1000


_SCHED: list[int] = []


def _queued_ns() -> int:
    """Nanoseconds this thread has waited on a run queue (runnable, not running):
    /proc/thread-self/schedstat, field 2, by one ``pread`` (subtracted from the read
    count); 0 where the kernel does not say."""
    try:
        if not _SCHED:
            _SCHED.append(os.open("/proc/thread-self/schedstat", os.O_RDONLY))
        return int(os.pread(_SCHED[0], 256, 0).split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def _io() -> dict[str, int]:
    rows = (line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())
    return {k: int(v) for k, v in rows}


def _gap(iops: int) -> int:
    """Nanoseconds between the starts of two cold lookups under a throttle of ``iops``.

    The cgroup-v1 throttle admits ``iops / 10`` reads per 100 ms slice and holds the next
    one to the slice's end: read back to back (~5000 a second here), every 150th read at
    1500 IOPS waited 60-75 ms, which is the bench's own queue behind the card's IOPS
    limit, not a door's lookup (seconds apart). Cold lookups start 1.5 / iops apart."""
    return int(1.5e9 / iops) if iops > 0 else 0


def _pace(t_ns: int) -> None:
    """Wait until ``perf_counter_ns() >= t_ns``, spinning: sleeping between lookups on
    this VM added the vCPU's wake-up to each read (cold median 107 -> 273 µs)."""
    while time.perf_counter_ns() < t_ns:
        pass


def _disk_floor(f, samples: int, rng: random.Random, gap: int = 0) -> dict:
    """The disk's own latency for the read a cold lookup makes: one 4 KiB ``O_DIRECT``
    read of a random page of the same file (no page cache at all), same throttle and
    the same spacing as the cold lookups."""
    import mmap

    try:
        fd = os.open(f.path, os.O_RDONLY | os.O_DIRECT)
    except OSError:  # a file system without O_DIRECT (tmpfs)
        return {}
    buf = mmap.mmap(-1, 4096)  # page-aligned, as O_DIRECT wants
    lat = []
    try:
        start = time.perf_counter_ns()
        for k in range(samples):
            page = 1 + rng.randrange(f.pages)
            _pace(start + k * gap)
            t = time.perf_counter_ns()
            os.preadv(fd, [buf], 4096 * page)
            lat.append(time.perf_counter_ns() - t)
    finally:
        os.close(fd)
    lat.sort()
    return {
        "disk_median_us": statistics.median(lat) / 1000,
        "disk_p99_us": lat[int(len(lat) * 0.99)] / 1000,
    }


def step_kdf(samples: int) -> dict:
    """The production tag (Argon2id, statusset.DEFAULT_KDF): one per new identity at the
    authority, one per presented document on the device, one per guess for an attacker."""
    from sentinel.trust import statusset as ss

    key = os.urandom(32)
    lat = []
    for i in range(samples):
        t = time.perf_counter()
        ss.tag(key, f"doc|I|CHN|11010519830715{i:04d}".encode(), ss.DEFAULT_KDF)
        lat.append(time.perf_counter() - t)
    return {"median_ms": statistics.median(lat) * 1000, "kdf": ss.DEFAULT_KDF}


def _run(step: str, work: Path, *extra: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--step", step, "--work", str(work), *extra],
        check=True,
        stdout=subprocess.PIPE,  # stderr passes through: the progress bars show on a tty
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench(n: int, args: argparse.Namespace) -> dict:
    from sentinel.authority.publish import generate_root_key, write_root_key

    work = Path(tempfile.mkdtemp(prefix=f"bench-trust-{n}-", dir=args.workdir))
    common = ["--kdf", args.kdf, "--workers", str(args.workers)]
    try:
        write_root_key(generate_root_key(), work / "root_key.pem", work / "root_pub.pem")
        _write_csv(work / "status1.csv", n, 1)
        _write_csv(work / "status2.csv", n, 2)
        base = _run("baseline", work) if n <= args.baseline_max else None
        pub1 = _run("publish", work, "--version", "1", *common)
        app1 = _run("apply", work)
        look = _run(
            "lookup", work, "--n", str(n), "--samples", str(args.samples),
            "--cold", str(args.cold), "--sd-iops", str(args.sd_iops), "--sd-bps", str(args.sd_bps),
        )  # fmt: skip
        pub2 = _run("publish", work, "--version", "2", *common)
        app2 = _run("apply", work)
        look2 = _run(
            "lookup", work, "--n", str(n), "--samples", str(args.samples),
            "--cold", str(args.cold), "--sd-iops", str(args.sd_iops), "--sd-bps", str(args.sd_bps),
        )  # fmt: skip
        disk = sum(p.stat().st_size for p in (work / "data" / "trust" / "status").iterdir())
        return {
            "n": n,
            "baseline_s": base["seconds"] if base else None,
            "baseline_cpu_s": base["cpu_seconds"] if base else None,
            "publish_s": pub1["seconds"],
            "publish_cpu_s": pub1["cpu_seconds"],
            "load_avg": os.getloadavg()[0],
            "publish_peak_mb": pub1["peak_mb"],
            "wire_B_per_entry": pub1["status_bytes"] / n,
            "disk_B_per_entry": pub1["status_raw_bytes"] / n,
            "apply_full_s": app1["seconds"],
            "apply_full_peak_mb": app1["peak_mb"],
            "lookup_warm_median_us": look["warm_median_us"],
            "lookup_warm_p99_us": look["warm_p99_us"],
            "lookup_cold_median_us": look.get("cold_median_us"),
            "lookup_cold_p99_us": look.get("cold_p99_us"),
            "lookup_hits": look["hits"],
            "lookup_throttle": look["throttle"],
            "lookup_cold_read_bytes": look.get("cold_read_bytes"),
            "lookup_warm_p99_unqueued_us": look["warm_p99_unqueued_us"],
            "lookup_cold_p99_unqueued_us": look.get("cold_p99_unqueued_us"),
            "lookup_cold_reads": look.get("cold_reads"),
            "disk_median_us": look.get("disk_median_us", float("nan")),
            "disk_p99_us": look.get("disk_p99_us", float("nan")),
            "overlay_lookup_warm_p99_us": look2["warm_p99_us"],
            "overlay_lookup_cold_p99_us": look2.get("cold_p99_us"),
            "overlay_lookup_cold_reads": look2.get("cold_reads"),
            "overlay_lookup_cold_read_bytes": look2.get("cold_read_bytes"),
            "overlay_disk_p99_us": look2.get("disk_p99_us", float("nan")),
            "overlay_files": look2["files"],
            "publish_delta_s": pub2["seconds"],
            "delta_entries": pub2["delta_entries"],
            "delta_bytes": pub2["delta_bytes"],
            "delta_B_per_changed_entry": pub2["delta_bytes"] / max(1, pub2["delta_entries"]),
            "delta_vs_full_bytes": pub2["delta_bytes"] / pub1["status_bytes"],
            "apply_delta_s": app2["seconds"],
            "apply_delta_peak_mb": app2["peak_mb"],
            "delta_vs_full_apply_time": app2["seconds"] / app1["seconds"],
            "disk_after_delta_B_per_entry": disk / pub2["count"],
        }
    finally:
        if args.keep is False:
            shutil.rmtree(work, ignore_errors=True)
        if CGROUP.exists():
            with contextlib.suppress(OSError):
                CGROUP.rmdir()


def _line(r: dict) -> str:
    base = f"{r['baseline_s']:.1f}" if r["baseline_s"] is not None else "-"
    cold = f"{r['lookup_cold_p99_us']:.0f}" if r["lookup_cold_p99_us"] is not None else "-"
    return (
        f"trust {r['n']}: build {r['publish_s']:.1f} s (baseline {base} s), "
        f"apply {r['apply_full_s']:.1f} s peak RSS {r['apply_full_peak_mb']:.0f} MB, "
        f"delta1% apply {r['apply_delta_s']:.2f} s, "
        f"lookup p99 warm {r['lookup_warm_p99_us']:.0f} µs cold {cold} µs"
    )


def _bars(r: dict) -> str:
    """Issue #21's lookup bar (p99 < 1 ms, warm and cold) on the base alone and after
    the delta (base + overlay: the usual state of a device), each said to pass or not."""
    out = []
    for name, w, c in (
        ("base", r["lookup_warm_p99_us"], r["lookup_cold_p99_us"]),
        (
            f"after the delta ({r['overlay_files']} files)",
            r["overlay_lookup_warm_p99_us"],
            r["overlay_lookup_cold_p99_us"],
        ),
    ):
        cold = f"{c:.0f}" if c is not None else "-"
        ok = w < 1000 and c is not None and c < 1000
        out.append(f"{name}: warm {w:.0f} µs cold {cold} µs {'PASS' if ok else 'FAIL'}")
    return "bar lookup p99 < 1 ms: " + "; ".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000_000])
    ap.add_argument("--samples", type=int, default=20000, help="warm lookups timed per size")
    ap.add_argument("--cold", type=int, default=2000, help="cold lookups timed per size")
    ap.add_argument("--baseline-max", type=int, default=10_000_000)
    ap.add_argument("--kdf", choices=["aes-cbc-mac", "argon2id"], default="aes-cbc-mac")
    ap.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="processes parsing and tagging CSV blocks (default: the CPUs, as `publish build`)",
    )
    ap.add_argument("--sd-iops", type=int, default=1500)
    ap.add_argument("--sd-bps", type=int, default=40_000_000)
    ap.add_argument("--workdir", type=Path, default=None, help="where to put temp files")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--step", help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--version", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.step:
        if args.step == "baseline":
            r = step_baseline(args.work)
        elif args.step == "publish":
            r = step_publish(args.work, args.version, args.kdf, args.workers)
        elif args.step == "apply":
            r = step_apply(args.work)
        elif args.step == "kdf":
            r = step_kdf(args.samples)
        else:
            r = step_lookup(args.work, args.n, args.samples, args.cold, args.sd_iops, args.sd_bps)
        print(json.dumps(r))
        return 0
    results = []
    for n in args.sizes:
        r = bench(n, args)
        results.append(r)
        if not args.json:
            print(_line(r), flush=True)
            base = r["baseline_cpu_s"]
            ratio = f"{r['baseline_s'] / r['publish_s']:.1f}x" if base is not None else "-"
            print(
                f"  build {ratio} faster (wall); CPU {r['publish_cpu_s']:.1f} s"
                + (f" against {base:.1f} s ({base / r['publish_cpu_s']:.1f}x)" if base else "")
                + f"; {args.workers} worker(s), load average {r['load_avg']:.1f}"
                + f" on {os.cpu_count()} CPUs",
                flush=True,
            )
            print(
                f"  wire {r['wire_B_per_entry']:.2f} B/entry (disk {r['disk_B_per_entry']:.2f}), "
                f"1% delta {r['delta_entries']:,} entries = {r['delta_bytes']:,} B "
                f"({r['delta_B_per_changed_entry']:.1f} B/entry, "
                f"{r['delta_vs_full_bytes']:.1%} of full), delta apply "
                f"{r['delta_vs_full_apply_time']:.1%} of full, "
                f"peak {r['apply_delta_peak_mb']:.0f} MB; cold reads: {r['lookup_throttle']}",
                flush=True,
            )
            if r["lookup_cold_p99_us"] is not None:
                print(
                    f"  lookup p99 less the time spent waiting for a CPU (schedstat): warm "
                    f"{r['lookup_warm_p99_unqueued_us']:.0f} µs, cold "
                    f"{r['lookup_cold_p99_unqueued_us']:.0f} µs; cold median "
                    f"{r['lookup_cold_median_us']:.0f} µs",
                    flush=True,
                )
                print(
                    f"  cold lookup: {r['lookup_cold_reads']:.2f} reads, "
                    f"{r['lookup_cold_read_bytes']:.0f} B from the disk a lookup; the disk's "
                    f"own 4 KiB O_DIRECT read: median {r['disk_median_us']:.0f} µs, p99 "
                    f"{r['disk_p99_us']:.0f} µs; after the delta ({r['overlay_files']} files): "
                    f"p99 warm {r['overlay_lookup_warm_p99_us']:.0f} µs cold "
                    f"{r['overlay_lookup_cold_p99_us']:.0f} µs, "
                    f"{r['overlay_lookup_cold_reads']:.2f} reads, "
                    f"{r['overlay_lookup_cold_read_bytes']:.0f} B a lookup; the disk's own "
                    f"p99 then {r['overlay_disk_p99_us']:.0f} µs",
                    flush=True,
                )
            print("  " + _bars(r), flush=True)
    kdf = _run("kdf", Path("."), "--samples", "20")
    if args.json:
        print(json.dumps({"sizes": results, "kdf": kdf}, indent=1))
    else:
        print(f"  kdf {kdf['kdf']['alg']}: {kdf['median_ms']:.1f} ms per tag (median of 20)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
