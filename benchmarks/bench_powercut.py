"""Power cuts, simulated honestly: journal, purge, bundle apply and outbox on a file system
that loses everything not yet fsync'ed (tests/powercut_fs.py, modelled on SQLite's
crash-simulating test VFS, src/test6.c).

    python benchmarks/bench_powercut.py --cuts 500                   # synchronous=FULL
    python benchmarks/bench_powercut.py --cuts 200 --synchronous NORMAL

Each cut: a forked child works on the data directory on the FUSE mount (one of: journal
writer with the fleet outbox hook, purge, bundle sync, override), acknowledging on a
pipe what the API reported done; after a uniform random delay it is SIGKILLed and the
power is cut (half the cuts with torn, reordered unsynced sectors).  Then, on what
"survived":

- integrity: ``PRAGMA integrity_check`` of journal, key store, audit log, bundle store;
- lost: an acknowledged event (row, outbox row, decryptable personal fields), an
  acknowledged override, a bundle version reported applied, a day reported purged
  whose key came back — any of them missing;
- audit: after the next start (owed entries written) the chain verifies and
  ``audit verify``'s cross-checks find no gap.

Last line: ``powercut: <n> cuts, <a> acknowledged, lost <x>, integrity failures <y>,
audit failures <z>``.  Needs root for FUSE here (or a user allowed to mount), /dev/fuse,
fusermount3 (Debian fuse3) and mfusepy.
"""

from __future__ import annotations

import argparse
import contextlib
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
from sentinel.errors import SentinelError  # noqa: E402
from sentinel.journal import Event, Journal  # noqa: E402
from sentinel.journal.audit import open_audit  # noqa: E402
from sentinel.journal.pending import gaps, recover  # noqa: E402
from sentinel.journal.purge import run_purge  # noqa: E402
from tests.powercut_fs import PowercutFS  # noqa: E402

TARGETS = ("journal", "journal", "purge", "bundle", "override")
DBS = ("journal.db", "journal-keys.db", "audit.db", "trust/store.db")


class _Gate:
    def override(self) -> None:
        pass


def _say(fd: int, line: str) -> None:
    os.write(fd, (line + "\n").encode())


# -- children (forked; run until SIGKILLed) ---------------------------------------------


def _journal(data: Path, sync: str, w: int, rng: random.Random) -> None:
    from sentinel.fleet.outbox import Outbox

    j = Journal(data / "journal.db", synchronous=sync)
    out = Outbox(j.path, "dev-1")
    j.hooks.append(out.hook)
    _say(w, "ready")
    now = datetime.now(UTC)
    for i in range(1_000_000):
        old = rng.random() < 0.1  # an expired day: its key is created, the purge removes it
        t = now - timedelta(days=rng.randint(20, 40) if old else 0, seconds=i)
        eid = j.record(
            Event(t, "v", "g", "refuse", "EXPIRED", "dcc"), personal={"pseudonym": f"p{i}"}
        )
        _say(w, f"{'old' if old else 'ev'}:{eid}")


def _purge(data: Path, sync: str, w: int, rng: random.Random) -> None:
    with Journal(data / "journal.db", synchronous=sync):
        pass
    _say(w, "ready")
    while True:
        r = run_purge(data, retention_days=14, aggregate_days=400)
        for d in r.days:
            _say(w, f"purged:{d.isoformat()}")
        _journal(data, sync, w, rng)  # then more events (and expired days) until killed


def _bundle(data: Path, sites: list[Path], root_pub: Any, w: int) -> None:
    from sentinel.trust.store import BundleStore
    from sentinel.trust.sync import DirSource, Syncer

    _say(w, "ready")
    with BundleStore(data) as store:
        for site in sites:
            r = Syncer(store, DirSource(site), root_key=root_pub).sync()
            if r.outcome == "applied":
                _say(w, f"bundle:{r.version}")


