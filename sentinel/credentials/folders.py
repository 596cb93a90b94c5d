"""Walking folders as users and the upstream test-data repositories lay them out.

The EU test data nests cases as ``COUNTRY/VERSION/2DCode/raw/*.json`` with pictures in
``COUNTRY/VERSION/*.png``; people copy, symlink and re-nest such trees.  ``walk`` visits
every directory below a root once: symlinks are followed, but a directory already seen
(by device and inode) is not entered again, so a link back up the tree cannot loop.
Only regular files are returned (never a FIFO or device named ``*.png``), in a stable
order, with the files that did not match listed apart so callers can say what they
skipped.

``classify`` decides what one command-line argument of ``sentinel check`` is without
touching the file system for text that cannot be a path (review D14): QR texts
(``HC1:``/``HC:``), long texts and texts with characters no path holds are text.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
QR_PREFIXES = ("HC1:", "HC:")
MAX_DEPTH = 32
MAX_ENTRIES = 200_000
_NAME_MAX = 255  # bytes per path component (POSIX NAME_MAX on Linux file systems)
_PATH_MAX = 4095  # bytes, Linux PATH_MAX minus the terminating NUL


@dataclass(slots=True)
class Walk:
    """What ``walk`` found below one root."""

    files: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)  # regular files with another suffix
    notes: list[str] = field(default_factory=list)  # loops cut, unreadable folders, caps


def walk(root: Path, suffixes: frozenset[str]) -> Walk:
    """Regular files below ``root`` whose suffix (lower-cased) is in ``suffixes``."""
    out = Walk()
    seen_dirs: set[tuple[int, int]] = set()
    seen_files: set[tuple[int, int]] = set()
    count = 0

    def visit(d: Path, depth: int) -> None:
        nonlocal count
        try:
            st = d.stat()
        except OSError as exc:
            out.notes.append(f"{d}: {exc.strerror or exc}")
            return
        ident = (st.st_dev, st.st_ino)
        if ident in seen_dirs:
            out.notes.append(f"{d}: already visited (symlink loop or second link), skipped")
            return
        seen_dirs.add(ident)
        if depth > MAX_DEPTH:
            out.notes.append(f"{d}: deeper than {MAX_DEPTH} levels, skipped")
            return
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError as exc:
            out.notes.append(f"{d}: {exc.strerror or exc}")
            return
        for e in entries:
            count += 1
            if count > MAX_ENTRIES:
                out.notes.append(f"more than {MAX_ENTRIES} entries, the rest skipped")
                return
            p = Path(e.path)
            try:
                est = os.stat(e.path)  # follows symlinks
            except OSError:
                out.notes.append(f"{p}: dangling link or unreadable, skipped")
                continue
            if stat.S_ISDIR(est.st_mode):
                visit(p, depth + 1)
            elif stat.S_ISREG(est.st_mode):
                if (est.st_dev, est.st_ino) in seen_files:
                    continue
                seen_files.add((est.st_dev, est.st_ino))
                (out.files if p.suffix.lower() in suffixes else out.skipped).append(p)
            else:
                out.notes.append(f"{p}: not a regular file, skipped")

    visit(root, 0)
    return out


@dataclass(frozen=True, slots=True)
class Argument:
    """One ``check`` argument: QR ``text``, image ``paths``, or an ``error`` to report."""

    label: str
    text: str | None = None
    paths: tuple[Path, ...] = ()
    error: str = ""
    notes: tuple[str, ...] = ()


def _cannot_be_path(item: str) -> bool:
    if item.upper().startswith(QR_PREFIXES) or not item or "\0" in item or "\n" in item:
        return True
    raw = item.encode("utf-8", "surrogateescape")
    return len(raw) > _PATH_MAX or any(len(part) > _NAME_MAX for part in raw.split(b"/"))


def classify(item: str) -> Argument:
    """Tell QR text from an image or a folder of images (D14: no stat of long texts)."""
    if _cannot_be_path(item):
        return Argument("text", text=item)
    p = Path(item)
    try:
        st = p.stat()
    except (OSError, ValueError):
        if "/" in item or p.suffix.lower() in IMAGE_SUFFIXES:
            return Argument(item, error="no such file or directory")
        return Argument("text", text=item)
    if stat.S_ISDIR(st.st_mode):
        w = walk(p, IMAGE_SUFFIXES)
        notes = [f"skipped {len(w.skipped)} file(s) that are not images"] if w.skipped else []
        notes += w.notes
        if not w.files:
            return Argument(item, error="folder holds no images", notes=tuple(notes))
        return Argument(item, paths=tuple(w.files), notes=tuple(notes))
    if not stat.S_ISREG(st.st_mode):
        return Argument(item, error="not a regular file")
    if p.suffix.lower() not in IMAGE_SUFFIXES:
        return Argument(item, error="not an image (" + " ".join(sorted(IMAGE_SUFFIXES)) + ")")
    return Argument(item, paths=(p,))
