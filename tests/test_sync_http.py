"""Sync against a real HTTP server on 127.0.0.1: good full + delta, and every refusal.

In each failure case the device keeps deciding from its previous good bundle and the
store says why it refused the new one.
"""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sentinel.authority import dcc_issue as di
from sentinel.authority.publish import generate_root_key
from sentinel.authority.testing import (
    BundleServer,
    StatusRecord,
    build_test_bundle,
    enroll_test_device,
)
from sentinel.config import PolicyConfig, TrustConfig
from sentinel.credentials.reader import ReadContext, read
from sentinel.errors import (
    BundleError,
    BundleHashError,
    BundleRollbackError,
    BundleSignatureError,
)
from sentinel.journal.audit import open_audit
from sentinel.policy import decide
from sentinel.reasons import ReasonCode
from sentinel.scan import Symbol
from sentinel.trust.store import BundleStore, StoreTrust
from sentinel.trust.sync import HttpSource, Syncer, SyncError, retrying

NOW = datetime(2022, 5, 1, 12, 0, tzinfo=UTC)
UNTIL = NOW + timedelta(days=10)
DOC = ("P", "XXA", "C01X00T47")


@pytest.fixture(scope="module")
def dsc() -> di.IssuerKey:
    return di.make_signer(
        "XX",
        not_before=datetime(2021, 1, 1, tzinfo=UTC),
        not_after=datetime(2030, 1, 1, tzinfo=UTC),
    )


def _records(n: int, first: str = "green") -> list[StatusRecord]:
    recs = [StatusRecord(first, UNTIL, *DOC)]
    recs += [StatusRecord("green", UNTIL, "I", "XXA", f"N{i:07d}") for i in range(n)]
    recs.append(StatusRecord("green", UNTIL, subject_id="subject-1"))
    return recs


class Device:
    """A device data dir with its store, a syncer over HTTP, and the provider."""

    def __init__(self, data: Path, url: str, root, now: datetime = NOW, site=None) -> None:
        if site is not None:
            enroll_test_device(data, site)
        self.store = BundleStore(data)
        self.source = HttpSource(url, timeout_s=5)
        self.now = now
        self.syncer = Syncer(self.store, self.source, root_key=root, clock=lambda: self.now)
        self.trust = StoreTrust(data, TrustConfig())

    def sync(self):
        return self.syncer.sync()

    def close(self) -> None:
        self.trust.close()
        self.source.close()
        self.store.close()


@pytest.fixture()
def world(tmp_path, dsc):
    root = generate_root_key()
    b = build_test_bundle(
        tmp_path / "site",
        signers=[dsc.der],
        status=_records(200),
        revocations=["UCI:" + "ab" * 16],
        rules=b'{"v": 1}',
        now=NOW,
        root_key=root,
    )
    server = BundleServer(tmp_path / "site")
    dev = Device(tmp_path / "data", server.url, root.public_key(), site=tmp_path / "site")
    yield b, server, dev
    dev.close()
    server.close()


def _publish_v2(b, tmp_path, dsc, **kw):
    return build_test_bundle(
        b.site,
        signers=[dsc.der],
        status=_records(200, first="red"),
        revocations=["UCI:" + "ab" * 16],
        rules=b'{"v": 1}',
        now=NOW,
        root_key=b.root_key,
        **kw,
    )


def _doc_status(dev: Device) -> str | None:
    s = dev.trust.status()
    e = s.lookup_document(*DOC) if s is not None else None
    return e.status if e else None


