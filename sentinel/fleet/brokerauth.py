"""Per-device MQTT credentials and a topic ACL for mosquitto (security review D3).

Every device gets its own user name (its device id) and password; the ACL lets it write
only ``sentinel/<its venue>/<its id>/events`` and ``.../heartbeat`` and read nothing.
Each ingester has its own user with read access to those topics only.  With
``use_username_as_clientid`` the broker also pins the client id to the user, so one
device cannot take over another's session.  Passwords are hashed by mosquitto's own
``mosquitto_passwd -U`` (PBKDF2-SHA512), not here.

The ingester still checks the payload against the topic: the ACL authenticates the topic,
the ingester makes sure nothing else in the message claims a different identity.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path

from sentinel.errors import FleetError

# Ids become ACL lines and topic levels: no wildcards, separators, spaces or newlines.
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def check_id(value: str, what: str) -> str:
    if not _SAFE_ID.fullmatch(value):
        raise FleetError(f"{what} {value[:40]!r}: use letters, digits, '.', '_' or '-' (≤ 100)")
    return value


def acl_text(devices: Iterable[tuple[str, str]], readers: Iterable[str]) -> str:
    """The ACL file: ``devices`` are (venue, device id); ``readers`` are ingester users."""
    lines = ["# sentinel fleet ACL: each device writes only its own topics"]
    for user in readers:
        check_id(user, "ingester user")
        lines += [
            f"user {user}",
            "topic read sentinel/+/+/events",
            "topic read sentinel/+/+/heartbeat",
        ]
    for venue, device in devices:
        check_id(venue, "venue")
        check_id(device, "device id")
        lines += [
            f"user {device}",
            f"topic write sentinel/{venue}/{device}/events",
            f"topic write sentinel/{venue}/{device}/heartbeat",
        ]
    return "\n".join(lines) + "\n"


def mosquitto_passwd() -> str:
    exe = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    if not os.path.exists(exe):
        raise FleetError("mosquitto_passwd not found (Debian package mosquitto)")
    return exe


def write_password_file(path: Path, passwords: Mapping[str, str]) -> None:
    """Write ``user:password`` lines and let mosquitto hash them in place, atomically."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        for user, pw in passwords.items():
            check_id(user, "user")
            if not pw or ":" in pw or "\n" in pw:
                raise FleetError(f"password for {user}: empty, or holds ':' or a newline")
            f.write(f"{user}:{pw}\n")
    subprocess.run([mosquitto_passwd(), "-U", str(tmp)], check=True, capture_output=True)
    os.replace(tmp, path)


def write_broker_auth(
    directory: Path, devices: Iterable[tuple[str, str]], readers: Iterable[str]
) -> dict[str, str]:
    """``acl`` and ``passwd`` in ``directory``; returns the new password of every user."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    devices, readers = list(devices), list(readers)
    (directory / "acl").write_text(acl_text(devices, readers))
    passwords = {u: secrets.token_urlsafe(18) for u in readers}
    passwords.update({d: secrets.token_urlsafe(18) for _v, d in devices})
    write_password_file(directory / "passwd", passwords)
    return passwords


def broker_conf(directory: Path) -> str:
    """The mosquitto.conf lines that turn the ACL and password file on."""
    return (
        "allow_anonymous false\n"
        f"password_file {directory / 'passwd'}\n"
        f"acl_file {directory / 'acl'}\n"
        "use_username_as_clientid true\n"
    )
