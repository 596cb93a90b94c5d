"""``sentinel selftest`` on MockFactory pins, with a directory of rendered frames as camera."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
from gpiozero.pins.mock import MockFactory

from sentinel.authority import dcc_issue as di
from sentinel.cli import main
from sentinel.config import CameraConfig, Config
from sentinel.credentials.trustlist import TrustList
from sentinel.gate.selftest import (
    FAIL,
    PASS,
    SKIP,
    WARN,
    Check,
    SelftestOptions,
    check_camera,
    check_clock,
    check_data,
    check_disk,
    run_selftest,
)
from sentinel.policy import TrustState
from sentinel.scan.synth import place, render_qr
from sentinel.trust import StaticTrust

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def frames(tmp_path: Path) -> Path:
    d = tmp_path / "frames"
    d.mkdir()
    cv2.imwrite(str(d / "0.png"), place(render_qr("HELLO"), 640, 480))
    return d


@pytest.fixture
def cfg(tmp_path: Path, frames: Path) -> Config:
    c = replace(Config(), data_dir=str(tmp_path / "data"))
    return replace(c, camera=replace(c.camera, source=str(frames), width=640, height=480))


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def test_camera_frame_resolution_and_brightness(frames: Path) -> None:
    c = check_camera(CameraConfig(source=str(frames)))
    assert c.status == PASS, c
    assert c.detail.startswith("640x480, brightness ")
    level = int(c.detail.split("brightness ")[1].split("/")[0])
    expected = cv2.imread(str(next(frames.iterdir()))).mean()
    assert abs(level - expected) <= 1


def test_missing_camera_is_a_fail_line(tmp_path: Path) -> None:
    c = check_camera(CameraConfig(source=str(tmp_path / "no-such-camera")))
    assert c.status == FAIL and "does not exist" in c.detail


def test_black_and_dim_frames(tmp_path: Path) -> None:
    for name, level, status in (("black", 2, FAIL), ("dim", 25, WARN), ("ok", 128, PASS)):
        d = tmp_path / name
        d.mkdir()
        cv2.imwrite(str(d / "0.png"), np.full((240, 320, 3), level, np.uint8))
        assert check_camera(CameraConfig(source=str(d))).status == status, name


def test_relay_click_leds_and_inputs_on_mock_pins(cfg: Config) -> None:
    factory = MockFactory()
    cfg = replace(cfg, gate=replace(cfg.gate, door_pin=5, exit_pin=6))
    waits: list[float] = []
    checks = by_name(
        run_selftest(
            cfg,
            SelftestOptions(click_s=0.3),
            pin_factory=factory,
            trust=StaticTrust(TrustList.from_certificates([]), TrustState(updated_at=NOW)),
            now=NOW,
            sleep=waits.append,
        )
    )
    assert checks["relay"].status == PASS
    factory.pin(17).assert_states([False, True, False])  # one click, left locked
    for pin in (22, 27, 23):
        factory.pin(pin).assert_states([False, True, False])
    assert waits == [0.3] * 4
    # inputs float to their pull-ups: door contact open, exit button released
    assert checks["door contact"].status == WARN and "OPEN" in checks["door contact"].detail
    assert checks["exit button"].status == PASS
    assert checks["gpio"].status == WARN  # mock pins say so
    assert checks["camera"].status == PASS and checks["data"].status == PASS


def test_skip_relay_never_touches_it(cfg: Config) -> None:
    factory = MockFactory()
    checks = by_name(
        run_selftest(
            cfg,
            SelftestOptions(skip_relay=True),
            pin_factory=factory,
            now=NOW,
            sleep=lambda _s: None,
        )
    )
    assert checks["relay"].status == SKIP
    factory.pin(17).assert_states([False])
    assert checks["door contact"].status == SKIP and checks["exit button"].status == SKIP


def test_fail_safe_click_goes_released_then_locked(cfg: Config) -> None:
    factory = MockFactory()
    cfg = replace(cfg, gate=replace(cfg.gate, lock_type="fail-safe"))
    run_selftest(cfg, pin_factory=factory, now=NOW, sleep=lambda _s: None)
    # energised (locked) at start, released for the click, locked, de-energised at the end
    factory.pin(17).assert_states([False, True, False, True, False])


def test_clock_plausibility(tmp_path: Path) -> None:
    flag = tmp_path / "synchronized"
    assert check_clock(datetime(1970, 1, 1, tzinfo=UTC), None, flag).status == FAIL
    assert check_clock(NOW, NOW + timedelta(days=1), flag).status == FAIL  # before last sync
    assert check_clock(NOW, None, flag).status == WARN  # no NTP
    flag.touch()
    assert check_clock(NOW, NOW - timedelta(hours=1), flag).status == PASS


def test_disk_free(tmp_path: Path) -> None:
    assert (
        check_disk(tmp_path / "not" / "yet", SelftestOptions(min_free_mb=0, warn_free_mb=0)).status
        == PASS
    )
    assert check_disk(tmp_path, SelftestOptions(min_free_mb=10**12)).status == FAIL


def test_data_freshness_from_provider_state() -> None:
    tl = TrustList.from_certificates([])
    fresh = StaticTrust(tl, TrustState(bundle_version="7", updated_at=NOW - timedelta(hours=1)))
    assert check_data(fresh, NOW).status == PASS
    aging = StaticTrust(tl, TrustState(updated_at=NOW - timedelta(hours=30)))
    assert check_data(aging, NOW).status == WARN
    stale = TrustState(updated_at=NOW - timedelta(hours=49))
    assert check_data(StaticTrust(tl, stale), NOW).status == FAIL
    warn_only = replace(stale, stale_action="warn")
    assert check_data(StaticTrust(tl, warn_only), NOW).status == WARN
    c = check_data(None, NOW, "no trust data: set trust.trust_file")
    assert c.status == FAIL and "trust_file" in c.detail


def test_cli_passes_with_working_parts(
    tmp_path: Path, frames: Path, signer: di.IssuerKey, capsys: pytest.CaptureFixture[str]
) -> None:
    trust_file = tmp_path / "trust.json"
    trust_file.write_bytes(TrustList.from_certificates([signer.der]).to_json_bytes())
    conf = tmp_path / "s.toml"
    conf.write_text(
        f'data_dir = "data"\n[trust]\ntrust_file = "{trust_file}"\n'
        f'[camera]\nsource = "{frames}"\nwidth = 640\nheight = 480\n',
        encoding="utf-8",
    )
    assert main(["selftest", "--skip-relay", "--config", str(conf)]) == 0
    out = capsys.readouterr().out
    assert "camera        PASS    640x480" in out and "no failures" in out


def test_cli_fails_without_camera_or_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "s.toml"
    conf.write_text(
        f'data_dir = "data"\n[camera]\nsource = "{tmp_path / "gone"}"\n', encoding="utf-8"
    )
    assert main(["selftest", "--skip-relay", "--config", str(conf)]) == 1
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line}
    assert " FAIL " in lines["camera"] and " FAIL " in lines["data"]
    assert "selftest: 2 failures" in out
