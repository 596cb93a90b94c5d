"""Core subcommands: run, demo, reasons."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

FIRST_CONTACT = """\
sentinel run: nothing to check credentials against yet ({why}).
A sentinel needs trust data from an authority. Two ways forward:

  1. See it work now, on this machine:
       sentinel demo --serve
     the real service on a demo authority and publisher (127.0.0.1), a looping camera
     of sample presentations and mock GPIO; kiosk at http://127.0.0.1:8080/kiosk,
     manager and auditor passwords printed.  Ctrl-C stops it.

  2. Set up a real device (Raspberry Pi OS / Debian), as root:
       sudo scripts/provision.sh --venue VENUE --gate GATE \\
           --publisher-url URL --root-key-fingerprint HEX
     then the service runs as: sentinel run --config /etc/sentinel/sentinel.toml
     (docs/install.md; `sentinel run --config FILE` for a hand-written config)
"""


def _cmd_run(args: argparse.Namespace) -> int:
    from sentinel import config, sdnotify
    from sentinel.daemon import Daemon, make_trust
    from sentinel.errors import ConfigError

    cfg = config.load(args.config)
    if args.config is None:  # first contact: no config at all
        try:
            trust = make_trust(cfg)
        except ConfigError as exc:
            print(FIRST_CONTACT.format(why=str(exc).split(":")[0]), file=sys.stderr, end="")
            return 2
        close = getattr(trust, "close", None)
        if callable(close):
            close()
    # Under systemd (Type=notify) NOTIFY_SOCKET is set: READY/WATCHDOG/STOPPING go there.
    with sdnotify.from_env() as notifier:
        interval_s = sdnotify.watchdog_interval_s() or sdnotify.DEFAULT_WATCHDOG_INTERVAL_S
        with Daemon(cfg, notify=notifier.send, watchdog_interval_s=interval_s) as d:
            d.install_signal_handlers()
            return d.run()


def _cmd_demo(args: argparse.Namespace) -> int:
    out = Path(args.out) if args.out else None
    if args.serve:
        from sentinel.demo_serve import serve_demo

        return serve_demo(stream=sys.stdout, host=args.host, port=args.port, out_dir=out)
    from sentinel.demo import run_demo

    return run_demo(out, stream=sys.stdout, keep=args.out is not None)


def _cmd_reasons(args: argparse.Namespace) -> int:
    from sentinel.reasons import ReasonCode, is_admit, messages

    if args.markdown:
        print("| code | gate | English | 中文 |\n| --- | --- | --- | --- |")
    for r in ReasonCode:
        en, zh = messages(r)
        gate = "opens" if is_admit(r) else "stays locked"
        if args.markdown:
            print(f"| `{r.value}` | {gate} | {en} | {zh} |")
        else:
            print(f"{r.value:<28} {gate:<13} {en} / {zh}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from sentinel.cli import add_command, add_config_arg

    p = add_command(
        sub,
        "run",
        "run the sentinel service (camera → decision → gate/journal)",
        "sentinel run --config /etc/sentinel/sentinel.toml",
        "Run the long-running service.",
    )
    add_config_arg(p)
    p.set_defaults(func=_cmd_run)

    p = add_command(
        sub,
        "demo",
        "run the pipeline on demo frames; --serve: the live service with kiosk and reports",
        ["sentinel demo --out ./demo-out", "sentinel demo --serve   # then open the kiosk URL"],
        (
            "Create a demo authority and certificates, render camera-like frames, and run the real "
            "pipeline over them.\nWith --serve: run the real service (as `sentinel run`) on a demo "
            "authority and publisher on 127.0.0.1, a looping camera of presentations, mock GPIO, "
            "the kiosk page and manager/auditor accounts (passwords printed) until Ctrl-C."
        ),
    )
    p.add_argument("--out", metavar="DIR", help="keep the demo files in DIR (default: temp)")
    p.add_argument("--serve", action="store_true", help="run the live demo service until Ctrl-C")
    p.add_argument("--host", default="127.0.0.1", help="--serve: web address (127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="--serve: web port (8080)")
    p.set_defaults(func=_cmd_demo)

    p = add_command(
        sub,
        "reasons",
        "list the reason codes with their messages",
        "sentinel reasons --markdown",
    )
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")
    p.set_defaults(func=_cmd_reasons)
