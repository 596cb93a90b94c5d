"""scripts/provision.sh into a temporary --root: files, modes, owners, boot config, idempotence."""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "provision.sh"
VENV = Path(sys.prefix)  # the virtualenv running the tests has sentinel installed
STOCK_BOOT = "# stock Raspberry Pi OS config\ndtparam=audio=on\n[pi4]\narm_boost=1\n"
SVC_UID = 4242

# Skipped only off CI when the tool is missing; CI installs it, so there it must run.
needs_systemctl = pytest.mark.skipif(
    shutil.which("systemctl") is None and not os.environ.get("CI"),
    reason="systemctl not installed (apt-get install systemd)",
)


def provision(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = ["bash", str(SCRIPT), "--venv-from", str(VENV), *args]
    env = {**os.environ, "PATH": f"/usr/sbin:/usr/bin:/sbin:/bin:{os.environ.get('PATH', '')}"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=180)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def manifest(root: Path) -> dict[str, tuple[str, ...]]:
    """Every path in the tree with its type, mode, owner and content hash (or link target).

    The whole tree, the state directory included: no service runs under --root, so
    everything there (device key, enrollment request, the applied bundle's trust/store.db,
    the audit log) was written by provisioning and a second run must leave it byte-equal.
    """
    out: dict[str, tuple[str, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            st = p.lstat()
            owner = f"{st.st_uid}:{st.st_gid}"
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", oct(st.st_mode & 0o7777), owner)
            else:
                digest = hashlib.sha256(p.read_bytes()).hexdigest()
                out[rel] = ("file", oct(st.st_mode & 0o7777), owner, digest)
    return out


def fragment_lines(subs: dict[str, str]) -> list[str]:
    """The boot-config fragments as provisioning should render them (inputs only if fitted)."""
    lines = []
    for frag in sorted((REPO / "firmware_config").glob("*.txt")):
        text = frag.read_text(encoding="utf-8")
        if "@INPUT_PINS@" in text and not subs.get("INPUT_PINS"):
            continue
        for key, value in subs.items():
            text = text.replace(f"@{key}@", value)
        assert "@" not in text, frag
        lines += text.splitlines()
    return lines


def make_target_tree(root: Path, *, with_users: bool) -> None:
    (root / "boot" / "firmware").mkdir(parents=True)
    (root / "boot" / "firmware" / "config.txt").write_text(STOCK_BOOT, encoding="utf-8")
    if with_users:  # the image's own accounts, as on a mounted Raspberry Pi OS card
        (root / "etc").mkdir()
        (root / "etc" / "passwd").write_text(
            "root:x:0:0:root:/root:/bin/bash\n"
            f"sentinel:x:{SVC_UID}:{SVC_UID}::/var/lib/sentinel:/usr/sbin/nologin\n",
            encoding="utf-8",
        )
        (root / "etc" / "group").write_text(
            f"root:x:0:\nvideo:x:44:sentinel\ngpio:x:997:sentinel\nsentinel:x:{SVC_UID}:\n",
            encoding="utf-8",
        )


EXPECTED = {
    # path: (mode, owner:group)
    "etc/sentinel": (0o750, "root:sentinel"),
    "etc/sentinel/sentinel.toml": (0o640, "root:sentinel"),
    "etc/sentinel/root_key.pem": (0o644, "root:root"),
    "var/lib/sentinel": (0o700, "sentinel:sentinel"),
    "var/lib/sentinel/device_key.pem": (0o600, "sentinel:sentinel"),
    "var/lib/sentinel/enrollment.json": (0o644, "sentinel:sentinel"),
    "etc/systemd/system/sentinel.service": (0o644, "root:root"),
    "etc/systemd/system/sentinel-sync.timer": (0o644, "root:root"),
    "etc/systemd/system/sentinel-purge.timer": (0o644, "root:root"),
    "etc/udev/rules.d/99-sentinel.rules": (0o644, "root:root"),
    "etc/systemd/system.conf.d/50-sentinel-watchdog.conf": (0o644, "root:root"),
    "boot/firmware/config.txt": (0o644, "root:root"),
}


@needs_systemctl
def test_provision_twice_into_root_with_answers_file(tmp_path: Path) -> None:
    root = tmp_path / "root"
    make_target_tree(root, with_users=True)
    answers = tmp_path / "answers.conf"
    answers.write_text(
        "# installer answers\nvenue = hall-a\ngate = north-2\nlock_type = fail-safe\n"
        "pin_map = relay=5, green=6, red=13, buzzer=19, door=26\nrelay_active_high = no\n"
        "retention_days = 30   # a month\n",
        encoding="utf-8",
    )
    first = provision("--root", str(root), "--answers", str(answers), "--gate", "north-3")
    assert "change(s)" in first.stdout.splitlines()[-1]
    assert "skipped  packages (--root" in first.stdout
    snapshot = manifest(root)

    second = provision("--root", str(root), "--answers", str(answers), "--gate", "north-3")
    assert second.stdout.splitlines()[-1] == "provision: no changes", second.stdout
    assert "changed" not in second.stdout
    assert manifest(root) == snapshot

    # Settings: the answers file, with the command line winning for the gate.
    toml = (root / "etc/sentinel/sentinel.toml").read_text(encoding="utf-8")
    for line in [
        'data_dir = "/var/lib/sentinel"',
        'id = "hall-a"',
        'id = "north-3"',
        'lock_type = "fail-safe"',
        "relay_pin = 5",
        "relay_active_high = false",
        "door_pin = 26",
        "retention_days = 30",
        'root_key = "/etc/sentinel/root_key.pem"',
        'pin_factory = "mock"',
    ]:
        assert line in toml.splitlines(), line
    from sentinel import config

    cfg = config.load(root / "etc/sentinel/sentinel.toml")
    assert cfg.web.enabled and cfg.web.host == "127.0.0.1"  # the kiosk unit's page, loopback
    assert (cfg.gate.relay_pin, cfg.gate.relay_active_high, cfg.retention.retention_days) == (
        5,
        False,
        30,
    )

    # Boot config: stock lines kept, the fragment lines exactly once, an active-low relay
    # held high (de-energised) from power-on.
    boot = (root / "boot/firmware/config.txt").read_text(encoding="utf-8").splitlines()
    assert boot[:4] == STOCK_BOOT.splitlines()
    subs = {"RELAY_PIN": "5", "RELAY_LEVEL": "dh", "RELAY_LEVEL_NAME": "high"}
    frag = fragment_lines({**subs, "INDICATOR_PINS": "6,13,19", "INPUT_PINS": "26"})
    assert {"gpio=5=op,dh", "gpio=6,13,19=op,dl", "gpio=26=ip,pu"} <= set(frag)
    for line in frag:
        assert boot.count(line) == 1, line
    assert boot[-1] == "# <<< sentinel <<<"
    assert boot[boot.index("# <<< sentinel <<<") - len(frag) - 1] == "[all]"

    # Modes always; owners from the tree's own /etc/passwd, applied when we are root.
    names = {"root": 0, "sentinel": SVC_UID}
    for rel, (mode, owner) in EXPECTED.items():
        st = (root / rel).stat()
        assert stat.S_IMODE(st.st_mode) == mode, rel
        if os.geteuid() == 0:
            user, group = owner.split(":")
            assert (st.st_uid, st.st_gid) == (names[user], names[group]), rel
    record = (root / "opt/sentinel/provisioned-files.txt").read_text(encoding="utf-8")
    assert "0600 sentinel:sentinel /var/lib/sentinel/device_key.pem" in record.splitlines()

    # Units enabled the way systemctl does it, inside the tree.
    wants = root / "etc/systemd/system/multi-user.target.wants/sentinel.service"
    assert os.readlink(wants) == "/etc/systemd/system/sentinel.service"
    assert (root / "etc/systemd/system/timers.target.wants/sentinel-purge.timer").is_symlink()
    # No publisher URL (demo data, synced once): the hourly sync would only fail.
    assert not (root / "etc/systemd/system/timers.target.wants/sentinel-sync.timer").exists()
    assert not (root / "etc/systemd/system/multi-user.target.wants/sentinel-kiosk.service").exists()

    # The device key is real, the enrollment request verifies and names this device.
    from sentinel import enroll

    req = enroll.verify_request((root / "var/lib/sentinel/enrollment.json").read_bytes())
    assert (req.device_id, req.venue, req.gate) == ("hall-a.north-3", "hall-a", "north-3")
    key_pem = (root / "var/lib/sentinel/device_key.pem").read_bytes()
    assert enroll.fingerprint_pem(key_pem) == req.fingerprint
    assert req.fingerprint in first.stdout


@needs_systemctl
def test_provision_defaults_record_owners_without_target_users(tmp_path: Path) -> None:
    """Only --root, --venue, --gate: mock pins, demo publisher, nothing of the host touched."""
    root = tmp_path / "r"
    make_target_tree(root, with_users=False)
    out = provision("--root", str(root), "--venue", "v1", "--gate", "g1").stdout
    assert "skipped  user sentinel (--root" in out
    # No account in the tree: files stay with whoever ran the script, owners are recorded.
    for rel in EXPECTED:
        assert (root / rel).stat().st_uid == os.geteuid(), rel
    record = {
        line.split()[2]: tuple(line.split()[:2])
        for line in (root / "opt/sentinel/provisioned-files.txt").read_text().splitlines()[1:]
    }
    for rel, (mode, owner) in EXPECTED.items():
        assert record["/" + rel] == (f"{mode:04o}", owner)
        assert stat.S_IMODE((root / rel).stat().st_mode) == mode, rel
    # The demo publisher's root key is the pinned one, and its bundle was applied.
    assert (root / "etc/sentinel/root_key.pem").read_bytes() == (
        root / "var/lib/sentinel-demo-publisher/root_pub.pem"
    ).read_bytes()
    toml = (root / "etc/sentinel/sentinel.toml").read_text()
    assert 'pin_factory = "mock"' in toml and "publisher_url" not in toml
    boot = (root / "boot/firmware/config.txt").read_text().splitlines()
    subs = {"RELAY_PIN": "17", "RELAY_LEVEL": "dl", "RELAY_LEVEL_NAME": "low"}
    frag = fragment_lines({**subs, "INDICATOR_PINS": "22,27,23"})
    assert {"gpio=17=op,dl", "gpio=22,27,23=op,dl"} <= set(frag)
    assert not any(line.endswith("=ip,pu") for line in boot)  # no inputs fitted
    for line in frag:
        assert boot.count(line) == 1, line
    if (
        "    sync "
        in subprocess.run(
            [str(VENV / "bin/sentinel"), "--help"], capture_output=True, text=True
        ).stdout
    ):
        assert "skipped  this sentinel has no 'sync'" not in out


def test_dry_run_changes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "dry"
    proc = provision("--dry-run", "--root", str(root), "--venue", "v1", "--gate", "g1")
    assert not root.exists()
    out = proc.stdout
    assert "dry run: nothing will be changed" in out
    assert "would    write /etc/sentinel/sentinel.toml (0640 root:sentinel)" in out
    assert "would    write /etc/systemd/system/sentinel.service (0644 root:root)" in out
    assert re.search(r"would +run: sentinel selftest", out)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--venue", "v1"], "--gate is required"),
        (["--venue", "v 1; rm -rf /", "--gate", "g"], "venue 'v 1; rm -rf /'"),
        (["--venue", "v", "--gate", "g", "--pin-map", "relay=17,red=17"], "used twice"),
        (["--venue", "v", "--gate", "g", "--pin-map", "relay=40"], "BCM pins are 0..27"),
        (["--venue", "v", "--gate", "g", "--lock-type", "open"], "fail-secure or fail-safe"),
        (["--venue", "v", "--gate", "g", "--publisher-url", "http://x"], "needs --root-key-fin"),
        (
            [
                "--venue",
                "v",
                "--gate",
                "g",
                "--publisher-url",
                "http://x",
                "--root-key-fingerprint",
                "ab",
            ],
            "64 hex digits",
        ),
        (["--venue", "v", "--gate", "g", "--retention-days", "0"], "retention days"),
        (["--venue", "v", "--gate", "g", "--frobnicate", "1"], "unknown option"),
    ],
)
def test_bad_answers_stop_with_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    proc = provision("--root", str(tmp_path / "r"), *args, check=False)
    assert proc.returncode == 2
    assert message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert not (tmp_path / "r" / "etc").exists()


def test_answers_file_is_parsed_not_sourced(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    answers = tmp_path / "a.conf"
    answers.write_text(f"venue = $(touch {marker})\ngate = g\n", encoding="utf-8")
    proc = provision("--root", str(tmp_path / "r"), "--answers", str(answers), check=False)
    assert proc.returncode == 2 and "venue '$(touch" in proc.stderr
    assert not marker.exists()
    answers.write_text("touch /tmp/x\n", encoding="utf-8")
    proc = provision("--root", str(tmp_path / "r"), "--answers", str(answers), check=False)
    assert proc.returncode == 2 and "expected 'key = value'" in proc.stderr


def test_root_key_fingerprint_mismatch_pins_nothing(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    pub = tmp_path / "root_pub.pem"
    pub.write_bytes(
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    root = tmp_path / "r"
    proc = provision(
        "--root", str(root), "--venue", "v", "--gate", "g",
        "--publisher-url", "http://127.0.0.1:9/pub", "--root-key", str(pub),
        "--root-key-fingerprint", "ab" * 32,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 2 and "root key fingerprint mismatch" in proc.stderr
    assert not (root / "etc/sentinel/root_key.pem").exists()
    assert not (root / "etc/sentinel/sentinel.toml").exists()


def test_scripts_are_shellcheck_clean() -> None:
    if shutil.which("shellcheck") is None and not os.environ.get("CI"):
        pytest.skip("shellcheck not installed (apt-get install shellcheck; CI installs it)")
    scripts = sorted(str(p) for p in (REPO / "scripts").glob("*.sh"))
    assert str(SCRIPT) in scripts
    proc = subprocess.run(["shellcheck", *scripts], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


@pytest.fixture
def publisher(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A demo authority's site served over HTTP on 127.0.0.1, root_pub.pem beside it."""
    from sentinel.authority.publish import publish_demo

    paths = publish_demo(tmp_path / "authority")
    site = Path(paths["site"])
    shutil.copy(paths["root_pub"], site / "root_pub.pem")
    handler = functools.partial(_QuietHandler, directory=str(site))
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", Path(paths["root_pub"])
    srv.shutdown()
    srv.server_close()
    t.join(timeout=10)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@needs_systemctl
def test_provision_with_publisher_pins_key_by_fingerprint_and_syncs(
    tmp_path: Path, publisher: tuple[str, Path]
) -> None:
    from sentinel import enroll

    url, root_pub = publisher
    fpr = enroll.fingerprint_pem(root_pub.read_bytes())
    root = tmp_path / "r"
    out = provision(
        "--root", str(root), "--venue", "v1", "--gate", "g1", "--publisher-url", url,
        "--root-key-fingerprint", ":".join(fpr[i : i + 2] for i in range(0, 64, 2)).upper(),
    ).stdout  # fmt: skip
    assert f"ok       root key fingerprint {fpr}" in out
    assert (root / "etc/sentinel/root_key.pem").read_bytes() == root_pub.read_bytes()
    toml = (root / "etc/sentinel/sentinel.toml").read_text()
    assert f'publisher_url = "{url}"' in toml.splitlines()
    assert (root / "etc/systemd/system/timers.target.wants/sentinel-sync.timer").is_symlink()
    assert not (root / "var/lib/sentinel-demo-publisher").exists()
    # The bundle arrived over HTTP and was verified against the pinned key.
    from sentinel.trust.store import BundleStore

    assert BundleStore.exists(root / "var/lib/sentinel")
    assert "skipped  this sentinel has no 'sync'" not in out
