"""The gate inside the service: alarms, exits and overrides reach the journal and audit."""

from __future__ import annotations

import json
import os
import stat
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from sentinel.cli import main
from sentinel.config import Config
from sentinel.credentials.trustlist import TrustList
from sentinel.daemon import Daemon
from sentinel.errors import HardwareError
from sentinel.gate.control import ControlServer, send
from sentinel.gate.override import OverrideRequest
from sentinel.gate.service import handle_control
from sentinel.journal.audit import open_audit
from sentinel.trust import StaticTrust

DOOR, EXIT = 5, 6


def base_config(tmp_path: Path) -> Config:
    """These tests decode no frames: any decoder back-end will do."""
    cfg = replace(Config(), data_dir=str(tmp_path / "d"))
    return replace(cfg, scan=replace(cfg.scan, backend="pyzbar", fallback=None))


@pytest.fixture
def daemon(tmp_path: Path, trust: TrustList) -> Any:
    cfg = base_config(tmp_path)
    cfg = replace(
        cfg, gate=replace(cfg.gate, door_pin=DOOR, exit_pin=EXIT, input_bounce_s=0, pulse_s=30)
    )
    factory = MockFactory()
    d = Daemon(cfg, pin_factory=factory, trust=StaticTrust(trust))
    factory.pin(DOOR).drive_low()  # door shut
    d.factory = factory
    yield d
    d.close()
    # stopping the service leaves a fail-secure lock de-energised: locked
    assert factory.pin(d.config.gate.relay_pin).state is False
    assert not (Path(d.config.data_dir) / "gate.sock").exists()


def rows(d: Any) -> list[tuple[str, str, str]]:
    return [(r["decision"], r["reason"], r["credential_kind"]) for r in d.journal.events()]


def test_forced_door_and_close_are_journaled(daemon: Any) -> None:
    seen: list[str] = []
    daemon.pipeline.listeners.append(lambda ev, _dec: seen.append(ev.reason))  # the kiosk
    daemon.factory.pin(DOOR).drive_high()
    daemon.factory.pin(DOOR).drive_low()
    assert rows(daemon) == [("event", "DOOR_FORCED", ""), ("event", "DOOR_CLOSED", "")]
    assert seen == ["DOOR_FORCED", "DOOR_CLOSED"]


def test_exit_button_is_journaled_without_personal_data(daemon: Any) -> None:
    daemon.factory.pin(EXIT).drive_low()
    assert daemon.factory.pin(daemon.config.gate.relay_pin).state is True
    assert rows(daemon) == [("exit", "EXIT", "")]


def test_periodic_tick_is_registered(daemon: Any) -> None:
    jobs = {j.name: j for j in daemon.periodic}
    assert jobs["gate-tick"].func == daemon.gate.tick and jobs["gate-tick"].interval_s <= 1


def test_camera_fault_shows_on_the_indicators(daemon: Any) -> None:
    from sentinel.reasons import ReasonCode

    daemon.pipeline.device_event(ReasonCode.CAMERA_FAULT)
    red = daemon.factory.pin(daemon.config.gate.red_led_pin)
    assert red.state is True and daemon.gate._fault
    daemon.pipeline.device_event(ReasonCode.CAMERA_RECOVERED)
    assert red.state is False and not daemon.gate._fault


def test_override_opens_once_journals_and_audits(daemon: Any) -> None:
    reply = handle_control(daemon, {"cmd": "override", "reason": "paper", "staff": "staff-07"})
    assert reply["ok"] is True
    assert daemon.factory.pin(daemon.config.gate.relay_pin).state is True
    assert rows(daemon) == [("override", "OVERRIDE", "")]
    with open_audit(daemon.config.data_dir) as audit:
        (entry,) = [e for e in audit.entries() if e["kind"] == "override"]
        audit.verify()
    details = json.loads(entry["details"])
    assert details["staff"] == "staff-07" and details["reason"] == "paper"
    assert details["event_id"] == reply["event_id"]


@pytest.mark.parametrize(
    "request_",
    [
        {"cmd": "override", "reason": "because I said so", "staff": "staff-07"},
        {"cmd": "override", "reason": "paper", "staff": "Erika Mustermann"},
        {"cmd": "override", "reason": "paper", "staff": "erika@example.org"},
        {"cmd": "override", "reason": "paper"},
        {"cmd": "reboot"},
    ],
)
def test_bad_override_requests_open_nothing(daemon: Any, request_: dict[str, str]) -> None:
    reply = handle_control(daemon, request_)
    assert reply["ok"] is False and reply["error"]
    assert daemon.factory.pin(daemon.config.gate.relay_pin).state is False
    assert rows(daemon) == []


def test_control_socket_round_trip_and_limits(tmp_path: Path) -> None:
    got: list[dict[str, Any]] = []

    def handler(req: dict[str, Any]) -> dict[str, Any]:
        got.append(req)
        return {"ok": True, "event_id": "e1"}

    path = tmp_path / "gate.sock"
    server = ControlServer(path, handler)
    try:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert send(path, {"cmd": "override", "reason": "paper", "staff": "s1"}) == {
            "ok": True,
            "event_id": "e1",
        }
        big = send(path, {"cmd": "x" * 5000})
        assert big == {"ok": False, "error": "request too large"}
        assert got == [{"cmd": "override", "reason": "paper", "staff": "s1"}]
    finally:
        server.close()
    with pytest.raises(HardwareError, match="not running"):
        send(path, {"cmd": "override"})


def test_override_cli_without_service(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = tmp_path / "s.toml"
    conf.write_text('data_dir = "data"\n', encoding="utf-8")
    rc = main(["override", "--reason", "paper", "--staff", "staff-07", "--config", str(conf)])
    assert rc == 3 and "not running" in capsys.readouterr().err
    assert main(["override", "--reason", "paper", "--staff", "A B", "--config", str(conf)]) == 2


def test_override_request_parse() -> None:
    assert OverrideRequest.parse("device", "badge.1042") == OverrideRequest("device", "badge.1042")
    with pytest.raises(ValueError, match="reason must be one of"):
        OverrideRequest.parse(None, "s1")


def test_override_through_the_socket_of_the_running_service(
    daemon: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = Path(daemon.config.data_dir) / "s.toml"
    conf.write_text(f'data_dir = "{daemon.config.data_dir}"\n', encoding="utf-8")
    rc = main(["override", "--reason", "paper", "--staff", "staff-07", "--config", str(conf)])
    assert rc == 0, capsys.readouterr().err
    assert rows(daemon) == [("override", "OVERRIDE", "")]


def test_held_open_alarm_from_the_gate_timer_thread(tmp_path: Path, trust: TrustList) -> None:
    """Real timers: the alarm is raised and journaled on the timer's own thread."""
    cfg = base_config(tmp_path)
    # a normally-open contact reads "shut" on the floating pull-up: no race at start
    gate = replace(cfg.gate, door_pin=DOOR, door_contact="no", input_bounce_s=0, held_open_s=0.05)
    cfg = replace(cfg, gate=gate)
    factory = MockFactory()
    with Daemon(cfg, pin_factory=factory, trust=StaticTrust(trust)) as d:
        assert d.gate.state.value == "idle"
        d.gate.admit()
        factory.pin(DOOR).drive_low()  # opened within the grant
        timer = d.gate._wake
        assert timer is not None
        timer.join(5.0)  # the wake-up at opened + 0.05 s
        assert d.gate.state.value == "held_open"
        assert rows(d) == [("event", "DOOR_HELD_OPEN", "")]
