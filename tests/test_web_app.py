"""Web app without a browser: users and lock-out, sessions, CSRF, roles, export, hub."""

from __future__ import annotations

import asyncio
import csv
import io
import re
import shutil
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from sentinel.config import Config, WebConfig, replace
from sentinel.journal import Event, Journal
from sentinel.journal.audit import open_audit
from sentinel.policy import Decision, TrustState
from sentinel.reasons import ReasonCode
from sentinel.web.app import WebContext, create_app, kiosk_status, parse_filter
from sentinel.web.charts import bar_chart, defuse, to_csv
from sentinel.web.data import Filter, ReportData, counts
from sentinel.web.hub import EventHub
from sentinel.web.server import BackgroundServer
from sentinel.web.users import UserError, UserStore, check_secret, hash_secret

NOW = datetime(2022, 5, 1, 12, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"


class Clock:
    def __init__(self, t: datetime) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return self.t


def _event(t: datetime, reason: str, gate: str = "gate-1", decision: str = "refuse") -> Event:
    return Event(t, "demo-venue", gate, decision, reason, "dcc_vaccination", "v1")


@pytest.fixture(scope="module")
def users_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """users.db with a manager, an auditor and a staff user (scrypt once per module)."""
    path = tmp_path_factory.mktemp("users") / "users.db"
    store = UserStore(path)
    for name, role in (("mia", "manager"), ("aldo", "auditor"), ("sam", "staff")):
        store.add(name, role, PASSWORD)
    return path


@pytest.fixture
def site(tmp_path: Path, users_template: Path):
    """A configured app over a seeded journal, with a manager, an auditor and a staff user."""
    clock = Clock(NOW)
    cfg = replace(Config(), data_dir=str(tmp_path), web=WebConfig(session_minutes=30))
    with Journal(tmp_path / "journal.db", clock=clock) as j:
        j.record(
            _event(NOW - timedelta(hours=3), "EXPIRED"),
            personal={"display_name": "M******* E****, 1974"},
        )
        j.record(_event(NOW - timedelta(hours=2), "EXPIRED", gate="gate-2"))
        j.record(_event(NOW - timedelta(hours=2), "TEST_TOO_OLD"))
        j.record(_event(NOW - timedelta(hours=1), "ADMIT", decision="admit"))
        j.record(_event(NOW - timedelta(days=3), "REVOKED", gate='=HYPERLINK("x")'))
        j.record(_event(NOW - timedelta(days=30), "EXPIRED"))
    opened: list[str] = []
    shutil.copyfile(users_template, tmp_path / "users.db")
    ctx = WebContext.for_config(cfg, clock=clock, override=opened.append)
    server = BackgroundServer(create_app(ctx)).start()
    with httpx.Client(base_url=server.url, follow_redirects=True, timeout=10) as client:
        yield ctx, client, clock, opened
    ctx.hub.close()
    server.stop()


def _csrf(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, html
    return m.group(1)


def _login(client: httpx.Client, name: str, password: str = PASSWORD):
    token = _csrf(client.get("/login").text)
    return client.post("/login", data={"csrf": token, "name": name, "password": password})


def test_scrypt_hash_roundtrip_and_salt() -> None:
    a, b = hash_secret("pw-123456"), hash_secret("pw-123456")
    assert a != b and a.startswith("scrypt$16384$8$1$")
    assert check_secret("pw-123456", a) and not check_secret("pw-123457", a)
    assert not check_secret("x", "garbage") and not check_secret("x", "md5$1$1$1$00$00")


def test_user_store_rules(tmp_path: Path) -> None:
    s = UserStore(tmp_path / "users.db")
    s.add("alice", "manager", PASSWORD)
    with pytest.raises(UserError, match="exists"):
        s.add("alice", "staff", PASSWORD)
    with pytest.raises(UserError, match="role"):
        s.add("bob", "admin", PASSWORD)
    with pytest.raises(UserError, match="at least"):
        s.add("bob", "staff", "short")
    with pytest.raises(UserError, match="user names"):
        s.add("bob smith", "staff", PASSWORD)
    raw = (tmp_path / "users.db").read_bytes()
    assert PASSWORD.encode() not in raw
    assert s.users() == [("alice", "manager")]
    s.remove("alice")
    with pytest.raises(UserError, match="no user"):
        s.remove("alice")


def test_login_wrong_password_then_lockout_then_unlock(site) -> None:
    ctx, client, clock, _ = site
    r = _login(client, "mia", "wrong password")
    assert r.status_code == 401 and "Wrong user name or password" in r.text
    assert _login(client, "mia", "wrong password").status_code == 401  # no delay after one
    r = _login(client, "mia")  # right password, but within the 1 s delay after two failures
    assert r.status_code == 429 and r.headers["retry-after"] == "1"
    for k in range(2, ctx.config.web.max_failures):
        clock.t += timedelta(seconds=2 ** (k - 2))  # the delay doubles after each failure
        assert _login(client, "mia", "wrong password").status_code == 401
    clock.t += timedelta(minutes=ctx.config.web.lockout_minutes - 1)
    r = _login(client, "mia")  # right password, but locked now
    assert r.status_code == 429 and "Too many failed attempts" in r.text
    # Retry-After is the lock's remaining time (about a minute here), not a token 1 s
    assert 30 <= int(r.headers["retry-after"]) <= 90, r.headers["retry-after"]
    clock.t += timedelta(minutes=ctx.config.web.lockout_minutes + 1)
    r = _login(client, "mia")
    assert r.status_code == 200 and r.url.path == "/reports"
    with open_audit(ctx.config.data_dir) as log:
        results = [(e["kind"], e["details"]) for e in log.entries()]
    assert results[0] == ("login", '{"result":"bad","user":"mia"}')
    assert ("login", '{"result":"locked","user":"mia"}') in results
    assert results[-1] == ("login", '{"result":"ok","user":"mia"}')


def test_unknown_user_name_is_not_logged(site) -> None:
    ctx, client, _, _ = site
    _login(client, "hunter2-typed-in-name-field", "x")
    with open_audit(ctx.config.data_dir) as log:
        (entry,) = log.entries()
    assert "hunter2" not in entry["details"]


def test_roles_limit_pages(site) -> None:
    _, client, _, _ = site
    assert client.get("/reports").url.path == "/login"  # not signed in
    r = _login(client, "sam")
    assert r.url.path == "/home"
    assert client.get("/reports").status_code == 403
    assert client.get("/audit").status_code == 403
    client2 = client
    client2.cookies.clear()
    _login(client2, "mia")
    assert client2.get("/reports").status_code == 200
    assert client2.get("/audit").status_code == 403  # managers do not audit themselves
    client2.cookies.clear()
    r = _login(client2, "aldo")
    assert r.url.path == "/audit"
    assert client2.get("/reports").status_code == 200


def test_session_expires(site) -> None:
    _, client, clock, _ = site
    _login(client, "mia")
    assert client.get("/reports").url.path == "/reports"
    clock.t += timedelta(minutes=31)
    assert client.get("/reports").url.path == "/login"


def test_csrf_rejected_on_every_form(site) -> None:
    _, client, _, _ = site
    client.get("/login")
    bad = {"csrf": "x" * 43, "name": "mia", "password": PASSWORD}
    assert client.post("/login", data=bad).status_code == 403
    del bad["csrf"]
    assert client.post("/login", data=bad).status_code == 403
    _login(client, "mia")
    r = client.post("/reports/export", data={"csrf": "forged"})
    assert r.status_code == 403
    r = client.post("/logout", data={"csrf": "forged"})
    assert r.status_code == 403
    r = client.post("/kiosk/override", data={"csrf": "forged", "pin": "1234", "reason": "paper"})
    assert r.status_code == 403


def test_unknown_host_header_refused(site) -> None:
    _, client, _, _ = site
    r = client.get("/kiosk", headers={"host": "evil.example"})
    assert r.status_code == 400


def test_report_filter_counts_and_escaping(site) -> None:
    _, client, _, _ = site
    _login(client, "mia")
    r = client.get("/reports", params={"start": "2022-05-01", "end": "2022-05-01"})
    assert r.status_code == 200
    assert 'id="total">3<' in r.text  # two EXPIRED and one TEST_TOO_OLD today; the admit not
    assert r.text.count("<rect ") == 24  # hourly buckets for one day
    r = client.get("/reports", params={"start": "2022-04-25", "end": "2022-05-01"})
    assert 'id="total">4<' in r.text
    assert "&#34;x&#34;" in r.text or "&quot;x&quot;" in r.text  # gate text escaped
    r = client.get(
        "/reports", params={"start": "2022-04-01", "end": "2022-05-01", "reason": "EXPIRED"}
    )
    assert 'id="total">3<' in r.text
    r = client.get(
        "/reports",
        params={"start": "2022-04-01", "end": "2022-05-01", "reason": "EXPIRED", "gate": "gate-2"},
    )
    assert 'id="total">1<' in r.text
    r = client.get("/reports", params={"start": "not-a-date"})
    assert r.status_code == 400 and "YYYY-MM-DD" in r.text


def test_personal_fields_only_inside_retention_window(site) -> None:
    ctx, client, clock, _ = site
    _login(client, "mia")
    r = client.get("/reports", params={"start": "2022-05-01", "end": "2022-05-01"})
    assert "M******* E****, 1974" in r.text
    clock.t += timedelta(days=ctx.config.retention.retention_days + 1)
    _login(client, "mia")  # the session has expired meanwhile
    r = client.get("/reports", params={"start": "2022-05-01", "end": "2022-05-01"})
    assert 'id="total">3<' in r.text and "M******* E****" not in r.text


def test_csv_export_defused_and_audited(site) -> None:
    ctx, client, _, _ = site
    page = _login(client, "mia")
    page = client.get("/reports", params={"start": "2022-04-25", "end": "2022-05-01"})
    token = _csrf(page.text.split('action="/reports/export"')[1])
    r = client.post(
        "/reports/export",
        data={"csrf": token, "start": "2022-04-25", "end": "2022-05-01", "gate": "", "reason": ""},
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert len(rows) == 4
    assert {row["reason"] for row in rows} == {"EXPIRED", "TEST_TOO_OLD", "REVOKED"}
    revoked = next(row for row in rows if row["reason"] == "REVOKED")
    assert revoked["gate"] == '\'=HYPERLINK("x")'
    assert revoked["message_zh"] == "证书已被撤销"
    with open_audit(ctx.config.data_dir) as log:
        last = log.entries()[-1]
    assert last["kind"] == "export"
    assert '"rows":4' in last["details"] and '"user":"mia"' in last["details"]


def test_defuse_and_csv_helpers() -> None:
    for bad in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"):
        assert defuse(bad).startswith("'")
    assert defuse("gate-1") == "gate-1" and defuse(None) == ""
    text = to_csv([], {})
    assert text.startswith("event_id,time,venue")


def test_counts_buckets_and_chart_escape() -> None:
    f = Filter(NOW - timedelta(days=3), NOW)
    rows = [
        {"time": (NOW - timedelta(days=1)).isoformat(), "reason": "EXPIRED"},
        {"time": (NOW - timedelta(days=1, hours=1)).isoformat(), "reason": "EXPIRED"},
        {"time": (NOW - timedelta(days=2)).isoformat(), "reason": "REVOKED"},
    ]
    c = counts(rows, f)
    assert c.bucket == "day" and c.total == 3
    assert c.by_reason == [("EXPIRED", 2), ("REVOKED", 1)]
    assert [n for _, n in c.by_bucket] == [0, 1, 2, 0]
    svg = bar_chart(c.by_bucket, "<b>")
    assert "<b>" not in svg and "&lt;b&gt;" in svg


def test_parse_filter_bounds() -> None:
    f, echo, err = parse_filter({"start": "2022-05-03", "end": "2022-05-01"}, NOW.date())
    assert err and f.start < f.end and echo["start"] == "2022-05-01"
    f, _, err = parse_filter({"reason": "DROP TABLE"}, NOW.date())
    assert f.reason is None and err
    f, _, _ = parse_filter({}, NOW.date())
    assert f.end - f.start == timedelta(days=7)


def test_report_data_reads_journal_read_only(tmp_path: Path) -> None:
    with Journal(tmp_path / "journal.db") as j:
        j.record(_event(NOW, "EXPIRED"))
    data = ReportData(tmp_path / "journal.db")
    rows = data.refused(Filter(NOW - timedelta(hours=1), NOW + timedelta(hours=1)))
    assert [r["reason"] for r in rows] == ["EXPIRED"]
    assert data.gates() == ["gate-1"]
    assert ReportData(tmp_path / "missing.db").refused(Filter(NOW, NOW)) == []


def test_kiosk_override_pin_lockout_and_audit(site) -> None:
    ctx, client, clock, opened = site
    page = client.get("/kiosk")
    assert "staff-open" not in page.text  # no PIN set yet: no override button
    with pytest.raises(UserError, match="6 to 12 digits"):
        ctx.users.set_pin("4321")
    ctx.users.set_pin("864213")
    token = _csrf(client.get("/kiosk").text)

    def post(pin: str, reason: str = "paper") -> httpx.Response:
        return client.post("/kiosk/override", data={"csrf": token, "pin": pin, "reason": reason})

    r = post("111111")
    assert r.status_code == 403 and r.json()["error"] == "bad"
    assert post("864213", "nope").status_code == 400
    assert post("222222").status_code == 403
    assert post("864213").status_code == 429  # the 1 s delay after two failures
    clock.t += timedelta(seconds=1)
    assert post("864213").json() == {"ok": True} and opened == ["paper"]
    for k in range(1, ctx.config.web.max_failures + 1):
        assert post("000000").status_code == 403
        clock.t += timedelta(seconds=2 ** max(0, k - 2))
    r = post("864213")
    assert r.status_code == 429 and r.json()["error"] == "locked" and opened == ["paper"]
    assert int(r.headers["retry-after"]) > 60


def test_kiosk_status_stale_and_device_state(tmp_path: Path) -> None:
    clock = Clock(NOW)
    state = TrustState(updated_at=NOW - timedelta(hours=50), max_age=timedelta(hours=48))
    ctx = WebContext.for_config(
        replace(Config(), data_dir=str(tmp_path)), clock=clock, trust_state=lambda: state
    )
    s = kiosk_status(ctx)
    assert s["stale"] and s["fresh_en"] == "Data updated 2 days ago"
    ctx.hub.on_event(_event(NOW, "CAMERA_FAULT", decision="event"), None)
    ctx.hub.on_event(_event(NOW, "DOOR_FORCED", decision="event"), None)
    s = kiosk_status(ctx)
    assert s["camera_fault"] and s["alarm"] == "DOOR_FORCED" and s["alarm_zh"] == "门被强行打开"
    ctx.hub.on_event(_event(NOW, "DOOR_CLOSED", decision="event"), None)
    ctx.hub.on_event(_event(NOW, "CAMERA_RECOVERED", decision="event"), None)
    s = kiosk_status(ctx)
    assert not s["camera_fault"] and s["alarm"] == ""


def test_hub_fans_out_decisions_to_subscribers() -> None:
    hub = EventHub()
    hub.status_fn = lambda: {"stale": False}
    decision = Decision.of(ReasonCode.EXPIRED, display_name="M*** E****")

    async def main() -> list:
        got = []
        stream = hub.subscribe(keepalive_s=5)
        got.append(await anext(stream))
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(
            None, hub.on_event, _event(NOW, "EXPIRED", decision="refuse"), decision
        )
        got.append(await asyncio.wait_for(anext(stream), 1))
        hub.close()
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(anext(stream), 1)
        return got

    got = asyncio.run(main())
    assert got[0] == ("status", {"stale": False})
    name, data = got[1]
    assert name == "decision" and data["verdict"] == "refuse"
    assert data["name"] == "M*** E****" and data["zh"] == "证书已过期"
    assert hub.subscribers == 0


def test_security_headers(site) -> None:
    _, client, _, _ = site
    r = client.get("/kiosk")
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-frame-options"] == "DENY"
    assert "https://" not in r.text and "http://" not in r.text  # nothing remote


def test_user_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from sentinel.cli import main

    cfg = tmp_path / "s.toml"
    cfg.write_text('data_dir = "data"\n')

    def sentinel(*args: str, stdin: str = "") -> int:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        return main(["user", *args, "--config", str(cfg)])

    assert sentinel("add", "alice", "--role", "manager", "--stdin", stdin=PASSWORD + "\n") == 0
    assert sentinel("add", "alice", "--role", "manager", "--stdin", stdin=PASSWORD + "\n") == 1
    assert "already exists" in capsys.readouterr().err
    assert sentinel("passwd", "alice", "--stdin", stdin="another-password\n") == 0
    store = UserStore(tmp_path / "data" / "users.db")
    assert store.login("alice", "another-password", 5).token
    capsys.readouterr()
    assert sentinel("list") == 0
    assert capsys.readouterr().out.strip() == "alice\tmanager"
    assert sentinel("pin", "--stdin", stdin="12a4\n") == 1
    assert sentinel("pin", "--stdin", stdin="2468\n") == 1  # too short
    assert sentinel("pin", "--stdin", stdin="246813\n") == 0
    assert store.check_pin("246813") == "ok"
    assert sentinel("remove", "alice") == 0
    assert store.users() == []
    with pytest.raises(SystemExit):
        main(["user", "--help"])
    assert "sentinel user add alice --role manager" in capsys.readouterr().out
