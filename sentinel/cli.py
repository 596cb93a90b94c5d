"""The one ``sentinel`` command.  Subcommands are thin: each area registers its own.

Each module in ``COMMAND_MODULES`` has ``register(sub)`` adding argparse subparsers whose
``func(args) -> int`` runs the command.  Modules import heavy dependencies inside their
handlers, so ``sentinel --help`` stays fast.  Errors from the tree in ``errors.py`` become
one line on stderr and an exit code: ConfigError 2, HardwareError 3, other SentinelError 1.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from sentinel import __version__
from sentinel.errors import ConfigError, HardwareError, SentinelError

COMMAND_MODULES = [
    "sentinel._cli_core",
    "sentinel._cli_enroll",
    "sentinel.credentials.cli",
    "sentinel.credentials.healthcode_cli",
    "sentinel.scan.cli",
    "sentinel.trust.cli",
    "sentinel.gate.cli",
    "sentinel.journal.cli",
    "sentinel.web.cli",
    "sentinel.fleet.cli",
    "sentinel.authority.cli",  # the issuing authority's commands; absent on a device install
]


class _Formatter(argparse.RawDescriptionHelpFormatter):
    pass


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sentinel",
        description="Sentinel: offline check-in appliance for venue entrances.",
        formatter_class=_Formatter,
        epilog=(
            "Start here:\n"
            "  sentinel demo            the whole pipeline on sample frames, a table (make demo)\n"
            "  sentinel demo --serve    the live service: kiosk http://127.0.0.1:8080/kiosk,\n"
            "                           reports, sound; manager password printed; Ctrl-C stops\n"
            "  scripts/provision.sh     set up a real device (docs/install.md), then\n"
            "  sentinel run --config /etc/sentinel/sentinel.toml\n"
            "Each command: sentinel COMMAND --help (with examples)."
        ),
    )
    parser.add_argument("--version", action="version", version=f"sentinel {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
                continue  # an area not built yet, or not installed (the authority's)
            raise
        module.register(sub)
    return parser


def add_command(
    sub: argparse._SubParsersAction,
    name: str,
    help: str,
    examples: str | Sequence[str],
    description: str = "",
    *,
    heading: str = "",
) -> argparse.ArgumentParser:
    """Add subcommand ``name``; its --help shows ``description``, then the examples verbatim.

    The text is the description, a blank line, "example:" ("examples:" for several, or
    ``heading``) and each example indented by two spaces (RawDescriptionHelpFormatter).
    """
    lines = [examples] if isinstance(examples, str) else list(examples)
    heading = heading or ("examples:" if len(lines) > 1 else "example:")
    text = "\n".join([heading, *(f"  {line}" for line in lines)])
    return sub.add_parser(
        name,
        help=help,
        description=f"{description}\n\n{text}" if description else text,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def subcommands(sub: argparse._SubParsersAction, name: str) -> argparse._SubParsersAction:
    """The ACTION subparsers of command ``name`` (registered earlier), to add actions to it."""
    for action in sub.choices[name]._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise KeyError(f"command {name!r} has no actions")


def add_config_arg(p: argparse.ArgumentParser) -> None:
    """The ``--config FILE`` option every device-side command takes."""
    p.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        default=None,
        help="settings file (TOML); embedded defaults when omitted",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"sentinel: config error: {exc}", file=sys.stderr)
        return 2
    except HardwareError as exc:
        print(f"sentinel: hardware error: {exc}", file=sys.stderr)
        return 3
    except SentinelError as exc:
        print(f"sentinel: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
