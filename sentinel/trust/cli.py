"""Trust subcommands of the device: ``sync`` and ``status`` (``publish`` is the authority's:
``sentinel/authority/cli.py``)."""

from __future__ import annotations

import argparse
import json
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
    from sentinel.trust.applied import StoreTrust
    from sentinel.trust.store import BundleStore

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
            fresh_at=store.meta("fresh_at"),  # newest signed time verified (D2)
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
    if r.get("fresh_at"):
        print(f"data as of       {r['fresh_at']} (signed by the publisher)")
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
