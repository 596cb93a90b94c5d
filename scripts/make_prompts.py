"""Make the kiosk's spoken prompts with espeak-ng, offline, at install time.

One WAV per prompt family (sentinel/web/cues.py PROMPTS) and language, into
sentinel/web/static/sounds/ (shipped with the package from there):
``<family>-zh.wav`` (Mandarin voice "cmn") and ``<family>-en.wav`` ("en-us").
Run by scripts/setup.sh and by scripts/provision.sh --kiosk; without espeak-ng it
says so and exits 0 (the kiosk then plays its tones only).  Files that did not change
are left alone, so a second run changes nothing.

    .venv/bin/python scripts/make_prompts.py [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

VOICES = {"zh": ("cmn", "165"), "en": ("en-us", "160")}  # espeak-ng voice, words/minute


def main(argv: list[str] | None = None) -> int:
    from sentinel.web.cues import PROMPTS, SOUNDS_DIR

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=SOUNDS_DIR)
    args = ap.parse_args(argv)
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        print("make_prompts: espeak-ng not installed: the kiosk plays tones only")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    made = 0
    for family, texts in PROMPTS.items():
        for lang, text in zip(("zh", "en"), texts, strict=True):
            voice, speed = VOICES[lang]
            dest = args.out / f"{family}-{lang}.wav"
            fd, tmp = tempfile.mkstemp(dir=args.out, suffix=".tmp")
            os.close(fd)
            try:
                # An argument list, no shell; the texts are the constants above.
                subprocess.run(
                    [espeak, "-v", voice, "-s", speed, "-w", tmp, text],
                    check=True,
                    capture_output=True,
                    timeout=60,
                )
                new = Path(tmp).read_bytes()
                if dest.is_file() and dest.read_bytes() == new:
                    continue
                os.chmod(tmp, 0o644)
                os.replace(tmp, dest)
                made += 1
            finally:
                Path(tmp).unlink(missing_ok=True)
    print(f"make_prompts: {made} prompt file(s) written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