def test_full_then_delta_then_not_modified(world, tmp_path, dsc) -> None:
    b, server, dev = world
    r1 = dev.sync()
    assert (r1.outcome, r1.version, r1.delta) == ("applied", 1, False)
    assert r1.downloaded_bytes == sum(p.size for p in b.manifest.parts.values())  # all of v1
    assert dev.trust.state().bundle_version == "1"
    assert _doc_status(dev) == "green"
    assert dev.trust.status().lookup_subject("subject-1").status == "green"
    assert dev.trust.part("rules") == b'{"v": 1}'
    full_status_size = b.manifest.parts["status"].size

    b2 = _publish_v2(b, tmp_path, dsc)
    assert b2.manifest.delta_base == 1
    r2 = dev.sync()
    assert (r2.outcome, r2.version, r2.delta) == ("applied", 2, True)
    # only the delta travels: unchanged parts are held by hash, the full set is skipped
    assert r2.downloaded_bytes == b2.manifest.parts["status_delta"].size
    assert r2.downloaded_bytes < full_status_size / 10
    got = [p for p, _ in server.requests if p.startswith("parts/")]
    assert f"parts/{b2.manifest.parts['status'].sha256}" not in got
    assert _doc_status(dev) == "red"
    assert dev.trust.state().bundle_version == "2"

    r3 = dev.sync()  # the signed timestamp names version 2: nothing else is fetched
    assert (r3.outcome, r3.delta, r3.downloaded_bytes) == ("up_to_date", False, 0)
    assert server.requests[-1] == ("timestamp.json", "200")
    (b.site / "timestamp.json").unlink()  # a publisher without one: the ETag still saves
    r4 = dev.sync()  # the download, but not the data age (D2)
    assert (r4.outcome, r4.delta, r4.downloaded_bytes) == ("not_modified", False, 0)
    assert server.requests[-1] == ("manifest.json", "304")

    entries = open_audit(tmp_path / "data").entries()
    kinds = [(e["kind"], e["details"]) for e in entries]
    assert [k for k, _ in kinds] == ["bundle_applied", "bundle_applied"]
    assert '"version":2' in kinds[1][1] and '"delta":true' in kinds[1][1]
    assert "C01X00T47" not in "".join(d for _, d in kinds)


def test_a_publisher_behind_a_redirect_is_followed(world) -> None:
    """A CDN or a moved publisher answers 301/302; the device follows to the bytes."""
    import http.server
    import threading

    b, server, dev = world

    class Moved(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

        def do_GET(self) -> None:  # noqa: N802
            self.send_response(302)
            self.send_header("Location", server.url + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()

    front = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Moved)
    thread = threading.Thread(target=front.serve_forever, daemon=True)
    thread.start()
    source = HttpSource(f"http://127.0.0.1:{front.server_address[1]}", timeout_s=5)
    try:
        syncer = Syncer(dev.store, source, root_key=b.root_key.public_key(), clock=lambda: NOW)
        assert syncer.sync().outcome == "applied"
        assert ("manifest.json", "200") in server.requests
    finally:
        source.close()
        front.shutdown()
        front.server_close()
        thread.join(timeout=5)


def test_a_bundle_first_applied_from_a_stick_is_polled_by_etag_afterwards(world) -> None:
    """The HTTP poll after a USB apply finds the same manifest (up to date) and keeps its
    ETag, so the poll after that is a bodiless 304."""
    from sentinel.trust.sync import DirSource

    b, server, dev = world
    (b.site / "timestamp.json").unlink()  # only the manifest says "nothing new"
    stick = Syncer(
        dev.store, DirSource(b.site), root_key=b.root_key.public_key(), clock=lambda: NOW
    )
    assert stick.sync().outcome == "applied"
    assert dev.sync().outcome == "up_to_date"
    assert server.requests[-1] == ("manifest.json", "200")
    assert dev.sync().outcome == "not_modified"
    assert server.requests[-1] == ("manifest.json", "304")


def _break(case: str, b, server, tmp_path, dsc) -> type[BaseException]:
    """Publish or serve a bad v2 for ``case``; return the error the device must raise."""
    if case == "part_hash":
        b2 = _publish_v2(b, tmp_path, dsc)
        sha = b2.manifest.parts["status_delta"].sha256
        good = (b.site / "parts" / sha).read_bytes()
        server.override[f"parts/{sha}"] = bytes([good[0] ^ 1]) + good[1:]
        return BundleHashError
    if case == "other_key":
        evil = build_test_bundle(
            tmp_path / "evil", signers=[dsc.der], status=_records(3, "red"), now=NOW, version=9
        )
        server.override["manifest.json"] = (evil.site / "manifest.json").read_bytes()
        return BundleSignatureError
    if case == "replay":
        server.override["manifest.json"] = b"placeholder"  # set after v2 is applied
        return BundleRollbackError
    if case == "cut":
        b2 = _publish_v2(b, tmp_path, dsc)
        server.cut.add(f"parts/{b2.manifest.parts['status_delta'].sha256}")
        return SyncError
    if case == "down":
        server.close()
        return SyncError
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["part_hash", "other_key", "replay", "cut", "down"])
def test_refused_bundles_keep_the_previous_data(case, world, tmp_path, dsc) -> None:
    b, server, dev = world
    assert dev.sync().version == 1
    expected_version = "1"
    if case == "replay":
        _publish_v2(b, tmp_path, dsc)
        assert dev.sync().version == 2
        expected_version = "2"
        old = (b.site / "manifests" / "1.json").read_bytes()
        server.override["manifest.json"] = old
        err = BundleRollbackError
    else:
        err = _break(case, b, server, tmp_path, dsc)
    if case in ("other_key", "replay"):  # else the signed timestamp answers first
        (b.site / "timestamp.json").unlink()
    with pytest.raises(err):
        dev.sync()
    assert dev.trust.state().bundle_version == expected_version
    assert _doc_status(dev) == ("green" if expected_version == "1" else "red")
    last_error = dev.store.meta("last_error") or ""
    assert err.__name__ in last_error
    assert not dev.store.staging.exists()
    # only the status files in use remain (base, and the overlay of applied deltas)
    in_use = {dev.store.meta("status_file"), dev.store.meta("overlay_file")} - {None}
    assert {p.name for p in (dev.store.root / "status").iterdir()} == in_use


