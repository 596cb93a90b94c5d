"""One presentation end to end: frame → decision → gate pulse → journal row."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import cv2
from gpiozero.pins.mock import MockFactory

from sentinel.authority import dcc_issue as di
from sentinel.config import Config, replace
from sentinel.credentials.trustlist import TrustList
from sentinel.daemon import Daemon
from sentinel.demo import run_demo
from sentinel.gate import Gate
from sentinel.journal import Journal
from sentinel.pipeline import Pipeline
from sentinel.reasons import ReasonCode
from sentinel.scan.synth import Degrade, blank_frame, place, render_qr
from sentinel.trust import StaticTrust

DAY = timedelta(days=1)


def test_frames_to_decisions_pulses_and_rows(
    tmp_path: Path, signer: di.IssuerKey, trust: TrustList, now: datetime
) -> None:
    good = di.issue(
        di.vaccination(on="2022-01-10"), signer, issued_at=now - DAY, expires_at=now + DAY
    )
    bad = di.issue(di.vaccination(dn=1), signer, issued_at=now - DAY, expires_at=now + DAY)
    cfg = replace(Config(), data_dir=str(tmp_path))
    factory = MockFactory()
    relay = factory.pin(cfg.gate.relay_pin)
    frames = [
        place(render_qr(good), 1280, 720, Degrade(angle_deg=10, blur_px=0.5), seed=i)
        for i in range(5)
    ]
    frames += [blank_frame(1280, 720, i) for i in range(5)]
    frames += [place(render_qr(bad), 640, 480, Degrade(angle_deg=-8), seed=i) for i in range(5)]
    with Gate(cfg.gate, pin_factory=factory) as gate, Journal(tmp_path / "j.db") as journal:
        pipe = Pipeline(cfg, StaticTrust(trust), gate, journal)
        outcomes = []
        for i, f in enumerate(frames):
            outcomes += pipe.process_frame(f, now, mono=i / 15)
        assert [o.decision.reason for o in outcomes] == [
            ReasonCode.ADMIT,
            ReasonCode.VACCINATION_INCOMPLETE,
        ]
        assert relay.state is True  # the admit pulse (3 s) is still running
        assert gate.pulses == 1
        rows = journal.events()
    assert [(r["decision"], r["reason"]) for r in rows] == [
        ("admit", "ADMIT"),
        ("refuse", "VACCINATION_INCOMPLETE"),
    ]
    assert relay.state is False  # closed: locked
    raw = (tmp_path / "j.db").read_bytes()
    assert b"Mustermann" not in raw and b"1974" not in raw


def test_demo_decides_every_case(tmp_path: Path) -> None:
    import io

    out = io.StringIO()
    assert run_demo(tmp_path / "demo", stream=out) == 0, out.getvalue()
    text = out.getvalue()
    assert "13/13 demo cases decided as expected" in text  # 8 DCC + 5 health codes
    assert text.count("relay pulse: yes") == 3
    with Journal(tmp_path / "demo" / "data" / "journal.db") as j:
        assert len(j.events()) == 13


def test_daemon_runs_file_source_to_end(
    tmp_path: Path, signer: di.IssuerKey, trust: TrustList, now: datetime
) -> None:
    text = di.issue(
        di.vaccination(on="2022-01-10"), signer, issued_at=now - DAY, expires_at=now + DAY
    )
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(3):
        cv2.imwrite(str(frames / f"{i}.png"), place(render_qr(text), 640, 480, seed=i))
    cfg = replace(Config(), data_dir=str(tmp_path / "data"))
    cfg = replace(cfg, camera=replace(cfg.camera, source=str(frames)))
    factory = MockFactory()
    with Daemon(cfg, pin_factory=factory, trust=StaticTrust(trust), clock=lambda: now) as d:
        assert d.run() == 0
        assert d.frames == 3 and d.gate.pulses == 1
    assert factory.pin(cfg.gate.relay_pin).state is False


def test_sigterm_stops_service_with_relay_locked(tmp_path: Path, signer: di.IssuerKey) -> None:
    """A real `sentinel run` process, stopped by SIGTERM *while the lock is open* (an
    admitted visitor, a 600 s unlock pulse): the relay is read back off the pin at stop
    and must be de-energised, the fail-secure lock locked."""
    now = datetime.now().astimezone()
    cert = di.issue(
        di.vaccination(on=(now - timedelta(days=60)).date().isoformat()),
        signer,
        issued_at=now - timedelta(days=1),
        expires_at=now + timedelta(days=30),
    )
    frames = tmp_path / "frames"
    frames.mkdir()
    cv2.imwrite(str(frames / "0.png"), place(render_qr(cert), 640, 480, Degrade()))
    trust_file = tmp_path / "trust.json"
    trust_file.write_bytes(TrustList.from_certificates([signer.der]).to_json_bytes())
    conf = tmp_path / "s.toml"
    conf.write_text(
        f'data_dir = "data"\n[trust]\ntrust_file = "{trust_file}"\n'
        f'[camera]\nsource = "{frames}"\nloop = true\n'
        '[gate]\npin_factory = "mock"\nlock_type = "fail-secure"\npulse_s = 60\n',
        encoding="utf-8",
    )
    lines: list[str] = []
    with subprocess.Popen(
        [sys.executable, "-m", "sentinel", "-v", "run", "--config", str(conf)],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    ) as proc:
        assert proc.stderr is not None
        for line in proc.stderr:  # wait for the unlock itself, not a fixed time
            lines.append(line)
            if "gate: unlocked (relay energised)" in line:
                break
        proc.send_signal(signal.SIGTERM)
        lines += proc.stderr.readlines()
        assert proc.wait(timeout=30) == 0
    text = "".join(lines)
    assert "gate: unlocked (relay energised)" in text, text[-2000:]
    assert "gate stopped: relay de-energised, lock locked" in text, text[-2000:]
    assert (tmp_path / "data" / "journal.db").exists()
