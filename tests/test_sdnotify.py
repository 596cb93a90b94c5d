"""The systemd notify protocol: a test socket stands in for systemd's NOTIFY_SOCKET."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import cv2
import pytest

from sentinel import sdnotify
from sentinel.authority import dcc_issue as di
from sentinel.credentials.trustlist import TrustList
from sentinel.scan.synth import blank_frame
from sentinel.sdnotify import NotifyMessage, WatchdogPinger


@pytest.fixture
def path_socket() -> Iterator[tuple[socket.socket, str]]:
    # AF_UNIX paths are limited to 108 bytes; pytest's tmp_path can be longer.
    d = tempfile.mkdtemp(prefix="sn-", dir="/tmp")
    path = os.path.join(d, "notify")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(30)
    yield s, path
    s.close()
    os.unlink(path)
    os.rmdir(d)


@pytest.fixture
def abstract_socket() -> Iterator[tuple[socket.socket, str]]:
    name = f"sentinel-test-{secrets.token_hex(8)}"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind("\0" + name)
    s.settimeout(30)
    yield s, "@" + name
    s.close()


def test_sends_to_path_socket(path_socket: tuple[socket.socket, str]) -> None:
    s, path = path_socket
    assert sdnotify.notify("READY=1\nSTATUS=up", env={"NOTIFY_SOCKET": path})
    msg = NotifyMessage.parse(s.recv(4096))
    assert msg.fields == {"READY": "1", "STATUS": "up"}


def test_sends_to_abstract_socket(abstract_socket: tuple[socket.socket, str]) -> None:
    s, name = abstract_socket
    with sdnotify.from_env({"NOTIFY_SOCKET": name}) as n:
        assert n.enabled
        assert n.send("WATCHDOG=1")
        assert n.send("STOPPING=1")
    assert s.recv(4096) == b"WATCHDOG=1"
    assert s.recv(4096) == b"STOPPING=1"


@pytest.mark.parametrize("value", ["", "relative/path", "vsock:2:999"])
def test_unusable_socket_values_disable(value: str) -> None:
    n = sdnotify.from_env({"NOTIFY_SOCKET": value})
    assert not n.enabled
    assert n.send("READY=1") is False


def test_missing_socket_never_raises(tmp_path: Path) -> None:
    with sdnotify.Notifier(str(tmp_path / "gone")) as n:
        assert n.send("READY=1") is False
        assert n.send("WATCHDOG=1") is False
        assert n.failures == 2


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, 0.0),
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1234"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "999"}, 0.0),  # another process's
        ({"WATCHDOG_USEC": "0"}, 0.0),
        ({"WATCHDOG_USEC": "junk"}, 0.0),
    ],
)
def test_watchdog_interval_is_half_of_watchdog_sec(env: dict[str, str], expected: float) -> None:
    assert sdnotify.watchdog_interval_s(env, pid=1234) == expected


def test_watchdog_pings_are_rate_limited() -> None:
    sent: list[str] = []
    t = [100.0]
    ping = WatchdogPinger(sent.append, 10.0, monotonic=lambda: t[0])
    results = []
    for step in [0.0, 1.0, 5.0, 4.0, 0.5, 9.0, 0.9, 0.1]:  # frame times, seconds apart
        t[0] += step
        results.append(ping())
    assert results == [True, False, False, True, False, False, True, False]
    assert sent == ["WATCHDOG=1"] * 3 and ping.pings == 3


def _service_files(tmp_path: Path, *, loop: bool, n_frames: int) -> Path:
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(n_frames):
        cv2.imwrite(str(frames / f"{i}.png"), blank_frame(320, 240, i))
    signer = di.make_signer("XX")
    trust_file = tmp_path / "trust.json"
    trust_file.write_bytes(TrustList.from_certificates([signer.der]).to_json_bytes())
    conf = tmp_path / "s.toml"
    conf.write_text(
        f'data_dir = "data"\n[trust]\ntrust_file = "{trust_file}"\n'
        f'[camera]\nsource = "{frames}"\nloop = {"true" if loop else "false"}\n',
        encoding="utf-8",
    )
    return conf


def _run_service(conf: Path, notify_socket: str, watchdog_usec: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTIFY_", "WATCHDOG_"))}
    env.update(NOTIFY_SOCKET=notify_socket, WATCHDOG_USEC=str(watchdog_usec))
    return subprocess.Popen(
        [sys.executable, "-m", "sentinel", "run", "--config", str(conf)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def test_sentinel_run_answers_notify_protocol(
    tmp_path: Path, abstract_socket: tuple[socket.socket, str]
) -> None:
    """`sentinel run` over a file source: READY=1, WATCHDOG=1, then STOPPING=1 at the end."""
    s, name = abstract_socket
    conf = _service_files(tmp_path, loop=False, n_frames=3)
    with _run_service(conf, name, watchdog_usec=60_000_000) as proc:
        messages = []
        while "STOPPING" not in (messages[-1].fields if messages else {}):
            messages.append(NotifyMessage.parse(s.recv(4096)))
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err.decode()
    assert messages[0].fields["READY"] == "1"
    assert "serving venue demo-venue gate gate-1" in messages[0].fields["STATUS"]
    # Three frames inside one 30 s interval: exactly one watchdog ping, then STOPPING.
    assert [m.fields for m in messages[1:]] == [{"WATCHDOG": "1"}, {"STOPPING": "1"}]


def test_sentinel_run_keeps_pinging_watchdog_until_sigterm(
    tmp_path: Path, path_socket: tuple[socket.socket, str]
) -> None:
    s, path = path_socket
    conf = _service_files(tmp_path, loop=True, n_frames=1)
    # WatchdogSec=0.1 s: pings every 50 ms of monotonic time while frames flow.
    with _run_service(conf, path, watchdog_usec=100_000) as proc:
        assert NotifyMessage.parse(s.recv(4096)).fields["READY"] == "1"
        for _ in range(3):
            assert NotifyMessage.parse(s.recv(4096)).fields == {"WATCHDOG": "1"}
        proc.send_signal(signal.SIGTERM)
        rest = []
        while not rest or rest[-1] != {"STOPPING": "1"}:
            rest.append(NotifyMessage.parse(s.recv(4096)).fields)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err.decode()
    assert all(m == {"WATCHDOG": "1"} for m in rest[:-1])
