"""``sentinel check``: QR text, an image and a directory of images, text and JSON output."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import cv2
import pytest

from sentinel.authority import dcc_issue as di
from sentinel.cli import main
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


# --- review D14: text is told from paths without touching the file system ------------------


@pytest.mark.parametrize(
    "text",
    ["HC1:" + "A" * 120_000, "HC1:" + "0" * 8188, "HC1:" + "0" * 300 + "/x", "x" * 5000],
)
def test_long_texts_are_refused_not_crashed(
    text: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The review's reproduction: these raised OSError ENAMETOOLONG from Path.is_dir()."""
    import pathlib

    def no_stat(self: pathlib.Path, *a: object, **k: object) -> object:
        raise AssertionError(f"stat of a QR text: {str(self)[:40]}")

    monkeypatch.setattr(pathlib.Path, "stat", no_stat)
    monkeypatch.setattr(pathlib.Path, "is_dir", no_stat)
    rc = main(["check", "--json", text])
    row = json.loads(capsys.readouterr().out)
    assert rc == 0 and row["input"] == "text"
    assert row["decision"]["reason"] in {"TOO_LARGE", "UNREADABLE", "MALFORMED"}


def test_nested_folders_symlinks_and_notes(
    tmp_path: Path,
    trust_file: Path,
    signer: di.IssuerKey,
    now: datetime,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """COUNTRY/VERSION/*.png as upstream lays it out, a symlinked folder, a loop, a README."""
    good = di.issue(di.vaccination(), signer, issued_at=now - DAY, expires_at=now + DAY)
    deep = tmp_path / "photos" / "XX" / "1.3.0"
    deep.mkdir(parents=True)
    cv2.imwrite(str(deep / "1.png"), place(render_qr(good), 800, 600, Degrade(), 1))
    (deep / "README.md").write_text("not an image")
    other = tmp_path / "elsewhere"
    other.mkdir()
    cv2.imwrite(str(other / "2.png"), place(render_qr(good), 800, 600, Degrade(), 1))
    (tmp_path / "photos" / "linked").symlink_to(other, target_is_directory=True)
    (deep / "loop").symlink_to(tmp_path / "photos", target_is_directory=True)
    rc = main(
        [
            "check",
            "--json",
            "--trust",
            str(trust_file),
            "--at",
            now.isoformat(),
            str(deep.parents[1]),
        ]
    )
    cap = capsys.readouterr()
    rows = [json.loads(line) for line in cap.out.splitlines()]
    assert rc == 0
    assert sorted(Path(r["input"]).name for r in rows) == ["1.png", "2.png"]
    assert all(r["decision"]["reason"] == "ADMIT" for r in rows)
    assert "skipped 1 file(s) that are not images" in cap.err
    assert "already visited" in cap.err  # the loop was cut, not followed


def test_folder_without_images_is_an_error_not_qr_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.txt").write_text("x")
    rc = main(["check", "--json", str(tmp_path), str(tmp_path / "missing.png")])
    cap = capsys.readouterr()
    assert rc == 2 and cap.out == ""  # neither argument was read as QR text
    assert "folder holds no images" in cap.err and "no such file or directory" in cap.err
