"""Scanner benchmark: decoder back-ends, the combined Scanner, empty frames, decide time,
and ID documents (MRZ / identity number OCR).  Prints Markdown tables of read rates and
median / p95 milliseconds; everything rendered here with fixed seeds.

    .venv/bin/python benchmarks/bench_scan.py                 # full run (a few minutes)
    .venv/bin/python benchmarks/bench_scan.py --limit 40 --ids 24 --tesseract 0   # quick

One core: OpenCV is limited to one thread; zxing-cpp and zbar are single-threaded.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_THREAD_LIMIT", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sentinel.config import ScanConfig  # noqa: E402
from sentinel.credentials import iddoc  # noqa: E402
from sentinel.errors import CredentialError  # noqa: E402
from sentinel.scan import synth  # noqa: E402
from sentinel.scan.decoders import BACKENDS, Scanner  # noqa: E402
from sentinel.scan.mrz import IdReader  # noqa: E402

DGC = ROOT.parent / "shared" / "testdata" / "dgc"


def ms(samples: list[float]) -> tuple[float, float]:
    s = sorted(samples)
    if not s:
        return 0.0, 0.0
    return statistics.median(s) * 1000, s[min(len(s) - 1, int(0.95 * len(s)))] * 1000


def timed(fn: Callable, *args: object) -> tuple[object, float]:
    t = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t


def qr_corpus(texts: list[str], w: int, h: int, seed: int) -> list[tuple[str, str, np.ndarray]]:
    """(condition, text, frame): each text once clean, once under a degraded condition."""
    rng = np.random.default_rng(seed)
    out = []
    degraded = synth.CONDITIONS[1:]
    for i, text in enumerate(texts):
        code = synth.render_qr(text, module_px=4)
        out.append(("clean", text, synth.place(code, w, h, synth.degrade_for("clean", rng), i)))
        cond = degraded[i % len(degraded)]
        out.append((cond, text, synth.place(code, w, h, synth.degrade_for(cond, rng), i + 7)))
    return out


def bench_qr(texts: list[str], sizes: list[tuple[int, int]]) -> None:
    decoders: dict[str, Callable] = {name: cls().decode for name, cls in BACKENDS.items()}
    combo = Scanner("zxing", "pyzbar")
    decoders["scanner (zxing+retries+pyzbar)"] = combo.decode
    decoders["zxing+retries"] = Scanner("zxing", None).decode
    print("\n## QR codes (EU DCC test vectors), read rate and ms per frame\n")
    print("| decoder | size | clean | degraded | median ms | p95 ms |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    per_cond: dict[tuple[str, str], list[bool]] = defaultdict(list)
    for w, h in sizes:
        frames = qr_corpus(texts, w, h, seed=w)
        grays = [(c, t, cv2.cvtColor(f, cv2.COLOR_BGR2GRAY)) for c, t, f in frames]
        for name, fn in decoders.items():
            hits: dict[str, list[bool]] = defaultdict(list)
            times = []
            for cond, text, g in grays:
                found, dt = timed(fn, g)
                ok = any(s.text == text for s in found)  # type: ignore[attr-defined]
                hits["clean" if cond == "clean" else "degraded"].append(ok)
                per_cond[(name, cond)].append(ok)
                times.append(dt)
            med, p95 = ms(times)
            clean = 100 * np.mean(hits["clean"])
            deg = 100 * np.mean(hits["degraded"])
            print(f"| {name} | {w}×{h} | {clean:.1f}% | {deg:.1f}% | {med:.1f} | {p95:.1f} |")
    print("\n### by condition (both sizes)\n")
    names = list(decoders)
    print("| condition | " + " | ".join(names) + " |")
    print("| --- | " + " | ".join("---:" for _ in names) + " |")
    for cond in synth.CONDITIONS:
        if not per_cond[(names[0], cond)]:
            continue  # a small --limit leaves some conditions out
        row = [f"{100 * np.mean(per_cond[(n, cond)]):.0f}%" for n in names]
        print(f"| {cond} | " + " | ".join(row) + " |")


def bench_empty(sizes: list[tuple[int, int]]) -> None:
    print("\n## Empty frames, ms per frame\n")
    names = " | ".join(BACKENDS)
    print(
        f"| size | {names} | scanner, moving scene | scanner, still scene "
        "| default config (ID documents on), moving scene: median / mean |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for w, h in sizes:
        frames = [synth.blank_frame(w, h, seed=s) for s in range(20)]
        cols = []
        for cls in BACKENDS.values():
            dec = cls()
            cols.append(ms([timed(dec.decode, f)[1] for f in frames])[0])
        sc = Scanner("zxing", None)  # QR codes only (ScanConfig with id_documents off)
        # a moving scene: every frame differs a lot (brightness steps)
        moving = [
            cv2.convertScaleAbs(f, alpha=1.0, beta=(i % 2) * 40) for i, f in enumerate(frames)
        ]
        cols.append(ms([timed(sc.scan, f)[1] for f in moving])[0])
        sc = Scanner("zxing", None)
        sc.scan(frames[0])
        cols.append(ms([timed(sc.scan, f)[1] for f in frames[1:]])[0])
        # the device's default: ID documents on (an OCR attempt every id_every_frames-th
        # frame), so the mean counts the attempts the median can hide
        sc = Scanner.from_config(ScanConfig())
        dts, cpu = [], []
        for _ in range(3):
            for f in moving:
                c0 = time.thread_time()
                dts.append(timed(sc.scan, f)[1])
                cpu.append(time.thread_time() - c0)
        row = " | ".join(f"{c:.2f}" for c in cols)
        both = f"{ms(dts)[0]:.2f} / {1000 * statistics.mean(dts):.2f}"
        print(f"| {w}×{h} | {row} | {both} (CPU mean {1000 * statistics.mean(cpu):.2f}) |")


def bench_decide() -> None:
    """A 1280×720 frame with the demo's valid certificate: decode + verify + decide."""
    from datetime import UTC, datetime, timedelta

    from sentinel.authority import dcc_issue as di
    from sentinel.config import Config
    from sentinel.credentials.trustlist import TrustList
    from sentinel.trust import StaticTrust

    now = datetime.now(UTC)
    signer = di.make_signer("XX")
    text = di.issue(
        di.vaccination(on=(now - timedelta(days=60)).date().isoformat()),
        signer,
        issued_at=now - timedelta(days=1),
        expires_at=now + timedelta(days=300),
    )
    trust = StaticTrust(TrustList.from_certificates([signer.der], country="XX"))
    rng = np.random.default_rng(3)
    frames = [
        synth.place(synth.render_qr(text, 4), 1280, 720, synth.degrade_for("mixed", rng), s)
        for s in range(20)
    ]
    from sentinel.pipeline import Pipeline

    class _NoGate:
        def admit(self) -> None: ...
        def refuse(self) -> None: ...

    class _NoJournal:
        def record(self, *_a: object, **_k: object) -> str:
            return ""

    pipe = Pipeline(Config(), trust, _NoGate(), _NoJournal())  # type: ignore[arg-type]
    times = []
    decided = 0
    for f in frames:
        t = time.perf_counter()
        syms = pipe.scanner.decode(f)  # type: ignore[union-attr]
        for s in syms:
            d, _ = pipe.decide(s, now)
            decided += d.admit
        times.append(time.perf_counter() - t)
    med, p95 = ms(times)
    print("\n## Read and decide, 1280×720 frame with a valid certificate\n")
    print(f"median {med:.1f} ms, p95 {p95:.1f} ms; admitted {decided}/{len(frames)} frames")


