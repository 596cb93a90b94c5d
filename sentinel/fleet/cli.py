"""``sentinel central ...`` (the centre) and ``sentinel fleet status`` (a device)."""

from __future__ import annotations

import argparse
import json
import signal
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

_EXAMPLES = """examples:
  sentinel central migrate --dsn "host=/run/postgresql dbname=sentinel"
  sentinel central ingest  --dsn "dbname=sentinel" --broker 127.0.0.1:1883 --client-id central-1 \
                           --username central-1 --password-file /etc/sentinel/central-1.pw
  sentinel central hierarchy-import city.csv --dsn "dbname=sentinel"
  sentinel central scope-add office-nanjing-rd street nanjing-rd
  sentinel central alert-kind CODE_RED          (--off to unmark)
  sentinel central rollup-check --dsn "dbname=sentinel"
  sentinel central manager-add alice venue-12
  sentinel central report  --dsn "dbname=sentinel" --manager alice --days 7
  sentinel central fleet   --dsn "dbname=sentinel"
  sentinel central purge   --dsn "dbname=sentinel" --retention-days 14
  sentinel central web     --dsn "dbname=sentinel" --users /var/lib/sentinel-central/users.db
"""


def _broker(spec: str, username: str | None = None, password_file: str | None = None) -> Any:
    from sentinel.errors import ConfigError
    from sentinel.fleet.mqtt import BrokerSettings

    host, _, port = spec.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--broker must be HOST:PORT, got {spec!r}")
    return BrokerSettings(
        host=host, port=int(port), username=username or None, password_file=password_file
    )


