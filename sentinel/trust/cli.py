"""Trust subcommands: ``publish`` (authority side), ``sync`` and ``status`` (device side)."""

from __future__ import annotations

import argparse
import json
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

_RAW = argparse.RawDescriptionHelpFormatter


def _age(delta: timedelta) -> str:
    s = int(delta.total_seconds())
    sign = "-" if s < 0 else ""
    s = abs(s)
    d, rem = divmod(s, 86400)
    h, rem = divmod(rem, 3600)
    m = rem // 60
    return f"{sign}{d}d {h}h {m}m" if d else f"{sign}{h}h {m}m"


# ---- publish ---------------------------------------------------------------------


def _cmd_keygen(args: argparse.Namespace) -> int:
    from sentinel.trust import bundle as bm
    from sentinel.trust.publish import generate_root_key, write_root_key

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
    from sentinel.errors import ConfigError
    from sentinel.trust import bundle as bm
    from sentinel.trust.publish import (
        Inputs,
        load_private_key,
        load_revocations,
        load_signers,
        publish,
        read_status_csv,
    )

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
    inputs = Inputs(
        signers=load_signers(args.signers) if args.signers else None,
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
        status_rows=read_status_csv(args.status) if args.status else None,
        carry=not args.no_carry,
    )
    m = pub.manifest
    print(f"published version {m.version} into {pub.out_dir} (expires {m.expires_at:%Y-%m-%d})")
    for name, ref in sorted(m.parts.items()):
        print(f"  {name:<16} {ref.size:>12,} B  {ref.sha256[:16]}")
    if m.status is not None:
        print(f"  status entries   {m.status.count:,}")
    if pub.delta_entries is not None:
        print(f"  delta from {m.delta_base}: {pub.delta_entries:,} changed entries")
    return 0


def _cmd_demo_publish(args: argparse.Namespace) -> int:
    from sentinel.trust.publish import publish_demo

    paths = publish_demo(args.out)
    out = Path(args.out).resolve()
    print(f"demo authority in {out}")
    for k, v in paths.items():
        print(f"  {k:<12} {Path(v).resolve()}")
    print("pin and sync on a device:")
    print(f'  [trust]\n  root_key = "{paths["root_pub"].resolve()}"')
    print(f"  sentinel sync --config sentinel.toml --from {paths['site'].resolve()}")
    return 0


# ---- sync / status ---------------------------------------------------------------


def _cmd_sync(args: argparse.Namespace) -> int:
    from sentinel import config
    from sentinel.errors import ConfigError
    from sentinel.trust.service import pinned_root_key
    from sentinel.trust.store import BundleStore
    from sentinel.trust.sync import DirSource, HttpSource, Syncer, retrying

    cfg = config.load(args.config)
    root = pinned_root_key(cfg.trust, args.root_key)
    source: DirSource | HttpSource
    if args.source_dir:
        source = DirSource(args.source_dir)
    elif args.url or cfg.trust.publisher_url:
        source = HttpSource(args.url or cfg.trust.publisher_url, timeout_s=cfg.trust.sync_timeout_s)
    else:
        raise ConfigError("nothing to sync from: set trust.publisher_url or use --from DIR")
    stop = threading.Event()
    with BundleStore(cfg.data_dir) as store:
        try:
            syncer = Syncer(store, source, root_key=root)
            result = retrying(
                syncer.sync,
                attempts=max(1, args.retries + 1),
                base_s=args.retry_wait_s,
                max_s=max(args.retry_wait_s, 60.0),
                wait=stop.wait,
            )
        finally:
            source.close()
    if result.outcome == "applied":
        how = "delta" if result.delta else "full"
        print(
            f"applied bundle version {result.version} ({how}, "
            f"{result.downloaded_bytes:,} bytes from {source.description})"
        )
    else:
        print(f"up to date: bundle version {result.version} ({result.outcome.replace('_', ' ')})")
    return 0


