"""A full disk never stops the gate (review D1, D2, D6, D7) — on a real small tmpfs.

The gate still acts and the listeners are told; the journal write failure becomes a
DISK_FULL device event, journaled (with the time it began) once space is back; errors
name the real cause; the purge frees space on a nearly full disk and the audit chain
still verifies.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from sentinel.authority import dcc_issue as di
from sentinel.config import Config, replace
from sentinel.credentials.trustlist import TrustList
from sentinel.errors import JournalError
from sentinel.gate import Gate
from sentinel.journal import Event, Journal, Personal
from sentinel.journal.audit import open_audit
from sentinel.journal.purge import retention_state, run_purge
from sentinel.journal.space import DiskFull, free_bytes
from sentinel.pipeline import Pipeline
from sentinel.scan.symbol import Symbol
from sentinel.trust import StaticTrust
from tests.smallfs import fill, tmpfs

DAY = timedelta(days=1)


@pytest.fixture
def small(tmp_path: Path) -> Any:
    with tmpfs(tmp_path / "m", "8m") as m:
        yield m


def _ev(t: datetime, reason: str = "EXPIRED") -> Event:
    return Event(t, "v", "g", "refuse", reason, "dcc")


def test_full_disk_keeps_the_gate_working_and_reports_disk_full(
    small: Path, signer: di.IssuerKey, trust: TrustList, now: datetime
) -> None:
    good = di.issue(
        di.vaccination(on="2022-01-10"), signer, issued_at=now - DAY, expires_at=now + DAY
    )
    cfg = replace(Config(), data_dir=str(small / "data"))
    seen: list[tuple[str, str]] = []
    factory = MockFactory()
    with Gate(cfg.gate, pin_factory=factory) as gate, Journal(small / "data/j.db") as journal:
        journal.write_reserve_bytes = 1 << 20
        pipe = Pipeline(cfg, StaticTrust(trust), gate, journal)
        pipe.listeners.append(lambda e, _d: seen.append((e.decision, e.reason)))
        sym = Symbol("QRCODE", good, good.encode())
        assert pipe.present(sym, now).event_id
        filler = fill(small, 512 * 1024)
        out = pipe.present(sym, now + timedelta(seconds=5))
        assert out.decision.admit and out.event_id == ""  # decided and acted, not journaled
        assert gate.grants == 2
        pipe.present(sym, now + timedelta(seconds=9))  # one DISK_FULL per episode
        assert seen.count(("event", "DISK_FULL")) == 1
        assert pipe.unjournaled == 2 and pipe.disk_full_since == now + timedelta(seconds=5)
        assert len(journal.events()) == 1
        filler.unlink()
        pipe.present(sym, now + timedelta(seconds=20))
        rows = [(r["time"], r["reason"]) for r in journal.events()]
    assert gate.grants == 4
    assert sorted(rows[1:]) == [
        ((now + timedelta(seconds=5)).isoformat(), "DISK_FULL"),
        ((now + timedelta(seconds=20)).isoformat(), "ADMIT"),
        ((now + timedelta(seconds=20)).isoformat(), "DISK_RECOVERED"),
    ]
    assert seen[-2:] == [("event", "DISK_RECOVERED"), ("admit", "ADMIT")]
    assert seen.count(("event", "DISK_FULL")) == 1  # told once, when it began
    assert pipe.disk_full_since is None


def test_errors_name_the_full_disk_not_a_rollback(small: Path) -> None:
    """Review D6: a new day's key, a today's event and an audit append on a disk with
    no space at all (guard switched off) raise DiskFull naming the write."""
    now = datetime.now(UTC)
    j = Journal(small / "journal.db")
    a = open_audit(small)
    j.record(_ev(now), personal=Personal(display_name="x"))
    a.append("override", {"n": 0})
    j.write_reserve_bytes = 0
    fill(small, 0)
    for what, fn in [
        ("today", lambda: j.record_many([(_ev(now), {"display_name": "x" * 50})] * 400)),
        ("new day", lambda: j.record(_ev(now - 3 * DAY), personal=Personal(display_name="x"))),
        ("audit", lambda: a.append("override", {"n": 1, "pad": "y" * 20000})),
    ]:
        with pytest.raises(DiskFull) as info:
            fn()
        msg = str(info.value)
        assert "cannot rollback" not in msg, what
        assert "full" in msg, what
    (small / ".filler").unlink()
    a.verify()
    assert len(j.events()) == 1
    j.close()
    a.close()


def test_guard_refuses_before_sqlite_and_below_the_open_floor(small: Path) -> None:
    j = Journal(small / "journal.db")
    j.write_reserve_bytes = free_bytes(small) + 1
    with pytest.raises(DiskFull, match="event not recorded: disk full on the device"):
        j.record(_ev(datetime.now(UTC)))
    j.close()
    fill(small, 64 * 1024)  # where SQLite's -shm mmap can SIGBUS on ext4 (review D7)
    with pytest.raises(DiskFull, match="journal not opened"):
        Journal(small / "other.db")
    with pytest.raises(DiskFull, match="audit log not opened"):
        open_audit(small / "fresh")


def test_purge_frees_space_on_a_nearly_full_disk(small: Path) -> None:
    """Review D2: 6,000 expired events, a few hundred KiB free; the purge completes,
    hands the pages back, and retention and the audit chain verify."""
    now = datetime.now(UTC)
    d = small / "data"
    j = Journal(d / "journal.db", clock=lambda: t)
    for k in (16, 15):
        t = now - k * DAY
        j.record_many([(_ev(t), {"display_name": f"P{i}"}) for i in range(3000)])
    j.close()
    size_before = (d / "journal.db").stat().st_size
    fill(small, 384 * 1024)
    free_before = free_bytes(small)
    r = run_purge(d, retention_days=14, aggregate_days=400, now=now)
    assert r.event_rows == 6000 and r.personal_rows == 6000 and r.keys_destroyed == 2
    assert r.vacuumed  # incremental: pages went back to the file system
    assert (d / "journal.db").stat().st_size < size_before / 2
    assert free_bytes(small) > free_before + size_before / 2
    with Journal(d / "journal.db") as j2, open_audit(d) as a:
        assert retention_state(j2, 14, now).ok
        assert a.verify().entries == 2


def test_old_journal_is_not_vacuumed_without_room(small: Path) -> None:
    """A journal from before incremental vacuum needs a full VACUUM: skipped without
    room (rows still deleted, chain still fine), done once there is room."""
    import sqlite3

    now = datetime.now(UTC)
    d = small / "data"
    d.mkdir()
    legacy = sqlite3.connect(d / "journal.db")
    legacy.execute("PRAGMA journal_mode=WAL")  # creates the file: auto_vacuum stays NONE
    legacy.close()
    j = Journal(d / "journal.db", clock=lambda: t)
    t = now - 16 * DAY
    j.record_many([(_ev(t), {"display_name": f"P{i}"}) for i in range(2000)])
    assert j.conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 0
    j.close()
    filler = fill(small, 512 * 1024)
    r = run_purge(d, retention_days=14, aggregate_days=400, now=now)
    assert r.event_rows == 2000 and not r.vacuumed
    filler.unlink()
    j = Journal(d / "journal.db")
    j.record(_ev(now - 15 * DAY))  # something to purge again
    j.close()
    r = run_purge(d, retention_days=14, aggregate_days=400, now=now)
    assert r.vacuumed
    with Journal(d / "journal.db") as j3, open_audit(d) as a:
        assert j3.conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2
        assert a.verify().entries == 2


def test_closed_journal_still_raises(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j.db")
    j.close()
    with pytest.raises(JournalError, match="closed"):
        j.record(_ev(datetime.now(UTC)))


def test_sync_on_a_full_disk_names_the_device_not_the_source(small: Path, tmp_path: Path) -> None:
    """Review D9: the failed write into trust/staging is the device's, and the old
    bundle (none here) stays."""
    from sentinel.authority.testing import build_test_bundle
    from sentinel.errors import BundleError
    from sentinel.trust.store import BundleStore
    from sentinel.trust.sync import DirSource, Syncer

    b = build_test_bundle(tmp_path / "site", revocations=[f"{i:064x}" for i in range(20000)])
    d = small / "data"
    with BundleStore(d) as st:
        st.set_meta(last_attempt="x")
        fill(small, 64 * 1024)
        with pytest.raises(BundleError) as info:
            Syncer(st, DirSource(b.site), root_key=b.root_public, audit=lambda k, x: None).sync()
        assert st.current() is None
    msg = str(info.value)
    assert "on the device" in msg and str(small) in msg and "cannot read" not in msg


def test_service_keeps_deciding_on_a_full_disk(
    small: Path, tmp_path: Path, signer: di.IssuerKey, trust: TrustList, now: datetime
) -> None:
    """Review D1: the daemon started on a full disk runs through every presentation
    (gate acts, no exit, no restart loop) and says DISK_FULL."""
    import cv2

    from sentinel.daemon import Daemon
    from sentinel.scan.synth import place, render_qr

    frames = tmp_path / "frames"
    frames.mkdir()
    texts = [
        di.issue(
            di.vaccination(on="2022-01-10"), signer, issued_at=now - DAY, expires_at=now + DAY
        ),
        di.issue(di.vaccination(dn=1), signer, issued_at=now - DAY, expires_at=now + DAY),
    ]
    for i, text in enumerate(texts):
        cv2.imwrite(str(frames / f"{i}.png"), place(render_qr(text), 640, 480, seed=i))
    cfg = replace(Config(), data_dir=str(small / "data"))
    cfg = replace(cfg, camera=replace(cfg.camera, source=str(frames)))
    fill(small, 2 * 1024 * 1024)  # below the journal's 4 MiB write reserve
    seen: list[str] = []
    factory = MockFactory()
    with Daemon(cfg, pin_factory=factory, trust=StaticTrust(trust), clock=lambda: now) as d:
        d.pipeline.listeners.append(lambda e, _d: seen.append(e.reason))
        assert d.run() == 0
        grants = d.gate.grants
    assert grants == 1  # the admitted visitor got the gate
    assert seen == ["DISK_FULL", "ADMIT", "VACCINATION_INCOMPLETE"]


def test_start_on_a_disk_too_full_to_open_waits_for_space_not_a_restart_loop(
    small: Path, trust: TrustList, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Below the open floor the daemon reports READY + why and waits (pinging the
    watchdog), then starts once space is back; it never exits into systemd's limit."""
    import threading

    from sentinel.daemon import Daemon

    monkeypatch.setattr(Daemon, "disk_retry_s", 0.05)
    cfg = replace(Config(), data_dir=str(small / "data"))
    filler = fill(small, 64 * 1024)
    waiting = threading.Event()
    msgs: list[str] = []

    def notify(msg: str) -> None:
        msgs.append(msg)
        if msg.startswith("READY=1\nSTATUS=waiting for free space"):
            waiting.set()

    made: list[Daemon] = []
    t = threading.Thread(
        target=lambda: made.append(
            Daemon(cfg, pin_factory=MockFactory(), trust=StaticTrust(trust), notify=notify)
        )
    )
    t.start()
    assert waiting.wait(60)
    assert not made
    filler.unlink()
    t.join(60)
    (d,) = made
    d.close()
    assert "WATCHDOG=1" in msgs and "journal not opened" in msgs[0]


