"""Attacks of the security review (docs/security.md) on the device web, as the review ran them:
a real server on 127.0.0.1, real SQLite files, real parallel requests (D1, D11, D15, D16)."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from sentinel.config import Config, WebConfig, replace
from sentinel.web.app import WebContext, create_app
from sentinel.web.server import BackgroundServer

NOW = datetime(2022, 5, 1, 12, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"
PIN = "000150"  # the review's PIN 0150, padded to the 6 digits now required
IN_FLIGHT = 48


class Clock:
    def __init__(self, t: datetime) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return self.t


@pytest.fixture
def site(tmp_path: Path):
    clock = Clock(NOW)
    cfg = replace(Config(), data_dir=str(tmp_path / "data"), web=WebConfig(session_minutes=30))
    opened: list[str] = []
    ctx = WebContext.for_config(cfg, clock=clock, override=opened.append)
    ctx.users.add("umanager", "manager", PASSWORD)
    ctx.users.set_pin(PIN)
    server = BackgroundServer(create_app(ctx)).start()
    limits = httpx.Limits(max_connections=IN_FLIGHT + 8, max_keepalive_connections=IN_FLIGHT + 8)
    with httpx.Client(base_url=server.url, timeout=60, limits=limits) as client:
        client.get("/kiosk")  # the anonymous CSRF cookie, as any visitor gets it
        yield ctx, client, clock, opened
    ctx.hub.close()
    server.stop()


def _parallel(n: int, call) -> list[httpx.Response]:
    """``n`` calls released together by a barrier, so all are in flight at once."""
    gate = threading.Barrier(n)

    def one(i: int) -> httpx.Response:
        gate.wait()
        return call(i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def _override(client: httpx.Client, pin: str) -> httpx.Response:
    tok = client.cookies["sentinel_csrf"]
    return client.post("/kiosk/override", data={"csrf": tok, "reason": "paper", "pin": pin})


def _login(client: httpx.Client, name: str, password: str) -> httpx.Response:
    tok = client.cookies["sentinel_csrf"]
    return client.post("/login", data={"csrf": tok, "name": name, "password": password})


def test_d1_parallel_pin_guessing_cannot_open_the_gate(site) -> None:
    """Review #10: PINs 0000 up, 48 in flight; it opened the gate after 147 guesses."""
    ctx, client, clock, opened = site
    evaluated = 0
    for burst in range(4):  # four bursts, each after the previous delay has passed
        guesses = [f"{burst * IN_FLIGHT + i:06d}" for i in range(IN_FLIGHT)]
        if PIN in guesses:
            guesses.remove(PIN)
        rs = _parallel(len(guesses), lambda i, g=guesses: _override(client, g[i]))
        codes = [r.status_code for r in rs]
        assert set(codes) <= {403, 429}, codes  # 403: evaluated and wrong; never a 500
        evaluated += codes.count(403)
        clock.t += timedelta(seconds=30)
    assert evaluated <= ctx.config.web.max_failures
    assert opened == []
    r = _override(client, PIN)  # the right PIN is now refused too: the lock held
    assert r.status_code == 429 and r.json()["error"] == "locked" and opened == []


def test_d1_parallel_wrong_passwords_lock_the_account(site) -> None:
    """Review #9: 60 parallel wrong passwords, 53 evaluated, then the right one signed in."""
    ctx, client, clock, _ = site
    evaluated = 0
    for _ in range(ctx.config.web.max_failures):  # 2 + 1 + 1 + 1 evaluated, then locked
        rs = _parallel(IN_FLIGHT, lambda i: _login(client, "umanager", f"wrong-{i}"))
        codes = [r.status_code for r in rs]
        assert set(codes) <= {401, 429}, codes
        evaluated += codes.count(401)
        clock.t += timedelta(seconds=20)  # past every delay, well inside the 15 min lock
    assert evaluated == ctx.config.web.max_failures  # counted exactly, none lost
    r = _login(client, "umanager", PASSWORD)
    assert r.status_code == 429 and "Too many failed attempts" in r.text
    assert 'value="umanager"' in r.text  # the form keeps the name typed, the message is apart
    with sqlite3.connect(Path(ctx.config.data_dir) / "users.db") as db:
        (until,) = db.execute(
            "SELECT locked_until FROM failures WHERE subject = 'umanager'"
        ).fetchone()
    assert until and datetime.fromisoformat(until) > clock.t  # no late request erased it


