"""Crash safety with real processes and SIGKILL.

The child prints a line after each committed step (purge) or acknowledged event
(journal); the parent reads the pipe and kills right after the k-th line, so the kill
lands while the child is inside the next step.  No sleeps.
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sentinel.journal import Event, Journal
from sentinel.journal.audit import open_audit
from sentinel.journal.purge import purge, retention_state

T0 = datetime(2022, 5, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
RETENTION = 3
OLD_DAYS = 4
OLD_PER_DAY = 200
NEW_PER_DAY = 40

PURGE_CHILD = """
import sys
from datetime import datetime
from sentinel.journal.purge import run_purge
print("ready", flush=True)
run_purge(sys.argv[1], retention_days=int(sys.argv[3]), aggregate_days=400,
          now=datetime.fromisoformat(sys.argv[2]), progress=lambda s: print(s, flush=True))
print("done", flush=True)
"""

WRITER_CHILD = """
import sys
from datetime import UTC, datetime
from sentinel.journal import Event, Journal, Personal
j = Journal(sys.argv[1])
print("ready", flush=True)
i = int(sys.argv[2])
while True:
    eid = j.record(Event(datetime.now(UTC), "v", "g", "refuse", "EXPIRED", "dcc"),
                   personal=Personal(display_name=f"N{i}"))
    print(eid, i, flush=True)  # acknowledged: record() returned
    i += 1
"""


class Clock:
    def __init__(self, t: datetime) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return self.t


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, set[str]]:
    """A data dir with OLD_DAYS expired days and RETENTION days inside the window."""
    d = tmp_path_factory.mktemp("template")
    clock = Clock(T0)
    kept: set[str] = set()
    with Journal(d / "journal.db", clock=clock, retention_days=RETENTION) as j:
        for k in range(RETENTION + OLD_DAYS - 1, -1, -1):
            clock.t = T0 - k * DAY
            n = OLD_PER_DAY if k >= RETENTION else NEW_PER_DAY
            ids = j.record_many(
                (
                    Event(clock.t + i * timedelta(seconds=5), "v", "g", "refuse", "EXPIRED", "c"),
                    {"display_name": f"D{k}-{i}", "pseudonym": f"p{i % 7}"},
                )
                for i in range(n)
            )
            if k < RETENTION:
                kept.update(ids)
    open_audit(d).close()  # device key created once, shared by every copy
    return d, kept


def _check_intact(data: Path, kept: set[str]) -> None:
    """The database opens, is consistent, and every event inside the window is there."""
    for name in ("journal.db", "journal-keys.db", "audit.db"):
        with sqlite3.connect(data / name) as c:
            assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with Journal(data / "journal.db", clock=Clock(T0), retention_days=RETENTION) as j:
        rows = j.query(T0 - RETENTION * DAY, T0 + DAY)
        assert {r["event_id"] for r in rows} >= kept
        for r in rows:
            if r["event_id"] in kept:
                p = j.personal(str(r["event_id"]))
                assert p is not None and p["display_name"].startswith("D")


def test_purge_killed_anywhere_completes_on_next_run(
    template: tuple[Path, set[str]], tmp_path: Path
) -> None:
    src, kept = template
    rng = random.Random(8)
    kill_points: list[int] = []
    for it in range(20):
        data = tmp_path / f"run{it}"
        shutil.copytree(src, data)
        k = rng.randint(1, 9)  # lines: ready, planned, destroyed, deleted, wal, audited x4
        with subprocess.Popen(
            [sys.executable, "-c", PURGE_CHILD, str(data), T0.isoformat(), str(RETENTION)],
            stdout=subprocess.PIPE,
            text=True,
        ) as proc:
            assert proc.stdout is not None
            lines = [proc.stdout.readline() for _ in range(k)]
            assert all(lines), "child ended early"
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        kill_points.append(k)

        _check_intact(data, kept)
        with (
            Journal(data / "journal.db", clock=Clock(T0), retention_days=RETENTION) as j,
            open_audit(data) as audit,
        ):
            purge(j, audit, retention_days=RETENTION, aggregate_days=400, now=T0)
            assert retention_state(j, RETENTION, T0).ok
            audit.verify()
            details = [json.loads(e["details"]) for e in audit.entries()]
            assert {r["event_id"] for r in j.events()} == kept
        days = [d for d in details if d["scope"] == "day"]
        # exactly one entry per expired day, with exact counts, whatever the kill point
        assert len(days) == OLD_DAYS and len({d["purge_id"] for d in days}) == OLD_DAYS
        assert all(d["event_rows"] == OLD_PER_DAY for d in days), (k, days)
        assert all(d["personal_rows"] == OLD_PER_DAY and d["key_destroyed"] for d in days)
        shutil.rmtree(data)
    assert len(set(kill_points)) >= 6  # the kills really landed in different steps


def test_acknowledged_events_survive_kill(tmp_path: Path) -> None:
    """Power-cut style: every event acknowledged before SIGKILL is there after restart."""
    path = tmp_path / "journal.db"
    rng = random.Random(9)
    acked: dict[str, int] = {}
    start = 0
    for _ in range(20):
        n = rng.randint(1, 25)
        with subprocess.Popen(
            [sys.executable, "-c", WRITER_CHILD, str(path), str(start)],
            stdout=subprocess.PIPE,
            text=True,
        ) as proc:
            assert proc.stdout is not None
            assert proc.stdout.readline() == "ready\n"
            for _ in range(n):
                eid, i = proc.stdout.readline().split()
                acked[eid] = int(i)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        start += 1000
        with Journal(path) as j:
            ids = {r["event_id"] for r in j.events()}
            missing = set(acked) - ids
            assert not missing
            for eid in rng.sample(sorted(acked), 5):
                assert j.personal(eid) == {
                    "display_name": f"N{acked[eid]}",
                    "document_masked": "",
                    "pseudonym": "",
                }
    with sqlite3.connect(path) as c:
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
