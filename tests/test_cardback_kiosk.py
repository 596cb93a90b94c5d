"""The kiosk hints (card back, a code it cannot read) in real Chromium: shown on the idle
screen in both languages with the shipped font, inside the smallest screen, gone after a
few seconds; a decision still takes the screen."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from playwright.sync_api import Browser, expect, sync_playwright

from sentinel.config import Config, WebConfig, replace
from sentinel.journal import Event
from sentinel.policy import Decision, TrustState
from sentinel.reasons import ReasonCode
from sentinel.web.app import WebContext, create_app
from sentinel.web.cues import HINTS
from sentinel.web.server import BackgroundServer
from tests.test_kiosk_screens import _fonts
from tests.test_web_browser import ARGS, CHROMIUM

pytestmark = pytest.mark.browser
NOW = datetime(2022, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[WebContext, str]]:
    cfg = replace(
        Config(),
        data_dir=str(tmp_path_factory.mktemp("kiosk")),
        web=WebConfig(kiosk_result_s=60, status_interval_s=30.0),
    )
    ctx = WebContext.for_config(cfg, clock=lambda: NOW, trust_state=lambda: TrustState())
    server = BackgroundServer(create_app(ctx)).start()
    yield ctx, server.url
    ctx.hub.close()
    server.stop()


@pytest.mark.parametrize("hint", sorted(HINTS))
def test_the_hint_shows_in_both_languages_and_fits(site: tuple[WebContext, str], hint: str) -> None:
    ctx, url = site
    zh, en = HINTS[hint]
    with sync_playwright() as p:
        browser: Browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 800, "height": 480})
        try:
            page.goto(f"{url}/kiosk")
            expect(page.locator("body")).to_have_attribute("data-status", "ok", timeout=5000)
            expect(page.locator("#hint")).to_be_hidden()
            ctx.hub.on_hint(hint)
            expect(page.locator("#hint")).to_be_visible(timeout=5000)
            expect(page.locator("#hint-zh")).to_have_text(zh)
            expect(page.locator("#hint-en")).to_have_text(en)
            assert page.locator("body").get_attribute("data-hint") == hint
            box = page.locator("#hint").bounding_box()
            assert box is not None
            assert box["x"] >= 0 and box["y"] >= 0
            assert box["x"] + box["width"] <= 800 and box["y"] + box["height"] <= 480
            fonts = _fonts(page, "#hint-zh")
            assert fonts and all(f["isCustomFont"] for f in fonts), fonts
            expect(page.locator("#hint")).to_be_hidden(timeout=8000)  # a few seconds only
            # a decision after a hint takes the screen as before
            ctx.hub.on_hint(hint)
            ev = Event(NOW, "v", "g", "refuse", "ID_UNREADABLE", "id_document", "v1")
            ctx.hub.on_event(ev, Decision.of(ReasonCode.ID_UNREADABLE))
            expect(page.locator("#result")).to_be_visible(timeout=5000)
        finally:
            browser.close()