def test_d1_users_db_contention_answers_429_not_500(site) -> None:
    """Review #11: `database is locked` became HTTP 500 under the PIN load."""
    ctx, client, _, _ = site
    ctx.users.busy_timeout_s = 0.2
    holder = sqlite3.connect(Path(ctx.config.data_dir) / "users.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another writer holds users.db
    try:
        rs = _parallel(8, lambda i: _override(client, f"{i:06d}"))
        r = _login(client, "umanager", PASSWORD)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert {x.status_code for x in rs} == {429} and r.status_code == 429
    assert r.headers["retry-after"] == "1"
    assert _login(client, "umanager", PASSWORD).status_code == 303  # released: signs in


def test_d11_date_edges_answer_400(site) -> None:
    """Review #24: end=9999-12-31 overflowed into a 500."""
    _, client, _, _ = site
    r = _login(client, "umanager", PASSWORD)
    assert r.status_code == 303
    for params in (
        {"start": "2020-01-01", "end": "9999-12-31"},
        {"start": "9999-12-31", "end": "9999-12-31"},
        {"start": "0001-01-01"},
    ):
        r = client.get("/reports", params=params)
        assert r.status_code == 400 and "between 2000-01-01 and 2100-12-31" in r.text, params
    s = ctx_csrf(client)
    r = client.post("/reports/export", data={"csrf": s, "start": "2020-01-01", "end": "9999-12-31"})
    assert r.status_code == 400
    assert client.get("/reports", params={"start": "2022-04-01"}).status_code == 200


def ctx_csrf(client: httpx.Client) -> str:
    import re

    m = re.search(r'name="csrf" value="([^"]+)"', client.get("/reports").text)
    assert m
    return m.group(1)


def test_d16_personal_pages_are_not_cached(site) -> None:
    """Review #26: /reports and the export had no Cache-Control."""
    _, client, _, _ = site
    assert _login(client, "umanager", PASSWORD).status_code == 303
    assert client.get("/reports").headers["cache-control"] == "no-store"
    r = client.post("/reports/export", data={"csrf": ctx_csrf(client)})
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    assert client.get("/kiosk").headers["cache-control"] == "no-store"


def test_d15_data_files_private_under_umask_022(tmp_path: Path) -> None:
    """Review #90: under umask 022 the data dir was 0755 and the databases 0644."""
    cfg = tmp_path / "sentinel.toml"
    cfg.write_text('data_dir = "data"\n[gate]\npin_factory = "mock"\n')
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    script = (
        "import os, sys; os.umask(0o022); from sentinel.cli import main; "
        "sys.exit(main(sys.argv[1:]))"
    )

    def sentinel(*args: str, stdin: str = "") -> None:
        subprocess.run(
            [sys.executable, "-c", script, *args], input=stdin, text=True, env=env, check=True,
            capture_output=True,
        )  # fmt: skip

    sentinel("user", "add", "umanager", "--role", "manager", "--stdin", "--config", str(cfg),
             stdin=PASSWORD + "\n")  # fmt: skip
    sentinel("user", "pin", "--stdin", "--config", str(cfg), stdin="864213\n")
    from sentinel.journal import Journal
    from sentinel.journal.audit import open_audit
    from sentinel.trust.store import BundleStore

    old = os.umask(0o022)
    try:
        data = tmp_path / "data"
        Journal(data / "journal.db").close()
        open_audit(data).close()
        BundleStore(data).close()
    finally:
        os.umask(old)
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "trust").stat().st_mode) == 0o700
    for f in data.rglob("*"):
        if f.is_file():
            assert stat.S_IMODE(f.stat().st_mode) & 0o077 == 0, f
    assert (data / "users.db.pinkey").exists()


