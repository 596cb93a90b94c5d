"""``sentinel check`` (the whole chain, step by step) and ``sentinel conformance``."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any


def _inputs(items: list[str]) -> tuple[list[tuple[str, str | None]], list[str]]:
    """(label, QR text or None when an image held no code) per input, and error lines."""
    from sentinel.credentials.folders import classify
    from sentinel.scan import Scanner
    from sentinel.scan.images import ImageRefused, load_image

    scanner: Scanner | None = None
    out: list[tuple[str, str | None]] = []
    errors: list[str] = []
    for item in items:
        arg = classify(item)
        for note in arg.notes:
            print(f"sentinel: {arg.label[:200]}: {note}", file=sys.stderr)
        if arg.error:
            errors.append(f"sentinel: {arg.label[:200]}: {arg.error}")
            continue
        if arg.text is not None:
            out.append((arg.label, arg.text))
            continue
        scanner = scanner or Scanner("zxing", "pyzbar")
        for q in arg.paths:
            try:  # bounded: regular files, header size checked before decoding (D9)
                img = load_image(q, grayscale=True)
            except ImageRefused:
                img = None
            syms = scanner.decode(img) if img is not None else []
            out.append((str(q), syms[0].text if syms else None))
    return out, errors


def product_name(c: Any) -> str:
    """What the certificate is for, by name from the EU value sets (a venue shows it)."""
    from sentinel.credentials.valuesets import default_valuesets

    vs = default_valuesets()
    if c.vaccination is not None:
        return vs.display("vaccines-covid-19-names", c.vaccination.product)
    if c.test is not None:
        return vs.display("covid-19-lab-test-type", c.test.test_type)
    if c.recovery is not None:
        return "recovery: " + vs.display("disease-agent-targeted", c.recovery.disease)
    return ""


def _check_one(label: str, text: str | None, trust: Any, now: datetime, args: Any) -> dict:
    from sentinel import config as cfgmod
    from sentinel.credentials import dcc
    from sentinel.credentials.rules import rule_set_from_part
    from sentinel.policy import Decision, TrustState, decide
    from sentinel.reasons import ReasonCode

    cfg = cfgmod.load(args.config)
    result: dict[str, Any] = {"input": label, "steps": []}
    if text is None:
        result["steps"].append({"step": "picture", "ok": False, "reason": "UNREADABLE"})
        d = Decision.of(ReasonCode.UNREADABLE)
    else:
        report = dcc.verify_steps(text, trust, now, skew=timedelta(seconds=cfg.policy.clock_skew_s))
        for s in report.steps:
            step = {"step": s.name, "ok": s.ok}
            if not s.ok:
                step |= {"reason": s.reason.value if s.reason else "", "detail": s.detail}
            result["steps"].append(step)
        if report.credential is None:
            assert report.error is not None
            d = Decision.of(report.error.reason)
        else:
            c = report.credential
            result["credential"] = {
                "kind": c.kind.value,
                "display_name": c.display_name,
                "issuer_country": c.issuer_country,
                "issuer_kid": c.issuer_kid,
                "expires_at": c.expires_at.isoformat() if c.expires_at else None,
                "product": product_name(c),
            }
            d = decide(c, cfg.policy, TrustState(), now, rule_set=rule_set_from_part(None))
    result["decision"] = {
        "admit": d.admit,
        "reason": d.reason.value,
        "message_en": d.message_en,
        "message_zh": d.message_zh,
    }
    return result


def _cmd_check(args: argparse.Namespace) -> int:
    from sentinel.credentials.trustlist import TrustList

    now = datetime.fromisoformat(args.at) if args.at else datetime.now(UTC)
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    trust = TrustList.load(args.trust) if args.trust else TrustList()
    admitted = 0
    inputs, errors = _inputs(args.inputs)
    for line in errors:
        print(line, file=sys.stderr)
    for label, text in inputs:
        r = _check_one(label, text, trust, now, args)
        admitted += r["decision"]["admit"]
        if args.json:
            print(json.dumps(r, ensure_ascii=False))
            continue
        print(f"== {label[:60]}")
        for s in r["steps"]:
            mark = "ok  " if s["ok"] else "FAIL"
            why = f"  {s.get('reason', '')}: {s.get('detail', '')}" if not s["ok"] else ""
            print(f"  {mark} {s['step']}{why}")
        if "credential" in r:
            c = r["credential"]
            print(f"  credential: {c['kind']}  {c['display_name']}  ({c['issuer_country']})")
            print(f"  product: {c['product']}")
        d = r["decision"]
        verdict = "ADMIT " if d["admit"] else "REFUSE"
        print(f"  decision: {verdict} {d['reason']}  {d['message_en']} / {d['message_zh']}")
    return 2 if errors else 0


def _cmd_conformance(args: argparse.Namespace) -> int:
    from sentinel.credentials import conformance as conf

    if args.suite == "dgc":
        directory = Path(args.dir) if args.dir else conf.repo_default("dgc")
        if not directory.is_dir():
            print(f"sentinel: no test data directory {directory}", file=sys.stderr)
            return 2
        results = conf.run_dgc(directory, picture=not args.no_picture)
        if not results:
            print(f"sentinel: no test cases (*.json with EXPECTEDRESULTS) below {directory}",
                  file=sys.stderr)  # fmt: skip
            return 2
        t = conf.tally(results)
        print(f"{'flag':<28}{'agree':>7}{'disagree':>10}{'no data':>9}")
        for f in conf.FLAGS:
            if t.agree[f] or t.disagree[f] or t.no_data[f]:
                total = t.agree[f] + t.disagree[f]
                pct = f"{100 * t.agree[f] / total:6.1f}%" if total else "    -"
                print(f"{f:<28}{t.agree[f]:>7}{t.disagree[f]:>10}{t.no_data[f]:>9}  {pct}")
        failed = [r for r in results if not r.passed]
        if args.verbose_cases:
            for r in failed:
                bad = [
                    f"{f.flag}={f.actual} (expected {f.expected})" for f in r.flags if not f.agrees
                ]
                print(f"  {r.name}: {r.error or ', '.join(bad)}")
        ok = len(results) - len(failed)
        pct = 100 * ok / len(results)
        print(f"per case: {ok} of {len(results)} agree on every flag ({pct:.1f} %)")
        print(f"{ok} passed, {len(failed)} failed")
        return 0 if not failed else 1
    directory = Path(args.dir) if args.dir else conf.repo_default("certlogic")
    if not directory.is_dir():
        print(f"sentinel: no test data directory {directory}", file=sys.stderr)
        return 2
    assertions = conf.run_certlogic(directory)
    bad = [a for a in assertions if not a.passed]
    for a in bad:
        print(f"  FAIL {a.suite} / {a.case} #{a.index}: {a.detail}")
    print(f"{len(assertions) - len(bad)} passed, {len(bad)} failed")
    return 0 if not bad else 1


def register(sub: argparse._SubParsersAction) -> None:
    from sentinel.cli import add_command, add_config_arg

    p = add_command(
        sub,
        "check",
        "run the whole DCC chain on QR text or images and print every step",
        [
            "sentinel check --trust trust.json --at 2022-05-01T12:00:00Z 'HC1:NCF...'",
            "sentinel check --json --trust trust.json ./photos/",
        ],
        (
            "Verify each INPUT (QR text, an image, or a directory of images) and print every step, "
            "the masked credential and the decision."
        ),
        heading="example:",
    )
    add_config_arg(p)
    p.add_argument("--json", action="store_true", help="one JSON object per input")
    p.add_argument("--at", metavar="ISO_TIME", help="validation time (default: now)")
    p.add_argument("--trust", metavar="FILE", help="trust list JSON (signer certificates)")
    p.add_argument("inputs", nargs="+", metavar="INPUT")
    p.set_defaults(func=_cmd_check)

    p = add_command(
        sub,
        "conformance",
        "run the published DCC test vectors or the CertLogic test suite",
        [
            "sentinel conformance dgc",
            "sentinel conformance certlogic ../shared/testdata/certlogic",
        ],
        (
            "Run a published test suite through the project's own code; the last line is 'N "
            "passed, N failed'."
        ),
        heading="example:",
    )
    p.add_argument("suite", choices=["dgc", "certlogic"])
    p.add_argument("dir", nargs="?", help="test-data directory (default ../shared/testdata/…)")
    p.add_argument("--dir", dest="dir_opt", metavar="DIR", help=argparse.SUPPRESS)
    p.add_argument("--no-picture", action="store_true", help="skip decoding the PNGs")
    p.add_argument("--cases", dest="verbose_cases", action="store_true", help="list failures")
    p.set_defaults(func=lambda a: _cmd_conformance(_with_dir(a)))


def _with_dir(args: argparse.Namespace) -> argparse.Namespace:
    if args.dir_opt and not args.dir:
        args.dir = args.dir_opt
    return args
