"""``sentinel records ...``: the venue's sealed check-in records (``export``).

``records keygen`` and ``records open`` are the authority's (``sentinel/authority/cli.py``).
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path


def _cmd_records_export(args: argparse.Namespace) -> int:
    from sentinel import config
    from sentinel.credentials import records
    from sentinel.journal.audit import open_audit

    cfg = config.load(args.config)
    now = datetime.now(UTC)
    summary = records.export_records(
        Path(cfg.data_dir) / records.RECORDS_FILE,
        args.out,
        now=now,
        retention_days=cfg.retention.retention_days,
        venue=cfg.venue.id,
    )
    with open_audit(cfg.data_dir) as audit:
        audit.append(
            "export",
            {
                "scope": "checkin_records",
                "records": summary.records,
                "sha256": summary.sha256,
                "first_hour": summary.first_hour,
                "last_hour": summary.last_hour,
            },
            now=now,
        )
    print(f"{summary.records} sealed check-in records written to {args.out}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from sentinel.cli import add_command, add_config_arg

    p = add_command(
        sub,
        "records",
        "sealed health-code check-in records: keys, export, open",
        [
            "sentinel records keygen --private record.pem --keys-file healthcode_keys.json",
            "sentinel records export --config sentinel.toml --out handover.jsonl",
            "sentinel records open --key record.pem handover.jsonl",
        ],
    )
    rsub = p.add_subparsers(dest="records_command", metavar="ACTION", required=True)
    q = add_command(
        rsub,
        "export",
        "venue: write the sealed records to a handover file (audited)",
        "sentinel records export --config sentinel.toml --out handover.jsonl",
    )
    add_config_arg(q)
    q.add_argument("--out", metavar="FILE", required=True)
    q.set_defaults(func=_cmd_records_export)
