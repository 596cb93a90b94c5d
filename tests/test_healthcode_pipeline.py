"""Health codes end to end: issue → render → camera-like frame → decode → decision; CLI."""

from __future__ import annotations

import io
from contextlib import redirect_stdout
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from gpiozero.pins.mock import MockFactory

from sentinel.authority import healthcode_issue as hci
from sentinel.cli import main
from sentinel.config import Config, replace
from sentinel.credentials import healthcode as hc
from sentinel.credentials.healthcode_keys import HealthCodeKeys
from sentinel.credentials.trustlist import TrustList
from sentinel.errors import CredentialError
from sentinel.gate import Gate
from sentinel.journal import Journal
from sentinel.pipeline import Pipeline
from sentinel.reasons import ReasonCode
from sentinel.scan.synth import Degrade, blank_frame, place, render_qr
from sentinel.trust import StaticTrust

NOW = datetime(2022, 5, 1, 12, 0, tzinfo=UTC)
FPS = 15


def frame_of(text: str, seed: int = 0) -> np.ndarray:
    d = Degrade(angle_deg=9, keystone=0.05, blur_px=0.6, noise=3.0, jpeg_quality=85, fill=0.7)
    return place(render_qr(text, module_px=6), 640, 480, d, seed=seed)


def run_frames(pipe: Pipeline, frames: list[np.ndarray]) -> list[ReasonCode]:
    out = []
    for i, f in enumerate(frames):
        out += [o.decision.reason for o in pipe.process_frame(f, NOW, mono=i / FPS)]
    return out


def test_frames_to_decisions_held_still_and_replay(tmp_path: Path) -> None:
    issuer = hci.Issuer.generate()
    text = hci.issue(
        issuer,
        "K7Q2M9X4T1B8",
        "green",
        issued_at=NOW - timedelta(seconds=20),
        status_valid_until=NOW + timedelta(hours=8),
    )
    cfg = replace(Config(), data_dir=str(tmp_path))
    # a short cool-down, so the tracker re-presents a phone held still within a few frames
    cfg = replace(cfg, scan=replace(cfg.scan, cooldown_s=0.4, fallback=None))
    trust = StaticTrust(
        TrustList(), parts={"healthcode_keys": HealthCodeKeys((issuer.trusted(),)).to_json_bytes()}
    )
    shown = frame_of(text)
    blank = blank_frame(640, 480, 1)
    factory = MockFactory()
    with Gate(cfg.gate, pin_factory=factory) as gate, Journal(tmp_path / "j.db") as journal:
        pipe = Pipeline(cfg, trust, gate, journal)
        held = run_frames(pipe, [shown] * 10)
        # held still past the cool-down: presented twice, one showing, admitted twice
        assert held == [ReasonCode.ADMIT, ReasonCode.ADMIT]
        assert pipe.presentations == 2
        # taken away, then the same code again (a screenshot passed on): a replay
        again = run_frames(pipe, [blank] * 10 + [shown] * 2)
        assert again == [ReasonCode.CODE_REPLAY]
        rows = journal.events()
    assert [(r["decision"], r["reason"], r["credential_kind"]) for r in rows] == [
        ("admit", "ADMIT", "health-code"),
        ("admit", "ADMIT", "health-code"),
        ("refuse", "CODE_REPLAY", "unknown"),
    ]
    raw = (tmp_path / "j.db").read_bytes()
    assert b"K7Q2M9X4T1B8" not in raw


def test_demo_codes_decide_as_labelled(tmp_path: Path) -> None:
    """The demo's health-code cases through the pipeline, one presentation each."""
    from sentinel.scan import Symbol

    codes = hci.demo_codes(NOW)
    trust = StaticTrust(
        TrustList(), status=codes.status, parts={"healthcode_keys": codes.keys_json}
    )
    cfg = replace(Config(), data_dir=str(tmp_path))
    with Gate(cfg.gate, pin_factory=MockFactory()) as gate, Journal(tmp_path / "j.db") as j:
        pipe = Pipeline(cfg, trust, gate, j)
        for name, text, expected in codes.cases:
            got = pipe.present(Symbol("QRCODE", text, text.encode()), NOW).decision.reason
            assert got is expected, name
        assert gate.pulses == 1


def cli(*argv: str) -> tuple[int, str]:
    buf = io.StringIO()
    with redirect_stdout(buf):
        rc = main(list(argv))
    return rc, buf.getvalue()


def test_issue_code_cli_series(tmp_path: Path) -> None:
    key, keys_file = tmp_path / "authority.pem", tmp_path / "keys.json"
    rc, out = cli(
        "issue-code", "--new-key", str(key), "--alg", "ES256", "--keys-out", str(keys_file)
    )
    assert rc == 0 and key.stat().st_mode & 0o777 == 0o600
    rc, out = cli(
        "issue-code",
        "--key",
        str(key),
        "--subject",
        "SUBJ0001",
        "--status",
        "yellow",
        "--at",
        "2022-05-01T12:00:00Z",
        "--count",
        "3",
        "--every",
        "60",
        "--qr-dir",
        str(tmp_path / "phone"),
    )
    assert rc == 0
    lines = [ln.split("\t") for ln in out.splitlines()]
    assert [t for t, _ in lines] == [
        "2022-05-01T12:00:00Z",
        "2022-05-01T12:01:00Z",
        "2022-05-01T12:02:00Z",
    ]
    assert len(list((tmp_path / "phone").glob("code-*.png"))) == 3
    keys = HealthCodeKeys.load(keys_file)
    for k, (_, text) in enumerate(lines):
        at = NOW + timedelta(seconds=60 * k + 30)
        v = hc.verify_code(text, keys, at, skew=timedelta(0))
        assert (v.subject, v.status) == ("SUBJ0001", "yellow")
    # a code of the series is refused once its two minutes are over
    late = NOW + timedelta(seconds=121)
    with pytest.raises(CredentialError) as exc:
        hc.verify_code(lines[0][1], keys, late, skew=timedelta(0))
    assert exc.value.reason is ReasonCode.CODE_EXPIRED


def test_issue_code_cli_errors_are_one_line(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["issue-code", "--subject", "X"]) == 2
    assert "needs --key" in capsys.readouterr().err
    (tmp_path / "k.pem").write_text("not a key", encoding="utf-8")
    assert main(["issue-code", "--key", str(tmp_path / "k.pem"), "--subject", "X"]) == 2
    assert "cannot load the issuing key" in capsys.readouterr().err


def test_benchmark_script_runs_small() -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "bench_healthcode.py"), "--n", "5"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert "EdDSA" in out and "ES256" in out
    assert "error correction M: version" in out
