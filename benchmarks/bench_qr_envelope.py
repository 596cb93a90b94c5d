"""Where the QR reader stops: read rate by pixels per module and condition at 640×480.

The EU DCC test codes (``../shared/testdata/dgc``) rendered at a chosen size in pixels per
module (the quiet zone included in the code's size), under each of the scanner benchmark's
conditions (``synth.CONDITIONS``), read by zxing-cpp alone, by the Scanner without its
deblur retry, and by the Scanner as shipped.  Tells an installer how close a visitor must
hold a phone for a given camera and distance, and shows what each retry buys.

    .venv/bin/python benchmarks/bench_qr_envelope.py            # 20 codes per cell
    .venv/bin/python benchmarks/bench_qr_envelope.py --codes 8  # quick

Seeded (codes and conditions); the deblur retry's two sigmas were chosen on another seed
and other codes (seed 5, the first 20 texts), this run uses seed 11 and the next texts.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_THREAD_LIMIT", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sentinel.scan import synth  # noqa: E402
from sentinel.scan.decoders import Scanner, ZxingDecoder  # noqa: E402

DGC = ROOT.parent / "shared" / "testdata" / "dgc"
PPM = (1.3, 1.6, 2.0, 2.4, 3.0)
WITHOUT_DEBLUR = ("crops", "unsharp", "upscale", "clahe", "texture")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--codes", type=int, default=20, help="codes per cell")
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args(argv)
    texts = synth.dgc_texts(DGC)[20 : 20 + args.codes] if DGC.is_dir() else []
    if not texts:
        print("bench_qr_envelope: no DCC test vectors in ../shared/testdata/dgc", file=sys.stderr)
        return 2
    readers = {
        "zxing-cpp alone": ZxingDecoder().decode,
        "scanner without deblur": Scanner("zxing", None, retry_steps=WITHOUT_DEBLUR).decode,
        "scanner": Scanner("zxing", None).decode,
    }
    rng = np.random.default_rng(args.seed)
    conds = synth.CONDITIONS
    print(f"# bench_qr_envelope: {len(texts)} codes per cell, 640×480, seed {args.seed}\n")
    print("| px/module | reader | " + " | ".join(conds) + " | all | median ms |")
    print("| ---: | --- | " + " | ".join("---:" for _ in conds) + " | ---: | ---: |")
    for ppm in PPM:
        hits: dict[tuple[str, str], list[bool]] = {}
        times: dict[str, list[float]] = {name: [] for name in readers}
        for cond in conds:
            for i, text in enumerate(texts):
                code = synth.render_qr(text, module_px=4)
                modules = code.shape[0] / 4
                d = dataclasses.replace(synth.degrade_for(cond, rng), fill=modules * ppm / 480)
                g = cv2.cvtColor(synth.place(code, 640, 480, d, i), cv2.COLOR_BGR2GRAY)
                for name, read in readers.items():
                    t0 = time.perf_counter()
                    found = read(g)
                    times[name].append(time.perf_counter() - t0)
                    ok = any(s.text == text for s in found)
                    hits.setdefault((name, cond), []).append(ok)
                    hits.setdefault((name, "all"), []).append(ok)
        for name in readers:
            row = [f"{100 * np.mean(hits[(name, c)]):.0f}%" for c in conds]
            allp = 100 * np.mean(hits[(name, "all")])
            med = 1000 * float(np.median(times[name]))
            print(f"| {ppm} | {name} | " + " | ".join(row) + f" | {allp:.1f}% | {med:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
