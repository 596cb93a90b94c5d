"""Hostile publisher paths and removable media, as the security review ran them (D2, D6).

Every server is a real HTTP server on 127.0.0.1; every bundle is really signed; the store
is the device's real SQLite store.  docs/security.md explains the defences."""

from __future__ import annotations

import http.server
import os
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sentinel.authority.publish import generate_root_key
from sentinel.authority.testing import build_test_bundle
from sentinel.config import TrustConfig
from sentinel.errors import BundleRollbackError
from sentinel.trust.store import BundleStore, StoreTrust
from sentinel.trust.sync import DirSource, HttpSource, Syncer, SyncError
from sentinel.trust.timestamp import NAME as TIMESTAMP
from sentinel.trust.timestamp import write_timestamp

T0 = datetime(2022, 5, 1, 12, 0, tzinfo=UTC)


class Hostile:
    """A publisher path under attack: serves ``site`` but answers 304 to every
    If-None-Match (``freeze``), serves ``replay`` bytes for some paths, or drips a body
    one byte at a time (``drip``)."""

    def __init__(self, site: Path) -> None:
        self.site = site
        self.freeze = False
        self.replay: dict[str, bytes] = {}
        self.drip: set[str] = set()
        self.stop = threading.Event()
        self.requests: list[str] = []
        self.headers: dict[str, dict[str, str]] = {}  # the last request's headers per path
        self.status: dict[str, int] = {}  # paths answered with this code and no body
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_a: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                path = self.path.lstrip("/")
                outer.requests.append(path)
                outer.headers[path] = dict(self.headers.items())
                if path in outer.status:
                    self.send_response(outer.status[path])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if outer.freeze and self.headers.get("If-None-Match"):
                    self.send_response(304)
                    self.send_header("ETag", self.headers["If-None-Match"])
                    self.end_headers()
                    return
                body = outer.replay.get(path)
                f = outer.site / path
                if body is None and f.is_file():
                    body = f.read_bytes()
                if body is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("ETag", f'"{hash(body) & 0xFFFFFFFF:x}"')
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if path in outer.drip:  # the attack: one byte at a time, each within timeout
                    for i in range(len(body)):
                        if outer.stop.wait(0.3):
                            return
                        self.wfile.write(body[i : i + 1])
                        self.wfile.flush()
                    return
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def world(tmp_path: Path):
    root = generate_root_key()
    site = tmp_path / "site"
    b1 = build_test_bundle(site, revocations=["UCI:" + "ab" * 16], now=T0, root_key=root,
                           expires_in=timedelta(days=30))  # fmt: skip
    server = Hostile(site)
    store = BundleStore(tmp_path / "data")
    clock = [T0]
    source = HttpSource(server.url, timeout_s=2)
    syncer = Syncer(store, source, root_key=root.public_key(), clock=lambda: clock[0],
                    audit=lambda *_a: None)  # fmt: skip
    yield b1, server, store, syncer, clock
    source.close()
    store.close()
    server.close()


def _stale_at(data_dir: Path, t: datetime) -> bool:
    with StoreTrust(data_dir, TrustConfig()) as trust:
        st = trust.state()
    assert st.updated_at is not None
    return t - st.updated_at > st.max_age


def test_d2_unsigned_304_does_not_reset_the_staleness_clock(world) -> None:
    """Review #73: a 304 from the path gave `last_good_sync = now` and "data fresh"."""
    b1, server, store, syncer, clock = world
    assert syncer.sync().outcome == "applied"
    build_test_bundle(
        b1.site,
        revocations=["UCI:" + "cd" * 16],
        now=T0 + timedelta(hours=1),
        root_key=b1.root_key,
        expires_in=timedelta(days=30),
    )  # v2: a revocation
    server.freeze = True  # every conditional GET: 304
    (b1.site / TIMESTAMP).unlink(missing_ok=True)  # and no signed timestamp gets through
    clock[0] = T0 + timedelta(days=10)
    assert syncer.sync().outcome == "not_modified"
    assert store.current().version == 1
    assert _stale_at(store.data_dir, clock[0])  # was "fresh" for weeks


