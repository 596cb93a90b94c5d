"""``sentinel check``: QR text, an image and a directory of images, text and JSON output."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import cv2
import pytest

from sentinel.cli import main
from sentinel.credentials import dcc_issue as di
from sentinel.credentials.trustlist import TrustList
from sentinel.scan.synth import Degrade, place, render_qr

DAY = timedelta(days=1)


@pytest.fixture
def trust_file(tmp_path: Path, trust: TrustList) -> Path:
    p = tmp_path / "trust.json"
    p.write_bytes(trust.to_json_bytes())
    return p


def test_text_and_images_json(
    tmp_path: Path,
    trust_file: Path,
    signer: di.IssuerKey,
    now: datetime,
    capsys: pytest.CaptureFixture[str],
) -> None:
    good = di.issue(
        di.vaccination(on="2022-01-10"), signer, issued_at=now - DAY, expires_at=now + DAY
    )
    old = di.issue(
        di.test(now - 80 * timedelta(hours=1)), signer, issued_at=now - DAY, expires_at=now + DAY
    )
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    cv2.imwrite(str(imgs / "a.png"), place(render_qr(old), 800, 600, Degrade(angle_deg=5), 1))
    at = now.isoformat()
    rc = main(
        ["check", "--json", "--trust", str(trust_file), "--at", at, good, str(imgs), "HC1:garbage"]
    )
    assert rc == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["decision"]["reason"] for r in rows] == ["ADMIT", "TEST_TOO_OLD", "MALFORMED"]
    assert rows[0]["credential"]["display_name"] == "M********* E****, 1974"
    assert all(s["ok"] for s in rows[0]["steps"]) and len(rows[0]["steps"]) == 11
    assert rows[2]["steps"][-1] == {
        "step": "base45",
        "ok": False,
        "reason": "MALFORMED",
        "detail": rows[2]["steps"][-1]["detail"],
    }
    assert "Mustermann" not in json.dumps(rows) and "1974-08-12" not in json.dumps(rows)


def test_text_output_names_failed_step(
    trust_file: Path, signer: di.IssuerKey, now: datetime
) -> None:
    text = di.issue(di.vaccination(), signer, issued_at=now - DAY, expires_at=now + DAY)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "sentinel",
            "check",
            "--trust",
            str(trust_file),
            "--at",
            (now + 5 * DAY).isoformat(),
            text,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "FAIL times  EXPIRED" in out and "REFUSE EXPIRED" in out


def test_benchmark_script_runs() -> None:
    bench = Path(__file__).parents[1] / "benchmarks" / "bench_dcc.py"
    out = subprocess.run(
        [sys.executable, str(bench), "5"], capture_output=True, text=True, check=True
    ).stdout
    assert "text → decision" in out
