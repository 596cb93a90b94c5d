"""The authority's subcommands: ``publish`` (signed bundles), ``issue-code`` (health codes),
``records keygen`` and ``records open`` (the record key; ``records export`` is the venue's).

The device never imports this module or its package: ``sentinel/cli.py`` skips it when the
package is not installed.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

_RAW = argparse.RawDescriptionHelpFormatter


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


# ---- publish ---------------------------------------------------------------------


def _cmd_keygen(args: argparse.Namespace) -> int:
    from sentinel.authority.publish import generate_root_key, write_root_key
    from sentinel.trust import bundle as bm

    out = Path(args.out)
    priv, pub = out / "root_key.pem", out / "root_pub.pem"
    if priv.exists() and not args.force:
        print(f"sentinel: {priv} exists (use --force to replace it)", file=sys.stderr)
        return 1
    key = generate_root_key(args.alg)
    write_root_key(key, priv, pub)
    print(f"root key     {priv} (keep it offline, mode 0600)")
    print(f"public key   {pub} (pin it on devices as trust.root_key)")
    print(f"fingerprint  {bm.key_id(key)} (SHA-256 of the public key's DER SPKI)")
    return 0


def _cmd_build(args: argparse.Namespace) -> int:
    from sentinel.authority.inputs import load_revocations
    from sentinel.authority.publish import Inputs, load_devices, load_private_key, publish
    from sentinel.errors import ConfigError
    from sentinel.trust import bundle as bm
    from sentinel.trust import statusset as ss

    keys = [load_private_key(k) for k in args.key]
    extra: dict[str, bytes] = {}
    for spec in args.part or []:
        name, sep, file = spec.partition("=")
        if not sep:
            raise ConfigError(f"--part {spec!r}: expected NAME=FILE")
        try:
            extra[name] = Path(file).read_bytes()
        except OSError as exc:
            raise ConfigError(f"{file}: cannot read part {name}: {exc.strerror}") from None
    rules = None
    if args.rules:
        try:
            rules = Path(args.rules).read_bytes()
        except OSError as exc:
            raise ConfigError(f"{args.rules}: cannot read rules: {exc.strerror}") from None
    next_key = None
    if args.next_root_key:
        next_key = bm.load_public_key(Path(args.next_root_key).read_bytes(), args.next_root_key)
    signers = None
    if args.signers:  # DGCG trust lists, PEM/DER files and folders, each certificate checked
        from sentinel.authority.trustimport import import_signers

        imported = import_signers(args.signers)
        for note in imported.notes:
            print(f"sentinel: signers: {note}", file=sys.stderr)
        signers = imported.trust_list()
    inputs = Inputs(
        signers=signers,
        revocations=load_revocations(args.revocations) if args.revocations else None,
        rules=rules,
        extra_parts=extra,
    )
    pub = publish(
        args.out,
        inputs,
        keys,
        version=args.version,
        expires_in=timedelta(days=args.expires_days),
        delta=not args.no_delta,
        delta_only=args.delta_only,
        rotate_status_key=args.rotate_status_key,
        next_root_key=next_key,
        status_csv=args.status,
        carry=not args.no_carry,
        devices=load_devices(args.devices) if args.devices else None,
        state_dir=args.state,
        kdf=ss.CHEAP_KDF if args.kdf == "aes-cbc-mac" else None,
        workers=max(1, args.workers),
    )
    m = pub.manifest
    print(f"published version {m.version} into {pub.out_dir} (expires {m.expires_at:%Y-%m-%d})")
    for name, ref in sorted(m.parts.items()):
        print(f"  {name:<16} {ref.size:>12,} B  {ref.sha256[:16]}")
    if m.status is not None:
        print(f"  status entries   {m.status.count:,} ({pub.new_tags:,} newly tagged)")
    if pub.delta_entries is not None:
        print(f"  delta from {m.delta_base}: {pub.delta_entries:,} changed entries")
    return 0


def _cmd_timestamp(args: argparse.Namespace) -> int:
    from sentinel.authority.publish import load_private_key
    from sentinel.trust.timestamp import write_timestamp

    keys = [load_private_key(k) for k in args.key]
    dest = write_timestamp(args.out, keys, validity=timedelta(hours=args.valid_hours))
    print(f"signed {dest} (valid {args.valid_hours:g} h)")
    return 0


def _cmd_demo_publish(args: argparse.Namespace) -> int:
    from sentinel.authority.publish import publish_demo

    paths = publish_demo(args.out, device_data_dir=args.device_data_dir)
    out = Path(args.out).resolve()
    print(f"demo authority in {out}")
    for k, v in paths.items():
        print(f"  {k:<12} {Path(v).resolve()}")
    print("pin and sync on a device:")
    print(f'  [trust]\n  root_key = "{paths["root_pub"].resolve()}"')
    print(f"  sentinel sync --config sentinel.toml --from {paths['site'].resolve()}")
    return 0


# ---- health codes and record keys ---------------------------------------------


def _cmd_issue_code(args: argparse.Namespace) -> int:
    from sentinel import config
    from sentinel.authority import healthcode_issue as hc
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
    from sentinel.authority import records

    key = records.generate_record_key()
    _write_private(Path(args.private), records.private_key_pem(key))
    _update_keys_file(Path(args.keys_file), record_key=key.public_key())
    print(
        f"record key {records.record_kid(key.public_key())}: private half in {args.private} "
        f"(keep it at the authority), public half added to {args.keys_file}"
    )
    return 0


def _cmd_records_open(args: argparse.Namespace) -> int:
    import json

    from sentinel.authority import records
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
    from sentinel.cli import add_command, add_config_arg, subcommands

    p = sub.add_parser(
        "publish",
        help="authority side: build signed bundles (keygen, build, demo)",
        description="Build signed credential-set bundles into a directory any static web "
        "server or CDN can serve.\n\nexamples:\n"
        "  sentinel publish keygen --out authority/\n"
        "  sentinel publish build --key authority/root_key.pem --out site/ \\\n"
        "      --status status.csv --devices devices.json --signers trust.json "
        "--revocations revoked.txt "
        "--rules rules.json\n"
        "  sentinel publish demo --out demo-authority/",
        formatter_class=_RAW,
    )
    psub = p.add_subparsers(dest="publish_command", metavar="ACTION", required=True)

    k = psub.add_parser(
        "keygen",
        help="create an authority root key pair",
        description="example:\n  sentinel publish keygen --out authority/",
        formatter_class=_RAW,
    )
    k.add_argument("--out", required=True, metavar="DIR")
    k.add_argument("--alg", choices=["ed25519", "p256"], default="ed25519")
    k.add_argument("--force", action="store_true", help="replace an existing key")
    k.set_defaults(func=_cmd_keygen)

    b = psub.add_parser(
        "build",
        help="publish the next bundle version (full, plus a delta from the previous)",
        description="Publish the next version into --out (manifest.json, parts/<sha256>).\n\n"
        "status CSV columns: doc_type,country,number,status,valid_until[,subject_id]\n"
        "revocations: one UCI:<hex> / COUNTRYCODEUCI:<hex> / SIGNATURE:<hex> per line\n\n"
        "example:\n  sentinel publish build --key authority/root_key.pem --out site/ "
        "--status status.csv --signers dsc.pem --part healthcode_keys=hc.json",
        formatter_class=_RAW,
    )
    b.add_argument("--key", action="append", required=True, metavar="PEM", help="root key(s)")
    b.add_argument("--out", required=True, metavar="DIR", help="publisher directory")
    b.add_argument(
        "--status", metavar="FILE", help="status records: CSV, or Parquet / Arrow IPC (pyarrow)"
    )
    b.add_argument(
        "--signers",
        action="append",
        metavar="SRC",
        help="signer certificates: DGCG trust-list JSON, Sentinel trust list, PEM/DER, or a folder",
    )
    b.add_argument("--revocations", metavar="FILE")
    b.add_argument("--rules", metavar="JSON")
    b.add_argument("--part", action="append", metavar="NAME=FILE", help="extra named part")
    b.add_argument("--version", type=int, help="default: previous + 1")
    b.add_argument("--expires-days", type=float, default=7.0)
    b.add_argument("--no-delta", action="store_true", help="publish no status delta")
    b.add_argument(
        "--no-carry", action="store_true", help="drop parts not given (default: keep them)"
    )
    b.add_argument("--delta-only", action="store_true", help="leave out the full status part")
    b.add_argument("--rotate-status-key", action="store_true", help="new status key (no delta)")
    b.add_argument(
        "--devices", metavar="JSON", help="enrolled devices (the registry of enroll --register)"
    )
    b.add_argument(
        "--state", metavar="DIR", help="private state: status key, tag cache (<out>.authority)"
    )
    b.add_argument(
        "--kdf",
        choices=["argon2id", "aes-cbc-mac"],
        default="argon2id",
        help="lookup tags: memory-hard (default) or cheap (tests, benchmarks only)",
    )
    b.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="processes that parse and tag CSV blocks and derive new Argon2id tags",
    )
    b.add_argument("--next-root-key", metavar="PEM", help="announce the next root public key")
    b.set_defaults(func=_cmd_build)

    t = psub.add_parser(
        "timestamp",
        help="re-sign timestamp.json for the live manifest (run every few hours)",
        description="Devices measure data age from this signed timestamp (TUF's timestamp "
        "role), never from an HTTP reply; run it from a timer, e.g. hourly.\n\n"
        "example:\n  sentinel publish timestamp --key authority/root_key.pem --out site/",
        formatter_class=_RAW,
    )
    t.add_argument("--key", action="append", required=True, metavar="PEM", help="root key(s)")
    t.add_argument("--out", required=True, metavar="DIR", help="publisher directory")
    t.add_argument("--valid-hours", type=float, default=24.0)
    t.set_defaults(func=_cmd_timestamp)

    d = psub.add_parser(
        "demo",
        help="write a demo authority (root key, signer, status entries) and its bundle",
        description="example:\n  sentinel publish demo --out demo-authority/",
        formatter_class=_RAW,
    )
    d.add_argument("--out", required=True, metavar="DIR")
    d.add_argument("--device-data-dir", metavar="DIR", help="seal the status key to this device")
    d.set_defaults(func=_cmd_demo_publish)

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

    rsub = subcommands(sub, "records")
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
        "open",
        "authority: open a handover file with the record key",
        "sentinel records open --key record.pem handover.jsonl",
    )
    q.add_argument("--key", metavar="FILE", required=True)
    q.add_argument("file", metavar="HANDOVER")
    q.set_defaults(func=_cmd_records_open)
