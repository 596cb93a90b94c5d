"""Journal benchmark: write rate (synchronous=NORMAL vs FULL), purge time for a day of
events, database size per event.

    .venv/bin/python benchmarks/bench_journal.py                 # full sizes
    .venv/bin/python benchmarks/bench_journal.py --events 200 --day-events 2000 --repeat 1

Each write is one ``Journal.record`` with encrypted personal fields (its own
transaction, as the pipeline does).  The purge day is built with ``record_many`` and
purged with the real ``purge`` (keys destroyed, rows deleted, WAL truncated, vacuum).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sentinel.journal import Event, Journal, Personal  # noqa: E402
from sentinel.journal.audit import open_audit  # noqa: E402
from sentinel.journal.purge import purge  # noqa: E402

T0 = datetime(2022, 5, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def _event(t: datetime, i: int) -> tuple[Event, Personal]:
    return (
        Event(t, "venue-1", f"gate-{i % 3}", "refuse", "EXPIRED", "dcc_vaccination", "42"),
        Personal(f"M******** E****, {1950 + i % 50}", "", f"{i % 977:032x}"),
    )


def write_rate(root: Path, n: int, synchronous: str) -> float:
    d = Path(tempfile.mkdtemp(dir=root))
    with Journal(d / "journal.db", synchronous=synchronous, clock=lambda: T0) as j:
        t = time.perf_counter()
        for i in range(n):
            e, p = _event(T0 + timedelta(milliseconds=i), i)
            j.record(e, personal=p)
        elapsed = time.perf_counter() - t
    shutil.rmtree(d)
    return n / elapsed


def build_day(root: Path, n: int) -> tuple[Path, int, int]:
    """A data dir with one old day of ``n`` events and one recent day; return sizes."""
    d = root / "day"
    clock_t = [datetime(2022, 4, 11, tzinfo=UTC)]  # 00:00 of a day 20 days before T0
    step = timedelta(seconds=86_000 / max(n, 1))  # the whole day, not past its midnight
    with Journal(d / "journal.db", clock=lambda: clock_t[0], retention_days=14) as j:
        for start in range(0, n, 10000):
            j.record_many(
                _event(clock_t[0] + i * step, i) for i in range(start, min(n, start + 10000))
            )
        clock_t[0] = T0
        j.record_many(_event(T0 + timedelta(seconds=i), i) for i in range(1000))
    open_audit(d).close()
    db_bytes = (d / "journal.db").stat().st_size
    return d, db_bytes, n + 1000


def purge_time(template: Path, root: Path) -> tuple[float, float]:
    d = root / "purge-run"
    shutil.rmtree(d, ignore_errors=True)
    shutil.copytree(template, d)
    before = (d / "journal.db").stat().st_size
    with (
        Journal(d / "journal.db", clock=lambda: T0, retention_days=14) as j,
        open_audit(d) as audit,
    ):
        t = time.perf_counter()
        r = purge(j, audit, retention_days=14, aggregate_days=400, now=T0)
        elapsed = time.perf_counter() - t
    assert r.keys_destroyed == 1 and r.wal_truncated, r
    after = (d / "journal.db").stat().st_size
    shutil.rmtree(d)
    return elapsed, before / max(after, 1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--events", type=int, default=2000, help="events per write-rate run")
    ap.add_argument("--day-events", type=int, default=100_000, help="events in the purged day")
    ap.add_argument("--repeat", type=int, default=3, help="runs per figure (median)")
    ap.add_argument("--dir", default=None, help="where to put the databases (default: temp)")
    args = ap.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="bench-journal-", dir=args.dir))
    try:
        print(f"journal benchmark in {root} (median of {args.repeat})")
        rates = {}
        for sync in ("NORMAL", "FULL"):
            runs = [write_rate(root, args.events, sync) for _ in range(args.repeat)]
            rates[sync] = statistics.median(runs)
            print(
                f"  write rate synchronous={sync:<6}: {rates[sync]:9.0f} events/s "
                f"({args.events} records, each its own transaction)"
            )
        print(f"  NORMAL/FULL ratio: {rates['NORMAL'] / rates['FULL']:.1f}x")
        t = time.perf_counter()
        template, db_bytes, total = build_day(root, args.day_events)
        build_s = time.perf_counter() - t
        print(
            f"  built a day of {args.day_events} events in {build_s:.1f} s "
            f"(batches of 10,000: {args.day_events / build_s:.0f} events/s)"
        )
        print(
            f"  database size per event: {db_bytes / total:.0f} bytes "
            f"(journal.db {db_bytes / 1e6:.1f} MB for {total} events with personal fields)"
        )
        runs = [purge_time(template, root) for _ in range(args.repeat)]
        med = statistics.median(r[0] for r in runs)
        print(
            f"  purge of that day: {med:.2f} s median "
            f"({[round(r[0], 2) for r in runs]}); file shrank {runs[0][1]:.0f}x by vacuum"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
