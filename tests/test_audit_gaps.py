"""Nothing happens without its audit entry (review D3, D4), one device key (D5), no
leftover temp files (D8).  The review's deterministic reproductions, run again."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from sentinel.authority.testing import build_test_bundle
from sentinel.config import Config
from sentinel.credentials.trustlist import TrustList
from sentinel.gate import Gate
from sentinel.gate.override import OverrideRequest, record_override
from sentinel.journal import Journal
from sentinel.journal.audit import open_audit
from sentinel.journal.pending import gaps
from sentinel.journal.space import clean_temp_files
from sentinel.pipeline import Pipeline
from sentinel.trust import StaticTrust

SENTINEL = str(Path(sys.executable).with_name("sentinel"))


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SENTINEL, *args], capture_output=True, text=True, timeout=120)


def _count(db: Path, sql: str) -> int:
    con = sqlite3.connect(db)
    try:
        return int(con.execute(sql).fetchone()[0])
    finally:
        con.close()


def test_override_whose_audit_append_was_lost_is_found_and_written_at_start(
    tmp_path: Path,
) -> None:
    """D4: the crash point is the audit open, after the journal commit."""
    data = tmp_path / "data"
    cfg_file = tmp_path / "cfg.toml"
    cfg_file.write_text(f'data_dir = "{data}"\n')
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child dies by SIGKILL
        import sentinel.journal.audit as audit_mod

        audit_mod.open_audit(data).close()
        audit_mod.open_audit = lambda d: os.kill(os.getpid(), signal.SIGKILL)  # type: ignore
        cfg = dataclasses.replace(Config(), data_dir=str(data))
        gate = Gate(cfg.gate)
        j = Journal(data / "journal.db")
        pipe = Pipeline(cfg, StaticTrust(TrustList()), gate, j)
        record_override(
            OverrideRequest.parse("paper", "staff-07"), gate=gate, pipeline=pipe, data_dir=data
        )
        os._exit(3)
    _pid, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status)
    assert _count(data / "journal.db", "SELECT count(*) FROM events WHERE decision='override'") == 1
    assert _count(data / "audit.db", "SELECT count(*) FROM audit WHERE kind='override'") == 0
    r = _run("audit", "verify", "--config", str(cfg_file))
    assert r.returncode == 1 and "owed and not yet in the chain" in r.stderr  # no silent gap
    # the next start (here `sentinel purge`, as the daemon's journal part does) writes it
    assert _run("purge", "--config", str(cfg_file)).returncode == 0
    r = _run("audit", "verify", "--config", str(cfg_file))
    assert r.returncode == 0, r.stderr
    with open_audit(data) as a:
        (entry,) = [e for e in a.entries() if e["kind"] == "override"]
    details = json.loads(entry["details"])
    assert details["staff"] == "staff-07" and details["reason"] == "paper"
    with Journal(data / "journal.db") as j:
        (row,) = [e for e in j.events() if e["decision"] == "override"]
    assert details["event_id"] == row["event_id"]


def test_legacy_override_without_entry_fails_verify(tmp_path: Path) -> None:
    """An override journaled by older code with no entry: verify says so."""
    from sentinel.journal import Event

    data = tmp_path / "data"
    from datetime import UTC, datetime

    with Journal(data / "journal.db") as j, open_audit(data) as a:
        j.record(Event(datetime.now(UTC), "v", "g", "override", "OVERRIDE", ""))
        problems = gaps(j, a.entries(), data)
    assert len(problems) == 1 and "have no audit entry" in problems[0]


def test_bundle_applied_without_entry_is_found_and_written_at_next_sync(tmp_path: Path) -> None:
    """D3: the audit callback kills the process after the store committed."""
    from sentinel.trust.store import BundleStore
    from sentinel.trust.sync import DirSource, Syncer

    b = build_test_bundle(tmp_path / "site")
    pub = b.write_root_pub(tmp_path / "root.pem")
    cfg_file = tmp_path / "cfg.toml"
    cfg_file.write_text(f'data_dir = "{tmp_path}/data"\n[trust]\nroot_key = "{pub}"\n')
    pid = os.fork()
    if pid == 0:  # pragma: no cover
        with BundleStore(tmp_path / "data") as st:
            Syncer(
                st,
                DirSource(tmp_path / "site"),
                root_key=b.root_public,
                audit=lambda k, d: os.kill(os.getpid(), signal.SIGKILL),
            ).sync()
        os._exit(3)
    _pid, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status)
    r = _run("audit", "verify", "--config", str(cfg_file))
    assert r.returncode == 1 and "no bundle_applied audit entry" in r.stderr
    r = _run("sync", "--config", str(cfg_file), "--from", str(tmp_path / "site"))
    assert r.returncode == 0 and "up to date" in r.stdout, r.stdout + r.stderr
    applied = "SELECT count(*) FROM audit WHERE kind='bundle_applied'"
    assert _count(tmp_path / "data/audit.db", applied) == 1
    r = _run("audit", "verify", "--config", str(cfg_file))
    assert r.returncode == 0, r.stderr
    _run("sync", "--config", str(cfg_file), "--from", str(tmp_path / "site"))
    assert _count(tmp_path / "data/audit.db", applied) == 1  # once, not per sync


_RACE = """
import sys, time
from sentinel.journal.audit import open_audit
at = float(sys.argv[2])
while time.time() < at:
    pass
with open_audit(sys.argv[1]) as a:
    a.append("config_changed", {"what": "race"})
"""


def test_twenty_concurrent_first_starts_make_one_device_key(tmp_path: Path) -> None:
    """D5: 20 processes open a data directory without a key at the same instant."""
    import time

    d = tmp_path / "data"
    at = str(time.time() + 2.0)
    procs = [
        subprocess.Popen([sys.executable, "-c", _RACE, str(d), at], stderr=subprocess.PIPE)
        for _ in range(20)
    ]
    errs = [p.communicate(timeout=120)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0] * 20, errs
    with open_audit(d) as a:
        assert a.verify().entries == 20  # every entry signed with the one key on disk
    assert [p.name for p in d.iterdir() if p.name.endswith((".tmp", ".new"))] == []


def test_leftover_temp_files_are_cleaned_at_start(tmp_path: Path) -> None:
    """D8: temp files of dead writers go, a live writer's stays."""
    d = tmp_path
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()
    left = [d / f".audit.head.{dead}.tmp", d / f".device_key.pem.{dead}.77.tmp"]
    live = d / f".audit.head.{os.getpid()}.tmp"
    for p in [*left, live]:
        p.write_bytes(b"x")
    (d / "audit.db").write_bytes(b"")
    assert sorted(clean_temp_files(d)) == sorted(left)
    assert live.exists() and (d / "audit.db").exists()