def _override(data: Path, sync: str, w: int) -> None:
    from sentinel.gate.override import OverrideRequest, record_override
    from sentinel.pipeline import Pipeline
    from sentinel.trust import StaticTrust

    cfg = replace(Config(), data_dir=str(data))
    j = Journal(data / "journal.db", synchronous=sync)
    pipe = Pipeline(cfg, StaticTrust(TrustList()), _Gate(), j)
    req = OverrideRequest.parse("paper", "staff-07")
    _say(w, "ready")
    while True:
        _say(w, "ev:" + record_override(req, gate=_Gate(), pipeline=pipe, data_dir=data))


def _fork(fn: Any) -> tuple[int, int]:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            fn(w)
        except BaseException:  # noqa: BLE001
            import traceback

            traceback.print_exc()
        os._exit(1)
    os.close(w)
    return pid, r


def _lines(fd: int) -> list[str]:
    buf = b""
    while chunk := os.read(fd, 65536):
        buf += chunk
    os.close(fd)
    return buf.decode().split()


# -- checks -----------------------------------------------------------------------------


def _integrity(data: Path) -> list[str]:
    bad = []
    for name in DBS:
        p = data / name
        if not p.exists():
            continue
        try:
            con = sqlite3.connect(p)
            try:
                res = con.execute("PRAGMA integrity_check").fetchone()[0]
            finally:
                con.close()
        except sqlite3.Error as exc:
            res = str(exc)
        if res != "ok":
            bad.append(f"{name}: {res}")
    return bad


def _lost(data: Path, acked: dict[str, set[str]]) -> list[str]:
    out: list[str] = []
    if acked["ev"] and not (data / "journal.db").exists():
        return [f"journal.db gone ({len(acked['ev'])} acknowledged events)"]
    if (data / "journal.db").exists():
        with Journal(data / "journal.db") as j:
            ids = {r[0] for r in j.conn.execute("SELECT event_id FROM events")}
            has_outbox = j.conn.execute(
                "SELECT count(*) FROM sqlite_master WHERE name='outbox'"
            ).fetchone()[0]
            queued = (
                {r[0] for r in j.conn.execute("SELECT event_id FROM outbox")}
                if has_outbox
                else set()
            )
            for eid in acked["ev"] - ids:
                out.append(f"event {eid}")
            for eid in acked["outbox"] - queued:
                out.append(f"outbox row of {eid}")
            for eid in sorted(acked["personal"] & ids)[-20:]:
                if j.personal(eid) is None:
                    out.append(f"personal fields of {eid}")
            days = {d.isoformat() for d in j.keys.days()}
            for d in acked["purged"] & days:
                out.append(f"day {d} reported purged, its key is back")
    if acked["bundle"]:
        want = max(int(v) for v in acked["bundle"])
        have = _bundle_version(data)
        if have < want:
            out.append(f"bundle version {want} reported applied, store holds {have}")
    return out


def _bundle_version(data: Path) -> int:
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


def _audit(data: Path) -> list[str]:
    """The next start (owed entries written), then the chain and the cross-checks."""
    from sentinel.trust.store import BundleStore, StoreTrust
    from sentinel.trust.sync import finish_bundle_audit

    if not (data / "journal.db").exists():
        return []
    try:
        with Journal(data / "journal.db") as j, open_audit(data) as a:
            recover(j, a)
        if BundleStore.exists(data):
            with BundleStore(data) as st, st.exclusive():
                finish_bundle_audit(st)
            with StoreTrust(data) as trust:
                trust.trust_list()  # the applied bundle loads whole
        with Journal(data / "journal.db") as j, open_audit(data) as a:
            a.verify()
            return gaps(j, a.entries(), data)
    except (SentinelError, sqlite3.Error, OSError, ValueError) as exc:
        return [f"{type(exc).__name__}: {exc}"]


def _sites(base: Path, n: int) -> tuple[list[Path], Any]:
    from sentinel.authority.testing import build_test_bundle

    key = None
    sites = []
    b = None
    for v in range(1, n + 1):
        b = build_test_bundle(base / f"site{v}", root_key=key, version=v, revocations=[f"r{v}"])
        key = b.root_key
        sites.append(b.site)
    assert b is not None
    return sites, b.root_public


# -- driver -----------------------------------------------------------------------------