def _connect(dsn: str) -> Any:
    import psycopg

    from sentinel.errors import FleetError
    from sentinel.fleet.central import migrate

    try:
        conn = psycopg.connect(dsn, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise FleetError(f"cannot connect to PostgreSQL: {str(exc).strip()}") from None
    migrate(conn)
    return conn


def _cmd(args: argparse.Namespace) -> int:
    from sentinel.errors import FleetError
    from sentinel.fleet import central

    if args.action == "ingest":
        ing = central.Ingester(
            args.dsn,
            _broker(args.broker, args.username, args.password_file),
            client_id=args.client_id,
            group=args.group or None,
            batch_max=args.batch_max,
            batch_wait_s=args.batch_wait_ms / 1000,
            compact_every_s=args.compact_every_s,
            lag_stats=args.lag_stats,
        )
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        ing.start()
        if not ing.conn.subscribed.wait(30):
            print(f"broker {args.broker} not reachable yet; paho keeps retrying", flush=True)
        print(f"ingesting from {args.broker}; Ctrl-C to stop", flush=True)
        stop.wait()
        ing.stop()
        if ing.lag is not None:
            print(f"lag-stats {ing.lag.to_json()}")
        print(
            f"ingested {ing.ingested}, redelivered {ing.redelivered}, rejected {ing.rejected}, "
            f"alerts {ing.alerts}, messages {ing.messages}, batches {ing.batches}, "
            f"commit {ing.commit_s:.1f} s, roll-up folds {ing.compactions} "
            f"({ing.compact_s:.1f} s)"
        )
        return 0
    if args.action == "web":
        from sentinel.web.central_app import serve

        return serve(args.dsn, args.users, args.host, args.port)
    conn = _connect(args.dsn)
    now = datetime.now(UTC)
    if args.action == "migrate":
        print("schema up to date")
    elif args.action == "manager-add":
        conn.execute(
            "INSERT INTO managers VALUES (%s, %s) ON CONFLICT DO NOTHING", (args.name, args.venue)
        )
    elif args.action == "report":
        rows = central.refusals_by_reason(conn, args.manager, now - timedelta(days=args.days), now)
        for venue, reason, n in rows:
            print(f"{venue:<20} {reason:<28} {n:>8}")
        if not rows:
            print("no refusals in the manager's venues for that period")
    elif args.action == "fleet":
        for d in central.fleet_health(conn, now):
            flag = "OFFLINE" if d.offline else ("STALE" if d.stale else "ok")
            print(
                json.dumps(
                    {
                        "device": d.device_id,
                        "venue": d.venue,
                        "state": flag,
                        "last_heartbeat": d.last_heartbeat.isoformat(),
                        "bundle_age_s": d.bundle_age_s,
                        "backlog": d.outbox_backlog,
                        "faults": d.faults,
                    }
                )
            )
    elif args.action == "hierarchy-import":
        from pathlib import Path

        from sentinel.fleet.city import import_hierarchy

        if not args.name:
            raise FleetError("hierarchy-import needs the CSV file")
        try:
            text = Path(args.name).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise FleetError(f"{args.name}: cannot read: {exc}") from None
        print(f"imported {import_hierarchy(conn, text)} venues")
    elif args.action == "scope-add":
        from sentinel.fleet.city import add_scope

        if not (args.name and args.venue and args.area):
            raise FleetError("scope-add needs USER LEVEL AREA")
        add_scope(conn, args.name, args.venue, args.area)
    elif args.action == "alert-kind":
        from sentinel.fleet.alerts import mark_kind, marked_kinds

        if args.name:
            mark_kind(conn, args.name, on=not args.off)
        print(" ".join(marked_kinds(conn)))
    elif args.action == "rollup-check":
        from sentinel.fleet.city import recount, stored_rollups

        for unit, label in (("hour", "hourly"), ("day", "daily")):
            want, got = recount(conn, unit), stored_rollups(conn, unit)
            print(f"{label} roll-ups: {len(got)} rows stored, {len(want)} recounted")
            if want != got:
                print(f"{label} roll-ups DIFFER from a full recount")
                return 1
        print("roll-ups match a full recount")
    elif args.action == "purge":
        n = central.purge(conn, now, args.retention_days)
        print(f"purged {n} events older than {args.retention_days} days (counts kept)")
    conn.close()
    return 0


def _cmd_fleet_status(args: argparse.Namespace) -> int:
    from pathlib import Path

    from sentinel import config
    from sentinel.fleet.outbox import Outbox
    from sentinel.fleet.service import device_id

    cfg = config.load(args.config)
    with Outbox(
        Path(cfg.data_dir) / "journal.db", device_id(cfg), max_rows=cfg.fleet.outbox_max
    ) as ob:
        print(
            json.dumps(
                {
                    "device_id": device_id(cfg),
                    "enabled": cfg.fleet.enabled,
                    "backlog": ob.count(),
                    "max": ob.max_rows,
                    "dropped": ob.dropped,
                }
            )
        )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from sentinel.cli import add_command, add_config_arg

    p = sub.add_parser(
        "central",
        help="the centre: ingest device events into PostgreSQL, reports, fleet health, purge",
        description=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "action",
        choices=[
            "migrate",
            "ingest",
            "manager-add",
            "scope-add",
            "hierarchy-import",
            "alert-kind",
            "report",
            "fleet",
            "rollup-check",
            "purge",
            "web",
        ],
    )
    p.add_argument("name", nargs="?", help="user (manager-add, scope-add), CSV, reason code")
    p.add_argument("venue", nargs="?", help="manager-add: venue id; scope-add: level")
    p.add_argument("area", nargs="?", help="scope-add: area id")
    p.add_argument("--off", action="store_true", help="alert-kind: unmark the reason")
    p.add_argument("--client-id", default="sentinel-central", help="ingest: MQTT client id")
    p.add_argument(
        "--group",
        default="central",
        help="ingest: shared-subscription group ('' for a plain subscription)",
    )
    p.add_argument("--username", default="", help="ingest: broker user")
    p.add_argument("--password-file", default=None, help="ingest: broker password file")
    p.add_argument("--batch-max", type=int, default=5000, help="ingest: events per commit")
    p.add_argument(
        "--batch-wait-ms",
        type=float,
        default=50,
        help="ingest: the longest a message waits for others to join its commit",
    )
    p.add_argument(
        "--compact-every-s",
        type=float,
        default=1.0,
        help="ingest: how often the roll-up deltas are folded into the roll-ups",
    )
    p.add_argument(
        "--lag-stats",
        action="store_true",
        help="ingest: on exit, print per-event lag histograms (journal -> ingester -> commit)",
    )
    p.add_argument("--dsn", default="dbname=sentinel", help="PostgreSQL connection string")
    p.add_argument("--broker", default="127.0.0.1:1883", help="MQTT broker HOST:PORT")
    p.add_argument("--manager", default="", help="report: the manager whose venues to show")
    p.add_argument("--days", type=int, default=7)
    p.add_argument("--retention-days", type=int, default=14)
    p.add_argument("--users", default="users.db", help="web: users file (sentinel user add)")
    p.add_argument("--host", default="127.0.0.1", help="web: listen address")
    p.add_argument("--port", type=int, default=8090, help="web: port")
    p.set_defaults(func=_cmd)

    p = add_command(
        sub,
        "fleet",
        "this device's fleet export state",
        "sentinel fleet status --config sentinel.toml",
    )
    p.add_argument("action", choices=["status"])
    add_config_arg(p)
    p.set_defaults(func=_cmd_fleet_status)
