"""``sentinel demo --serve`` parts without a browser: every scripted presentation is
decided as the script says by the real pipeline on the synced demo bundle; first
contact (``sentinel run`` with no config, ``sentinel --help``) points at the demo and
at provisioning.  The live service with a browser: tests/test_demo_browser.py."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gpiozero.pins.mock import MockFactory

from sentinel.authority.testing import sync_dir
from sentinel.config import Config, TrustConfig
from sentinel.demo_camera import DemoCamera
from sentinel.demo_serve import _publish, demo_config
from sentinel.gate import Gate
from sentinel.journal import Journal
from sentinel.pipeline import Pipeline
from sentinel.reasons import ReasonCode, is_admit
from sentinel.trust import bundle as bm
from sentinel.trust.store import StoreTrust
from tests.servers import free_port


def test_every_scripted_presentation_is_decided_as_scripted(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    scenes, root_pub = _publish(tmp_path / "authority", now, tmp_path / "data")
    kinds = {s.expected for s in scenes}
    # admits and refusals alternate; DCCs, health codes and ID cards all appear
    assert [is_admit(s.expected) for s in scenes[:4]] == [True, False, True, False]
    assert {ReasonCode.CODE_RED, ReasonCode.STATUS_RED, ReasonCode.BAD_SIGNATURE} <= kinds
    assert any(s.card for s in scenes)
    data = tmp_path / "data"
    sync_dir(data, tmp_path / "authority" / "site", bm.load_public_key(root_pub.read_bytes()))
    cfg = replace(Config(), data_dir=str(data))
    decided: list[tuple[str, ReasonCode, ReasonCode]] = []
    trust = StoreTrust(data, TrustConfig())
    with Gate(cfg.gate, pin_factory=MockFactory()) as gate, Journal(data / "j.db") as journal:
        pipe = Pipeline(cfg, trust, gate, journal, pseudonym_key=b"k" * 32)
        # The camera and the pipeline share one clock that advances 0.1 s per frame, as
        # at 10 fps: unpaced on the wall clock, a fast machine draws the cycled health
        # code twice in one second, and the second is (rightly) refused as a replay.
        t = [now]
        cam = DemoCamera(scenes, threading.Event(), fps=0, clock=lambda: t[0])
        for i, frame in enumerate(cam.frames()):
            t[0] += timedelta(seconds=0.1)
            for o in pipe.process_frame(frame, t[0], mono=i / 10):
                assert cam.current is not None
                decided.append((cam.current.name, cam.current.expected, o.decision.reason))
    trust.close()
    wrong = [d for d in decided if d[1] is not d[2]]
    assert not wrong, wrong
    # Each scene decided once, in order, none missed: an ID card whose MRZ the OCR misses
    # on a few frames is still one presentation (the scanner holds the last read).
    got = [n for n, _e, _r in decided]
    assert got == [s.name for s in scenes], "; ".join(got)


def test_demo_config_is_a_device_config_on_the_local_publisher(tmp_path: Path) -> None:
    cfg = demo_config(tmp_path, "http://127.0.0.1:9/", tmp_path / "root.pem", "127.0.0.1", 8181)
    assert cfg.web.enabled and (cfg.web.host, cfg.web.port) == ("127.0.0.1", 8181)
    assert cfg.trust.publisher_url == "http://127.0.0.1:9/" and cfg.gate.pin_factory == "mock"
    assert cfg.retention.retention_days == 1 and cfg.retention.purge_interval_s <= 60


class Demo:
    """``sentinel demo --serve`` in a subprocess; its stdout lines in a queue."""

    def __init__(self, port: int, *extra: str) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sentinel", "demo", "--serve", "--port", str(port), *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        with self.proc.stdout:
            for line in self.proc.stdout:
                self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def until(self, pattern: str, timeout_s: float) -> re.Match[str]:
        end = time.monotonic() + timeout_s
        while (left := end - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            self.seen.append(line)
            if m := re.search(pattern, line):
                return m
        raise AssertionError(f"no line matching {pattern!r}; output:\n" + "\n".join(self.seen))

    def rest(self) -> list[str]:
        out = []
        while (line := self.lines.get(timeout=10)) is not None:
            out.append(line)
        return out


def test_demo_service_runs_again_on_its_kept_directory(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    for run in range(2):  # the second start once failed: "user 'manager' already exists"
        demo = Demo(free_port(), "--out", str(out))
        try:
            demo.until(r"Ctrl-C stops the demo", 90)
            demo.until(r"\d\d:\d\d:\d\d ok   ADMIT", 10)
        finally:
            demo.proc.send_signal(signal.SIGINT)
            rc = demo.proc.wait(timeout=30)
        rest = demo.rest()
        assert rc == 0, (run, demo.seen + rest)
        assert (out / "data" / "journal.db").is_file()  # --out: kept after exit


def _sentinel(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sentinel", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_run_without_config_explains_the_two_ways_forward(tmp_path: Path) -> None:
    r = _sentinel("run", cwd=tmp_path)
    assert r.returncode == 2
    assert "sentinel demo --serve" in r.stderr and "scripts/provision.sh" in r.stderr
    assert "http://127.0.0.1:8080/kiosk" in r.stderr
    assert not (tmp_path / "var" / "journal.db").exists()  # nothing was started


def test_help_says_where_to_start(tmp_path: Path) -> None:
    r = _sentinel("--help", cwd=tmp_path)
    assert r.returncode == 0
    start = r.stdout.split("Start here:")[1]
    assert "sentinel demo --serve" in start and "provision.sh" in start
    r = _sentinel("demo", "--help", cwd=tmp_path)
    assert "--serve" in r.stdout and "--port" in r.stdout