def test_d2_replayed_current_manifest_does_not_reset_the_clock(world) -> None:
    b1, server, store, syncer, clock = world
    assert syncer.sync().outcome == "applied"
    v1_manifest = (b1.site / "manifest.json").read_bytes()
    v1_ts = b1.site / TIMESTAMP
    v1_timestamp = v1_ts.read_bytes() if v1_ts.exists() else b"{}"
    build_test_bundle(b1.site, revocations=["UCI:" + "cd" * 16], now=T0 + timedelta(hours=1),
                      root_key=b1.root_key, expires_in=timedelta(days=30))  # fmt: skip
    server.replay = {"manifest.json": v1_manifest, TIMESTAMP: v1_timestamp}  # a frozen mirror
    clock[0] = T0 + timedelta(days=3)
    assert syncer.sync().outcome == "up_to_date"
    assert _stale_at(store.data_dir, clock[0])


def test_d2_signed_timestamp_keeps_data_fresh_and_is_not_replayable(world) -> None:
    b1, server, store, syncer, clock = world
    assert syncer.sync().outcome == "applied"
    keys = [b1.root_key]
    old_ts = write_timestamp(b1.site, keys, now=T0 + timedelta(days=3)).read_bytes()
    clock[0] = T0 + timedelta(days=3, hours=1)
    server.requests.clear()
    assert syncer.sync().outcome == "up_to_date"
    assert server.requests == [TIMESTAMP]  # the signed timestamp answered it alone
    assert not _stale_at(store.data_dir, clock[0])
    write_timestamp(b1.site, keys, now=T0 + timedelta(days=3, hours=2))
    clock[0] = T0 + timedelta(days=3, hours=3)
    assert syncer.sync().outcome == "up_to_date"
    server.replay[TIMESTAMP] = old_ts  # an older, still valid timestamp replayed
    with pytest.raises(BundleRollbackError, match="replay"):
        syncer.sync()
    # withheld from now on: stale max_data_age_hours after the last timestamp seen
    assert not _stale_at(store.data_dir, T0 + timedelta(days=3, hours=2 + 47))
    assert _stale_at(store.data_dir, T0 + timedelta(days=3, hours=2 + 49))


def test_d6_slow_drip_part_hits_the_total_deadline(world) -> None:
    """Review #72: a part dripped at 1 B / 2 s kept the sync (and the apply lock) busy."""
    b1, server, store, syncer, clock = world
    part = next(iter(b1.manifest.parts.values()))
    server.drip.add(part.path)
    done: list[BaseException | None] = []

    def run() -> None:
        try:
            syncer.sync()
            done.append(None)
        except BaseException as exc:
            done.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout=20)
    assert not t.is_alive(), "sync still downloading"
    assert isinstance(done[0], SyncError) and "in time" in str(done[0])
    assert store.current() is None and "SyncError" in (store.meta("last_error") or "")


def _sync_dir_in_thread(tmp_path: Path, site: Path, root) -> tuple[threading.Thread, list]:
    out: list = []

    def run() -> None:
        with BundleStore(tmp_path / "usb-data") as store:
            try:
                out.append(Syncer(store, DirSource(site), root_key=root,
                                  clock=lambda: T0, audit=lambda *_a: None).sync())  # fmt: skip
            except Exception as exc:
                out.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout=10)
    return t, out


@pytest.mark.parametrize("target", ["/dev/zero", "/dev/urandom"])
def test_d6_manifest_symlinked_to_a_device_is_refused(world, tmp_path, target) -> None:
    """Review #86: manifest.json -> /dev/zero was read until MemoryError."""
    b1 = world[0]
    (b1.site / "manifest.json").unlink()
    (b1.site / "manifest.json").symlink_to(target)
    t, out = _sync_dir_in_thread(tmp_path, b1.site, b1.root_key.public_key())
    assert not t.is_alive() and isinstance(out[0], SyncError)
    assert "outside" in str(out[0]) or "symbolic link" in str(out[0])


@pytest.mark.parametrize("which", ["manifest", "part"])
def test_d6_fifo_in_the_folder_is_refused_not_waited_for(world, tmp_path, which) -> None:
    """Review #87: a FIFO as manifest.json or a part hung `sync --from` for good."""
    b1 = world[0]
    ref = next(iter(b1.manifest.parts.values()))
    victim = b1.site / ("manifest.json" if which == "manifest" else ref.path)
    victim.unlink()
    os.mkfifo(victim)
    try:
        t, out = _sync_dir_in_thread(tmp_path, b1.site, b1.root_key.public_key())
        assert not t.is_alive(), "sync --from blocked on a FIFO"
    finally:  # unblock a reader stuck on the old code
        try:
            fd = os.open(victim, os.O_WRONLY | os.O_NONBLOCK)
            os.close(fd)
        except OSError:
            pass
    assert isinstance(out[0], SyncError) and "not a regular file" in str(out[0])


