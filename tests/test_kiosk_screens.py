"""The kiosk at the screen sizes sold for a Pi, in real Chromium (one browser per module).

At 800x480 (official 7"), 1024x600, 1280x800 and 720x1280 portrait, for the idle screen
(with a warning banner), an admit, the longest refusal message in both languages and a
"staff needed" refusal: every element box lies inside the viewport and no text box is
clipped; the text is drawn with the shipped "Sentinel Sans" web font (Chromium's own
account of the fonts it used, CSS.getPlatformFontsForNode), never a fallback or a
missing-glyph box; the result glyphs are at least MIN_VERDICT_PX / MIN_REASON_PX; a
headline never ends on one lone character; and every decision plays its cue through
Web Audio with the context running under the kiosk unit's autoplay flag.
Screenshots of each size go to SENTINEL_SCREENSHOTS (docs/screenshots) when set.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from sentinel.config import Config, VenueConfig, WebConfig, replace
from sentinel.journal import Event
from sentinel.policy import Decision, TrustState
from sentinel.reasons import MESSAGES, ReasonCode, is_admit
from sentinel.web.app import WebContext, create_app
from sentinel.web.cues import cue_for, prompts_installed
from sentinel.web.server import BackgroundServer
from tests.test_web_browser import ARGS, CHROMIUM

pytestmark = pytest.mark.browser

NOW = datetime(2022, 5, 1, 12, 0, tzinfo=UTC)
SIZES = [(800, 480), (1024, 600), (1280, 800), (720, 1280)]
# Smallest rendered font sizes (CSS px = device px on these panels).  On the official
# 7" display (154 mm / 800 px = 0.19 mm/px) 56 px is a 10.8 mm em box, about 10 mm of
# CJK glyph: 17 arc minutes at 2 m, above the 16' minimum of ISO 9241-3 for reading.
MIN_VERDICT_PX = 56
MIN_REASON_PX = 32
REFUSALS = [r for r in ReasonCode if not is_admit(r)]
LONGEST_ZH = max(REFUSALS, key=lambda r: len(MESSAGES[r][1]))
LONGEST_EN = max(REFUSALS, key=lambda r: len(MESSAGES[r][0]))
TEXT_IDS = ["verdict-zh", "verdict-en", "reason-zh", "reason-en", "staff-note"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        # The kiosk unit's autoplay flag (systemd/sentinel-kiosk.service).
        b = p.chromium.launch(
            executable_path=CHROMIUM, args=[*ARGS, "--autoplay-policy=no-user-gesture-required"]
        )
        yield b
        b.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[WebContext, str]]:
    data = tmp_path_factory.mktemp("kiosk")
    cfg = replace(
        Config(),
        data_dir=str(data),
        venue=VenueConfig(name="Municipal Library, North Entrance", name_zh="市立图书馆北门入口"),
        web=WebConfig(kiosk_result_s=60, status_interval_s=30.0),
    )
    stale = TrustState(updated_at=NOW - timedelta(hours=60), max_age=timedelta(hours=48))
    ctx = WebContext.for_config(cfg, clock=lambda: NOW, trust_state=lambda: stale)
    server = BackgroundServer(create_app(ctx)).start()
    yield ctx, server.url
    ctx.hub.close()
    server.stop()


def _shots(tmp_path: Path) -> Path:
    out = Path(os.environ.get("SENTINEL_SCREENSHOTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    return out


OVERFLOW_JS = """() => {
  const W = innerWidth, H = innerHeight, bad = [];
  for (const el of document.querySelectorAll('body *')) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;  // not rendered
    const name = el.id || el.className || el.tagName;
    if (r.left < -0.5 || r.top < -0.5 || r.right > W + 0.5 || r.bottom > H + 0.5)
      bad.push(`${name} box ${Math.round(r.left)},${Math.round(r.top)},` +
               `${Math.round(r.right)},${Math.round(r.bottom)} outside ${W}x${H}`);
    // An element that clips (overflow not visible) must hold all its content.
    const cs = getComputedStyle(el);
    const clips = cs.overflowX !== 'visible' || cs.overflowY !== 'visible';
    if (clips && (el.scrollWidth > el.clientWidth + 1 || el.scrollHeight > el.clientHeight + 1))
      bad.push(`${name} clipped: ${el.scrollWidth}x${el.scrollHeight} in ` +
               `${el.clientWidth}x${el.clientHeight}`);
  }
  return bad;
}"""

# Lines of an element's text: a lone character on the last line of a headline is an orphan.
LAST_LINE_JS = """(id) => {
  const el = document.getElementById(id);
  if (!el || !el.offsetParent || !el.textContent.trim()) return null;
  const range = document.createRange();
  const tops = new Map();
  const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    for (let i = 0; i < n.length; i++) {
      if (!n.data[i].trim()) continue;
      range.setStart(n, i); range.setEnd(n, i + 1);
      const r = range.getBoundingClientRect();
      const top = Math.round(r.top / 4);
      tops.set(top, (tops.get(top) || '') + n.data[i]);
    }
  }
  const lines = [...tops.entries()].sort((a, b) => a[0] - b[0]).map((e) => e[1]);
  return lines;
}"""


def _fonts(page: Page, selector: str) -> list[dict[str, Any]]:
    """The platform fonts Chromium used for the text of ``selector`` (DevTools CSS domain)."""
    cdp = page.context.new_cdp_session(page)
    try:
        cdp.send("DOM.enable")
        cdp.send("CSS.enable")
        root = cdp.send("DOM.getDocument", {"depth": -1})["root"]["nodeId"]
        node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
        fonts: list[dict[str, Any]] = cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})[
            "fonts"
        ]
        return fonts
    finally:
        cdp.detach()


def _check_screen(page: Page, what: str) -> None:
    bad = page.evaluate(OVERFLOW_JS)
    assert not bad, f"{what}: {bad}"
    # Lines: no headline ends with a single character (text-wrap: balance).
    for el_id in TEXT_IDS + ["venue", "prompt-zh"]:
        lines = page.evaluate(LAST_LINE_JS, el_id)
        if lines and len(lines) > 1:
            assert len(lines[-1]) > 1, f"{what}: #{el_id} orphan last line {lines}"


def _check_real_font(page: Page, selector: str, what: str) -> None:
    fonts = _fonts(page, selector)
    assert fonts, f"{what}: no fonts reported for {selector}"
    # All glyphs from the shipped web font (a subset of Noto Sans CJK SC): a missing glyph
    # would come from a system fallback, or be drawn as a box by none of them.
    assert all(f["isCustomFont"] for f in fonts), f"{what}: {selector} drawn with {fonts}"


def _push(ctx: WebContext, reason: ReasonCode, name: str = "") -> None:
    decision = "admit" if is_admit(reason) else "refuse"
    ev = Event(NOW, "demo-venue", "gate-1", decision, reason.value, "dcc_vaccination", "v7")
    ctx.hub.on_event(ev, Decision.of(reason, display_name=name))


def _px(page: Page, el_id: str) -> float:
    return float(
        page.eval_on_selector(f"#{el_id}", "e => parseFloat(getComputedStyle(e).fontSize)")
    )


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_kiosk_fits_renders_and_sounds_at_each_screen(
    browser: Browser, site: tuple[WebContext, str], size: tuple[int, int], tmp_path: Path
) -> None:
    ctx, url = site
    w, h = size
    shots = _shots(tmp_path)
    context = browser.new_context(viewport={"width": w, "height": h})
    page = context.new_page()
    try:
        page.goto(f"{url}/kiosk")
        body = page.locator("body")
        expect(body).to_have_attribute("data-status", "ok", timeout=10000)
        page.evaluate("document.fonts.ready")
        expect(page.locator("#banner-stale")).to_be_visible()
        _check_screen(page, f"{w}x{h} idle")
        _check_real_font(page, "#idle .prompt .zh", f"{w}x{h} idle")
        _check_real_font(page, "#banner-stale", f"{w}x{h} banner")
        page.screenshot(path=shots / f"kiosk-{w}x{h}-idle.png")
        cases = [
            ("admit", ReasonCode.ADMIT, "M********* E****, 1974"),
            ("refuse", LONGEST_ZH, "L* N*, 1985"),
            ("refuse-en", LONGEST_EN, "L* N*, 1985"),
            ("staff", ReasonCode.BAD_SIGNATURE, ""),
        ]
        for i, (shot, reason, name) in enumerate(cases, start=1):
            _push(ctx, reason, name)
            cue = cue_for(reason.value)[0]
            expect(body).to_have_attribute("data-cue", cue, timeout=5000)
            expect(page.locator("#reason-en")).to_have_text(MESSAGES[reason][0])
            page.wait_for_function("n => window.sentinelSound.log.length >= n", arg=i)
            played = page.evaluate("window.sentinelSound.log")[-1]
            assert played["cue"] == cue and played["state"] == "running", played
            what = f"{w}x{h} {reason.value}"
            _check_screen(page, what)
            for sel in ("#result-symbol", "#verdict-zh", "#reason-zh", "#reason-en"):
                _check_real_font(page, sel, what)
            assert _px(page, "verdict-zh") >= MIN_VERDICT_PX, what
            assert _px(page, "reason-zh") >= MIN_REASON_PX, what
            if shot != "refuse-en":
                page.screenshot(path=shots / f"kiosk-{w}x{h}-{shot}.png")
        # Colour is not the only signal: symbol and word differ for each outcome.
        assert page.locator("#result-symbol").text_content() == "!"
        expect(page.locator("#staff-note")).to_be_visible()
    finally:
        context.close()


def test_muted_kiosk_plays_nothing(browser: Browser, tmp_path: Path) -> None:
    cfg = replace(Config(), data_dir=str(tmp_path), web=WebConfig(sound=False))
    ctx = WebContext.for_config(cfg, clock=lambda: NOW)
    server = BackgroundServer(create_app(ctx)).start()
    context = browser.new_context(viewport={"width": 800, "height": 480})
    page = context.new_page()
    try:
        page.goto(f"{server.url}/kiosk")
        expect(page.locator("body")).to_have_attribute("data-status", "ok", timeout=5000)
        _push(ctx, ReasonCode.EXPIRED)
        expect(page.locator("body")).to_have_attribute("data-cue", "refuse", timeout=5000)
        assert page.evaluate("window.sentinelSound.log") == []
        assert page.evaluate("window.sentinelSound.ctx") is None
    finally:
        context.close()
        ctx.hub.close()
        server.stop()


def test_spoken_prompts_follow_the_tone(browser: Browser, site: tuple[WebContext, str]) -> None:
    if not prompts_installed():
        if os.environ.get("CI") == "true":
            pytest.fail("no spoken prompts: scripts/setup.sh runs scripts/make_prompts.py")
        pytest.skip("spoken prompts not made (espeak-ng missing; scripts/make_prompts.py)")
    ctx, url = site
    context = browser.new_context(viewport={"width": 800, "height": 480})
    page = context.new_page()
    try:
        page.goto(f"{url}/kiosk")
        expect(page.locator("body")).to_have_attribute("data-prompts", "1", timeout=5000)
        expect(page.locator("body")).to_have_attribute("data-status", "ok", timeout=5000)
        _push(ctx, ReasonCode.CODE_EXPIRED)
        page.wait_for_function("() => window.sentinelSound.spoken.length >= 2", timeout=15000)
        assert page.evaluate("window.sentinelSound.spoken") == ["refresh-zh", "refresh-en"]
        # A newer result cuts the older prompt off instead of talking over it.
        _push(ctx, ReasonCode.BAD_SIGNATURE)
        page.wait_for_function("() => window.sentinelSound.spoken.length >= 4", timeout=15000)
        assert page.evaluate("window.sentinelSound.spoken")[2:] == ["staff-zh", "staff-en"]
        assert page.evaluate("window.sentinelSound.cut") >= 1
    finally:
        context.close()


def test_the_other_pages_render_chinese_with_the_shipped_font(
    browser: Browser, site: tuple[WebContext, str]
) -> None:
    _ctx, url = site
    context = browser.new_context(viewport={"width": 800, "height": 480})
    page = context.new_page()
    try:
        page.goto(f"{url}/login")
        page.evaluate("() => document.fonts.ready.then(() => true)")
        _check_real_font(page, 'h1 [lang="zh"]', "login")
    finally:
        context.close()