_OPEN = """
import sys
from sentinel.journal import Journal
from sentinel.journal.audit import open_audit
from sentinel.errors import JournalError
try:
    Journal(sys.argv[1] + "/journal.db").close()
    open_audit(sys.argv[1]).close()
except JournalError as exc:
    print(exc)
    sys.exit(7)
"""


def test_no_sigbus_on_a_nearly_full_ext4(tmp_path: Path) -> None:
    """Review D7: with a few tens of KiB left on ext4 SQLite's -shm mmap can SIGBUS;
    the guard refuses first with a clear error (exit 7 here, never -SIGBUS)."""
    import signal
    import subprocess
    import sys

    from tests.smallfs import ext4

    with ext4(tmp_path / "e", 16) as m:
        (m / "data").mkdir()
        fill(m, 32 * 1024)
        r = subprocess.run(
            [sys.executable, "-c", _OPEN, str(m / "data")], capture_output=True, text=True
        )
    assert r.returncode != -signal.SIGBUS
    assert r.returncode == 7 and "disk full on the device" in r.stdout, (r.stdout, r.stderr)


def test_disk_full_reaches_kiosk_banner_and_fleet_heartbeat(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from sentinel.fleet.outbox import Outbox
    from sentinel.fleet.service import heartbeat_fields
    from sentinel.web.app import WebContext, kiosk_status

    now = datetime(2022, 5, 1, 12, tzinfo=UTC)
    ctx = WebContext.for_config(replace(Config(), data_dir=str(tmp_path)), clock=lambda: now)
    ev = lambda r: Event(now, "v", "g", "event", r, "")  # noqa: E731
    ctx.hub.on_event(ev("DISK_FULL"), None)
    s = kiosk_status(ctx)
    assert s["alarm"] == "DISK_FULL" and s["alarm_en"].startswith("Storage full")
    ctx.hub.on_event(ev("DOOR_FORCED"), None)  # a door alarm outranks it
    assert kiosk_status(ctx)["alarm"] == "DOOR_FORCED"
    ctx.hub.on_event(ev("DOOR_CLOSED"), None)
    ctx.hub.on_event(ev("DISK_FULL"), None)
    ctx.hub.on_event(ev("DISK_RECOVERED"), None)
    assert kiosk_status(ctx)["alarm"] == ""

    cfg = replace(Config(), data_dir=str(tmp_path))
    pipe = SimpleNamespace(disk_full_since=now, unjournaled=3)
    trust = SimpleNamespace(state=lambda: SimpleNamespace(updated_at=None, bundle_version=""))
    daemon = SimpleNamespace(config=cfg, trust=trust, gate=None, pipeline=pipe)
    with Journal(tmp_path / "journal.db") as j:
        outbox = Outbox(j.path, "dev-1")
        hb = heartbeat_fields(daemon, outbox, now)
        outbox.close()
    assert hb["disk_full"] is True and hb["unjournaled"] == 3 and "disk_full" in hb["faults"]


def test_selftest_fails_its_disk_check_with_disk_full(small: Path) -> None:
    from sentinel.gate.selftest import FAIL, SelftestOptions, check_disk

    fill(small, 1024 * 1024)
    c = check_disk(small, SelftestOptions(min_free_mb=0, warn_free_mb=0))
    assert c.status == FAIL and "DISK_FULL" in c.detail


def test_override_on_a_full_disk_opens_and_still_reaches_the_chain(small: Path) -> None:
    from sentinel.gate.override import OverrideRequest, record_override

    cfg = replace(Config(), data_dir=str(small / "data"))
    factory = MockFactory()
    with Gate(cfg.gate, pin_factory=factory) as gate, Journal(small / "data/j.db") as j:
        pipe = Pipeline(cfg, StaticTrust(TrustList()), gate, j)
        open_audit(small / "data").close()
        j.write_reserve_bytes = free_bytes(small) + 1  # the journal refuses, the chain has room
        eid = record_override(
            OverrideRequest.parse("emergency", "staff-1"),
            gate=gate,
            pipeline=pipe,
            data_dir=small / "data",
        )
        assert eid == "" and gate.grants == 1 and pipe.disk_full_since is not None
    with open_audit(small / "data") as a:
        (e,) = [e for e in a.entries() if e["kind"] == "override"]
        a.verify()
    assert '"journaled":false' in e["details"] and '"reason":"emergency"' in e["details"]


def test_old_journal_is_vacuumed_with_room_for_two_copies_and_the_reserve(
    tmp_path: Path,
) -> None:
    """The full VACUUM of a pre-incremental journal needs room for a copy and its WAL (2 x
    the file) plus the write reserve: with 2.5 x the file plus the reserve free, it runs."""
    import sqlite3

    from sentinel.journal.space import WRITE_RESERVE_BYTES

    with tmpfs(tmp_path / "m", "16m") as m:
        now = datetime.now(UTC)
        d = m / "data"
        d.mkdir()
        legacy = sqlite3.connect(d / "journal.db")
        legacy.execute("PRAGMA journal_mode=WAL")  # creates the file: auto_vacuum stays NONE
        legacy.close()
        j = Journal(d / "journal.db", clock=lambda: t)
        t = now - 16 * DAY
        j.record_many([(_ev(t), {"display_name": f"P{i}"}) for i in range(4000)])
        j.close()
        open_audit(d).close()  # the audit log and its key exist before the room is measured
        size = (d / "journal.db").stat().st_size
        assert size > 512 * 1024  # so half a file of margin is far more than the audit's growth
        fill(m, WRITE_RESERVE_BYTES + 5 * size // 2)
        r = run_purge(d, retention_days=14, aggregate_days=400, now=now)
        assert r.event_rows == 4000 and r.vacuumed
        assert (d / "journal.db").stat().st_size < size / 2


def test_old_journal_is_not_rewritten_for_a_few_free_pages(tmp_path: Path) -> None:
    """A full VACUUM rewrites the whole file: with room to spare it still waits until a
    fifth of the pages are free (``vacuum_free_ratio``), not for every purge of a few."""
    import sqlite3

    now = datetime.now(UTC)
    d = tmp_path / "data"
    d.mkdir()
    legacy = sqlite3.connect(d / "journal.db")
    legacy.execute("PRAGMA journal_mode=WAL")  # auto_vacuum stays NONE
    legacy.close()
    j = Journal(d / "journal.db", clock=lambda: t)
    t = now - 3 * DAY  # kept: inside the retention window
    j.record_many([(_ev(t), {"display_name": f"P{i}"}) for i in range(3000)])
    t = now - 16 * DAY  # purged: a few pages' worth
    j.record_many([(_ev(t), {"display_name": f"Q{i}"}) for i in range(40)])
    j.close()
    r = run_purge(d, retention_days=14, aggregate_days=400, now=now)
    assert r.event_rows == 40 and not r.vacuumed
    with Journal(d / "journal.db") as j2:
        assert j2.conn.execute("PRAGMA freelist_count").fetchone()[0] > 0  # left for later
    with Journal(d / "journal.db", clock=lambda: t) as j3:
        j3.record_many([(_ev(t), {"display_name": f"R{i}"}) for i in range(3000)])
    r = run_purge(d, retention_days=14, aggregate_days=400, now=now)
    assert r.event_rows == 3000 and r.vacuumed  # half the file free: the rewrite runs


def test_a_purge_batch_fits_in_half_the_free_space(small: Path) -> None:
    """Each batch's WAL frames (up to three pages a row, each a page and its 24-byte frame
    header) fit in half of what the disk has free, so the checkpoint after it can run."""
    from sentinel.journal.purge import _batch

    d = small / "data"
    with Journal(d / "journal.db") as j:
        page = j.conn.execute("PRAGMA page_size").fetchone()[0] + 24
        fill(small, 600 * 1024)
        free = free_bytes(small)
        n = _batch(j, 10**9)
        assert n >= 8 and n * 3 * page <= free // 2
        assert n >= (free // 2) // (3 * page) - 1  # and no smaller than that needs
        assert _batch(j, 10) == 10  # the caller's cap, when it is the smaller
