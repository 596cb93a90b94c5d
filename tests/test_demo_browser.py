"""The bar for ``sentinel demo --serve``: started as a subprocess (as a user would), the
kiosk shows an admit and a refusal within 5 s each, with a sound for each; the printed
manager password signs in and the report lists those refusals; SIGINT stops it all with
exit code 0 and the temporary directory gone."""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect, sync_playwright

from tests.servers import free_port
from tests.test_demo_serve import Demo
from tests.test_web_browser import ARGS, CHROMIUM

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM, args=[*ARGS, "--autoplay-policy=no-user-gesture-required"]
        )
        yield b
        b.close()


def test_demo_service_end_to_end(browser: Browser) -> None:
    demo = Demo(free_port())
    try:
        kiosk = demo.until(r"kiosk\s+(http://127\.0\.0\.1:\d+)/kiosk", 90).group(1)
        password = demo.until(r"manager\s+user 'manager', one-time password: (\S+)", 5).group(1)
        data_dir = Path(demo.until(r"data\s+(\S+)", 5).group(1))
        demo.until(r"Ctrl-C stops the demo", 5)
        assert data_dir.is_dir()

        context = browser.new_context(viewport={"width": 800, "height": 480})
        page = context.new_page()
        page.goto(f"{kiosk}/kiosk")
        body = page.locator("body")
        expect(body).to_have_attribute("data-status", "ok", timeout=10000)
        seen: dict[str, str] = {}
        for state in ("admit", "refuse"):
            t0 = time.monotonic()
            expect(body).to_have_attribute("data-state", state, timeout=5000)
            assert time.monotonic() - t0 < 5.0
            seen[state] = page.locator("#result").get_attribute("data-reason") or ""
            cue = page.evaluate("window.sentinelSound.log.at(-1)")
            assert cue is not None and cue["state"] == "running", cue
            assert (cue["cue"] == "admit") == (state == "admit"), cue
        refused = seen["refuse"]
        assert refused and refused != "ADMIT"
        # The mock pins are shown: the lock opens for an admit and locks again.
        expect(body).to_have_attribute("data-lock", "open", timeout=6000)
        expect(page.locator("#pin-lock")).to_contain_text("OPEN")
        if shots := os.environ.get("SENTINEL_SCREENSHOTS"):
            page.screenshot(path=Path(shots) / "kiosk-demo-serve.png")
        expect(body).to_have_attribute("data-lock", "locked", timeout=6000)

        # The printed one-time password opens the reports, which list that refusal.
        page.goto(f"{kiosk}/login")
        page.fill("input[name=name]", "manager")
        page.fill("input[name=password]", password)
        page.click("button[type=submit]")
        expect(page).to_have_url(f"{kiosk}/reports")
        expect(page.locator("#entries")).to_contain_text(refused)
        total = int(page.locator("#total").text_content() or "0")
        assert total >= 1
        context.close()
    finally:
        demo.proc.send_signal(signal.SIGINT)
        rc = demo.proc.wait(timeout=30)
    out = demo.seen + demo.rest()
    assert rc == 0, "\n".join(out)
    assert any("demo stopped" in line for line in out), out
    decisions = [line for line in out if re.search(r"\d\d:\d\d:\d\d (ok  |FAIL)", line)]
    assert decisions and not [line for line in decisions if "FAIL" in line], decisions
    assert not any("Traceback" in line for line in out), out
    assert not data_dir.exists()  # the temporary demo directory is removed
