"""A chunk of status rows on the publisher's side: identities, status codes, valid-until.

The vectorised readers (``csvfast.py``, ``arrowin.py``) build the identities directly as
fixed-length CBC-MAC messages (``statusset.mac_message``: a length byte, the identity,
zeros), one row each of an (n, 80) array; the row-by-row paths give them as bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from sentinel.errors import ConfigError
from sentinel.trust import statusset as ss


@dataclass(slots=True)
class Chunk:
    """``len(lens)`` rows: identity i is ``msgs[i, 1:1+lens[i]]`` when ``msgs`` is set,
    else ``flat[starts[i]:starts[i]+lens[i]]``."""

    flat: bytes | None
    starts: np.ndarray | None  # int64
    lens: np.ndarray  # int64
    status: np.ndarray  # u1
    until: np.ndarray  # <u4
    # (n, w) u1: the CBC-MAC messages, cut to w bytes (a multiple of 16) when the rest of
    # every message is zeros (statusset.mac_many takes them so)
    msgs: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.lens)

    def identity(self, i: int) -> bytes:
        n = int(self.lens[i])
        if self.msgs is not None:
            return self.msgs[i, 1 : 1 + n].tobytes()
        assert self.flat is not None and self.starts is not None
        s = int(self.starts[i])
        return self.flat[s : s + n]

    def mac_input(self) -> np.ndarray:
        """The CBC-MAC messages, maybe cut short (``statusset.mac_many``'s input)."""
        return self.msgs if self.msgs is not None else self.messages()

    def messages(self) -> np.ndarray:
        """Every identity as a fixed-length CBC-MAC message (``statusset.mac_message``)."""
        if self.msgs is not None:
            n, w = self.msgs.shape
            if w == ss.MAC_BYTES:
                return self.msgs
            out = np.zeros((n, ss.MAC_BYTES), np.uint8)
            out[:, :w] = self.msgs
            return out
        assert self.flat is not None and self.starts is not None
        n, w = len(self), ss.MAC_BYTES - 1
        lens = self.lens
        if n and int(lens.max()) > w:
            raise ConfigError(f"a normalized identity is longer than {w} bytes")
        flat = np.frombuffer(self.flat, dtype=np.uint8)
        out = np.zeros((n, ss.MAC_BYTES), dtype=np.uint8)
        out[:, 0] = lens
        if n and len(flat):
            ar = np.arange(w)
            idx = np.minimum(self.starts[:, None] + ar, len(flat) - 1)
            out[:, 1:] = np.where(ar < lens[:, None], flat[idx], 0)
        return out

    @classmethod
    def of(cls, idents: list[bytes], status: list[int], until: list[int]) -> Chunk:
        lens = np.array([len(x) for x in idents], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64)
        return cls(
            b"".join(idents),
            starts,
            lens,
            np.array(status, dtype=np.uint8),
            np.array(until, dtype=ss.UNTIL_DTYPE),
        )


def message_width(total: np.ndarray) -> int:
    """Bytes of CBC-MAC message to keep for identities of these lengths: the length byte
    and the identity, rounded up to whole blocks (the rest is zeros)."""
    longest = int(total.max()) if len(total) else 0
    return min(ss.MAC_BYTES, -(-(longest + 1) // 16) * 16)


def parse_status(text: str, where: str) -> int:
    """A ``status`` cell: green, yellow or red (any case, spaces around)."""
    code = ss.STATUS_CODES.get(text.strip().lower())
    if code is None:
        raise ConfigError(f"{where}: status must be green, yellow or red")
    return code


def parse_until(text: str, cache: dict[str, int], where: str) -> int:
    """A ``valid_until`` cell: an ISO date (end of that day, UTC) or date-time."""
    hit = cache.get(text)
    if hit is not None:
        return hit
    try:
        t = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{where}: valid_until {text!r} is not an ISO date/time") from None
    if t.tzinfo is None:  # a bare date or time: UTC, end of that day for a bare date
        t = t.replace(tzinfo=UTC)
        if len(text.strip()) == 10:
            t += timedelta(days=1, seconds=-1)
    cache[text] = v = ss.to_epoch(t)
    return v