def run(
    cuts: int, mount: Path, work: Path, sync: str, seed: int, quiet: bool = False
) -> dict[str, int]:
    rng = random.Random(seed)
    warm()  # DCC schemas compiled once here, inherited by every forked child
    sites, root_pub = _sites(work / "pub", max(4, cuts // 10 + 2))
    tot = {"cuts": 0, "acknowledged": 0, "lost": 0, "integrity": 0, "audit": 0}
    by_kind: dict[str, int] = {}  # what was lost: "event", "outbox row", "bundle", ...
    tot["by_kind"] = by_kind  # type: ignore[assignment]
    lost_seen: set[str] = set()  # each lost acknowledgement counted once
    with PowercutFS(mount) as fs:
        data = mount / "data0"
        acked: dict[str, set[str]] = {}
        for k in range(cuts):
            if k % 50 == 0:  # each data directory lives through 50 power cuts
                data = mount / f"data{k}"
                data.mkdir()
                lost_seen = set()
                os.sync()
                acked = {n: set() for n in ("ev", "outbox", "personal", "purged", "bundle")}
            target = rng.choice(TARGETS)
            child_rng = random.Random(rng.random())
            if target == "journal":
                fn: Any = lambda w, d=data, r=child_rng: _journal(d, sync, w, r)  # noqa: E731
            elif target == "purge":
                fn = lambda w, d=data, r=child_rng: _purge(d, sync, w, r)  # noqa: E731
            elif target == "bundle":
                have = _bundle_version(data)
                todo = [s for i, s in enumerate(sites, 1) if i > have] or sites[-1:]
                fn = lambda w, d=data, t=todo: _bundle(d, t, root_pub, w)  # noqa: E731
            else:
                fn = lambda w, d=data: _override(d, sync, w)  # noqa: E731
            pid, fd = _fork(fn)
            first = os.read(fd, 6)
            if first == b"ready\n":
                time.sleep(rng.uniform(0, 0.6))  # the fault injection itself
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            for line in _lines(fd):
                kind, _, value = line.partition(":")
                if kind == "ev":
                    acked["ev"].add(value)
                    if target in ("journal", "purge"):
                        acked["outbox"].add(value)
                        acked["personal"].add(value)
                    tot["acknowledged"] += 1
                elif kind in ("purged", "bundle"):
                    acked[kind].add(value)
                    tot["acknowledged"] += 1
            reorder = rng.randrange(1 << 30) if rng.random() < 0.5 else None
            fs.cut(reorder)
            tot["cuts"] += 1
            bad = _integrity(data)
            lost = _lost(data, acked) if not bad else []
            audit = _audit(data) if not bad else []
            new = sorted(set(lost) - lost_seen)
            lost_seen |= set(lost)
            tot["integrity"] += bool(bad)
            tot["lost"] += len(new)
            for item in new:
                kind = item.split(" ")[0] if not item.startswith("outbox") else "outbox row"
                by_kind[kind] = by_kind.get(kind, 0) + 1
            tot["audit"] += bool(audit)
            if (bad or audit or new) and not quiet:
                print(
                    f"cut {k} ({target}, reorder={reorder is not None}): {bad[:2]} "
                    f"lost {len(new)} {new[:2]} {audit[:2]}",
                    file=sys.stderr,
                )
    return tot


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--cuts", type=int, default=500)
    ap.add_argument("--synchronous", default="FULL", choices=("FULL", "NORMAL", "EXTRA"))
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--dir", type=Path, default=None, help="where the mount point goes")
    args = ap.parse_args(argv)
    why = PowercutFS.available()
    if why:
        print(f"bench_powercut: cannot run: {why}", file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        r = run(args.cuts, Path(tmp) / "mnt", Path(tmp) / "work", args.synchronous, seed)
    print(
        f"synchronous={args.synchronous}, seed {seed}, {time.monotonic() - t0:.0f} s "
        f"(shared machine); lost by kind: {r['by_kind'] or 'none'}"
    )
    print(
        f"powercut: {r['cuts']} cuts, {r['acknowledged']} acknowledged, lost {r['lost']}, "
        f"integrity failures {r['integrity']}, audit failures {r['audit']}"
    )
    return 0 if r["lost"] == r["integrity"] == r["audit"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
