"""Kiosk and report pages in a real Chromium (Debian's /usr/bin/chromium via Playwright).

Screenshots go to ``tmp_path``; with ``SENTINEL_SCREENSHOTS=docs/screenshots`` they are
written there instead (that is how the README images are made).
"""

from __future__ import annotations

import csv
import io
import os
import random
import shutil
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from sentinel.config import Config, VenueConfig, WebConfig, replace
from sentinel.journal import Event, Journal
from sentinel.journal.audit import open_audit
from sentinel.policy import Decision, TrustState
from sentinel.reasons import ReasonCode
from sentinel.web.app import WebContext, create_app
from sentinel.web.server import BackgroundServer
from sentinel.web.users import UserStore

pytestmark = pytest.mark.browser

NOW = datetime(2022, 5, 1, 12, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
REFUSALS = ["EXPIRED", "TEST_TOO_OLD", "UNKNOWN_SIGNER", "VACCINATION_INCOMPLETE", "REVOKED"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def users_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("users") / "users.db"
    store = UserStore(path)
    for name, role in (("mia", "manager"), ("aldo", "auditor"), ("sam", "staff")):
        store.add(name, role, PASSWORD)
    store.set_pin("246813")
    return path


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    out = Path(os.environ.get("SENTINEL_SCREENSHOTS") or tmp_path / "shots")
    out.mkdir(parents=True, exist_ok=True)
    return out


@dataclass
class Site:
    ctx: WebContext
    url: str
    opened: list[str]
    trust: list[TrustState]


def _seed(path: Path) -> None:
    rnd = random.Random(7)
    with Journal(path) as j:
        for i in range(60):
            t = NOW - timedelta(minutes=rnd.randrange(0, 7 * 24 * 60))
            gate = rnd.choice(["gate-1", "gate-1", "gate-2"])
            reason = REFUSALS[min(int(rnd.expovariate(0.8)), len(REFUSALS) - 1)]
            j.record(
                Event(t, "demo-venue", gate, "refuse", reason, "dcc_vaccination", "v7", f"r{i}")
            )
        for h in (2, 5, 9, 20, 30):  # a known handful inside the last two days
            t = NOW - timedelta(hours=h, minutes=7)
            j.record(Event(t, "demo-venue", "gate-1", "refuse", "EXPIRED", "dcc_test", "v7"))
        for _ in range(40):
            t = NOW - timedelta(minutes=rnd.randrange(0, 7 * 24 * 60))
            j.record(Event(t, "demo-venue", "gate-1", "admit", "ADMIT", "dcc_vaccination", "v7"))
        # Hostile text where a journal row could carry it: escaped on the page, defused in CSV.
        j.record(
            Event(
                NOW - timedelta(hours=1),
                "demo-venue",
                "<img src=x onerror=alert(1)>",
                "refuse",
                "MALFORMED",
                "unknown",
                "=cmd|' /C calc'!A0",
                "hostile",
            )
        )


@pytest.fixture
def make_site(tmp_path: Path, users_template: Path) -> Iterator[Callable[..., Site]]:
    servers: list[tuple[BackgroundServer, WebContext]] = []

    def make(result_s: float = 0.5) -> Site:
        data = tmp_path / f"site{len(servers)}"
        data.mkdir()
        shutil.copyfile(users_template, data / "users.db")
        # the PIN is keyed by this file beside users.db (docs/security.md, D15)
        shutil.copyfile(f"{users_template}.pinkey", data / "users.db.pinkey")
        _seed(data / "journal.db")
        cfg = replace(
            Config(),
            data_dir=str(data),
            venue=VenueConfig(name="City Library", name_zh="市图书馆"),
            web=WebConfig(kiosk_result_s=result_s, status_interval_s=30.0),
        )
        opened: list[str] = []
        trust = [TrustState(updated_at=NOW - timedelta(hours=3), max_age=timedelta(hours=48))]
        holder: list[WebContext] = []

        def override(reason: str) -> None:  # what the daemon's pipeline does, minus the relay
            opened.append(reason)
            ev = Event(NOW, "demo-venue", "gate-1", "override", "OVERRIDE", "")
            with Journal(data / "journal.db") as j:
                j.record(ev)
            holder[0].hub.on_event(ev, None)

        ctx = WebContext.for_config(
            cfg,
            clock=lambda: NOW,
            trust_state=lambda: trust[0],
            override=override,
        )
        holder.append(ctx)
        server = BackgroundServer(create_app(ctx)).start()
        servers.append((server, ctx))
        return Site(ctx, server.url, opened, trust)

    yield make
    for server, ctx in servers:
        ctx.hub.close()
        server.stop()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
    pg = context.new_page()
    yield pg
    context.close()


def _kiosk(page: Page, site: Site) -> None:
    page.goto(f"{site.url}/kiosk")
    # The live stream is open once the first status message arrived.
    expect(page.locator("body")).to_have_attribute("data-status", "ok", timeout=5000)


def _event(reason: ReasonCode, decision: str) -> Event:
    return Event(NOW, "demo-venue", "gate-1", decision, reason.value, "dcc_vaccination", "v7")


def test_kiosk_switches_to_result_within_a_second_and_back(page: Page, make_site) -> None:
    site = make_site(result_s=0.5)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    _kiosk(page, site)
    body = page.locator("body")
    expect(page.locator("#idle")).to_contain_text("请出示您的二维码")
    expect(page.locator("#idle")).to_contain_text("Please show your code")
    expect(page.locator("#idle")).to_contain_text("市图书馆")
    expect(page.locator("#fresh-en")).to_have_text("Data updated 3 h ago")
    latencies = []
    for i in range(5):
        admit = i % 2 == 0
        reason = ReasonCode.ADMIT if admit else ReasonCode.EXPIRED
        d = Decision.of(reason, display_name=f"M*** E**** {i}")
        t0 = time.perf_counter()
        site.ctx.hub.on_event(_event(reason, "admit" if admit else "refuse"), d)
        expect(body).to_have_attribute("data-state", "admit" if admit else "refuse", timeout=1000)
        latencies.append(time.perf_counter() - t0)
        expect(page.locator("#result-name")).to_have_text(f"M*** E**** {i}", timeout=1000)
        expect(page.locator("#result-symbol")).to_have_text("✓" if admit else "×")
        expect(page.locator("#reason-zh")).to_have_text(d.message_zh)
        expect(page.locator("#reason-en")).to_have_text(d.message_en)
        # The countdown (0.5 s) brings the idle screen back.
        expect(body).to_have_attribute("data-state", "idle", timeout=1000)
        expect(page.locator("#result")).to_be_hidden()
    print(f"kiosk decision→screen median {statistics.median(latencies) * 1000:.0f} ms")
    # Nothing was fetched from anywhere but the device itself.
    assert requests and all(u.startswith(site.url) for u in requests), requests


def test_kiosk_escapes_scanned_text(page: Page, make_site) -> None:
    site = make_site(result_s=5)
    _kiosk(page, site)
    evil = "<img src=x onerror=document.body.dataset.pwned=1>"
    site.ctx.hub.on_event(
        _event(ReasonCode.EXPIRED, "refuse"), Decision.of(ReasonCode.EXPIRED, display_name=evil)
    )
    expect(page.locator("#result-name")).to_have_text(evil, timeout=1000)
    assert page.locator("#result-name img").count() == 0
    assert page.locator("body").get_attribute("data-pwned") is None


def test_kiosk_admit_and_refuse_screenshots(page: Page, make_site, shots: Path) -> None:
    site = make_site(result_s=30)
    _kiosk(page, site)
    page.screenshot(path=shots / "kiosk-idle.png")
    body = page.locator("body")
    d = Decision.of(ReasonCode.ADMIT, display_name="M********* E****, 1974")
    site.ctx.hub.on_event(_event(ReasonCode.ADMIT, "admit"), d)
    expect(body).to_have_attribute("data-state", "admit", timeout=1000)
    page.screenshot(path=shots / "kiosk-admit.png")
    d = Decision.of(ReasonCode.TEST_TOO_OLD, display_name="L* N*, 1985")
    site.ctx.hub.on_event(_event(ReasonCode.TEST_TOO_OLD, "refuse"), d)
    expect(body).to_have_attribute("data-state", "refuse", timeout=1000)
    expect(page.locator("#verdict-en")).to_have_text("REFUSED")
    page.screenshot(path=shots / "kiosk-refuse.png")
    assert (shots / "kiosk-refuse.png").stat().st_size > 10_000


def test_kiosk_banners_stale_camera_alarm(page: Page, make_site, shots: Path) -> None:
    site = make_site()
    site.trust[0] = TrustState(updated_at=NOW - timedelta(hours=60), max_age=timedelta(hours=48))
    _kiosk(page, site)
    expect(page.locator("#banner-stale")).to_be_visible(timeout=1000)
    expect(page.locator("#fresh-en")).to_have_text("Data updated 2 days ago")
    expect(page.locator("#banner-camera")).to_be_hidden()
    hub = site.ctx.hub
    hub.on_event(_event(ReasonCode.CAMERA_FAULT, "event"), None)
    expect(page.locator("#banner-camera")).to_be_visible(timeout=1000)
    hub.on_event(_event(ReasonCode.DOOR_FORCED, "event"), None)
    expect(page.locator("#banner-alarm")).to_contain_text("门被强行打开", timeout=1000)
    page.screenshot(path=shots / "kiosk-warnings.png")
    hub.on_event(_event(ReasonCode.DOOR_CLOSED, "event"), None)
    hub.on_event(_event(ReasonCode.CAMERA_RECOVERED, "event"), None)
    expect(page.locator("#banner-alarm")).to_be_hidden(timeout=1000)
    expect(page.locator("#banner-camera")).to_be_hidden(timeout=1000)
    site.trust[0] = TrustState(updated_at=NOW - timedelta(minutes=5), max_age=timedelta(hours=48))
    hub.publish_status()
    expect(page.locator("#banner-stale")).to_be_hidden(timeout=1000)
    expect(page.locator("#fresh-en")).to_have_text("Data updated 5 min ago")


def test_kiosk_staff_override_needs_the_pin(page: Page, make_site) -> None:
    site = make_site(result_s=5)
    _kiosk(page, site)
    page.click("#staff-open")
    page.fill("#pin", "1111")
    page.select_option("#override-reason", "paper")
    page.click("#override-go")
    # scrypt and the failure delay on a loaded CI box: 1 s was not always enough
    expect(page.locator("#override-msg")).to_contain_text("Wrong PIN", timeout=5000)
    assert site.opened == []
    page.fill("#pin", "246813")
    page.click("#override-go")
    expect(page.locator("body")).to_have_attribute(
        "data-state", "admit", timeout=5000
    )  # scrypt on a loaded CI box
    expect(page.locator("#reason-en")).to_have_text("Opened by staff")
    expect(page.locator("#override")).to_be_hidden()
    assert site.opened == ["paper"]


def _login(page: Page, site: Site, name: str, password: str = PASSWORD) -> None:
    page.goto(f"{site.url}/login")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")


def test_login_wrong_password_and_staff_cannot_open_reports(page: Page, make_site) -> None:
    site = make_site()
    _login(page, site, "mia", "not the password")
    # scrypt on a loaded CI box: once over 5 s with two test runs on two cores
    expect(page.locator("#login-error")).to_have_text("Wrong user name or password.", timeout=15000)
    _login(page, site, "sam")
    expect(page).to_have_url(f"{site.url}/home", timeout=15000)
    response = page.goto(f"{site.url}/reports")
    assert response is not None and response.status == 403
    expect(page.locator("#forbidden")).to_be_visible()


def test_login_form_with_forged_csrf_is_rejected(page: Page, make_site) -> None:
    site = make_site()
    page.goto(f"{site.url}/login")
    page.fill("input[name=name]", "mia")
    page.fill("input[name=password]", PASSWORD)
    page.eval_on_selector("input[name=csrf]", "el => el.value = 'forged-token'")
    with page.expect_response(f"{site.url}/login") as info:
        page.click("button[type=submit]")
    assert info.value.status == 403
    expect(page.locator("body")).to_contain_text("CSRF")


def test_report_filter_chart_and_csv_export(page: Page, make_site, shots: Path) -> None:
    site = make_site()
    _login(page, site, "mia")
    expect(page).to_have_url(f"{site.url}/reports")
    with Journal(Path(site.ctx.config.data_dir) / "journal.db") as j:
        rows = [e for e in j.events() if e["decision"] == "refuse"]
    week = [e for e in rows if str(e["time"]) >= "2022-04-25"]
    expect(page.locator("#total")).to_have_text(str(len(week)))
    assert page.locator("#entries tbody tr").count() == len(week)
    assert page.locator("svg.chart rect.bar").count() == 7
    # Hostile gate text is shown as text, not markup.
    expect(page.locator("#entries")).to_contain_text("<img src=x onerror=alert(1)>")
    page.screenshot(path=shots / "reports.png")

    page.fill("input[name=start]", "2022-04-30")
    page.fill("input[name=end]", "2022-05-01")
    page.select_option("select[name=reason]", "EXPIRED")
    page.select_option("select[name=gate]", "gate-1")
    page.click("#filter button[type=submit]")
    want = [
        e
        for e in rows
        if str(e["time"]) >= "2022-04-30" and e["reason"] == "EXPIRED" and e["gate"] == "gate-1"
    ]
    assert len(want) >= 5
    expect(page.locator("#total")).to_have_text(str(len(want)))
    assert page.locator("svg.chart rect.bar").count() == 48  # hourly for two days
    expect(page.locator("#by-reason tbody tr")).to_have_count(1)

    with page.expect_download() as dl:
        page.click("#export")
    text = Path(dl.value.path()).read_text(encoding="utf-8-sig")
    got = list(csv.DictReader(io.StringIO(text)))
    assert sorted(r["event_id"] for r in got) == sorted(str(e["event_id"]) for e in want)
    assert {r["reason"] for r in got} == {"EXPIRED"} and {r["gate"] for r in got} == {"gate-1"}

    # The whole week, including the hostile row: formula prefixes defused.
    page.fill("input[name=start]", "2022-04-25")
    page.select_option("select[name=reason]", "")
    page.select_option("select[name=gate]", "")
    page.click("#filter button[type=submit]")
    with page.expect_download() as dl:
        page.click("#export")
    got = list(csv.DictReader(io.StringIO(Path(dl.value.path()).read_text("utf-8-sig"))))
    assert len(got) == len(week)
    hostile = next(r for r in got if r["event_id"] == "hostile")
    assert hostile["bundle_version"] == "'=cmd|' /C calc'!A0"
    with open_audit(site.ctx.config.data_dir) as log:
        exports = [e for e in log.entries() if e["kind"] == "export"]
    assert len(exports) == 2 and f'"rows":{len(want)}' in exports[0]["details"]


def test_auditor_view(page: Page, make_site, shots: Path) -> None:
    site = make_site()
    _login(page, site, "aldo")
    expect(page).to_have_url(f"{site.url}/audit")
    # The auditor's own login is the first audit entry.
    expect(page.locator("#audit-entries")).to_have_text("1")
    with Journal(Path(site.ctx.config.data_dir) / "journal.db") as j:
        n = len(j.events())
    expect(page.locator("#journal-rows")).to_have_text(str(n))
    expect(page.locator("#audit-recent")).to_contain_text("login")
    page.screenshot(path=shots / "audit.png", full_page=True)
