"""Multi-frame fusion of MRZ reads: a presentation is a second of video, not one still.

Each frame's best raw read of a zone (checked or not) votes per character, weighted by
its match score; after every frame the per-position winners form a fused text, which is
accepted only when it passes every check the single-frame reads must pass (all check
digits, the composite, ICAO 9303 lists, real dates) and no position is split between
characters the check digits cannot tell apart.  So two frames that each misread a
different character still give the right zone, and a wrong one still needs every check
digit to agree with it.  Votes are dropped after ``forget_after`` frames without a read of
that shape (the document went away).
"""

from __future__ import annotations

from collections import defaultdict

from sentinel.errors import CredentialError


class MrzVotes:
    """Per-character votes for zones of one shape (line count and line lengths)."""

    def __init__(self, forget_after: int = 8, max_frames: int = 30) -> None:
        self.forget_after = forget_after
        self.max_frames = max_frames
        self._votes: dict[tuple[int, ...], list[dict[str, float]]] = {}
        self._frames: dict[tuple[int, ...], int] = defaultdict(int)
        self._idle: dict[tuple[int, ...], int] = defaultdict(int)

    def reset(self) -> None:
        self._votes.clear()
        self._frames.clear()
        self._idle.clear()

    def add(self, text: str, score: float) -> str | None:
        """Vote with one frame's read ``text`` (lines joined by newlines); return the fused
        zone when it passes every check, else None."""
        from sentinel.credentials import iddoc

        lines = text.split("\n")
        shape = tuple(len(ln) for ln in lines)
        for other in list(self._idle):
            if other != shape:
                self._idle[other] += 1
                if self._idle[other] > self.forget_after:
                    self._votes.pop(other, None)
                    self._frames.pop(other, None)
                    self._idle.pop(other, None)
        self._idle[shape] = 0
        if self._frames[shape] >= self.max_frames:  # a long stay: start afresh
            self._votes.pop(shape, None)
            self._frames[shape] = 0
        votes = self._votes.setdefault(shape, [defaultdict(float) for _ in "".join(lines)])
        weight = max(0.05, score)
        for i, ch in enumerate("".join(lines)):
            votes[i][ch] += weight
        self._frames[shape] += 1
        if self._frames[shape] < 2:
            return None
        flat = "".join(max(v.items(), key=lambda kv: kv[1])[0] for v in votes)
        if any(_blind_rival(v) for v in votes):
            return None  # frames split between characters no check digit tells apart
        fused, k = [], 0
        for n in shape:
            fused.append(flat[k : k + n])
            k += n
        candidate = "\n".join(fused)
        # the frame in view must itself be mostly this zone: votes left over from a
        # document that just went away never decide for the next one
        same = sum(a == b for a, b in zip(candidate, text, strict=True))
        if same < 0.85 * len(text):
            return None
        try:
            iddoc.parse_mrz(candidate)
        except CredentialError:
            return None
        return candidate

    def idle(self) -> None:
        """A frame without any zone-shaped read."""
        for shape in list(self._idle):
            self._idle[shape] += 1
            if self._idle[shape] > self.forget_after:
                self._votes.pop(shape, None)
                self._frames.pop(shape, None)
                self._idle.pop(shape, None)


def _blind_rival(votes: dict[str, float]) -> bool:
    """Whether the runner-up of a position differs from the winner by a multiple of ten in
    ICAO value (invisible to the 7-3-1 check digit) and got a quarter of its votes."""
    from sentinel.scan.mrz import _VALUES, _WHITELIST

    if len(votes) < 2:
        return False
    winner, w = max(votes.items(), key=lambda kv: kv[1])
    u = _VALUES[_WHITELIST.index(winner)]
    for ch, weight in votes.items():
        if ch != winner and (_VALUES[_WHITELIST.index(ch)] - u) % 10 == 0 and weight > 0.25 * w:
            return True
    return False
