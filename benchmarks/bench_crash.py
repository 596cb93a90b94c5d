"""SIGKILL at random points: nothing happens without its audit entry; two writers at once.

    python benchmarks/bench_crash.py --kills 300            # each target, ~10 min shared
    python benchmarks/bench_crash.py --kills 20 --targets override

Targets (each a forked child killed after a uniform random delay once it is ready):

- ``override``: ``record_override`` in a loop (journal row + owed audit entry, then the
  chain).  After each kill the next start (``recover``) must leave every journaled
  override with exactly one chain entry, every acknowledged override journaled, the
  chain whole (review D4).
- ``bundle``: ``sentinel sync --from`` of successive bundle versions.  After each kill
  and the next start (``finish_bundle_audit``) the applied version has exactly one
  ``bundle_applied`` entry and no manifest is audited twice (review D3).
- ``two``: a daemon-like journal writer (events + overrides) and a CLI command on the
  same data directory at once (purge, sync or override, at random), both killed at
  random: no acknowledged event lost, no broken chain, no gap after the next start.

Last line: ``crash: <n> kills, <a> acknowledged, lost <x>, gaps <g>, chain failures <y>``
(``repaired`` counts the kills that did land between a write and its audit entry).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sentinel.config import Config, replace  # noqa: E402
from sentinel.credentials.dcc_schema import warm  # noqa: E402
from sentinel.credentials.trustlist import TrustList  # noqa: E402
from sentinel.errors import AuditError  # noqa: E402
from sentinel.journal import Event, Journal  # noqa: E402
from sentinel.journal.audit import open_audit  # noqa: E402
from sentinel.journal.pending import gaps, recover  # noqa: E402
from sentinel.journal.purge import run_purge  # noqa: E402


class _Gate:
    """Stands in for the relay: the override's act is counted, nothing else."""

    def override(self) -> None:
        pass

    def admit(self) -> None:
        pass

    def refuse(self) -> None:
        pass