def test_cut_download_recovers_on_retry(world, tmp_path, dsc) -> None:
    b, server, dev = world
    dev.sync()
    b2 = _publish_v2(b, tmp_path, dsc)
    path = f"parts/{b2.manifest.parts['status_delta'].sha256}"
    server.cut.add(path)
    waits: list[float] = []

    def wait(seconds: float) -> bool:
        waits.append(seconds)
        server.cut.discard(path)  # the network comes back while we wait
        return False

    r = retrying(dev.sync, attempts=3, base_s=1.0, max_s=8.0, wait=wait)
    assert r.version == 2 and len(waits) == 1 and 0.5 <= waits[0] <= 1.0
    assert dev.store.meta("last_error") is None


def test_a_part_whose_hash_fails_is_fetched_again_like_a_cut_download() -> None:
    """A part that arrives whole but wrong (a proxy's truncation or a flipped bit: its
    hash fails) is transient like a cut connection: the sync is tried again."""
    from sentinel.errors import BundleHashError
    from sentinel.trust.sync import SyncResult

    calls: list[int] = []

    def attempt() -> SyncResult:
        calls.append(1)
        if len(calls) == 1:
            raise BundleHashError("part status: sha256 mismatch")
        return SyncResult("applied", 2)

    r = retrying(attempt, attempts=3, base_s=1.0, max_s=8.0, wait=lambda _s: False)
    assert r.outcome == "applied" and len(calls) == 2


def test_server_down_gives_up_after_the_attempts(world) -> None:
    _b, server, dev = world
    server.close()
    waits: list[float] = []
    with pytest.raises(SyncError, match="cannot fetch (timestamp|manifest)"):
        retrying(dev.sync, attempts=3, base_s=1.0, max_s=8.0, wait=lambda s: bool(waits.append(s)))
    assert len(waits) == 2
    assert 0.5 <= waits[0] <= 1.0 and 1.0 <= waits[1] <= 2.0  # base 1 s, then 2 s, jittered
    waits.clear()  # a base other than 1 s: the doubling is of the base, not of the count
    with pytest.raises(SyncError):
        retrying(dev.sync, attempts=4, base_s=0.25, max_s=8.0, wait=lambda s: bool(waits.append(s)))
    lows = (0.125, 0.25, 0.5)  # 0.25 s, 0.5 s, 1 s, each jittered to [50 %, 100 %]
    assert all(lo <= w <= 2 * lo for w, lo in zip(waits, lows, strict=True)), waits


