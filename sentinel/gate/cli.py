"""Gate subcommands: selftest, override."""

from __future__ import annotations

import argparse
import sys


def _cmd_selftest(args: argparse.Namespace) -> int:
    from sentinel import config
    from sentinel.gate.selftest import FAIL, SelftestOptions, format_table, run_selftest

    cfg = config.load(args.config)
    checks = run_selftest(cfg, SelftestOptions(skip_relay=args.skip_relay))
    print(format_table(checks))
    return 1 if any(c.status == FAIL for c in checks) else 0


def _cmd_override(args: argparse.Namespace) -> int:
    from pathlib import Path

    from sentinel import config
    from sentinel.gate.control import SOCKET_NAME, send
    from sentinel.gate.override import OverrideRequest

    cfg = config.load(args.config)
    try:
        req = OverrideRequest.parse(args.reason, args.staff)
    except ValueError as exc:
        print(f"sentinel: {exc}", file=sys.stderr)
        return 2
    reply = send(
        Path(cfg.data_dir) / SOCKET_NAME,
        {"cmd": "override", "reason": req.reason, "staff": req.staff},
    )
    if not reply.get("ok"):
        print(f"sentinel: override refused: {reply.get('error', 'unknown error')}", file=sys.stderr)
        return 1
    print(f"gate {cfg.gate.id} opened once; journal event {reply.get('event_id')}, audited")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from sentinel.cli import add_command, add_config_arg
    from sentinel.gate.override import OVERRIDE_REASONS

    p = add_command(
        sub,
        "selftest",
        "installer checks: camera, relay, lights, inputs, clock, disk, data",
        "sudo systemctl stop sentinel && sentinel selftest --config /etc/sentinel/sentinel.toml",
        (
            "Check the hardware and data with the service stopped; prints a pass/fail table and "
            "exits 1 on any failure."
        ),
    )
    add_config_arg(p)
    p.add_argument(
        "--skip-relay", action="store_true", help="do not click the lock relay (door stays shut)"
    )
    p.set_defaults(func=_cmd_selftest)

    reasons = ", ".join(f"{k} ({en})" for k, (en, _zh) in OVERRIDE_REASONS.items())
    p = add_command(
        sub,
        "override",
        "staff: open the gate once (journaled and audited)",
        "sentinel override --reason paper --staff staff-07 --config /etc/sentinel/sentinel.toml",
        "Ask the running service to open the gate once.  Recorded in the journal "
        "(decision 'override') and in the audit chain with the reason and your staff id.\n\n"
        f"reasons: {reasons}",
    )
    add_config_arg(p)
    p.add_argument("--reason", required=True, choices=list(OVERRIDE_REASONS), help="why")
    p.add_argument("--staff", required=True, metavar="ID", help="your staff id (not a name)")
    p.set_defaults(func=_cmd_override)
