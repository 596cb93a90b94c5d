"""Where an event's lag goes, measured by the ingester (``ingest --lag-stats``).

For every event of a committed batch, in 1 ms bins:

* ``arrive``: journal write (the event's ``time``) → the message reached the ingester
  (the device's outbox and send, here the load generator, plus the broker);
* ``wait``: reached the ingester → its batch's transaction began (batch gathering, and
  the writer busy with the batch before);
* ``pg``: transaction began → COMMIT returned (COPY, the batch statement, COMMIT);
* ``total``: journal write → COMMIT returned: the row is in PostgreSQL for every reader.

``total`` is the journal-write-to-row lag; ``ingested_at - time`` in SQL is shorter by the
transaction's own time (``now()`` is the transaction's start).  Same clock as the devices
here (one machine); across machines it needs synchronised clocks.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from typing import Any

KINDS = ("arrive", "wait", "pg", "total")


class LagStats:
    def __init__(self) -> None:
        self.hist: dict[str, Counter[int]] = {k: Counter() for k in KINDS}

    def add(
        self,
        events: list[tuple[Any, ...]],
        spans: list[tuple[int, int]],
        received: list[float],
        begin: float,
        commit: float,
    ) -> None:
        """``events`` of a batch (time at index 4), ``spans``/``received`` per message."""
        arrive, wait, total = self.hist["arrive"], self.hist["wait"], self.hist["total"]
        pg_ms = max(0, round((commit - begin) * 1000))
        e = 0
        for (ne, _nh), rt in zip(spans, received, strict=False):
            if not ne:
                continue  # a heartbeat, or a message whose events were all refused
            for row in events[e : e + ne]:
                t = row[4].timestamp()
                arrive[max(0, round((rt - t) * 1000))] += 1
                total[max(0, round((commit - t) * 1000))] += 1
            wait[max(0, round((begin - rt) * 1000))] += ne
            e += ne
        self.hist["pg"][pg_ms] += e

    def to_json(self) -> str:
        return json.dumps({k: dict(v) for k, v in self.hist.items()})


def merge(docs: Iterable[str]) -> dict[str, Counter[int]]:
    """Histograms of several ingesters (their ``to_json``) added together."""
    out: dict[str, Counter[int]] = {k: Counter() for k in KINDS}
    for doc in docs:
        for k, h in json.loads(doc).items():
            out[k].update({int(ms): int(n) for ms, n in h.items()})
    return out


def percentile(hist: Counter[int], q: float) -> float | None:
    """The q-quantile in seconds (1 ms bins), None when empty."""
    n = sum(hist.values())
    if not n:
        return None
    want, seen = q * (n - 1), 0
    for ms in sorted(hist):
        seen += hist[ms]
        if seen > want:
            return ms / 1000
    return max(hist) / 1000
