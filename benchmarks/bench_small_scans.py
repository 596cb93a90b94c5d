"""Small scans (issue #15): ID pages scanned 250-450 px wide, read as they are and at the
scale the reader uses for small frames (``sentinel.scan.mrz.SMALL_UPSCALE``).

    .venv/bin/python benchmarks/bench_small_scans.py --n 80 --seed 99

The scans are ``benchmarks/corpus_scan.py``'s ``scan_250_450`` category (guilloche, tinted
paper, a photo, faded toner, speckle, JPEG; TD1, TD3, TD2 and Chinese identity numbers in
turn), seeded. A read counts when its document number and issuing state are the renderer's
(as ``bench_scan.py`` counts them); any other accepted read is a wrong number. One process,
one frame per document, no votes across frames.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import corpus_scan as cs  # noqa: E402

from sentinel.credentials import iddoc  # noqa: E402
from sentinel.scan import mrz  # noqa: E402

KINDS = ("TD1", "TD3", "TD2", "CN")


def _good(sample: cs.Sample, sym: object) -> bool:
    """The read's document number and issuing state are the renderer's (as
    ``bench_scan.py`` counts them; the name lines carry no check digit)."""
    want = iddoc.parse_symbol_text(sample.kind, sample.truth)
    doc = iddoc.parse_symbol_text(sym.kind, sym.text)  # type: ignore[attr-defined]
    return (doc.number, doc.issuing_country) == (want.number, want.issuing_country)


def run(samples: list, scale: float) -> dict:
    mrz.SMALL_UPSCALE = scale
    reader = mrz.IdReader("template", fuse=False)
    read = {k: 0 for k in KINDS}
    wrong, times = 0, []
    for i, s in enumerate(samples):
        kind = KINDS[i % 4]
        t = time.perf_counter()
        got = reader.read(s.frame)
        times.append(time.perf_counter() - t)
        if got:
            if _good(s, got[0]):
                read[kind] += 1
            else:
                wrong += 1
    return {"read": read, "wrong": wrong, "median_ms": 1000 * statistics.median(times)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=80, help="scans (a quarter of each kind)")
    ap.add_argument("--seed", type=int, default=99)
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)
    rng = np.random.default_rng(args.seed)
    samples = [
        cs.id_sample("scan_250_450", KINDS[i % 4], rng, seed=5000 + i) for i in range(args.n)
    ]
    widths = [s.frame.shape[1] for s in samples]
    print(f"# {args.n} scans, {min(widths)}-{max(widths)} px wide, seed {args.seed}")
    print("| read at | TD1 | TD3 | TD2 | CN | all | wrong numbers | median ms |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    default = mrz.SMALL_UPSCALE
    for label, scale in (("as scanned (1.0×)", 1.0), (f"{default}× (the default)", default)):
        r = run(samples, scale)
        per = r["read"]
        total = sum(per.values())
        cols = " | ".join(f"{per[k]}/{args.n // 4}" for k in KINDS)
        print(
            f"| {label} | {cols} | {total}/{args.n} ({100 * total / args.n:.0f} %) | "
            f"{r['wrong']} | {r['median_ms']:.0f} |"
        )
    mrz.SMALL_UPSCALE = default
    return 0


if __name__ == "__main__":
    sys.exit(main())
