"""``sentinel user add/passwd/remove/list/pin`` and ``sentinel web`` (pages without the camera)."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path


def _store(args: argparse.Namespace):  # -> UserStore
    from sentinel import config
    from sentinel.web.users import UserStore

    cfg = config.load(args.config)
    return UserStore(Path(cfg.data_dir) / "users.db")


def _secret(args: argparse.Namespace, what: str) -> str:
    """Read a password/PIN from stdin (--stdin, for scripts) or ask twice on the terminal."""
    if args.stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass(f"{what}: ")
    if getpass.getpass(f"{what} again: ") != first:
        from sentinel.web.users import UserError

        raise UserError(f"the two {what.lower()}s differ")
    return first


def _cmd_add(args: argparse.Namespace) -> int:
    store = _store(args)
    store.add(args.name, args.role, _secret(args, "Password"))
    print(f"user {args.name} added ({args.role})")
    return 0


def _cmd_passwd(args: argparse.Namespace) -> int:
    store = _store(args)
    store.set_password(args.name, _secret(args, "Password"))
    print(f"password of {args.name} changed; its sessions were ended")
    return 0


def _cmd_remove(args: argparse.Namespace) -> int:
    _store(args).remove(args.name)
    print(f"user {args.name} removed")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    for name, role in _store(args).users():
        print(f"{name}\t{role}")
    return 0


def _cmd_pin(args: argparse.Namespace) -> int:
    _store(args).set_pin(_secret(args, "PIN"))
    print("kiosk override PIN set")
    return 0


def _cmd_web(args: argparse.Namespace) -> int:
    import dataclasses
    import threading

    from sentinel import config
    from sentinel.web.app import WebContext, create_app
    from sentinel.web.server import BackgroundServer

    cfg = config.load(args.config)
    web = cfg.web
    if args.port is not None:
        web = dataclasses.replace(web, port=args.port)
    if args.host is not None:
        web = dataclasses.replace(web, host=args.host)
    cfg = dataclasses.replace(cfg, web=web)
    # Standalone: reports and login work; the kiosk shows no live results and no override.
    ctx = WebContext.for_config(cfg)
    stop = threading.Event()
    with BackgroundServer(create_app(ctx), web.host, web.port) as server:
        print(f"serving {server.url}/login and {server.url}/kiosk (Ctrl-C stops)", flush=True)
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
        finally:
            ctx.hub.close()
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from sentinel.cli import add_command, add_config_arg

    p = add_command(
        sub,
        "user",
        "manage web users (staff, manager, auditor) and the kiosk override PIN",
        [
            "sentinel user add alice --role manager --config /etc/sentinel/sentinel.toml",
            "echo 's3cret-pass' | sentinel user passwd alice --stdin",
            "sentinel user remove alice",
            "sentinel user pin            # the PIN staff type for 'open once' on the kiosk",
        ],
        "Users of the web pages, kept in DATA_DIR/users.db with scrypt hashes.",
    )
    usub = p.add_subparsers(dest="user_command", metavar="ACTION", required=True)

    def action(name: str, help_: str, example: str, func, with_name: bool = True, secret=True):
        a = add_command(usub, name, help_, example, help_)
        if with_name:
            a.add_argument("name", help="user name (letters, digits, . _ - @)")
        if secret:
            a.add_argument(
                "--stdin", action="store_true", help="read the secret from one line of stdin"
            )
        add_config_arg(a)
        a.set_defaults(func=func)
        return a

    a = action("add", "add a user", "sentinel user add alice --role manager", _cmd_add)
    a.add_argument("--role", required=True, choices=("staff", "manager", "auditor"))
    action("passwd", "change a user's password", "sentinel user passwd alice", _cmd_passwd)
    action("remove", "remove a user", "sentinel user remove alice", _cmd_remove, secret=False)
    action("list", "list users and roles", "sentinel user list", _cmd_list, False, False)
    action("pin", "set the kiosk override PIN (4-12 digits)", "sentinel user pin", _cmd_pin, False)

    p = add_command(
        sub,
        "web",
        "serve the report and kiosk pages without the camera service",
        "sentinel web --config /etc/sentinel/sentinel.toml --port 8081",
        "Serve the web pages over the journal on disk (no live kiosk results).",
    )
    add_config_arg(p)
    p.add_argument("--host", default=None, help="listen address (default: web.host)")
    p.add_argument("--port", type=int, default=None, help="port (default: web.port)")
    p.set_defaults(func=_cmd_web)
