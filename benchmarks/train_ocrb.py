"""Train the MRZ character classifier: the 37 OCR-B symbols of ICAO 9303 (A-Z, 0-9, <),
one cell of a levelled line at a time, exported to ONNX for OpenCV's dnn module.

Training data is rendered here from Debian's ``fonts-ocr-b`` and degraded the way the
corpus degrades documents (low resolution, blur, noise, JPEG, faded and dim print,
guilloche strokes, glare, stroke weight, cell misalignment, neighbouring glyphs), so no
image or data set is downloaded.  torch is needed for training only (never at run time):

    .venv/bin/pip install torch onnx   # CPU wheel; onnx for the export
    nice -n 10 .venv/bin/python benchmarks/train_ocrb.py   # ~3-6 minutes on 2 cores

writes ``sentinel/scan/models/ocrb37.onnx``.  Seeded: the same seed gives the same data
and, on the same torch build, the same weights.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sentinel.scan.ocrb_net import CELL_H, CELL_OFFSET, CELL_W, CHARS  # noqa: E402

FONT = "/usr/share/fonts/opentype/ocr-b/OCRB.otf"
OUT = ROOT / "sentinel" / "scan" / "models" / "ocrb37.onnx"


def _render_line(text: str, font: object, adv: float) -> np.ndarray:
    from PIL import Image, ImageDraw

    size = 100
    img = Image.new("L", (int(adv * len(text)) + 8, size + 20), 255)
    ImageDraw.Draw(img).text((4, 0), text, fill=0, font=font)
    # the glyph band the reader's strips are levelled to (TemplateOCR: rows 17..96)
    return np.asarray(img)[int(0.17 * size) : int(0.96 * size)].astype(np.float32)


def samples(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    from PIL import ImageFont

    font = ImageFont.truetype(FONT, 100)
    adv = font.getlength("0")
    xs = np.zeros((n, 1, CELL_H, CELL_W), np.float32)
    ys = np.zeros(n, np.int64)
    for k in range(n):
        label = int(rng.integers(len(CHARS)))
        # neighbours: MRZ text is often runs of fillers; sometimes a line end (blank)
        ctx = [str(rng.choice(list(CHARS))) if rng.random() < 0.7 else "<" for _ in range(4)]
        if rng.random() < 0.1:
            ctx[2] = " "
        text = ctx[0] + ctx[1] + CHARS[label] + ctx[2] + ctx[3]
        line = _render_line(text, font, adv)
        # stroke weight: print and scans vary
        r = rng.random()
        if r < 0.25:
            line = cv2.erode(line, np.ones((3, 3), np.uint8), iterations=int(rng.integers(1, 4)))
        elif r < 0.5:
            line = cv2.dilate(line, np.ones((3, 3), np.uint8), iterations=int(rng.integers(1, 3)))
        scale = CELL_H / line.shape[0]
        # a low-resolution original: down to 7-32 px high, then up again
        low = float(rng.uniform(7, 34))
        f = low / line.shape[0]
        small = cv2.resize(
            line, None, fx=f * float(rng.uniform(0.9, 1.1)), fy=f, interpolation=cv2.INTER_AREA
        )
        if rng.random() < 0.6:
            small = cv2.GaussianBlur(small, (0, 0), float(rng.uniform(0.3, 1.2)))
        lo, hi = float(rng.uniform(0, 140)), float(rng.uniform(150, 255))
        small = lo + (hi - lo) * small / 255.0  # contrast: faded, dim
        hh, ww = small.shape
        if rng.random() < 0.5:  # guilloche strokes through the line
            yy, xx = np.mgrid[0:hh, 0:ww].astype(np.float32)
            fq = float(rng.uniform(0.2, 1.0)) / max(1.0, low / 10)
            wave = np.abs(
                np.sin(xx * fq * 0.3 + 3 * np.sin(yy * fq * 0.5 + float(rng.uniform(0, 6))))
            )
            small = small - float(rng.uniform(10, 60)) * (wave < 0.1)
        if rng.random() < 0.3:  # glare / uneven light across the cell
            small = small + float(rng.uniform(-40, 80)) * np.linspace(0, 1, ww)[None, :]
        small = small + rng.normal(0, float(rng.uniform(0, 12)), small.shape)
        small = np.clip(small, 0, 255).astype(np.uint8)
        if rng.random() < 0.5:
            ok, buf = cv2.imencode(
                ".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(20, 80))]
            )
            small = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
        up = cv2.resize(small, (int(line.shape[1] * scale), CELL_H), interpolation=cv2.INTER_LINEAR)
        # the cell where the reader would cut it: the glyph's advance box, +-2 px
        x = 4 * scale + 2 * adv * scale - CELL_OFFSET + float(rng.normal(0, 1.2))
        x0 = int(round(x))
        cell = up[:, max(0, x0) : max(0, x0) + CELL_W]
        if cell.shape[1] < CELL_W:
            cell = cv2.copyMakeBorder(cell, 0, 0, 0, CELL_W - cell.shape[1], cv2.BORDER_REPLICATE)
        if rng.random() < 0.3:  # vertical misfit of the levelled strip
            dy = int(rng.integers(-2, 3))
            cell = np.roll(cell, dy, axis=0)
        xs[k, 0] = normalize(cell)
        ys[k] = label
    return xs, ys


def normalize(cell: np.ndarray) -> np.ndarray:
    """The network's input: ink high, paper zero, contrast stretched per cell (the same
    function as ``ocrb_net.normalize``)."""
    from sentinel.scan.ocrb_net import normalize as norm

    return norm(cell)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=16000)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--seed", type=int, default=9303)
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    import torch
    from torch import nn

    torch.manual_seed(args.seed)
    torch.set_num_threads(2)
    rng = np.random.default_rng(args.seed)
    t = time.time()
    xs, ys = samples(args.samples, rng)
    xv, yv = samples(4000, np.random.default_rng(args.seed + 1))
    print(f"rendered {len(xs)} + {len(xv)} cells in {time.time() - t:.0f} s", flush=True)
    net = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * (CELL_H // 8) * (CELL_W // 8), 128), nn.ReLU(),
        nn.Dropout(0.2), nn.Linear(128, len(CHARS)),
    )  # fmt: skip
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=3e-3, total_steps=args.epochs * ((len(xs) + 255) // 256)
    )
    X, Y = torch.from_numpy(xs), torch.from_numpy(ys)
    for epoch in range(args.epochs):
        net.train()
        perm = torch.randperm(len(X))
        for i in range(0, len(X), 256):
            idx = perm[i : i + 256]
            opt.zero_grad()
            loss = nn.functional.cross_entropy(net(X[idx]), Y[idx])
            loss.backward()
            opt.step()
            sched.step()
        net.eval()
        with torch.no_grad():
            acc = (net(torch.from_numpy(xv)).argmax(1).numpy() == yv).mean()
        print(f"epoch {epoch + 1}: loss {loss.item():.3f}, held-out accuracy {acc:.4f}", flush=True)
        export(net, args.out)  # after every epoch: a usable model early on a busy machine
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes) in {time.time() - t:.0f} s")
    return 0


def export(net: object, out: Path) -> None:
    import torch

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    axes = {"cell": {0: "n"}, "logits": {0: "n"}}
    torch.onnx.export(
        net, torch.zeros(1, 1, CELL_H, CELL_W), str(tmp), input_names=["cell"],
        output_names=["logits"], opset_version=13, dynamic_axes=axes, dynamo=False,
    )  # fmt: skip
    tmp.replace(out)  # atomically: a reader never sees half a model


if __name__ == "__main__":
    raise SystemExit(main())