def bench_ids(n_docs: int, engines: dict[str, int], tries: int = 3) -> None:
    print("\n## ID documents (rendered OCR-B MRZ / identity number), 1280×720\n")
    print(
        "| OCR engine | documents | read per frame | read within "
        f"{tries} frames | wrong numbers accepted | issuing state misread | median ms | p95 ms |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for engine, limit in engines.items():
        if limit <= 0:
            continue
        try:
            reader = IdReader(engine)
        except Exception as exc:  # tesseract missing
            print(f"| {engine} | unavailable: {exc} | | | | | | |")
            continue
        rng = np.random.default_rng(11)
        frame_hits, doc_hits, wrong, wrong_state, times = [], [], 0, 0, []
        for i in range(min(n_docs, limit)):
            kind = ("TD1", "TD2", "TD3", "CN")[i % 4]
            truth = synth.make_cn_id(rng) if kind == "CN" else synth.make_mrz(kind, rng)
            want = iddoc.parse_symbol_text("ID_NUMBER" if kind == "CN" else "MRZ", truth)
            card = synth.render_id_card(truth, seed=i)
            cond = synth.ID_CONDITIONS[i % len(synth.ID_CONDITIONS)]
            got_doc = False
            for k in range(tries):
                d = synth.id_degrade_for(cond, rng)
                g = cv2.cvtColor(synth.place_image(card, 1280, 720, d, seed=i * 10 + k), 6)
                found, dt = timed(reader.read, g)
                times.append(dt)
                ok = False
                for s in found:  # type: ignore[attr-defined]
                    try:
                        doc = iddoc.parse_symbol_text(s.kind, s.text)
                    except CredentialError:
                        continue
                    if doc.number != want.number:
                        wrong += 1  # the figure that must stay zero
                    elif doc.issuing_country != want.issuing_country:
                        wrong_state += 1  # no check digit covers the issuing state
                    else:
                        ok = True
                frame_hits.append(ok)
                got_doc = got_doc or ok
            doc_hits.append(got_doc)
        med, p95 = ms(times)
        print(
            f"| {engine} | {len(doc_hits)} | {100 * np.mean(frame_hits):.1f}% | "
            f"{100 * np.mean(doc_hits):.1f}% | {wrong} | {wrong_state} | {med:.0f} | {p95:.0f} |"
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--limit", type=int, default=0, help="QR texts to use (0: all)")
    p.add_argument("--sizes", default="640x480,1280x720")
    p.add_argument("--ids", type=int, default=96, help="ID documents (template engine)")
    p.add_argument("--tesseract", type=int, default=24, help="ID documents for tesseract")
    p.add_argument("--skip-qr", action="store_true")
    p.add_argument("--corpus", type=int, default=0, help="hard-corpus samples per category")
    p.add_argument("--sequences", type=int, default=0, help="video sequences per kind")
    p.add_argument("--wall-clock", action="store_true", help="sequences: wall time, not CPU")
    p.add_argument("--engines", default="template,cnn", help="MRZ engines for the corpus")
    p.add_argument("--skip-id-corpus", action="store_true", help="hard corpus: QR codes only")
    args = p.parse_args(argv)
    cv2.setNumThreads(1)
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    texts = synth.dgc_texts(DGC) if DGC.is_dir() else []
    if args.limit:
        texts = texts[: args.limit]
    print(f"# bench_scan: {len(texts)} QR texts, sizes {args.sizes}")
    if texts and not args.skip_qr:
        bench_qr(texts, sizes)  # type: ignore[arg-type]
    bench_empty(sizes)  # type: ignore[arg-type]
    bench_decide()
    bench_ids(args.ids, {"template": args.ids, "tesseract": args.tesseract})
    if args.corpus:
        if texts:
            bench_qr_corpus(texts, args.corpus, sizes)  # type: ignore[arg-type]
        if not args.skip_id_corpus:
            bench_id_corpus(args.corpus, args.engines.split(","))
    if args.sequences:
        # the default engine
        bench_sequences(args.sequences, args.engines.split(",")[0], wall=args.wall_clock)
    return 0


# --- the hard corpus (benchmarks/corpus_scan.py) ------------------------------------------


def _qr_configs() -> dict[str, Callable]:
    from sentinel.scan.decoders import ZxingDecoder

    def alone(**kw: object) -> Callable:
        return ZxingDecoder(**kw).decode  # type: ignore[arg-type]

    def scanner(steps: tuple[str, ...]) -> Callable:
        return Scanner("zxing", None, retry_steps=steps).decode

    def union(*fns: Callable) -> Callable:
        def run(g: np.ndarray) -> list:
            out: list = []
            for fn in fns:
                out += fn(g)
            return out

        return run

    peers = [cls().decode for cls in BACKENDS.values()]
    return {
        "zxing-cpp, invert off (old primary)": alone(try_invert=False),
        "zxing-cpp defaults": alone(),
        "- try_rotate": alone(try_rotate=False),
        "- try_downscale": alone(try_downscale=False),
        "binarizer GlobalHistogram": alone(binarizer="GlobalHistogram"),
        "binarizer FixedThreshold": alone(binarizer="FixedThreshold"),
        "+ crops only": scanner(("crops",)),
        "+ unsharp only": scanner(("unsharp",)),
        "+ upscale only": scanner(("upscale",)),
        "+ clahe only": scanner(("clahe",)),
        "+ texture only": scanner(("texture",)),
        "Sentinel scanner (default)": Scanner("zxing", None).decode,
        "pyzbar": peers[0],
        "OpenCV": peers[2],
        "union zxing+pyzbar+OpenCV": union(*peers),
    }


def bench_qr_corpus(texts: list[str], per: int, sizes: list[tuple[int, int]]) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import corpus_scan as cs

    configs = _qr_configs()
    print(f"\n## QR options on the hard corpus ({per} per category and size), read rate\n")
    hits: dict[tuple[str, str], list[bool]] = defaultdict(list)
    times: dict[str, list[float]] = defaultdict(list)
    for size in sizes:
        for s in cs.qr_corpus(texts, per, size):
            g = cv2.cvtColor(s.frame, cv2.COLOR_BGR2GRAY)
            for name, fn in configs.items():
                found, dt = timed(fn, g)
                hits[(name, s.category)].append(any(x.text == s.truth for x in found))  # type: ignore[attr-defined]
                hits[(name, "all")].append(hits[(name, s.category)][-1])
                times[name].append(dt)
    cats = list(cs.QR_CATEGORIES) + ["all"]
    print("| configuration | " + " | ".join(cats) + " | median ms |")
    print("| --- | " + " | ".join("---:" for _ in cats) + " | ---: |")
    for name in configs:
        row = [f"{100 * np.mean(hits[(name, c)]):.0f}%" for c in cats]
        print(f"| {name} | " + " | ".join(row) + f" | {ms(times[name])[0]:.1f} |")


def bench_id_corpus(per: int, engines: list[str]) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import corpus_scan as cs

    print(f"\n## ID documents on the hard corpus ({per} per category), read per frame\n")
    samples = list(cs.id_corpus(per))
    cats = list(cs.MRZ_CATEGORIES) + ["all"]
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"load average {load}; CPU ms: the reader thread's own time\n")
    heads = " | wrong numbers | wrong states | median ms | median CPU ms |"
    print("| engine | " + " | ".join(cats) + heads)
    print("| --- | " + " | ".join("---:" for _ in cats) + " | ---: | ---: | ---: | ---: |")
    by_format: dict[tuple[str, str], list[bool]] = defaultdict(list)
    for engine in engines:
        try:
            reader = IdReader(engine, fuse=False)
        except Exception as exc:  # tesseract or the model missing
            print(f"| {engine} | unavailable: {exc} |")
            continue
        hits: dict[str, list[bool]] = defaultdict(list)
        wrong = wrong_state = 0
        times, cpu = [], []
        for s in samples:
            g = cv2.cvtColor(s.frame, cv2.COLOR_BGR2GRAY)
            c0 = time.thread_time()
            found, dt = timed(reader.read, g)
            cpu.append(time.thread_time() - c0)
            times.append(dt)
            want = iddoc.parse_symbol_text(s.kind, s.truth)
            ok = False
            for sym in found:  # type: ignore[attr-defined]
                doc = iddoc.parse_symbol_text(sym.kind, sym.text)
                if doc.number != want.number:
                    wrong += 1
                elif doc.issuing_country != want.issuing_country:
                    wrong_state += 1
                else:
                    ok = True
            hits[s.category].append(ok)
            hits["all"].append(ok)
            fmt = iddoc.mrz_format(s.truth.split("\n")) or "CN"
            by_format[(engine, fmt)].append(ok)
        row = [f"{100 * np.mean(hits[c]):.0f}%" for c in cats]
        print(
            f"| {engine} | " + " | ".join(row) + f" | {wrong} | {wrong_state} | "
            f"{ms(times)[0]:.0f} | {ms(cpu)[0]:.0f} |"
        )
    print(
        "\nby format, all categories: "
        + "; ".join(
            f"{e} {f} {100 * np.mean(v):.0f}% of {len(v)}"
            for (e, f), v in sorted(by_format.items())
        )
    )


def bench_sequences(n: int, engine: str, fps: float = 30.0, *, wall: bool = False) -> None:
    """Time to decision on rendered video (a card or phone sliding into view, 30 fps),
    from the first frame in which the document is wholly visible.  Real time is
    simulated: the scanner takes the newest frame whenever it is free, so a slow frame
    makes it skip frames, as on the device.  The simulated clock advances by the
    scanner's own CPU time (one free core, as on the device; 2 shared cores under load
    stretch wall time by the load), or by wall time with ``wall``."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import corpus_scan as cs

    clock_of = time.perf_counter if wall else time.thread_time
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"\n## Time to decision on video sequences ({n} per kind, {fps:.0f} fps)\n")
    print(f"clock: {'wall time' if wall else 'the scanner thread CPU time'}; load average {load}\n")
    print(
        "| kind | decided | wrong | median ms | p95 ms | frames after the first whole view "
        "| median ms per processed frame | same, wall |"
    )
    print("| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: |")
    rng = np.random.default_rng(300)
    for kind in ("TD1", "TD3", "TD2", "CN", "QR"):
        delays, per_frame, per_wall, decided, wrong = [], [], [], 0, 0
        frames_after: list[str] = []
        for i in range(n):
            truth, frames, first = cs.sequence(kind, rng, seed=7000 + i)
            sc = Scanner("zxing", None, id_reader=IdReader(engine), id_every_frames=1)
            clock, idx, result = 0.0, 0, None
            while idx < len(frames):
                t0 = max(clock, idx / fps)
                w0, c0 = time.perf_counter(), clock_of()
                found = sc.scan(frames[idx])
                dt = clock_of() - c0
                per_wall.append(time.perf_counter() - w0)
                per_frame.append(dt)
                clock = t0 + dt
                good = [s for s in found if _same_doc(s, truth, kind)]
                wrong += len(found) - len(good)
                if good:
                    result = clock
                    break
                idx = max(idx + 1, int(clock * fps))  # the newest frame when free
            if result is not None:
                decided += 1
                delays.append(max(0.0, result - first / fps))
                frames_after.append(f"{idx - first:+d}")
            else:
                frames_after.append("none")
        med, p95 = ms(delays)
        print(
            f"| {kind} | {decided}/{n} | {wrong} | {med:.0f} | {p95:.0f} | "
            f"{' '.join(frames_after)} | {ms(per_frame)[0]:.0f} | {ms(per_wall)[0]:.0f} |"
        )


def _same_doc(sym: object, truth: str, kind: str) -> bool:
    if kind == "QR":
        return sym.text == truth  # type: ignore[attr-defined]
    try:
        got = iddoc.parse_symbol_text(sym.kind, sym.text)  # type: ignore[attr-defined]
    except CredentialError:
        return False
    want = iddoc.parse_symbol_text("ID_NUMBER" if kind == "CN" else "MRZ", truth)
    return (got.number, got.issuing_country) == (want.number, want.issuing_country)


if __name__ == "__main__":
    raise SystemExit(main())