def test_backoff_doubles_up_to_its_cap_with_jitter_below_the_delay() -> None:
    from random import Random

    from sentinel.trust.sync import backoff_s

    class Top(Random):
        def uniform(self, a: float, b: float) -> float:
            return b

    class Bottom(Random):
        def uniform(self, a: float, b: float) -> float:
            return a

    assert [backoff_s(k, 1.0, 8.0, Top()) for k in range(1, 7)] == [1, 2, 4, 8, 8, 8]
    assert [backoff_s(k, 1.0, 8.0, Bottom()) for k in range(1, 5)] == [0.5, 1, 2, 4]
    rng = Random(7)
    spread = {round(backoff_s(3, 1.0, 8.0, rng), 3) for _ in range(50)}
    assert len(spread) > 10 and min(spread) >= 2.0 and max(spread) <= 4.0  # jitter is real


def test_delta_for_another_base_falls_back_to_the_full_part(world, tmp_path, dsc) -> None:
    b, _server, dev = world
    _publish_v2(b, tmp_path, dsc)
    b3 = build_test_bundle(
        b.site, signers=[dsc.der], status=_records(200, "yellow"), now=NOW, root_key=b.root_key
    )
    assert b3.manifest.delta_base == 2
    r = dev.sync()  # the device has nothing: full status part of v3
    assert (r.version, r.delta) == (3, False)
    assert _doc_status(dev) == "yellow"


def test_unreachable_port_is_a_clean_refusal(tmp_path) -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    dev = Device(tmp_path / "d", f"http://127.0.0.1:{port}", generate_root_key().public_key())
    try:
        with pytest.raises(BundleError):
            dev.sync()
        assert dev.trust.state().bundle_version == ""
        assert dev.trust.status() is None
    finally:
        dev.close()


def test_decisions_use_the_bundle_revocations_and_staleness(world, tmp_path, dsc) -> None:
    b, _server, dev = world
    dev.sync()
    text = di.issue(
        di.vaccination(on="2021-06-01"),
        dsc,
        issued_at=NOW - timedelta(days=1),
        expires_at=NOW + timedelta(days=300),
    )
    sym = Symbol("QRCODE", text, text.encode())

    def decision(at: datetime):
        ctx = ReadContext(trust=dev.trust.trust_list(), now=at, status=dev.trust.status())
        return decide(read(sym, ctx), PolicyConfig(), dev.trust.state(), at)

    assert decision(NOW).reason is ReasonCode.ADMIT
    assert decision(NOW + timedelta(hours=47)).reason is ReasonCode.ADMIT
    assert decision(NOW + timedelta(hours=49)).reason is ReasonCode.DATA_STALE  # no sync since

    cred = read(sym, ReadContext(trust=dev.trust.trust_list(), now=NOW))
    uci = next(k for k in cred.revocation_keys if k.startswith("UCI:"))
    build_test_bundle(
        b.site,
        signers=[dsc.der],
        status=_records(200),
        revocations=[uci],
        now=NOW,
        root_key=b.root_key,
    )
    dev.now = NOW + timedelta(hours=1)
    assert dev.sync().version == 2
    assert decision(NOW + timedelta(hours=2)).reason is ReasonCode.REVOKED