def test_d5_event_stream_flood_does_not_stop_the_service(tmp_path: Path) -> None:
    """Review #29: 1 100 idle /kiosk/events sockets against `sentinel run` under
    `ulimit -n 1024` made accept() fail, then the frame loop hit EMFILE and the service
    exited (for a fail-safe lock, exiting releases the door)."""
    import queue
    import resource
    import socket

    import cv2

    from sentinel.credentials.trustlist import TrustList
    from sentinel.scan.synth import blank_frame
    from tests.servers import free_port

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2400:
        pytest.skip(f"the hard descriptor limit ({hard}) is too low for this flood")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 2400), hard))
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(3):
        cv2.imwrite(str(frames / f"{i}.png"), blank_frame(320, 240, i))
    port = free_port()
    conf = tmp_path / "s.toml"
    conf.write_text(
        f'data_dir = "data"\n[camera]\nsource = "{frames}"\nloop = true\n'
        '[gate]\npin_factory = "mock"\n'
        f'[web]\nenabled = true\nhost = "127.0.0.1"\nport = {port}\n',
        encoding="utf-8",
    )
    trust = tmp_path / "trust.json"
    trust.write_bytes(TrustList().to_json_bytes())
    with conf.open("a") as f:
        f.write(f'[trust]\ntrust_file = "{trust}"\n')

    def systemd_limit() -> None:  # the unit's default soft limit, as in the review
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))

    lines: queue.Queue[str] = queue.Queue()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sentinel", "run", "--config", str(conf)],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        preexec_fn=systemd_limit,
    )
    assert proc.stderr is not None
    reader = threading.Thread(target=lambda: [lines.put(x) for x in proc.stderr], daemon=True)
    reader.start()
    flood: list[socket.socket] = []
    try:
        while "sentinel running" not in (line := lines.get(timeout=60)):  # ready
            assert proc.poll() is None, line
        for _ in range(1100):
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                s.sendall(b"GET /kiosk/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                flood.append(s)
            except OSError:  # refused or reset by the cap: fine
                pass
        seen = ""
        while "connection cap reached, 1000 refused" not in seen and proc.poll() is None:
            try:
                seen += lines.get(timeout=30)
            except queue.Empty:
                break
        assert proc.poll() is None, seen[-3000:]  # still serving
    finally:
        for s in flood:
            s.close()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as c:
            for _ in range(50):  # the aborted sockets drain within a few event-loop turns
                try:
                    r = c.get("/healthz")
                except httpx.TransportError:
                    continue
                if r.status_code == 200 and r.json()["kiosk_clients"] == 0:
                    break
            assert r.status_code == 200 and c.get("/kiosk").status_code == 200
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        reader.join(timeout=10)
        proc.stderr.close()


def test_d15_users_db_alone_does_not_reveal_the_pin(tmp_path: Path) -> None:
    """Review #91: scrypt over 0000-9999 against a readable users.db recovered the PIN.
    Now the PIN has 6+ digits and is keyed by users.db.pinkey (another 0600 file): the
    hash in users.db does not verify against the PIN itself."""
    from sentinel.web.users import UserError, UserStore, check_secret

    store = UserStore(tmp_path / "users.db")
    for short in ("4321", "12345", "１２３４５６"):
        with pytest.raises(UserError):
            store.set_pin(short)
    store.set_pin("864213")
    with sqlite3.connect(tmp_path / "users.db") as db:
        rows = dict(db.execute("SELECT key, value FROM settings"))
    assert len(rows) == 1
    (stored,) = rows.values()
    assert not check_secret("864213", stored)  # the offline search of the review finds nothing
    assert store.check_pin("864213") == "ok"
