"""Power cuts on a FUSE file system that loses unsynced data (tests/powercut_fs.py).

A few dozen cuts here (CI); ``benchmarks/bench_powercut.py --cuts 500`` is the long run.
The model is checked to lose what it must (a synchronous=NORMAL commit, an unsynced
file), so a pass under synchronous=FULL means something.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import sqlite3
from pathlib import Path

import pytest

from tests.powercut_fs import PowercutFS

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_powercut.py"


@pytest.fixture(scope="module")
def usable() -> None:
    why = PowercutFS.available()
    if why and not os.environ.get("CI"):
        pytest.skip(why)
    assert not why, why


def _bench() -> object:
    spec = importlib.util.spec_from_file_location("bench_powercut", SCRIPT)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _commit_then_die(db: Path, sync: str, n: int) -> None:
    pid = os.fork()
    if pid == 0:  # pragma: no cover - dies by SIGKILL
        c = sqlite3.connect(db, isolation_level=None)
        c.execute("PRAGMA journal_mode=WAL")
        c.execute(f"PRAGMA synchronous={sync}")
        c.execute("CREATE TABLE IF NOT EXISTS t (x)")
        for i in range(n):
            c.execute("INSERT INTO t VALUES (?)", (i,))
        os.kill(os.getpid(), signal.SIGKILL)
    os.waitpid(pid, 0)


def test_the_model_loses_what_a_power_cut_loses(usable: None, tmp_path: Path) -> None:
    with PowercutFS(tmp_path / "mnt") as fs:
        m = fs.mount
        _commit_then_die(m / "full.db", "FULL", 30)
        _commit_then_die(m / "normal.db", "NORMAL", 30)
        (m / "unsynced.txt").write_bytes(b"x" * 10_000)
        fd = os.open(m / "synced.txt", os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, b"kept")
        os.fsync(fd)
        os.close(fd)
        fs.cut(reorder_seed=None)
        con = sqlite3.connect(m / "full.db")
        assert con.execute("SELECT count(*) FROM t").fetchone() == (30,)
        con.close()
        con = sqlite3.connect(m / "normal.db")
        with pytest.raises(sqlite3.OperationalError, match="no such table"):
            con.execute("SELECT count(*) FROM t")  # NORMAL never synced its WAL
        con.close()
        assert (m / "synced.txt").read_bytes() == b"kept"
        assert not (m / "unsynced.txt").exists() or (m / "unsynced.txt").read_bytes() == b""


def test_power_cuts_lose_nothing_acknowledged_under_full(usable: None, tmp_path: Path) -> None:
    mod = _bench()
    r = mod.run(16, tmp_path / "mnt", tmp_path / "work", "FULL", seed=23)  # type: ignore[attr-defined]
    assert r["cuts"] == 16 and r["acknowledged"] > 50
    assert (r["lost"], r["integrity"], r["audit"]) == (0, 0, 0)
