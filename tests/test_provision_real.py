"""The real install: scripts/try-install.sh on a fresh Debian bookworm root (opt-in).

It builds (or reuses from /var/cache/sentinel-try-install) a root with mmdebstrap, runs
provisioning inside it as an installer would, boots it with systemd-nspawn and checks the
service there; 5-10 minutes for amd64 on a quiet machine, far more for arm64 under qemu.
So it runs only when asked: SENTINEL_TRY_INSTALL=1 (and SENTINEL_TRY_INSTALL_ARCH=arm64
for the Pi's architecture).  The fast --root checks (idempotence, upgrade, uninstall) are
in tests/test_provision*.py and always run.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "try-install.sh"
LAST_LINE = re.compile(
    r"^install\((amd64|arm64)\): provisioned in (\d+) s, booted: (active|not booted: .+), "
    r"watchdog restart (ok|failed|not booted), second run changed (\d+) files$"
)


def test_usage_errors_are_one_line() -> None:
    proc = subprocess.run(
        ["bash", str(SCRIPT), "--arch", "sparc"], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 2 and proc.stderr.strip() == "try-install: --arch amd64 or arm64"


@pytest.mark.skipif(
    os.environ.get("SENTINEL_TRY_INSTALL") != "1",
    reason="opt-in, 5+ minutes: SENTINEL_TRY_INSTALL=1 runs scripts/try-install.sh for real",
)
def test_real_install_boots_and_is_idempotent() -> None:
    arch = os.environ.get("SENTINEL_TRY_INSTALL_ARCH", "amd64")
    proc = subprocess.run(
        ["bash", str(SCRIPT), "--arch", arch], capture_output=True, text=True, timeout=3600
    )
    last = proc.stdout.rstrip("\n").splitlines()[-1]
    m = LAST_LINE.match(last)
    assert m, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert m.group(1) == arch and m.group(5) == "0", last
    if arch == "amd64":
        assert (m.group(3), m.group(4)) == ("active", "ok"), last
