"""Core subcommands: run, demo, reasons."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _cmd_run(args: argparse.Namespace) -> int:
    from sentinel import config, sdnotify
    from sentinel.daemon import Daemon

    cfg = config.load(args.config)
    # Under systemd (Type=notify) NOTIFY_SOCKET is set: READY/WATCHDOG/STOPPING go there.
    with sdnotify.from_env() as notifier:
        interval_s = sdnotify.watchdog_interval_s() or sdnotify.DEFAULT_WATCHDOG_INTERVAL_S
        with Daemon(cfg, notify=notifier.send, watchdog_interval_s=interval_s) as d:
            d.install_signal_handlers()
            return d.run()


def _cmd_demo(args: argparse.Namespace) -> int:
    from sentinel.demo import run_demo

    out = Path(args.out) if args.out else None
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
        "run the pipeline on demo frames with mock GPIO",
        "sentinel demo --out ./demo-out",
        (
            "Create a demo authority and certificates, render camera-like frames, and run the real "
            "pipeline over them."
        ),
    )
    p.add_argument("--out", metavar="DIR", help="keep the demo files in DIR (default: temp)")
    p.set_defaults(func=_cmd_demo)

    p = add_command(
        sub,
        "reasons",
        "list the reason codes with their messages",
        "sentinel reasons --markdown",
    )
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")
    p.set_defaults(func=_cmd_reasons)
