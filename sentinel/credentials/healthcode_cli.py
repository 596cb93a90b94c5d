"""``sentinel issue-code`` (authority side, demo, tests) and ``sentinel records ...``."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _update_keys_file(path: Path, *, issuer: object = None, record_key: object = None) -> None:
    """Add an issuing key or a record key to the keys JSON (created when missing)."""
    from sentinel.credentials.healthcode_keys import HealthCodeKeys

    keys = HealthCodeKeys.load(path) if path.exists() else HealthCodeKeys()
    issuers = keys.issuers + ((issuer,) if issuer is not None else ())  # type: ignore[operator]
    records = ((record_key,) if record_key is not None else ()) + keys.record_keys
    _write_private(path, HealthCodeKeys(issuers, records).to_json_bytes())  # type: ignore[arg-type]


def _parse_time(value: str) -> datetime:
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO time: {value!r}") from None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _cmd_issue_code(args: argparse.Namespace) -> int:
    from sentinel import config
    from sentinel.credentials import healthcode_issue as hc
    from sentinel.errors import ConfigError

    cfg = config.load(args.config)
    if args.new_key:
        issuer = hc.Issuer.generate(args.alg)
        _write_private(Path(args.new_key), issuer.pem())
        if args.keys_out:
            _update_keys_file(Path(args.keys_out), issuer=issuer.trusted())
        print(f"issuing key {issuer.kid.hex()} ({args.alg}) written to {args.new_key}")
        return 0
    if not args.key or not args.subject:
        raise ConfigError("issue-code needs --key FILE and --subject ID (or --new-key FILE)")
    issuer = hc.Issuer.load_pem(args.key)
    start = args.at or datetime.now(UTC)
    lifetime = args.lifetime if args.lifetime is not None else cfg.healthcode.code_lifetime_s
    until = args.status_valid_until or start + timedelta(days=args.status_days)
    try:
        codes = hc.series(
            issuer,
            args.subject,
            args.status,
            start=start,
            count=args.count,
            every_s=args.every,
            lifetime_s=lifetime,
            status_valid_until=until,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if args.qr_dir:
        import cv2

        from sentinel.scan.synth import render_qr

        out = Path(args.qr_dir)
        out.mkdir(parents=True, exist_ok=True)
        for k, (_at, text) in enumerate(codes):
            cv2.imwrite(str(out / f"code-{k:03d}.png"), render_qr(text, module_px=8))
    for at, text in codes:
        if args.count > 1:
            # a tab: base45 texts contain spaces
            print(at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), text, sep="\t")
        else:
            print(text)
    return 0


def _cmd_records_keygen(args: argparse.Namespace) -> int:
    from sentinel.credentials import records

    key = records.generate_record_key()
    _write_private(Path(args.private), records.private_key_pem(key))
    _update_keys_file(Path(args.keys_file), record_key=key.public_key())
    print(
        f"record key {records.record_kid(key.public_key())}: private half in {args.private} "
        f"(keep it at the authority), public half added to {args.keys_file}"
    )
    return 0


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


def _cmd_records_open(args: argparse.Namespace) -> int:
    import json

    from sentinel.credentials import records
    from sentinel.errors import SentinelError

    key = records.load_private_key(args.key)
    try:
        opened = records.open_handover(args.file, key)
    except (OSError, ValueError) as exc:
        raise SentinelError(f"{args.file}: {exc}") from None
    for r in opened:
        row = {
            "subject": r.subject,
            "time": r.time.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "venue": r.venue,
            "gate": r.gate,
        }
        sys.stdout.write(json.dumps(row) + "\n")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from sentinel.cli import add_command, add_config_arg

    p = add_command(
        sub,
        "issue-code",
        "make signed health-code QR texts (authority side, demo, tests)",
        [
            "sentinel issue-code --new-key authority.pem --keys-out healthcode_keys.json",
            "sentinel issue-code --key authority.pem --subject K7Q2M9X4T1B8 --status green",
            (
                "sentinel issue-code --key authority.pem --subject K7Q2M9X4T1B8 --count 10 --every "
                "60 --qr-dir phone/"
            ),
        ],
        "Make short-lived signed health codes (HC:...).",
    )
    add_config_arg(p)
    p.add_argument("--new-key", metavar="FILE", help="generate an issuing key (PEM) and stop")
    p.add_argument("--alg", choices=("EdDSA", "ES256"), default="EdDSA", help="for --new-key")
    p.add_argument("--keys-out", metavar="FILE", help="add the new public key to this keys JSON")
    p.add_argument("--key", metavar="FILE", help="the authority's issuing key (PEM)")
    p.add_argument("--subject", metavar="ID", help="pseudonymous subject id (≤ 64 characters)")
    p.add_argument("--status", choices=("green", "yellow", "red"), default="green")
    p.add_argument("--status-days", type=float, default=1.0, help="status valid for N days")
    p.add_argument("--status-valid-until", type=_parse_time, metavar="TIME")
    p.add_argument("--at", type=_parse_time, metavar="TIME", help="issue time (default: now)")
    p.add_argument("--lifetime", type=float, metavar="S", help="code lifetime (config default)")
    p.add_argument("--count", type=int, default=1, help="a rotating series of N codes")
    p.add_argument("--every", type=float, default=60.0, metavar="S", help="series interval")
    p.add_argument("--qr-dir", metavar="DIR", help="also write code-NNN.png QR images here")
    p.set_defaults(func=_cmd_issue_code)

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
        "keygen",
        "authority: make the X25519 record key",
        "sentinel records keygen --private record.pem --keys-file healthcode_keys.json",
    )
    q.add_argument("--private", metavar="FILE", required=True)
    q.add_argument("--keys-file", metavar="FILE", required=True)
    q.set_defaults(func=_cmd_records_keygen)
    q = add_command(
        rsub,
        "export",
        "venue: write the sealed records to a handover file (audited)",
        "sentinel records export --config sentinel.toml --out handover.jsonl",
    )
    add_config_arg(q)
    q.add_argument("--out", metavar="FILE", required=True)
    q.set_defaults(func=_cmd_records_export)
    q = add_command(
        rsub,
        "open",
        "authority: open a handover file with the record key",
        "sentinel records open --key record.pem handover.jsonl",
    )
    q.add_argument("--key", metavar="FILE", required=True)
    q.add_argument("file", metavar="HANDOVER")
    q.set_defaults(func=_cmd_records_open)
