"""Card backs: how often the back of a resident identity card gets the "turn the card
over" hint, how often anything else does (fronts, other documents, empty scenes, QR
phones), and what it costs.

    nice -n 10 .venv/bin/python benchmarks/bench_cardback.py --per 10

Seed 17 by default: the thresholds in ``sentinel/scan/cardback.py`` were set on seed 16.
"Through the scanner" is what the kiosk sees: ``Scanner.read_id`` (the ID reader first;
the detector only when it read nothing but saw print).  OpenCV on one thread.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import corpus_scan as cs  # noqa: E402

from sentinel.scan import Scanner, synth  # noqa: E402
from sentinel.scan.cardback import CardBackDetector  # noqa: E402
from sentinel.scan.mrz import IdReader  # noqa: E402


def _ms(xs: list[float]) -> str:
    if not xs:
        return "-"
    return f"{1000 * float(np.median(xs)):.1f} / {1000 * float(np.percentile(xs, 95)):.1f}"


def _pct(v: list[bool]) -> str:
    return f"{100 * np.mean(v):.0f}% of {len(v)}" if v else "-"


class _Counting:
    def __init__(self, inner: CardBackDetector) -> None:
        self.inner, self.calls, self.seconds = inner, 0, 0.0

    def detect(self, g: np.ndarray) -> str | None:
        self.calls += 1
        t = time.perf_counter()
        try:
            return self.inner.detect(g)
        finally:
            self.seconds += time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--per", type=int, default=10, help="cards per category and side")
    p.add_argument("--seed", type=int, default=17)
    p.add_argument("--docs", type=int, default=2, help="other documents per ID category")
    args = p.parse_args(argv)
    cv2.setNumThreads(1)
    det = CardBackDetector()
    scanner = Scanner("zxing", None, id_reader=IdReader(fuse=False), id_every_frames=1)

    def through_scanner(g: np.ndarray) -> tuple[bool, bool]:
        """(hint given, number read) for one frame through Scanner.read_id."""
        scanner.hint, scanner._back_wait = None, 0  # each frame as the first of its card
        found = scanner.read_id(g)
        return scanner.hint is not None, bool(found)

    alone: dict[tuple[str, str], list[bool]] = defaultdict(list)
    scanned: dict[tuple[str, str], list[bool]] = defaultdict(list)
    times: dict[str, list[float]] = defaultdict(list)
    fronts_read: list[bool] = []
    for s in cs.cardback_corpus(args.per, seed=args.seed):
        g = cv2.cvtColor(s.frame, cv2.COLOR_BGR2GRAY)
        side = "back" if s.kind == "CARD_BACK" else "front"
        t = time.perf_counter()
        hit = det.detect(g) is not None
        times[side].append(time.perf_counter() - t)
        alone[(side, s.category)].append(hit)
        hint, read = through_scanner(g)
        scanned[(side, s.category)].append(hint)
        if side == "front":
            fronts_read.append(read)
    cats = list(cs.CARD_CATEGORIES)
    print(f"## Card backs (seed {args.seed}, {args.per} per category and side)\n")
    print("| | " + " | ".join(cats) + " | all |")
    print("| --- | " + " | ".join("---:" for _ in cats) + " | ---: |")
    for side, label in (("back", "backs: hint"), ("front", "fronts: hint (false)")):
        for src, name in ((alone, "detector alone"), (scanned, "through the scanner")):
            row = [f"{100 * np.mean(src[(side, c)]):.0f}%" for c in cats]
            every = [x for c in cats for x in src[(side, c)]]
            print(f"| {label}, {name} | " + " | ".join(row) + f" | {100 * np.mean(every):.0f}% |")
    print(f"\nfronts whose number the scanner read: {_pct(fronts_read)}")

    other: dict[str, list[bool]] = defaultdict(list)
    for s in cs.id_corpus(args.docs, seed=args.seed):
        g = cv2.cvtColor(s.frame, cv2.COLOR_BGR2GRAY)
        t = time.perf_counter()
        other["ID documents (MRZ, CN front), detector alone"].append(det.detect(g) is not None)
        times["other document"].append(time.perf_counter() - t)
        other["ID documents (MRZ, CN front), through the scanner"].append(through_scanner(g)[0])
    rng = np.random.default_rng(args.seed)
    texts = ["HC1:EXAMPLE-" + str(i) * 40 for i in range(10)]
    for s in cs.qr_corpus(texts, 2, (1280, 720), seed=args.seed):
        other["QR phones and prints, detector alone"].append(det.detect(s.frame) is not None)
    for i in range(40):
        scene = cs.photo_background(1280, 720, rng).astype(np.uint8)
        t = time.perf_counter()
        other["cluttered scenes without a card, detector alone"].append(
            det.detect(scene) is not None
        )
        times["cluttered scene"].append(time.perf_counter() - t)
        blank = cv2.cvtColor(synth.blank_frame(640, 480, i), cv2.COLOR_BGR2GRAY)
        other["empty walls 640×480, detector alone"].append(det.detect(blank) is not None)
    print("\n| other frames | called a back |\n| --- | ---: |")
    for k, v in other.items():
        print(f"| {k} | {_pct(v)} |")

    print("\n| detector time, ms (median / p95) | |\n| --- | ---: |")
    for k, v in times.items():
        print(f"| {k} | {_ms(v)} |")

    # fronts sliding into view (the sequences of bench_scan.py): every frame through
    # Scanner.read_id, as the camera loop runs it; how often the detector ran, its cost
    print("\n| card front sliding in (24 frames, 30 fps) | detector runs | its ms in all |")
    print("| --- | ---: | ---: |")
    rng = np.random.default_rng(args.seed)
    for kind in ("TD1", "TD3", "CN"):
        sc = Scanner("zxing", None, id_reader=IdReader(), id_every_frames=1)
        timing = _Counting(sc.back_detector)
        sc.back_detector = timing
        _, frames, _ = cs.sequence(kind, rng, seed=args.seed)
        for f in frames:
            sc.read_id(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY))
        print(f"| {kind} | {timing.calls} | {1000 * timing.seconds:.0f} |")

    # the empty-frame budget: a moving empty 640×480 scene through Scanner.scan with the
    # ID reader, with and without the detector (its calls counted)
    frames = [synth.blank_frame(640, 480, seed=s) for s in range(40)]
    moving = [cv2.convertScaleAbs(f, alpha=1.0, beta=(i % 2) * 40) for i, f in enumerate(frames)]
    print(
        "\n| empty moving 640×480, Scanner.scan with the ID reader | ms median | detector calls |"
    )
    print("| --- | ---: | ---: |")
    for with_det in (False, True):
        sc = Scanner("zxing", None, id_reader=IdReader(), id_every_frames=2)
        counter = _Counting(sc.back_detector) if with_det else None
        sc.back_detector = counter
        ts = []
        for f in moving:
            t = time.perf_counter()
            sc.scan(f)
            ts.append(time.perf_counter() - t)
        label = "with the card-back detector" if with_det else "without it"
        calls = counter.calls if counter is not None else 0
        print(f"| {label} | {1000 * float(np.median(ts)):.2f} | {calls} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