def test_d6_part_symlinked_out_of_the_folder_is_refused(world, tmp_path) -> None:
    b1 = world[0]
    ref = next(iter(b1.manifest.parts.values()))
    (b1.site / ref.path).unlink()
    (b1.site / ref.path).symlink_to("/etc/passwd")
    t, out = _sync_dir_in_thread(tmp_path, b1.site, b1.root_key.public_key())
    assert not t.is_alive() and isinstance(out[0], SyncError)
    assert "outside" in str(out[0]) or "symbolic link" in str(out[0])


def test_a_publisher_url_ending_in_a_slash_asks_for_single_slash_paths(tmp_path: Path) -> None:
    """``trust.publisher_url = "https://cdn/site/"``: the device asks for ``/manifest.json``,
    not ``//manifest.json`` (an object store or CDN takes that for another key: a 404)."""
    from sentinel.authority.testing import BundleServer, enroll_test_device

    b = build_test_bundle(tmp_path / "site")
    enroll_test_device(tmp_path / "data", b.site)
    # served from a folder below the root: http.server itself folds a leading "//"
    with BundleServer(tmp_path) as server, BundleStore(tmp_path / "data") as store:
        src = HttpSource(server.url + "/site/")
        assert Syncer(store, src, root_key=b.root_public).sync().version == 1
        src.close()
    assert server.raw_paths and not any("//" in p for p in server.raw_paths), server.raw_paths


def test_a_part_reached_through_a_folder_link_out_of_the_stick_is_refused(tmp_path: Path) -> None:
    """A USB folder whose ``parts`` folder is a symbolic link to somewhere else on the
    device: the part is not read from outside the folder the sync was pointed at."""
    import shutil

    from sentinel.authority.testing import sync_dir

    b = build_test_bundle(tmp_path / "site")
    outside = tmp_path / "elsewhere"
    shutil.move(str(b.site / "parts"), outside)
    (b.site / "parts").symlink_to(outside, target_is_directory=True)
    with pytest.raises(SyncError, match="lies outside"):
        sync_dir(tmp_path / "data", b.site, b.root_public)


def test_the_root_trusted_when_a_rotation_was_announced_outlives_a_changed_config_key(
    tmp_path: Path,
) -> None:
    """The device pins the root it trusted when a manifest announced the next one; a
    config whose root key is later swapped (a stolen device, a rogue installer) does not
    make a bundle signed by that third key acceptable."""
    from sentinel.authority.testing import sync_dir
    from sentinel.errors import BundleSignatureError

    old, nxt, rogue = generate_root_key(), generate_root_key(), generate_root_key()
    site = tmp_path / "site"
    build_test_bundle(site, root_key=old, next_root_key=nxt.public_key())
    assert sync_dir(tmp_path / "data", site, old.public_key()).version == 1
    build_test_bundle(site, root_key=rogue)
    with pytest.raises(BundleSignatureError):
        sync_dir(tmp_path / "data", site, rogue.public_key())


def test_the_timestamp_is_asked_past_caches_and_a_withheld_one_is_no_timestamp(world) -> None:
    """The timestamp lives hours, so its request tells every cache on the path to ask the
    origin (``Cache-Control: no-cache``); a publisher that has none, forbids it or has
    withdrawn it (404, 403, 410) gives no timestamp, not a failed sync; any other status
    is a failed sync."""
    b1, server, store, syncer, clock = world
    for code in (403, 404, 410):
        server.status[TIMESTAMP] = code
        assert syncer.sync().outcome in ("applied", "up_to_date"), code
        assert server.headers[TIMESTAMP].get("Cache-Control") == "no-cache"
    server.status[TIMESTAMP] = 500
    with pytest.raises(SyncError, match="HTTP 500"):
        syncer.sync()


def test_a_sync_the_timestamp_answers_clears_the_last_refusal_and_is_the_last_good_one(
    world,
) -> None:
    b1, server, store, syncer, clock = world
    assert syncer.sync().outcome == "applied"
    write_timestamp(b1.site, [b1.root_key], now=T0 + timedelta(hours=1))
    store.set_meta(last_error="2022-05-01T12:30:00+00:00 SyncError: the network was down")
    clock[0] = T0 + timedelta(hours=2)
    assert syncer.sync().outcome == "up_to_date"
    assert store.meta("last_error") is None
    assert store.meta("last_good_sync") == clock[0].isoformat()  # `sentinel status` shows it
