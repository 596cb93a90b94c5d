"""Central city and alert pages: real PostgreSQL, mosquitto, ingester and uvicorn on
127.0.0.1, and real Chromium for drill-down and the live alert round trip.

Screenshots: ``SENTINEL_SCREENSHOTS=docs/screenshots`` writes ``central-city.png`` and
``central-alerts.png`` there.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import psycopg
import pytest

from sentinel.fleet import central, city, loadgen
from sentinel.fleet.ingest import Batch, Ingester, parse_event, parse_topic
from sentinel.fleet.mqtt import BrokerSettings
from sentinel.web.central_app import create_central_app
from sentinel.web.server import BackgroundServer
from sentinel.web.users import UserStore
from tests.servers import Mosquitto, postgres
from tests.test_city import CSV, FAST
from tests.test_fleet import until

PASSWORD = "correct horse battery"


@dataclass
class Site:
    url: str
    dsn: str
    port: int  # broker


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("city-web")
    users = UserStore(tmp / "users.db")
    for name, role in (
        ("office-nanjing", "manager"),
        ("office-hengshan", "manager"),
        ("aldo", "auditor"),
    ):
        users.add(name, role, PASSWORD)
    broker = Mosquitto(tmp / "mqtt", extra=FAST)
    broker.start()
    with postgres() as dsn:
        with psycopg.connect(dsn, autocommit=True) as conn:
            central.migrate(conn)
            city.import_hierarchy(conn, CSV)
            city.add_scope(conn, "office-nanjing", "street", "nanjing-rd")
            city.add_scope(conn, "office-hengshan", "street", "hengshan-rd")
        now = datetime.now(UTC)
        rows = []
        for k in range(60):
            venue = f"v000{k % 5}"
            doc = loadgen.event_payload(
                "w", k, k, venue, f"{venue}-d", now - timedelta(minutes=7 * k), "EXPIRED"
            )
            rows.append(parse_event(doc, parse_topic(f"sentinel/{venue}/{venue}-d/events")))
        ing = Ingester(dsn, BrokerSettings(port=broker.port), client_id="web-ingester")
        ing._commit(Batch(events=rows))
        ing.start()
        assert ing.conn.subscribed.wait(20)
        app = create_central_app(dsn, users.path)
        try:
            with BackgroundServer(app) as server:
                yield Site(server.url, dsn, broker.port)
        finally:
            ing.stop()
            broker.stop()


@contextmanager
def login(base: str, name: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base, follow_redirects=True, timeout=10) as c:
        token = re.search(r'name="csrf" value="([^"]+)"', c.get("/login").text)
        assert token
        r = c.post("/login", data={"csrf": token.group(1), "name": name, "password": PASSWORD})
        assert r.status_code == 200, r.text
        yield c


def test_city_page_scopes_and_counts(site: Site) -> None:
    with login(site.url, "office-nanjing") as c:
        home = c.get("/city")
        assert home.status_code == 200 and 'id="area-street-nanjing-rd"' in home.text
        assert "hengshan" not in home.text and "huangpu" not in home.text
        street = c.get("/city", params={"level": "street", "area": "nanjing-rd", "days": "7"})
        assert street.status_code == 200
        assert re.search(r'id="here-total">24<', street.text), street.text  # v0000 + v0001
        assert 'id="area-grid-g1"' in street.text
        for level, area in (("city", "sh"), ("district", "huangpu"), ("street", "hengshan-rd"),
                            ("venue", "v0003"), ("nowhere", "x")):  # fmt: skip
            r = c.get("/city", params={"level": level, "area": area})
            assert r.status_code == 403, (level, area)
            assert "EXPIRED" not in r.text
    with login(site.url, "aldo") as c:
        r = c.get("/city", params={"level": "city", "area": "sh"})
        assert r.status_code == 200 and re.search(r'id="here-total">60<', r.text)
        assert 'id="area-district-huangpu"' in r.text and 'id="area-district-xuhui"' in r.text


def publish(port: int, venue: str, reason: str, seq: int) -> float:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"dev-{venue}-{seq}")
    c.connect("127.0.0.1", port)
    c.loop_start()
    t = datetime.now(UTC)
    payload = loadgen.event_payload("live", seq, seq, venue, f"{venue}-d", t, reason)
    c.publish(f"sentinel/{venue}/{venue}-d/events", payload, qos=1).wait_for_publish(10)
    c.disconnect()
    c.loop_stop()
    return time.monotonic()


@pytest.mark.browser
def test_live_alert_in_chromium_acknowledged_and_closed(site: Site, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    from tests.test_web_browser import ARGS, CHROMIUM

    out = Path(os.environ.get("SENTINEL_SCREENSHOTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 560})
        page.goto(site.url + "/login")
        page.fill("input[name=name]", "office-nanjing")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.goto(site.url + "/alerts")
        expect(page.locator("#no-alerts")).to_be_visible()
        publish(site.port, "v0003", "CODE_RED", 1)  # hengshan-rd: not this office's
        sent = publish(site.port, "v0001", "CODE_RED", 2)  # nanjing-rd
        row = page.locator("tr.alert.open")
        expect(row).to_have_count(1, timeout=2000)  # within 2 s of the decision
        seen = time.monotonic() - sent
        assert seen < 2.0
        expect(row).to_contain_text("v0001")
        expect(row).to_contain_text("CODE_RED")
        expect(row).not_to_contain_text("v0003")
        page.screenshot(path=out / "central-alerts.png")
        row.locator("form[data-action=acknowledge] input[name=note]").fill("officer on the way")
        row.locator("form[data-action=acknowledge] button").click()
        acked = page.locator("tr.alert.acknowledged")
        expect(acked).to_have_count(1)
        expect(acked).to_contain_text("officer on the way")
        acked.locator("form[action$='/close'] input[name=note]").fill("checked; gate fine")
        acked.locator("form[action$='/close'] button").click()
        expect(page.locator("#no-alerts")).to_be_visible()
        # drill-down, as the auditor, from the city to a venue
        page.click("button:has-text('Sign out')")
        page.fill("input[name=name]", "aldo")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.goto(site.url + "/city")
        page.click("#area-city-sh a")
        page.click("#area-district-huangpu a")
        expect(page.locator("#here")).to_have_attribute("data-area", "huangpu")
        expect(page.locator("#area-street-nanjing-rd")).to_be_visible()
        page.screenshot(path=out / "central-city.png")
        page.click("#area-street-nanjing-rd a")
        expect(page.locator("#crumbs")).to_contain_text("District huangpu")
        browser.close()
    with psycopg.connect(site.dsn) as conn:
        entries = central.audit_entries(conn)[::-1]
        states = conn.execute("SELECT id, venue, state FROM alerts ORDER BY id").fetchall()
        assert central.verify_audit(conn)[1] is None
    assert [(v, st) for _i, v, st in states] == [("v0003", "open"), ("v0001", "closed")]
    raised = [i for e in entries if e["kind"] == "alert_raised" for i in e["details"]["alerts"]]
    assert sorted(raised) == [i for i, _v, _s in states]  # one batch may raise both
    follow = [(e["kind"], e["details"]["alert"]) for e in entries if "alert" in e["details"]]
    assert follow == [("alert_acknowledged", states[1][0]), ("alert_closed", states[1][0])]


def test_alert_forms_check_csrf_and_scope(site: Site) -> None:
    publish(site.port, "v0004", "REVOKED", 3)
    with psycopg.connect(site.dsn, autocommit=True) as conn:

        def raised() -> tuple | None:
            return conn.execute("SELECT id FROM alerts WHERE venue = 'v0004'").fetchone()

        assert until(lambda: raised() is not None, 10)
        aid = raised()[0]
    with login(site.url, "office-nanjing") as c:
        page = c.get("/alerts").text
        assert f'id="alert-{aid}"' not in page
        token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        r = c.post(f"/alerts/{aid}/acknowledge", data={"csrf": token, "note": "mine?"})
        assert r.status_code == 409  # not in this office's area: nothing changes
        r = c.post(f"/alerts/{aid}/acknowledge", data={"csrf": "x" * 43, "note": "n"})
        assert r.status_code == 403
        feed = c.get("/alerts/feed").json()
        assert all(a["venue"] in ("v0000", "v0001", "v0002") for a in feed["alerts"])
    with login(site.url, "office-hengshan") as c:
        token = re.search(r'name="csrf" value="([^"]+)"', c.get("/alerts").text).group(1)
        r = c.post(f"/alerts/{aid}/acknowledge", data={"csrf": token, "note": " "})
        assert r.status_code == 400  # a note is required
        r = c.post(f"/alerts/{aid}/acknowledge", data={"csrf": token, "note": "<b>on it</b>"})
        assert r.status_code == 200 and "&lt;b&gt;on it&lt;/b&gt;" in r.text
        assert set(a["venue"] for a in c.get("/alerts/feed").json()["alerts"]) <= {
            "v0003",
            "v0004",
        }