def test_proxy_settings_in_the_environment_are_not_used(world, monkeypatch) -> None:
    """The device talks to its publisher directly: an HTTP(S)_PROXY left in the service's
    environment (here one that refuses every connection) neither reroutes nor stops a sync."""
    b, server, dev = world
    dead = socket.socket()  # bound, never listening: every connect to it is refused
    dead.bind(("127.0.0.1", 0))
    proxy = f"http://127.0.0.1:{dead.getsockname()[1]}"
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(name, proxy)
    source = HttpSource(server.url, timeout_s=5)  # made with the proxy in the environment
    try:
        syncer = Syncer(dev.store, source, root_key=b.root_key.public_key(), clock=lambda: NOW)
        assert syncer.sync().outcome == "applied"
        assert ("manifest.json", "200") in server.requests
    finally:
        source.close()
        dead.close()


def test_an_apply_killed_before_its_audit_entry_is_audited_once_as_recovered(tmp_path) -> None:
    """SIGKILL between the store's commit and the audit append: the owed entry is written
    by finish_bundle_audit (True), marked recovered, and owed no more (False after)."""
    import os
    import signal

    from sentinel.trust.sync import DirSource, finish_bundle_audit

    b = build_test_bundle(tmp_path / "site", now=NOW)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child dies inside the sync
        with BundleStore(tmp_path / "data") as st:
            Syncer(
                st,
                DirSource(tmp_path / "site"),
                root_key=b.root_public,
                clock=lambda: NOW,
                audit=lambda _k, _d: os.kill(os.getpid(), signal.SIGKILL),
            ).sync()
        os._exit(3)
    _pid, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    with open_audit(tmp_path / "data") as a:
        assert a.entries() == []  # the crash kept it from the chain
    with BundleStore(tmp_path / "data") as store:
        assert store.current() is not None and store.current().version == 1  # committed
        assert finish_bundle_audit(store) is True
        assert finish_bundle_audit(store) is False
    with open_audit(tmp_path / "data") as a:
        entries = a.entries()
    assert [e["kind"] for e in entries] == ["bundle_applied"]
    details = json.loads(entries[0]["details"])
    assert details["recovered"] is True and details["version"] == 1
    assert details["manifest_sha256"] == b.manifest.digest


def test_the_source_s_own_client_waits_its_timeout_and_follows_redirects() -> None:
    """``trust.sync_timeout_s`` is the client's timeout for connect, read, write and pool
    alike (httpx.Timeout of one number), and redirects are followed (tested end to end above)."""
    import httpx

    src = HttpSource("http://127.0.0.1:9", timeout_s=7.5)
    try:
        assert src.client.timeout == httpx.Timeout(7.5)
        assert src.client.follow_redirects is True
        assert src.client.trust_env is False
    finally:
        src.close()


def test_a_source_closes_only_the_client_it_made() -> None:
    """A caller's own httpx client (shared with its other requests) stays open after the
    source is closed; the client the source made for itself is closed with it."""
    import httpx

    shared = httpx.Client(trust_env=False)
    try:
        src = HttpSource("http://127.0.0.1:9", client=shared)
        src.close()
        assert not shared.is_closed
    finally:
        shared.close()
    own = HttpSource("http://127.0.0.1:9")
    own.close()
    assert own.client.is_closed


def test_an_owed_audit_entry_goes_to_the_audit_function_given(tmp_path: Path) -> None:
    """finish_bundle_audit writes the owed entry through the caller's audit function (the
    service's own log), not a second log of its own."""
    from sentinel.journal.audit import open_audit
    from sentinel.trust.store import BundleStore
    from sentinel.trust.sync import finish_bundle_audit

    got: list[tuple[str, dict]] = []
    with BundleStore(tmp_path / "data") as store:
        store.set_meta(audit_pending=json.dumps({"version": 4, "source": "dir:x"}))
        assert finish_bundle_audit(store, audit=lambda k, d: got.append((k, d))) is True
        assert store.meta("audit_pending") is None
    assert got == [("bundle_applied", {"version": 4, "source": "dir:x", "recovered": True})]
    with open_audit(tmp_path / "data") as a:
        assert a.entries() == []
