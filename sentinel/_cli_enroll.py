"""``sentinel enroll``: the device's key to the authority, and the authority's registry."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _cmd_enroll(args: argparse.Namespace) -> int:
    from sentinel import enroll

    if args.fingerprint:
        print(enroll.fingerprint_pem(Path(args.fingerprint).read_bytes()))
        return 0
    if args.register:
        from datetime import UTC, datetime

        if not args.registry:
            print("sentinel: enroll --register needs --registry FILE", file=sys.stderr)
            return 2
        data = Path(args.register).read_bytes()[: enroll.MAX_REQUEST_BYTES + 1]
        e = enroll.verify_request(data)
        outcome = enroll.register(
            Path(args.registry), e, now=datetime.now(UTC), replace=args.replace
        )
        print(f"{outcome}: device {e.device_id} (venue {e.venue}, gate {e.gate}) {e.fingerprint}")
        return 0

    from sentinel import config
    from sentinel.journal.audit import load_or_create_device_key

    cfg = config.load(args.config)
    from sentinel.trust.sealing import load_or_create_seal_key

    key = load_or_create_device_key(Path(cfg.data_dir) / "device_key.pem")
    seal = load_or_create_seal_key(cfg.data_dir)  # the status key is sealed to it (D4)
    device_id = cfg.fleet.device_id or f"{cfg.venue.id}.{cfg.gate.id}"
    request = enroll.make_request(key, device_id, cfg.venue.id, cfg.gate.id, seal.public_key())
    print(f"device {device_id}")
    print(f"fingerprint {enroll.fingerprint(key.public_key())}")
    if args.out:
        out = Path(args.out)
        changed = enroll.write_if_changed(out, request)
        print(f"request {out} ({'written' if changed else 'unchanged'})")
    elif not args.post:
        sys.stdout.write(request.decode())
    if args.post:
        status = enroll.post(args.post, request)
        print(f"posted to {args.post}: HTTP {status}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from sentinel.cli import add_command, add_config_arg

    p = add_command(
        sub,
        "enroll",
        "register this device's public key with the authority",
        [
            "sentinel enroll --config /etc/sentinel/sentinel.toml --out enrollment.json",
            "sentinel enroll --register enrollment.json --registry devices.json",
            "sentinel enroll --fingerprint root_key.pem",
        ],
        (
            "Device side: create the device key if needed and write (or POST) a signed enrollment "
            "request.\nAuthority side: verify a request and add it to the device registry."
        ),
    )
    add_config_arg(p)
    p.add_argument("--out", metavar="FILE", help="write the enrollment request to FILE")
    p.add_argument("--post", metavar="URL", help="POST the enrollment request to URL")
    p.add_argument("--register", metavar="REQUEST", help="(authority) verify and register")
    p.add_argument("--registry", metavar="FILE", help="(authority) the devices.json registry")
    p.add_argument(
        "--replace", action="store_true", help="(authority) accept a new key for a known device"
    )
    p.add_argument("--fingerprint", metavar="PEM", help="print the SHA-256 fingerprint of a key")
    p.set_defaults(func=_cmd_enroll)
