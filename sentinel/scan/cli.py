"""``sentinel scan PATH...``: decode images, image directories or videos; one JSON line
per image (or per video frame) with the symbols found and any ID document, its number
masked unless ``--show-number``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

EXAMPLE = """example:
  sentinel scan frames/ door-test.mp4 passport.jpg
  sentinel scan --backend pyzbar --no-fallback code.png
"""


def register(sub: argparse._SubParsersAction) -> None:
    from sentinel.cli import add_config_arg

    p = sub.add_parser(
        "scan",
        help="decode codes and ID documents in images or videos (JSON lines)",
        description=__doc__,
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="image, directory of images, video")
    add_config_arg(p)
    p.add_argument("--backend", choices=("zxing", "pyzbar", "opencv"), default=None)
    p.add_argument("--fallback", choices=("zxing", "pyzbar", "opencv"), default=None)
    p.add_argument("--no-fallback", action="store_true", help="primary back-end only")
    p.add_argument("--no-ids", action="store_true", help="do not look for ID documents")
    p.add_argument(
        "--show-number",
        action="store_true",
        help="print ID document numbers and MRZ text in full (installers' tests only)",
    )
    p.set_defaults(func=run)


def _frames(path: Path) -> Iterator[tuple[str, int | None, Any]]:
    """(file, frame index or None, frame or the HardwareError that file gave): one
    unreadable image in a folder is reported and the rest are still read."""
    from sentinel.errors import HardwareError
    from sentinel.scan.images import load_image
    from sentinel.scan.sources import IMAGE_SUFFIXES, CaptureSource, ImageSource

    if path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES:
        for p in ImageSource.from_path(path).paths:
            try:
                yield str(p), None, load_image(p)
            except HardwareError as exc:
                yield str(p), None, exc
        return
    with CaptureSource(str(path)) as cap:
        for i, frame in enumerate(cap.frames()):
            yield str(path), i, frame


def _symbol_json(sym: Any, show: bool) -> dict[str, Any]:
    from sentinel.credentials import iddoc

    out: dict[str, Any] = {"kind": sym.kind}
    if iddoc.looks_like_id(sym.kind, sym.text) and not show:
        out["text"] = None  # an ID document's text holds its number: masked below
    else:
        out["text"] = sym.text
    return out


def _document_json(sym: Any, show: bool) -> dict[str, Any] | None:
    from sentinel.credentials import iddoc
    from sentinel.errors import CredentialError

    if not iddoc.looks_like_id(sym.kind, sym.text):
        return None
    try:
        doc = iddoc.parse_symbol_text(sym.kind, sym.text)
    except CredentialError as exc:
        return {"error": exc.reason.value}
    return {
        "type": doc.doc_type,
        "issuing_country": doc.issuing_country,
        "number": doc.number if show else doc.masked_number,
        "expiry": doc.expiry.isoformat() if doc.expiry else None,
        "format": doc.source,
    }


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from sentinel.config import load
    from sentinel.errors import HardwareError
    from sentinel.scan.decoders import Scanner

    cfg = load(args.config).scan
    if args.backend:
        cfg = replace(cfg, backend=args.backend)
    if args.fallback:
        cfg = replace(cfg, fallback=args.fallback)
    if args.no_fallback:
        cfg = replace(cfg, fallback=None)
    if args.no_ids:
        cfg = replace(cfg, id_documents=False)
    scanner = Scanner.from_config(cfg)
    failures = 0
    for raw in args.paths:
        path = Path(raw)
        if not path.exists():
            print(json.dumps({"file": raw, "error": "not found"}))
            failures += 1
            continue
        try:
            for name, index, frame in _frames(path):
                if isinstance(frame, HardwareError):
                    print(json.dumps({"file": name, "error": str(frame)}, ensure_ascii=False))
                    failures += 1
                    continue
                votes = getattr(scanner.id_reader, "votes", None)
                if index is None and votes is not None:
                    votes.reset()  # separate images: no fusion across them
                if index is None:
                    scanner._back_wait = 0  # each image is looked at for a card back
                scanner.hint = None
                t = time.perf_counter()
                symbols = scanner.decode(frame)
                if not symbols and scanner.id_reader is not None:
                    symbols = scanner.read_id(frame)
                elapsed = (time.perf_counter() - t) * 1000
                line: dict[str, Any] = {"file": name}
                if index is not None:
                    line["frame"] = index
                line["symbols"] = [_symbol_json(s, args.show_number) for s in symbols]
                docs = [d for d in (_document_json(s, args.show_number) for s in symbols) if d]
                if docs:
                    line["id_document"] = docs[0]
                if scanner.hint:  # "card_back": a resident ID card shown back side up
                    line["hint"] = scanner.hint
                line["ms"] = round(elapsed, 1)
                print(json.dumps(line, ensure_ascii=False))
        except HardwareError as exc:
            print(json.dumps({"file": raw, "error": str(exc)}))
            failures += 1
    sys.stdout.flush()
    return 1 if failures else 0
