"""The MRZ character classifier at run time: a small convolutional network over one
32×32 cell of a levelled OCR-B line, shipped as ONNX (``models/ocrb37.onnx``, trained by
``benchmarks/train_ocrb.py`` on rendered, degraded glyphs) and run by OpenCV's dnn
module, which the scanner already depends on.  No torch at run time."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789<"  # the order of mrz._WHITELIST
CELL_H = 32  # TemplateOCR's line height
CELL_W = 32  # the glyph's 29-px advance box and a pixel or so either side
CELL_OFFSET = 1  # the cell starts this many pixels before the advance box
MODEL = Path(__file__).resolve().parent / "models" / "ocrb37.onnx"


def normalize(cell: np.ndarray) -> np.ndarray:
    """Ink high, paper near zero, contrast stretched per cell (a floor keeps an empty
    cell's noise from being stretched into strokes)."""
    c = 255.0 - cell.astype(np.float32)
    lo, hi = float(np.percentile(c, 3)), float(np.percentile(c, 99))
    return np.clip((c - lo) / max(hi - lo, 40.0), 0, 1.5)


def normalize_batch(cells: np.ndarray) -> np.ndarray:
    """``normalize`` over a stack of cells at once (the same numbers, one call)."""
    c = 255.0 - cells.astype(np.float32)
    flat = c.reshape(len(c), -1)
    lo, hi = np.percentile(flat, (3, 99), axis=1)
    span = np.maximum(hi - lo, 40.0)
    return np.clip((c - lo[:, None, None]) / span[:, None, None], 0, 1.5).astype(np.float32)


class CellClassifier:
    """``probs(cells)``: (n, 37) probabilities for n cells of CELL_H×CELL_W grey pixels."""

    def __init__(self, path: Path = MODEL) -> None:
        if not path.is_file():
            raise OSError(f"MRZ classifier model missing: {path}")
        self.net = cv2.dnn.readNetFromONNX(str(path))

    def probs(self, cells: list[np.ndarray]) -> np.ndarray:
        if not cells:
            return np.zeros((0, len(CHARS)), np.float32)
        batch = normalize_batch(np.stack(cells))[:, None]
        self.net.setInput(batch)
        logits = self.net.forward().reshape(len(cells), len(CHARS))
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)


class CnnLineReader:
    """Reads a levelled OCR-B strip of a known character count with the network alone:
    the cells sit at the fixed pitch of ICAO 9303-3 §4.3 (no template matching), which
    keeps a frame's many candidate lines cheap.  ``ink_ratio`` is the mean ink width of a
    glyph as a fraction of its advance, ``advance`` the advance at CELL_H (TemplateOCR's
    values)."""

    def __init__(self, classifier: CellClassifier, ink_ratio: float, advance: float) -> None:
        self.classifier = classifier
        self.ink_ratio = ink_ratio
        self.advance = advance

    def probs(self, strip: np.ndarray, n: int) -> np.ndarray | None:
        """(n, 37) probabilities, or None when ``n`` characters cannot fit the strip."""
        h, w = strip.shape[:2]
        if h < 4 or w < n:
            return None
        scale = CELL_H / h
        line = cv2.resize(strip, (max(1, int(w * scale)), CELL_H), interpolation=cv2.INTER_LINEAR)
        pitch = line.shape[1] / (n - 1 + self.ink_ratio)
        f = pitch / self.advance
        if not 0.72 <= f <= 1.35:  # OCR-B's pitch is fixed relative to its height
            return None
        pad = int(CELL_W * f) + 2
        line = cv2.copyMakeBorder(line, 0, 0, pad, pad, cv2.BORDER_REPLICATE)
        x = pad - (1 - self.ink_ratio) / 2 * pitch - CELL_OFFSET * f
        cells = []
        for k in range(n):
            a = int(round(x + k * pitch))
            cell = line[:, a : a + max(2, int(round(CELL_W * f)))]
            cells.append(cv2.resize(cell, (CELL_W, CELL_H), interpolation=cv2.INTER_LINEAR))
        return self.classifier.probs(cells)
