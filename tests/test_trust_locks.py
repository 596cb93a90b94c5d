"""The store's lock on its one shared SQLite connection, and the sync's own errors.

The device keeps one ``BundleStore`` open; its one SQLite connection is shared by the
sync thread and the threads that read the applied bundle (the web UI, the scanner).  On
one connection a transaction belongs to the connection, not to a thread: a read while
another thread is between BEGIN and COMMIT sees that thread's uncommitted rows, a second
BEGIN fails, and a ROLLBACK or a close ends the other thread's transaction.  The store
lock serialises them.  Each test below holds one thread inside the store's transaction
until the other thread has done its step or 1 s has passed (with the lock, the other
thread cannot get there, so the first goes on after the timeout; without it, the second's
step lands inside the first's transaction).
"""

from __future__ import annotations

import errno
import threading
from datetime import UTC, datetime, timedelta

import pytest

from sentinel.authority.publish import Inputs, generate_root_key
from sentinel.authority.publish import publish as _publish
from sentinel.authority.testing import TEST_KDF, StatusRecord, sync_dir, test_devices
from sentinel.trust.store import BundleStore, parse_revocations
from sentinel.trust.sync import DirSource, Syncer, SyncError
from tests.threads import run_together

NOW = datetime(2022, 5, 1, 12, 0, tzinfo=UTC)
UNTIL = NOW + timedelta(days=30)
OLD_REVOKED = "UCI:" + "ab" * 16
NEW_REVOKED = "UCI:" + "cd" * 16


def _publish_version(site, root, revoked: str) -> None:  # type: ignore[no-untyped-def]
    _publish(
        site,
        Inputs(status=[StatusRecord("green", UNTIL, "P", "XXA", "1")], revocations=[revoked]),
        [root],
        now=NOW,
        devices=test_devices(site),
        kdf=TEST_KDF,
    )


def _v1_applied_v2_published(tmp_path):  # type: ignore[no-untyped-def]
    """A device holding v1 (one revoked key) and a publisher folder offering v2 (another)."""
    root = generate_root_key()
    site, data = tmp_path / "site", tmp_path / "data"
    _publish_version(site, root, OLD_REVOKED)
    assert sync_dir(data, site, root.public_key(), now=NOW).version == 1
    _publish_version(site, root, NEW_REVOKED)
    return root, site, data


def _syncer(store, folder, root) -> Syncer:  # type: ignore[no-untyped-def]
    """A sync from ``folder`` at NOW (the audit chain is not what these tests look at)."""
    return Syncer(
        store,
        DirSource(folder),
        root_key=root.public_key(),
        clock=lambda: NOW,
        audit=lambda kind, details: None,
    )


def _hold_inside(monkeypatch, key: str, done: threading.Event, *, then_fail: bool = False):  # type: ignore[no-untyped-def]
    """Patch ``BundleStore._write_meta`` so that the write naming ``key`` (inside its
    transaction, after its rows) signals the returned event, then waits until ``done``
    is set or 1 s has passed; with ``then_fail`` it then fails as an I/O error would, so
    the transaction is rolled back."""
    inside = threading.Event()
    real = BundleStore._write_meta

    def held(self, values):  # type: ignore[no-untyped-def]
        real(self, values)
        if key in values:
            inside.set()
            done.wait(1.0)
            if then_fail:
                raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(BundleStore, "_write_meta", held)
    return inside


def _after(inside: threading.Event, done: threading.Event, step):  # type: ignore[no-untyped-def]
    """``step`` run once the other thread is inside its transaction; ``done`` set after."""

    def run():  # type: ignore[no-untyped-def]
        assert inside.wait(5.0), "the other thread never reached its transaction"
        try:
            return step()
        finally:
            done.set()

    return run


def test_a_part_read_during_an_apply_that_rolls_back_gives_the_old_part(
    tmp_path, monkeypatch
) -> None:
    """``part()`` holds the store lock: a reader while the sync is inside its apply
    transaction (v2's parts written, not committed) waits for its end.  The commit fails
    and is rolled back, so the reader gets v1's revocations, never v2's rows that were
    never committed."""
    root, site, data = _v1_applied_v2_published(tmp_path)
    with BundleStore(data) as store:
        old = store.part("revocations")
        assert old is not None and parse_revocations(old) == {OLD_REVOKED}
        done = threading.Event()
        inside = _hold_inside(monkeypatch, "manifest", done, then_fail=True)
        got = run_together(
            _syncer(store, site, root).sync,
            _after(inside, done, lambda: store.part("revocations")),
        )
        assert isinstance(got[0], OSError) and got[0].errno == errno.EIO, got
        assert got[1] == old, parse_revocations(got[1]) if isinstance(got[1], bytes) else got
        assert (store.part("revocations"), store.meta("version")) == (old, "1")


def test_a_meta_write_during_an_apply_waits_for_its_commit(tmp_path, monkeypatch) -> None:
    """``apply`` holds the store lock across its BEGIN ... COMMIT: a meta write from
    another thread meanwhile (the web UI's, the service's) waits and then runs as its own
    transaction, instead of failing to BEGIN inside the apply's and rolling it back."""
    root, site, data = _v1_applied_v2_published(tmp_path)
    with BundleStore(data) as store:
        done = threading.Event()
        inside = _hold_inside(monkeypatch, "manifest", done)
        got = run_together(
            _syncer(store, site, root).sync,
            _after(inside, done, lambda: store.set_meta(note="written during the apply")),
        )
        assert getattr(got[0], "version", got[0]) == 2 and got[1] is None, got
        assert (store.meta("version"), store.meta("note")) == ("2", "written during the apply")
        assert parse_revocations(store.part("revocations") or b"") == {NEW_REVOKED}
    with BundleStore(data) as again:  # committed, not only seen on the old connection
        assert (again.meta("version"), again.meta("note")) == ("2", "written during the apply")


def test_closing_the_store_waits_for_a_write_in_progress(tmp_path, monkeypatch) -> None:
    """``close()`` holds the store lock: a service stopping while another thread is
    between BEGIN and COMMIT closes the connection after the commit, so the write is
    kept (closing inside the transaction would roll it back and fail its COMMIT)."""
    data = tmp_path / "data"
    store = BundleStore(data)
    done = threading.Event()
    inside = _hold_inside(monkeypatch, "note", done)
    got = run_together(lambda: store.set_meta(note="kept"), _after(inside, done, store.close))
    assert got == [None, None], got
    with BundleStore(data) as again:
        assert again.meta("note") == "kept"


def test_a_timestamp_that_cannot_be_read_is_a_sync_error(tmp_path) -> None:
    """``sentinel sync --from PATH`` with PATH a file, not the publisher folder: reading
    its timestamp fails with ENOTDIR, which the sync reports as its own SyncError (kept
    as ``last_error``; the retry loop and the CLI handle it) with v1 still in force,
    not as a bare OSError."""
    root, site, data = _v1_applied_v2_published(tmp_path)
    not_a_folder = tmp_path / "manifest-copied-alone.json"
    not_a_folder.write_bytes((site / "manifest.json").read_bytes())
    with pytest.raises(SyncError, match=r"timestamp\.json: Not a directory"):
        DirSource(not_a_folder).timestamp()
    with BundleStore(data) as store:
        with pytest.raises(SyncError, match="Not a directory"):
            _syncer(store, not_a_folder, root).sync()
        assert store.meta("version") == "1"
        assert "SyncError" in (store.meta("last_error") or "")
