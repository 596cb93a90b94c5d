"""The web part inside the real daemon: live kiosk stream from the pipeline, override."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import httpx
from gpiozero.pins.mock import MockFactory

from sentinel.authority import dcc_issue as di
from sentinel.config import Config, WebConfig, replace
from sentinel.credentials.trustlist import TrustList
from sentinel.daemon import Daemon
from sentinel.journal.audit import open_audit
from sentinel.scan import Symbol
from sentinel.trust import StaticTrust
from sentinel.web.users import UserStore

DAY = timedelta(days=1)


def _sse(lines, want: str) -> dict:
    """The data of the next SSE message named ``want``."""
    name = None
    for line in lines:
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: ") and name == want:
            return json.loads(line[6:])
    raise AssertionError(f"stream ended before a {want!r} message")


def test_daemon_serves_kiosk_stream_and_override(
    tmp_path: Path, signer: di.IssuerKey, trust: TrustList, now: datetime
) -> None:
    cfg = replace(Config(), data_dir=str(tmp_path), web=WebConfig(enabled=True, port=0))
    UserStore(tmp_path / "users.db").set_pin("246813")
    good = di.issue(
        di.vaccination(on="2022-01-10"), signer, issued_at=now - DAY, expires_at=now + DAY
    )
    factory = MockFactory()
    with Daemon(cfg, pin_factory=factory, trust=StaticTrust(trust), clock=lambda: now) as d:
        url = d.web.url
        assert url.startswith("http://127.0.0.1:")
        with httpx.Client(base_url=url, timeout=5) as client:
            page = client.get("/kiosk")
            token = page.text.split('name="csrf" value="')[1].split('"')[0]
            assert d.gate.pulses == 0
            r = client.post(
                "/kiosk/override", data={"csrf": token, "pin": "246813", "reason": "device"}
            )
            assert r.json() == {"ok": True}
            assert d.gate.pulses == 1
            with client.stream("GET", "/kiosk/events") as stream:
                lines = stream.iter_lines()
                assert "stale" in _sse(lines, "status")
                d.pipeline.present(Symbol("QRCODE", good, good.encode()), now)
                msg = _sse(lines, "decision")
            assert msg["verdict"] == "admit" and msg["reason"] == "ADMIT"
            assert msg["name"]  # the masked name reaches the staff screen (memory only)

        rows = d.journal.events()
        assert [r["reason"] for r in rows if r["decision"] == "override"] == ["OVERRIDE"]
        server = d.web.server
    assert not server._thread.is_alive()  # the closer stopped uvicorn
    with open_audit(tmp_path) as log:
        (entry,) = [e for e in log.entries() if e["kind"] == "override"]
    assert '"via":"kiosk"' in entry["details"] and '"reason":"device"' in entry["details"]


def test_web_disabled_by_default(tmp_path: Path, trust: TrustList, now: datetime) -> None:
    cfg = replace(Config(), data_dir=str(tmp_path))
    with Daemon(cfg, pin_factory=MockFactory(), trust=StaticTrust(trust), clock=lambda: now) as d:
        assert not hasattr(d, "web")
        assert not (tmp_path / "users.db").exists()


def test_kiosk_unit_points_chromium_at_the_local_kiosk_page() -> None:
    unit = Path(__file__).resolve().parents[1] / "systemd" / "sentinel-kiosk.service"
    text = unit.read_text(encoding="utf-8")
    keys = {}
    for line in text.replace("\\\n", " ").splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            k, _, v = line.partition("=")
            keys.setdefault(k.strip(), v.strip())
    web = WebConfig()
    assert f"--kiosk http://{web.host}:{web.port}/kiosk" in keys["ExecStart"]
    assert (
        keys["ExecStart"].split()[0] == "/usr/bin/cage" and "/usr/bin/chromium" in keys["ExecStart"]
    )
    assert keys["Restart"] == "always"
    assert f"/dev/tcp/{web.host}/{web.port}" in keys["ExecStartPre"]
    assert keys["User"] != "root" and keys["WantedBy"] == "multi-user.target"
