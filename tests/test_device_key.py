"""The device key file when it is not what it should be: damaged, a FIFO, a directory, /dev/zero.

Each is refused with one line naming the file, the file is never replaced (the audit chain
and the enrolment name this key), and nothing blocks.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sentinel.errors import JournalError
from sentinel.journal.devicekey import load_or_create_device_key

SENTINEL = str(Path(sys.executable).with_name("sentinel"))


def test_a_fresh_key_is_created_once_and_read_back(tmp_path: Path) -> None:
    p = tmp_path / "device_key.pem"
    a = load_or_create_device_key(p)
    b = load_or_create_device_key(p)
    assert a.public_key().public_bytes_raw() == b.public_key().public_bytes_raw()
    assert p.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    "damage",
    [
        lambda pem: pem[: len(pem) // 2],  # cut by a power loss on an old firmware's copy
        lambda pem: pem.replace(b"A", b"B", 3),  # flipped characters
        lambda pem: b"",  # emptied
        lambda pem: b"\x00" * 4096,  # zeroed sectors
    ],
    ids=["truncated", "flipped", "empty", "zeroed"],
)
def test_a_damaged_key_is_refused_by_name_and_kept(tmp_path: Path, damage) -> None:
    p = tmp_path / "device_key.pem"
    load_or_create_device_key(p)
    bad = damage(p.read_bytes())
    p.write_bytes(bad)
    with pytest.raises(JournalError, match="device_key.pem: the device key is damaged"):
        load_or_create_device_key(p)
    assert p.read_bytes() == bad  # not replaced by a new key


def test_a_key_that_is_not_ed25519_is_refused(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    p = tmp_path / "device_key.pem"
    p.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(JournalError, match="not an Ed25519 private key"):
        load_or_create_device_key(p)


def test_a_directory_in_place_of_the_key_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "device_key.pem"
    p.mkdir()
    with pytest.raises(JournalError, match="is a directory"):
        load_or_create_device_key(p)


def test_dev_zero_linked_in_place_of_the_key_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "device_key.pem"
    p.symlink_to("/dev/zero")
    with pytest.raises(JournalError, match="not a regular file"):
        load_or_create_device_key(p)


def test_a_fifo_in_place_of_the_key_does_not_block(tmp_path: Path) -> None:
    """Reading a FIFO with no writer blocks forever; the loader must refuse it at once."""
    p = tmp_path / "device_key.pem"
    os.mkfifo(p)
    code = (
        "import sys; from pathlib import Path\n"
        "from sentinel.errors import JournalError\n"
        "from sentinel.journal.devicekey import load_or_create_device_key\n"
        "try:\n    load_or_create_device_key(Path(sys.argv[1]))\n"
        "except JournalError as e:\n    print(e)\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code, str(p)], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    assert "not a regular file" in r.stdout


def test_a_huge_key_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    p = tmp_path / "device_key.pem"
    with p.open("wb") as f:
        f.truncate(1 << 30)  # sparse: 1 GiB of size, no blocks
    with pytest.raises(JournalError, match="too large for a device key"):
        load_or_create_device_key(p)


def test_enroll_with_a_damaged_key_prints_one_line_naming_the_file(tmp_path: Path) -> None:
    conf = tmp_path / "s.toml"
    conf.write_text('data_dir = "data"\n[venue]\nid = "hall"\n[gate]\nid = "g7"\n')
    key = tmp_path / "data" / "device_key.pem"
    key.parent.mkdir()
    key.write_bytes(b"-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n")
    r = subprocess.run(
        [SENTINEL, "enroll", "-c", str(conf), "--out", str(tmp_path / "e.json")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 1, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and str(key) in lines[0] and "damaged" in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "e.json").exists()