def _child(fn: Any) -> tuple[int, int]:
    """Fork ``fn(write_fd)``; return (pid, read fd)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        code = 0
        try:
            fn(w)
        except BaseException:  # noqa: BLE001 - a child must never return into pytest
            import traceback

            traceback.print_exc()
            code = 1
        os._exit(code)
    os.close(w)
    return pid, r


def _say(fd: int, line: str) -> None:
    os.write(fd, (line + "\n").encode())


def _read_ready(fd: int) -> None:
    buf = b""
    while not buf.startswith(b"ready\n"):
        chunk = os.read(fd, 1)
        if not chunk:
            raise RuntimeError("child died before it was ready")
        buf += chunk


def _drain(fd: int) -> list[str]:
    out = b""
    while chunk := os.read(fd, 65536):
        out += chunk
    os.close(fd)
    return out.decode().split()


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


# -- children ---------------------------------------------------------------------------


def _overrides(data: Path, w: int, n: int = 10_000) -> None:
    from sentinel.gate.override import OverrideRequest, record_override
    from sentinel.pipeline import Pipeline
    from sentinel.trust import StaticTrust

    cfg = replace(Config(), data_dir=str(data))
    journal = Journal(data / "journal.db")
    pipe = Pipeline(cfg, StaticTrust(TrustList()), _Gate(), journal)
    req = OverrideRequest.parse("paper", "staff-07")
    _say(w, "ready")
    for _ in range(n):
        _say(w, "ack:" + record_override(req, gate=_Gate(), pipeline=pipe, data_dir=data))


def _events(data: Path, w: int, n: int = 100_000) -> None:
    journal = Journal(data / "journal.db")
    _say(w, "ready")
    now = datetime.now(UTC)
    for i in range(n):
        old = i % 5 == 0  # a day the concurrent purge removes: not counted as kept
        ev = Event(now - timedelta(days=30 if old else 0), "v", "g", "refuse", "EXPIRED", "dcc")
        eid = journal.record(ev, personal={"display_name": f"P{i}"})
        _say(w, ("old:" if old else "ack:") + eid)


def _syncs(data: Path, sites: list[Path], root_pub: Any, w: int) -> None:
    from sentinel.trust.store import BundleStore
    from sentinel.trust.sync import DirSource, Syncer

    _say(w, "ready")
    with BundleStore(data) as store:
        for site in sites:
            r = Syncer(store, DirSource(site), root_key=root_pub).sync()
            _say(w, f"applied:{r.outcome}:{r.version}")


# -- checks -----------------------------------------------------------------------------


def _next_start(data: Path) -> int:
    """What the daemon does at start for audit gaps; return entries repaired."""
    from sentinel.trust.store import BundleStore
    from sentinel.trust.sync import finish_bundle_audit

    n = 0
    with Journal(data / "journal.db") as j, open_audit(data) as a:
        n += recover(j, a)
    if BundleStore.exists(data):
        with BundleStore(data) as st, st.exclusive():
            n += int(finish_bundle_audit(st))
    return n


def _check(data: Path, acked: set[str]) -> tuple[int, int, int]:
    """(lost, gaps, chain failures) after the next start."""
    lost = gap = bad = 0
    with Journal(data / "journal.db") as j, open_audit(data) as a:
        ids = {r[0] for r in j.conn.execute("SELECT event_id FROM events")}
        lost = len(acked - ids)
        entries = a.entries()
        try:
            a.verify()
        except AuditError as exc:
            print(f"chain failure: {exc}", file=sys.stderr)
            bad += 1
        found = gaps(j, entries, data)
        over = [
            json.loads(e["details"]).get("event_id") for e in entries if e["kind"] == "override"
        ]
        bundles = [
            json.loads(e["details"]).get("manifest_sha256")
            for e in entries
            if e["kind"] == "bundle_applied"
        ]
        dup = (len(over) - len(set(over))) + (len(bundles) - len(set(bundles)))
        if found or dup:
            print(f"gap: {found} duplicates {dup}", file=sys.stderr)
        gap = len(found) + dup
    return lost, gap, bad


def _sites(base: Path, n: int) -> tuple[list[Path], Any]:
    from sentinel.authority.testing import build_test_bundle

    key = None
    sites = []
    b = None
    for v in range(1, n + 1):
        b = build_test_bundle(
            base / f"site{v}", root_key=key, version=v, revocations=[f"r{v}"], status=None
        )
        key = b.root_key
        sites.append(b.site)
    assert b is not None
    return sites, b.root_public


# -- targets ----------------------------------------------------------------------------


def run(target: str, kills: int, base: Path, rng: random.Random) -> dict[str, int]:
    tot = {"kills": 0, "acknowledged": 0, "lost": 0, "gaps": 0, "chain": 0, "repaired": 0}
    warm()  # DCC schemas compiled once here, inherited by every forked child
    sites, root_pub = _sites(base / "pub", 25) if target in ("bundle", "two") else ([], None)
    data = base / "data0"
    acked: set[str] = set()
    for k in range(kills):
        if k % 25 == 0:  # a fresh data directory now and then; each gathers crashes
            data = base / f"data{k}"
            data.mkdir(parents=True)
            tot["acknowledged"] += len(acked)
            acked = set()
        children = []
        if target == "override":
            children.append((_child(lambda w, d=data: _overrides(d, w)), rng.uniform(0, 0.25)))
        elif target == "bundle":
            cur = _current(data)
            todo = [s for i, s in enumerate(sites, 1) if i > cur] or sites[-1:]
            children.append(
                (_child(lambda w, d=data, t=todo: _syncs(d, t, root_pub, w)), rng.uniform(0, 0.4))
            )
        else:
            children.append((_child(lambda w, d=data: _events(d, w)), rng.uniform(0, 0.3)))
            other = rng.choice(["purge", "override", "sync"])
            if other == "purge":
                fn: Any = lambda w, d=data: (  # noqa: E731
                    _say(w, "ready"),
                    run_purge(d, retention_days=14, aggregate_days=400),
                )
            elif other == "override":
                fn = lambda w, d=data: _overrides(d, w)  # noqa: E731
            else:
                cur = _current(data)
                todo = [s for i, s in enumerate(sites, 1) if i > cur] or sites[-1:]
                fn = lambda w, d=data, t=todo: _syncs(d, t, root_pub, w)  # noqa: E731
            children.append((_child(fn), rng.uniform(0, 0.3)))
        for (_pid, fd), _delay in children:
            with contextlib.suppress(RuntimeError):  # died at start: counted as a kill
                _read_ready(fd)
        t0 = time.monotonic()
        for (pid, fd), delay in sorted(children, key=lambda c: c[1]):
            left = delay - (time.monotonic() - t0)
            if left > 0:
                time.sleep(left)  # the fault injection itself, not a synchronisation
            _kill(pid)
            tot["kills"] += 1
            lines = _drain(fd)
            acked |= {x[4:] for x in lines if x.startswith("ack:")}
            applied = [int(x.split(":")[2]) for x in lines if x.startswith("applied:applied:")]
            tot["acknowledged"] += len(applied)
            if applied and _current(data) < max(applied):  # reported applied, then gone
                tot["lost"] += 1
        tot["repaired"] += _next_start(data)
        lost, gap, bad = _check(data, acked)
        tot["lost"] += lost
        tot["gaps"] += gap
        tot["chain"] += bad
    tot["acknowledged"] += len(acked)
    return tot


def _current(data: Path) -> int:
    db = data / "trust" / "store.db"
    if not db.exists():
        return 0
    con = sqlite3.connect(db)
    try:
        row = con.execute("SELECT value FROM meta WHERE key='version'").fetchone()
    except sqlite3.Error:
        return 0
    finally:
        con.close()
    return int(row[0]) if row else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--kills", type=int, default=300, help="kills per target (default 300)")
    ap.add_argument("--two-kills", type=int, default=None, help="kills for 'two' (default --kills)")
    ap.add_argument("--targets", default="override,bundle,two")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--dir", type=Path, default=None)
    args = ap.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    totals = {"kills": 0, "acknowledged": 0, "lost": 0, "gaps": 0, "chain": 0, "repaired": 0}
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for target in args.targets.split(","):
            t0 = time.monotonic()
            n = args.two_kills if target == "two" and args.two_kills is not None else args.kills
            r = run(target, n, Path(tmp) / target, rng)
            print(
                f"{target}: {r['kills']} kills, {r['acknowledged']} acknowledged, lost "
                f"{r['lost']}, gaps {r['gaps']}, chain failures {r['chain']}, repaired at "
                f"start {r['repaired']} ({time.monotonic() - t0:.0f} s, seed {seed})",
                flush=True,
            )
            for k in totals:
                totals[k] += r[k]
    print(
        f"crash: {totals['kills']} kills, {totals['acknowledged']} acknowledged, lost "
        f"{totals['lost']}, gaps {totals['gaps']}, chain failures {totals['chain']}"
    )
    return 0 if totals["lost"] == totals["gaps"] == totals["chain"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
