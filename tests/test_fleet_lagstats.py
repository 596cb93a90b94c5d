"""The ingester's lag histograms: per event, 1 ms bins, merged over ingesters."""

from __future__ import annotations

from datetime import UTC, datetime

from sentinel.fleet import lagstats


def row(t: float) -> tuple:
    return ("id", "d", "v", "g", datetime.fromtimestamp(t, UTC), "refuse", "EXPIRED", "k", "7")


def test_each_event_is_timed_from_its_own_journal_time_and_message() -> None:
    s = lagstats.LagStats()
    t0 = 1_000_000.0
    # message 1: two events journaled 0.5 s and 0.1 s before it arrived at t0 + 1.0;
    # message 2 (heartbeat, no events); message 3: one event, arrived at t0 + 1.2
    events = [row(t0 + 0.5), row(t0 + 0.9), row(t0 + 1.1)]
    s.add(events, [(2, 0), (0, 1), (1, 0)], [t0 + 1.0, t0 + 1.1, t0 + 1.2], t0 + 1.3, t0 + 1.35)
    h = s.hist
    assert h["arrive"] == {500: 1, 100: 2}
    assert h["wait"] == {300: 2, 100: 1}
    assert h["pg"] == {50: 3}
    assert h["total"] == {850: 1, 450: 1, 250: 1}
    merged = lagstats.merge([s.to_json(), s.to_json()])
    assert sum(merged["total"].values()) == 6
    assert lagstats.percentile(merged["total"], 0.5) == 0.45
    assert lagstats.percentile(merged["total"], 0.99) == 0.85
    assert lagstats.percentile(merged["total"], 0.0) == 0.25
    assert lagstats.percentile(lagstats.LagStats().hist["total"], 0.99) is None
