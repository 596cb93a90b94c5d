"""Central web pages over a real PostgreSQL, served by uvicorn on 127.0.0.1.

Scope (a manager sees only their venues, in the page and in the CSV bytes), the fleet
page's offline/stale marks, the export and its central audit row, CSRF, and roles.
Screenshot: ``SENTINEL_SCREENSHOTS=docs/screenshots`` writes ``central-fleet.png`` there.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest

from sentinel.fleet import central
from sentinel.web.central_app import CentralSettings, create_central_app
from sentinel.web.server import BackgroundServer
from sentinel.web.users import UserStore
from tests.servers import free_port, postgres, wait_port

NOW = datetime(2024, 3, 15, 12, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"
RANGE = {"start": "2024-03-08", "end": "2024-03-15"}
NORTH, EAST, SOUTH = "north-arena", "east-club", "south-hall"
MIA_VENUES = [EAST, NORTH]  # manager mia; manager sue has SOUTH only
FORMULA_GATE = '=HYPERLINK("http://x")'


@dataclass(frozen=True)
class Row:
    event_id: str
    venue: str
    gate: str
    time: datetime
    decision: str
    reason: str


def _seed_events() -> list[Row]:
    """Refusals and admissions over several days in three venues (ids name their venue)."""
    reasons = ["EXPIRED", "TEST_TOO_OLD", "REVOKED", "BAD_SIGNATURE"]
    out: list[Row] = []
    for v_i, venue in enumerate((NORTH, EAST, SOUTH)):
        for k in range(14 + 3 * v_i):
            t = NOW - timedelta(hours=5 + 9 * k + v_i)
            gate = f"gate-{k % 2 + 1}"
            if venue == NORTH and k == 3:
                gate = FORMULA_GATE
            decision = "admit" if k % 5 == 4 else "refuse"
            reason = "ADMIT" if decision == "admit" else reasons[(k + v_i) % len(reasons)]
            out.append(Row(f"evt-{venue}-{k:03d}", venue, gate, t, decision, reason))
    # outside the report range: never shown for RANGE
    out.append(Row("evt-north-arena-old", NORTH, "gate-1", NOW - timedelta(days=40), "refuse",
                   "EXPIRED"))  # fmt: skip
    return out


EVENTS = _seed_events()

# device_id, venue, gate, heartbeat age, bundle age (s), backlog, faults
DEVICES = [
    ("north-arena-g1", NORTH, "gate-1", timedelta(seconds=20), 3600.0, 0, ""),
    ("north-arena-g2", NORTH, "gate-2", timedelta(minutes=25), 7200.0, 412, ""),  # offline
    ("east-club-g1", EAST, "gate-1", timedelta(seconds=40), 3 * 86400.0, 3, "camera"),  # stale
    ("south-hall-g1", SOUTH, "gate-1", timedelta(minutes=50), 3600.0, 9, ""),  # offline
]


@dataclass
class Site:
    url: str
    dsn: str
    users: UserStore


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    users = UserStore(tmp_path_factory.mktemp("central") / "users.db", clock=lambda: NOW)
    for name, role in (("mia", "manager"), ("sue", "manager"), ("aldo", "auditor")):
        users.add(name, role, PASSWORD)
    users.add("sam", "staff", PASSWORD)
    with postgres() as dsn:
        app = create_central_app(
            dsn, users.path, CentralSettings(session_minutes=30), clock=lambda: NOW
        )
        with psycopg.connect(dsn, autocommit=True) as conn:
            central.ensure_partitions(conn, date(2024, 2, 1), months=2)
            for r in EVENTS:
                conn.execute(
                    "INSERT INTO events (event_id, device_id, venue, gate, time, decision, "
                    "reason, credential_kind, bundle_version) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    (r.event_id, f"{r.venue}-g1", r.venue, r.gate, r.time, r.decision,
                     r.reason, "dcc_vaccination", "v7"),
                )  # fmt: skip
            for dev, venue, gate, hb_age, bundle_age, backlog, faults in DEVICES:
                conn.execute(
                    "INSERT INTO devices (device_id, venue, gate, last_heartbeat, "
                    "bundle_version, bundle_age_s, outbox_backlog, faults) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                    (dev, venue, gate, NOW - hb_age, "v7", bundle_age, backlog, faults),
                )
            for venue in MIA_VENUES:
                conn.execute("INSERT INTO managers VALUES (%s, %s)", ("mia", venue))
            conn.execute("INSERT INTO managers VALUES (%s, %s)", ("sue", SOUTH))
        with BackgroundServer(app) as server:
            yield Site(server.url, dsn, users)


@pytest.fixture
def client(site: Site) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=site.url, follow_redirects=True, timeout=10) as c:
        yield c


def _csrf(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, html
    return m.group(1)


def _login(client: httpx.Client, name: str) -> httpx.Response:
    token = _csrf(client.get("/login").text)
    return client.post("/login", data={"csrf": token, "name": name, "password": PASSWORD})


def _expected(venues: list[str], **flt: str) -> list[Row]:
    start = datetime.fromisoformat(RANGE["start"]).replace(tzinfo=UTC)
    end = datetime.fromisoformat(RANGE["end"]).replace(tzinfo=UTC) + timedelta(days=1)
    return [
        r
        for r in EVENTS
        if r.decision == "refuse"
        and r.venue in venues
        and start <= r.time < end
        and all(getattr(r, k) == v for k, v in flt.items())
    ]


def _time(r: Row) -> datetime:
    return r.time


def _audit_rows(dsn: str, kind: str) -> list[dict]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT details FROM central_audit WHERE kind = %s ORDER BY seq", (kind,)
        ).fetchall()
    return [r[0] for r in rows]


def _export(client: httpx.Client, html: str, **form: str) -> httpx.Response:
    return client.post("/reports/export", data={"csrf": _csrf(html), **RANGE, **form})


def test_manager_sees_only_their_venues(client: httpx.Client) -> None:
    r = _login(client, "mia")
    assert r.status_code == 200 and str(r.url).endswith("/reports")
    html = client.get("/reports", params=RANGE).text
    expected = _expected(MIA_VENUES)
    assert re.search(r'id="total">(\d+)<', html).group(1) == str(len(expected))  # type: ignore[union-attr]
    for row in expected[:5]:
        assert row.event_id in html
    # Nothing of the other manager's venue: not its ids, not its name (no menu entry).
    assert "evt-south-hall" not in html and SOUTH not in html
    # Asking for it by URL narrows nothing open: it is ignored, still no rows.
    html = client.get("/reports", params={**RANGE, "venue": SOUTH}).text
    assert "Unknown venue ignored." in html and "evt-south-hall" not in html
    # Narrowing to one of mia's own venues works, and counts follow.
    html = client.get("/reports", params={**RANGE, "venue": EAST}).text
    assert f'id="total">{len(_expected([EAST]))}<' in html and "evt-north-arena" not in html
    # CSV bytes: only mia's venues.
    body = _export(client, html).content
    assert b"south-hall" not in body and b"evt-east-club" in body
    body = _export(client, html, venue=SOUTH).content
    assert b"south-hall" not in body
    rows = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))
    assert {r["venue"] for r in rows} == set(MIA_VENUES)
    assert len(rows) == len(expected)


def test_counts_by_reason_and_chart(client: httpx.Client) -> None:
    _login(client, "sue")
    html = client.get("/reports", params=RANGE).text
    expected = _expected([SOUTH])
    by_reason: dict[str, int] = {}
    for r in expected:
        by_reason[r.reason] = by_reason.get(r.reason, 0) + 1
    table = html.split('id="by-reason"')[1].split("</table>")[0]
    for reason, n in by_reason.items():
        assert re.search(rf"<code>{reason}</code>.*?<td class=\"num\">{n}</td>", table, re.S)
    assert "north-arena" not in html and "east-club" not in html
    # One bar per day of the range (8 days, ends included), escaped SVG, heights ~ counts.
    svg = html.split("<svg")[1].split("</svg>")[0]
    assert svg.count('class="bar"') == 8
    titles = re.findall(r"<title>(\d\d-\d\d): (\d+)</title>", svg)
    assert sum(int(n) for _, n in titles) == len(expected)


def test_auditor_sees_all_venues_and_filters(client: httpx.Client, site: Site) -> None:
    _login(client, "aldo")
    html = client.get("/reports", params=RANGE).text
    all_venues = [NORTH, EAST, SOUTH]
    assert f'id="total">{len(_expected(all_venues))}<' in html and "All venues" in html
    html = client.get("/reports", params={**RANGE, "venue": SOUTH, "reason": "EXPIRED"}).text
    assert f'id="total">{len(_expected([SOUTH], reason="EXPIRED"))}<' in html
    # Hostile parameters: bound as values, never SQL; no crash, no rows.
    html = client.get("/reports", params={**RANGE, "gate": "x' OR '1'='1"}).text
    assert 'id="total">0<' in html
    html = client.get("/reports", params={**RANGE, "venue": "'; DROP TABLE events; --"}).text
    assert "Unknown venue ignored." in html
    audit = client.get("/audit").text
    assert 'id="audit-verify" class="">verifies' in audit


def test_fleet_marks_offline_and_stale(client: httpx.Client) -> None:
    _login(client, "mia")
    html = client.get("/fleet").text

    def row(dev: str) -> str:
        m = re.search(rf'<tr id="dev-{dev}"[^>]*>.*?</tr>', html, re.S)
        assert m, dev
        return m.group(0)

    assert 'class="device offline"' in row("north-arena-g2") and "OFFLINE" in row("north-arena-g2")
    assert ">412<" in row("north-arena-g2")  # the backlog it reported
    assert 'class="device stale"' in row("east-club-g1") and "STALE" in row("east-club-g1")
    assert "camera" in row("east-club-g1")
    assert 'data-state="ok"' in row("north-arena-g1")
    assert "south-hall" not in html  # another manager's device
    assert 'id="n-offline">1<' in html and 'id="n-stale">1<' in html
    assert 'id="backlog">415<' in html
    _login(client, "aldo")
    html = client.get("/fleet").text
    assert 'id="dev-south-hall-g1" class="device offline"' in html
    assert 'id="n-offline">2<' in html


def test_export_csv_contents_and_audit_row(client: httpx.Client, site: Site) -> None:
    _login(client, "mia")
    html = client.get("/reports", params=RANGE).text
    before = len(_audit_rows(site.dsn, "export"))
    r = _export(client, html, venue=NORTH, reason="EXPIRED")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    expected = _expected([NORTH], reason="EXPIRED")
    # oldest first
    assert [x["event_id"] for x in rows] == [e.event_id for e in sorted(expected, key=_time)]
    assert all(x["decision"] == "refuse" and x["message_en"] for x in rows)
    # the full export of the venue holds the formula-like gate, defused
    r = _export(client, html, venue=NORTH)
    gates = {x["gate"] for x in csv.DictReader(io.StringIO(r.content.decode("utf-8-sig")))}
    assert "'" + FORMULA_GATE in gates and FORMULA_GATE not in gates
    audits = _audit_rows(site.dsn, "export")
    assert len(audits) == before + 2
    first = audits[before]
    assert first["user"] == "mia" and first["rows"] == len(expected)
    assert first["filter"]["venue"] == NORTH and first["filter"]["reason"] == "EXPIRED"
    with psycopg.connect(site.dsn, autocommit=True) as conn:
        n, bad = central.verify_audit(conn)
    assert bad is None and n >= 2


def test_csrf_rejected(client: httpx.Client, site: Site) -> None:
    # login without the pre-login token
    r = client.post("/login", data={"csrf": "x" * 40, "name": "mia", "password": PASSWORD})
    assert r.status_code == 403
    _login(client, "mia")
    before = len(_audit_rows(site.dsn, "export"))
    r = client.post("/reports/export", data={"csrf": "wrong", **RANGE})
    assert r.status_code == 403 and b"evt-" not in r.content
    r = client.post("/reports/export", data=RANGE)
    assert r.status_code == 403
    assert len(_audit_rows(site.dsn, "export")) == before
    r = client.post("/logout", data={"csrf": "wrong"})
    assert r.status_code == 403
    assert client.get("/fleet").status_code == 200  # still signed in


def test_staff_and_strangers_refused(client: httpx.Client, site: Site) -> None:
    def sessions_of(name: str) -> int:
        with sqlite3.connect(site.users.path) as db:
            return db.execute("SELECT count(*) FROM sessions WHERE name = ?", (name,)).fetchone()[0]

    before = sessions_of("sam")
    r = _login(client, "sam")
    assert r.status_code == 403 and "cannot use the central pages" in r.text
    assert 'value="sam"' in r.text  # the form keeps the name typed, the message is apart
    assert "sentinel_central_session" not in client.cookies
    assert sessions_of("sam") == before  # nothing left behind on the server either
    assert _audit_rows(site.dsn, "login")[-1] == {"user": "sam", "result": "role"}
    # a staff session made elsewhere (same users file) opens nothing here
    token = site.users.login("sam", PASSWORD, 30).token
    assert token
    client.cookies.set("sentinel_central_session", token)
    for path in ("/reports", "/fleet", "/audit"):
        r = client.get(path)
        assert r.status_code == 403 and 'id="forbidden"' in r.text, path
    client.cookies.clear()
    r = client.get("/fleet")
    assert str(r.url).endswith("/login")
    r = client.post("/login", data={"csrf": _csrf(client.get("/login").text), "name": "mia",
                                    "password": "wrong password"})  # fmt: skip
    assert r.status_code == 401
    _login(client, "mia")
    assert client.get("/audit").status_code == 403  # managers: no audit view


def test_cli_serves_central_web(site: Site, tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sentinel.cli", "central", "web", "--dsn", site.dsn,
         "--users", str(site.users.path), "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_port(port, timeout_s=20)
        r = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
        assert r.status_code == 200 and json.loads(r.text)["database"] is True
        assert httpx.get(f"http://127.0.0.1:{port}/login", timeout=10).status_code == 200
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out


@pytest.mark.browser
def test_fleet_page_screenshot(site: Site, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    from tests.test_web_browser import ARGS, CHROMIUM

    out = Path(os.environ.get("SENTINEL_SCREENSHOTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 560})
        page.goto(site.url + "/login")
        page.fill("input[name=name]", "aldo")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.goto(site.url + "/fleet")
        offline = page.locator("#dev-north-arena-g2")
        expect(offline).to_have_class(re.compile("offline"))
        # highlighted by the stylesheet, not only by text
        bg = offline.evaluate("e => getComputedStyle(e).backgroundColor")
        assert bg not in ("rgba(0, 0, 0, 0)", "transparent")
        page.screenshot(path=out / "central-fleet.png")
        browser.close()


def test_d1_parallel_wrong_passwords_do_not_pass_the_lockout(site: Site) -> None:
    """Security review #41: 40 parallel wrong passwords were all evaluated and the account
    was left unlocked.  Now at most max_failures are evaluated, the rest answer 429."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    site.users.add("eve", "auditor", PASSWORD)
    limits = httpx.Limits(max_connections=48, max_keepalive_connections=48)
    with httpx.Client(base_url=site.url, timeout=60, limits=limits) as c:
        token = _csrf(c.get("/login").text)
        barrier = threading.Barrier(40)

        def guess(i: int) -> int:
            barrier.wait()
            data = {"csrf": token, "name": "eve", "password": f"wrong-{i}"}
            return c.post("/login", data=data).status_code

        with ThreadPoolExecutor(40) as pool:
            codes = list(pool.map(guess, range(40)))
        assert set(codes) <= {401, 429}, codes  # never a 500
        assert codes.count(401) <= CentralSettings().max_failures
        right = c.post("/login", data={"csrf": token, "name": "eve", "password": PASSWORD})
        assert right.status_code == 429  # the clock stands still: still waiting