def status_report(cfg: Any, now: datetime) -> dict[str, Any]:
    """What ``sentinel status`` prints, as a dict (also used by tests and other areas)."""
    from sentinel.trust.store import BundleStore, StoreTrust

    out: dict[str, Any] = {"data_dir": str(cfg.data_dir), "version": None}
    if not BundleStore.exists(cfg.data_dir):
        out["trust_file"] = cfg.trust.trust_file
        out["last_error"] = None
        if (Path(cfg.data_dir) / "trust" / "store.db").exists():
            with BundleStore(cfg.data_dir) as store:
                out["last_error"] = store.meta("last_error")
        return out
    with StoreTrust(cfg.data_dir, cfg.trust) as trust:
        store = trust.store
        applied = store.current()
        assert applied is not None
        m = applied.manifest
        st = trust.state()
        lgs = store.meta("last_good_sync")
        nxt = store.meta("next_sync")
        if nxt is None and cfg.trust.publisher_url and lgs:
            nxt = (
                datetime.fromisoformat(lgs) + timedelta(seconds=cfg.trust.sync_interval_s)
            ).isoformat()
        rev = trust.part("revocations")
        status = trust.status()
        stale = st.updated_at is not None and now - st.updated_at > st.max_age
        out.update(
            version=m.version,
            issued_at=m.issued_at.isoformat(),
            expires_at=m.expires_at.isoformat(),
            age=_age(now - m.issued_at),
            applied_at=applied.applied_at.isoformat(),
            last_good_sync=lgs,
            stale=stale,
            stale_action=st.stale_action,
            max_age_hours=cfg.trust.max_data_age_hours,
            signers=len(trust.trust_list()),
            revocations=len(json.loads(rev)["keys"]) if rev else 0,
            status_entries=len(status) if status is not None else 0,  # type: ignore[arg-type]
            parts={n: r.sha256 for n, r in sorted(m.parts.items())},
            next_sync=nxt if cfg.trust.publisher_url else None,
            publisher_url=cfg.trust.publisher_url,
            last_error=store.meta("last_error"),
        )
    return out


def _cmd_status(args: argparse.Namespace) -> int:
    from sentinel import config

    cfg = config.load(args.config)
    now = datetime.now(UTC)
    r = status_report(cfg, now)
    if args.json:
        print(json.dumps(r, indent=1))
        return 0
    if r["version"] is None:
        print(f"no bundle applied in {r['data_dir']}")
        if r.get("trust_file"):
            print(f"serving the local trust list {r['trust_file']}")
        if r.get("last_error"):
            print(f"last refusal     {r['last_error']}")
        return 1
    state = "STALE" if r["stale"] else "fresh"
    print(f"bundle version   {r['version']}  (issued {r['issued_at']}, {r['age']} ago)")
    print(f"expires          {r['expires_at']}")
    print(f"last good sync   {r['last_good_sync']}")
    print(f"data             {state} (max age {r['max_age_hours']:g} h, then {r['stale_action']})")
    print(f"signers          {r['signers']:,}")
    print(f"revocations      {r['revocations']:,}")
    print(f"status entries   {r['status_entries']:,}")
    print(f"parts            {', '.join(r['parts'])}")
    if r["publisher_url"]:
        print(f"next sync        {r['next_sync'] or 'at service start'}  ({r['publisher_url']})")
    else:
        print("next sync        none scheduled (trust.publisher_url not set; sync --from DIR)")
    if r["last_error"]:
        print(f"last refusal     {r['last_error']}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from sentinel.cli import add_config_arg

    p = sub.add_parser(
        "publish",
        help="authority side: build signed bundles (keygen, build, demo)",
        description="Build signed credential-set bundles into a directory any static web "
        "server or CDN can serve.\n\nexamples:\n"
        "  sentinel publish keygen --out authority/\n"
        "  sentinel publish build --key authority/root_key.pem --out site/ \\\n"
        "      --status status.csv --signers trust.json --revocations revoked.txt "
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
    b.add_argument("--status", metavar="CSV", help="status records")
    b.add_argument("--signers", action="append", metavar="FILE", help="trust-list JSON/PEM/DER")
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
    b.add_argument("--rotate-status-key", action="store_true", help="new HMAC key (no delta)")
    b.add_argument("--next-root-key", metavar="PEM", help="announce the next root public key")
    b.set_defaults(func=_cmd_build)

    d = psub.add_parser(
        "demo",
        help="write a demo authority (root key, signer, status entries) and its bundle",
        description="example:\n  sentinel publish demo --out demo-authority/",
        formatter_class=_RAW,
    )
    d.add_argument("--out", required=True, metavar="DIR")
    d.set_defaults(func=_cmd_demo_publish)

    s = sub.add_parser(
        "sync",
        help="fetch, verify and apply the newest bundle (HTTP, or --from DIR)",
        description="Same checks for both sources: root-key signature, expiry, no rollback, "
        "part hashes, atomic apply.\n\nexamples:\n  sentinel sync --config sentinel.toml\n"
        "  sentinel sync --config sentinel.toml --from /media/usb/site",
        formatter_class=_RAW,
    )
    add_config_arg(s)
    s.add_argument("--from", dest="source_dir", metavar="DIR", help="a copied bundle directory")
    s.add_argument("--url", help="publisher URL (default: trust.publisher_url)")
    s.add_argument("--root-key", metavar="PEM", help="pinned root key (default: trust.root_key)")
    s.add_argument("--retries", type=int, default=2, help="retries on network errors")
    s.add_argument("--retry-wait-s", type=float, default=2.0, help="first retry delay")
    s.set_defaults(func=_cmd_sync)

    st = sub.add_parser(
        "status",
        help="bundle version, age, entry counts, next sync",
        description="example:\n  sentinel status --config sentinel.toml",
        formatter_class=_RAW,
    )
    add_config_arg(st)
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=_cmd_status)
