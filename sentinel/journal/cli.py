"""``sentinel purge``, ``sentinel audit verify`` and ``sentinel audit export``."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from sentinel.journal.audit import ChainReport


def _now(args: argparse.Namespace) -> datetime:
    from sentinel.errors import ConfigError

    if not getattr(args, "now", None):
        return datetime.now(UTC)
    try:
        t = datetime.fromisoformat(args.now)
    except ValueError:
        raise ConfigError(f"--now: not an ISO 8601 time: {args.now!r}") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _cmd_purge(args: argparse.Namespace) -> int:
    from sentinel import config
    from sentinel.journal.purge import run_purge

    cfg = config.load(args.config)
    ret = cfg.retention
    progress = (lambda s: print(f"  {s}", flush=True)) if args.progress else None
    r = run_purge(
        cfg.data_dir,
        retention_days=ret.retention_days,
        aggregate_days=ret.aggregate_days,
        now=_now(args),
        progress=progress,
    )
    days = ", ".join(d.isoformat() for d in r.days) or "none"
    print(
        f"purge: window starts {r.first_kept_day} ({ret.retention_days} days); purged days: {days}"
    )
    print(
        f"  keys destroyed {r.keys_destroyed}, personal rows {r.personal_rows}, "
        f"event rows {r.event_rows}, aggregate rows {r.count_rows}, "
        f"audit entries {r.audit_entries}, WAL truncated {'yes' if r.wal_truncated else 'NO'}, "
        f"vacuumed {'yes' if r.vacuumed else 'no'}"
    )
    return 0 if r.wal_truncated else 1


def _print_chain(report: ChainReport, source: str) -> None:
    print(
        f"audit chain ({source}): {report.entries} entries, whole; "
        f"signed by device key {report.key_fingerprint}"
    )


def _cmd_verify(args: argparse.Namespace) -> int:
    from sentinel.errors import AuditError
    from sentinel.journal.audit import load_export, load_public_key, verify_chain

    pinned = None
    if args.pubkey:
        try:
            pinned = load_public_key(Path(args.pubkey).read_bytes())
        except OSError as exc:
            print(f"audit verify: cannot read {args.pubkey}: {exc.strerror}", file=sys.stderr)
            return 2
    if args.file:
        try:
            exp = load_export(args.file)
            key = exp.public_key
            if pinned is not None and pinned.public_bytes_raw() != key.public_bytes_raw():
                raise AuditError("the export is signed by a different key than --pubkey", None)
            if exp.entries and exp.head is None:
                raise AuditError("the export has no signed head (entries may be cut off)")
            report = verify_chain(exp.entries, key, exp.head)
        except AuditError as exc:
            print(f"audit verify: FAILED: {exc}", file=sys.stderr)
            return 1
        _print_chain(report, args.file)
        return 0 if _print_last_retention(exp.entries) else 1
    return _verify_local(args, pinned)


def _print_last_retention(entries: list[dict[str, object]]) -> bool:
    """Print the retention statement of the newest export entry; False if it failed."""
    import json

    for e in reversed(entries):
        if e.get("kind") == "export":
            details = json.loads(str(e["details"]))
            ret = details.get("retention") if isinstance(details, dict) else None
            if isinstance(ret, dict):
                ok = ret.get("ok") is True
                print(
                    f"retention at export ({e['time']}): promise {'kept' if ok else 'NOT kept'}; "
                    f"window of {ret.get('retention_days')} days from "
                    f"{ret.get('first_kept_day')}; oldest day key {ret.get('oldest_key_day')}, "
                    f"oldest personal row {ret.get('oldest_personal_day')}",
                    file=sys.stdout if ok else sys.stderr,
                )
                return ok
            return True
    return True


def _verify_local(args: argparse.Namespace, pinned: Ed25519PublicKey | None) -> int:
    from sentinel import config
    from sentinel.errors import AuditError
    from sentinel.journal.purge import (
        audited_purges,
        chain_purge_ids,
        open_parts,
        retention_state,
    )

    cfg = config.load(args.config)
    journal, audit = open_parts(cfg.data_dir, cfg.retention.retention_days)
    failed = False
    with journal, audit:
        try:
            if pinned is not None and (
                pinned.public_bytes_raw() != audit.public_key.public_bytes_raw()
            ):
                raise AuditError("the device key is not the one given with --pubkey", None)
            entries = audit.entries()
            report = audit.verify()
            missing = sorted(set(audited_purges(journal)) - chain_purge_ids(entries))
            if missing:
                raise AuditError(
                    f"purge {missing[0]} is marked audited in the journal but has no entry "
                    "in the chain (entries were removed)",
                    None,
                )
            _print_chain(report, str(audit.db_path))
        except AuditError as exc:
            print(f"audit verify: FAILED: {exc}", file=sys.stderr)
            failed = True
        from sentinel.journal.pending import gaps

        for gap in gaps(journal, audit.entries(), cfg.data_dir):
            print(f"audit verify: FAILED: {gap}", file=sys.stderr)
            failed = True
        state = retention_state(journal, cfg.retention.retention_days, _now(args))
        if state.ok:
            print(
                f"retention: promise kept — window of {state.retention_days} days from "
                f"{state.first_kept_day}; oldest day key {state.oldest_key_day or 'none'}, "
                f"oldest personal row {state.oldest_personal_day or 'none'}"
            )
        else:
            failed = True
            for p in state.problems:
                print(f"retention: FAILED: {p}", file=sys.stderr)
    return 1 if failed else 0


def _cmd_export(args: argparse.Namespace) -> int:
    from sentinel import config
    from sentinel.journal.audit import fingerprint
    from sentinel.journal.purge import open_parts, retention_state

    cfg = config.load(args.config)
    journal, audit = open_parts(cfg.data_dir, cfg.retention.retention_days)
    with journal, audit:
        now = _now(args)
        state = retention_state(journal, cfg.retention.retention_days, now)
        # The export itself is an audited act, and its entry carries a signed statement
        # of the retention state for the auditor who verifies the file elsewhere.
        audit.append("export", {"what": "audit_chain", "retention": state.as_dict()}, now=now)
        n = audit.export(args.out, now=now)
        fp = fingerprint(audit.public_key)
    print(f"audit export: {n} entries and the device public key ({fp}) written to {args.out}")
    print(f"verify elsewhere with:  sentinel audit verify --file {args.out}")
    return 0


def _cmd_pubkey(args: argparse.Namespace) -> int:
    from sentinel import config
    from sentinel.journal.audit import fingerprint, open_audit, public_pem

    cfg = config.load(args.config)
    with open_audit(cfg.data_dir) as audit:
        print(public_pem(audit.public_key), end="")
        print(f"# {fingerprint(audit.public_key)}", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from sentinel.cli import add_command, add_config_arg

    p = add_command(
        sub,
        "purge",
        "purge personal data older than the retention window (idempotent)",
        "sentinel purge --config /etc/sentinel/sentinel.toml --progress",
        (
            "Destroy the day keys of days outside retention.retention_days, delete their rows, "
            "truncate the WAL and vacuum; append a signed audit entry per day. Safe to interrupt "
            "and re-run."
        ),
    )
    add_config_arg(p)
    p.add_argument("--progress", action="store_true", help="print each step as it completes")
    p.add_argument("--now", metavar="ISO", help="purge as if it were this time (testing)")
    p.set_defaults(func=_cmd_purge)

    p = add_command(
        sub,
        "audit",
        "verify or export the signed, hash-chained audit log",
        [
            "sentinel audit verify --config /etc/sentinel/sentinel.toml",
            "sentinel audit export --out audit.json",
            "sentinel audit verify --file audit.json --pubkey device.pub.pem",
        ],
    )
    asub = p.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    v = add_command(
        asub,
        "verify",
        "check the chain and the retention promise; name the first bad entry",
        [
            "sentinel audit verify",
            "sentinel audit verify --file audit.json",
        ],
        (
            "Check every entry's hash, link and signature, and (on the device) that no day key and "
            "no personal row is older than the retention window. Exit 0 when both hold."
        ),
    )
    add_config_arg(v)
    v.add_argument("--file", metavar="F", help="verify an export file instead of this device")
    v.add_argument("--pubkey", metavar="PEM", help="require this device public key")
    v.add_argument("--now", metavar="ISO", help="check retention as of this time (testing)")
    v.set_defaults(func=_cmd_verify)
    e = add_command(
        asub,
        "export",
        "write the chain and the device public key for an auditor",
        "sentinel audit export --out /media/usb/audit.json",
    )
    add_config_arg(e)
    e.add_argument("--out", metavar="F", required=True, help="the export file to write")
    e.add_argument("--now", metavar="ISO", help=argparse.SUPPRESS)
    e.set_defaults(func=_cmd_export)
    k = add_command(
        asub,
        "pubkey",
        "print the device public key (PEM) that signs the chain",
        "sentinel audit pubkey > device.pub.pem",
        "Record it at provisioning; auditors pin it with verify --pubkey.",
    )
    add_config_arg(k)
    k.set_defaults(func=_cmd_pubkey)
