"""A one-process asyncio load generator: thousands of simulated sentinels on one broker.

    python -m sentinel.fleet.loadgen --port 1883 --devices 10000 --seconds 60 --rate 5000

Each simulated device is its own MQTT connection (``mqtt_lite``: its own client id and,
with ``--passwords``, its own credentials), publishes a retained heartbeat on connect and every
``--heartbeat-s``, first drains a backlog of ``--backlog`` events (as a device does after
being offline; ``--batch`` events per message, the v2 format, as the device sender),
then journals live events at its share of ``--rate`` (0: as fast as the broker
acknowledges) until ``--seconds`` have passed.  Events are QoS 1 and a device sends
its next event only after the broker's PUBACK, like the real outbox; an event whose
PUBACK never came is sent again with the same id after a reconnect.

Event ids are ``<run>-<device index>-<seq>``; the JSON summary on stdout gives every
device's count of acknowledged events, so a caller can check the database for losses
(each acknowledged id present) and duplicates.  Event times are the moment the event
was made ("journal write"), so ``ingested_at - time`` in PostgreSQL is the end-to-end lag.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import resource
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sentinel.fleet.mqtt import topic_events, topic_heartbeat
from sentinel.fleet.mqtt_lite import MqttError, Publisher
from sentinel.fleet.wire import batch_payload

REASONS = ("EXPIRED", "TEST_TOO_OLD", "BAD_SIGNATURE", "REVOKED", "CODE_RED", "ADMIT")


@dataclass
class Spec:
    port: int
    devices: list[tuple[str, str]]  # (venue, device id)
    seconds: float = 10.0
    rate: float = 0.0  # events/s offered by all devices together; 0 = unpaced
    backlog: int = 0
    heartbeat_s: float = 30.0
    run: str = "run"
    passwords: dict[str, str] = field(default_factory=dict)
    connect_parallel: int = 200
    alert_every: int = 0  # every n-th live event is a CODE_RED refusal (0: never)
    grace_s: float = 30.0  # after the deadline, windows in flight may finish this long
    connect_timeout_s: float = 120.0  # traffic starts when all are connected, or then
    window: int = 50  # messages in flight per device (as the device sender's window)
    batch: int = 1  # events per message: 1 = v1 messages, more = v2 batches (wire.py)


@dataclass
class DeviceStats:
    acked: int = 0
    heartbeats: int = 0
    reconnects: int = 0
    connected: bool = False


def raise_fd_limit(want: int) -> int:
    """Raise the soft open-files limit to ``want`` (and the hard one, when root)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if want > hard and os.geteuid() == 0:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return want
        except (ValueError, OSError):
            pass
    new = min(max(soft, want), hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    return new


def event_payload(
    run: str, index: int, seq: int, venue: str, device: str, t: datetime, reason: str
) -> bytes:
    doc = {
        "event_id": f"{run}-{index}-{seq}",
        "device_id": device,
        "venue": venue,
        "gate": "g1",
        "time": t.isoformat(),
        "decision": "admit" if reason == "ADMIT" else "refuse",
        "reason": reason,
        "credential_kind": "health-code" if reason == "CODE_RED" else "dcc-test",
        "bundle_version": "7",
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def _pct(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * q))]


class Generator:
    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.stats = [DeviceStats() for _ in spec.devices]
        self.deadline = 0.0
        self.t0 = 0.0
        self.traffic_from = 0.0
        self.go = asyncio.Event()
        self._connect_gate = asyncio.Semaphore(spec.connect_parallel)
        self.connected = 0
        self.all_connected_s: float | None = None
        n = len(spec.devices)
        # live events journaled but not yet sent, per device: their journal times
        self._outbox: list[list[datetime]] = [[] for _ in range(n)]
        self._wake: list[asyncio.Future[None] | None] = [None] * n
        self._next_hb = [0.0] * n
        self._clients: list[Publisher | None] = [None] * n
        # live events: journal time -> sent, and -> PUBACK (the generator's share of the lag)
        self._sent_lag: list[float] = []
        self._acked_lag: list[float] = []
        # how late the pacer's 5 ms ticks come: the event loop's own delay (CPU starvation)
        self._late: list[float] = []

    async def run(self) -> dict[str, Any]:
        """Connect every device (each sends its first heartbeat), then traffic for ``seconds``."""
        t0 = self.t0 = time.monotonic()
        self.deadline = t0 + self.spec.connect_timeout_s + self.spec.seconds
        self.go = asyncio.Event()
        timer = asyncio.get_running_loop().call_later(self.spec.connect_timeout_s, self._start)
        tasks = [asyncio.create_task(self._device(i)) for i in range(len(self.spec.devices))]
        helpers = [asyncio.create_task(self._ticker()), asyncio.create_task(self._pacer())]
        # bounded: a window still in flight long after the deadline is abandoned (not acked)
        limit = self.spec.connect_timeout_s + self.spec.seconds + self.spec.grace_s
        _done, late = await asyncio.wait(tasks, timeout=limit)
        for t in [*late, *helpers]:
            t.cancel()
        if late:
            await asyncio.wait(late, timeout=10)
        await asyncio.gather(*helpers, return_exceptions=True)
        timer.cancel()
        return {
            "connected": self.connected,
            "traffic_s": time.monotonic() - self.traffic_from if self.traffic_from else 0.0,
            "devices": len(self.spec.devices),
            "acked": [s.acked for s in self.stats],
            "events": sum(s.acked for s in self.stats),
            "heartbeats": sum(s.heartbeats for s in self.stats),
            "reconnects": sum(s.reconnects for s in self.stats),
            "abandoned": len(late),
            "all_connected_s": self.all_connected_s,
            "elapsed_s": time.monotonic() - t0,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "cpu_s": sum(resource.getrusage(resource.RUSAGE_SELF)[:2]),
            "sent_lag_p50": _pct(self._sent_lag, 0.5),
            "sent_lag_p99": _pct(self._sent_lag, 0.99),
            "acked_lag_p99": _pct(self._acked_lag, 0.99),
            "loop_late_p99": _pct(self._late, 0.99),
            "loop_late_max": max(self._late, default=None),
        }

    def _start(self) -> None:
        if not self.go.is_set():
            self.traffic_from = time.monotonic()
            self.deadline = self.traffic_from + self.spec.seconds
            self.go.set()

    def _arrived(self) -> None:
        self.connected += 1
        if self.connected == len(self.spec.devices):
            self.all_connected_s = time.monotonic() - self.t0
            self._start()

    def _poke(self, i: int) -> None:
        w = self._wake[i]
        if w is not None and not w.done():
            w.set_result(None)

    async def _pacer(self) -> None:
        """``rate`` live events/s over all devices, each journaled on a device at random."""
        if not self.spec.rate:
            return
        await self.go.wait()
        rng = random.Random(len(self.spec.devices))
        n = len(self.spec.devices)
        start = time.monotonic()
        made = 0
        while time.monotonic() < self.deadline:
            due = int((time.monotonic() - start) * self.spec.rate) - made
            now = datetime.now(UTC)
            for _ in range(due):
                i = rng.randrange(n)
                self._outbox[i].append(now)
                self._poke(i)
            made += due
            t = time.monotonic()
            await asyncio.sleep(0.005)
            self._late.append(max(0.0, time.monotonic() - t - 0.005))

    async def _ticker(self) -> None:
        """Once a second: wake devices whose heartbeat is due, ping idle connections."""
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            ending = now >= self.deadline
            for i, hb in enumerate(self._next_hb):
                if ending or (hb and now >= hb):
                    self._poke(i)
                c = self._clients[i]
                if c is not None and not c.closed and now - c.last_sent > 20:
                    with contextlib.suppress(MqttError):
                        c.ping()

    async def _device(self, i: int) -> None:
        venue, device = self.spec.devices[i]
        st = self.stats[i]
        rng = random.Random(i)
        seq = 0
        backlog_end = datetime.now(UTC)
        window: list[bytes] = []  # in flight: sent again, the same, after a reconnect
        taken = 0  # live events of the outbox the window holds
        first = True
        topic = topic_events(venue, device)
        b = self.spec.batch
        while time.monotonic() < self.deadline:
            client: Publisher | None = None
            try:
                async with self._connect_gate:
                    client = await Publisher.open(
                        self.spec.port,
                        f"sentinel-{device}",
                        username=device if self.spec.passwords else None,
                        password=self.spec.passwords.get(device),
                    )
                self._clients[i] = client
                if first:
                    first = False
                    await client.publish(
                        topic_heartbeat(venue, device),
                        self._heartbeat(venue, device, self.spec.backlog),
                        retain=True,
                    )
                    st.heartbeats += 1
                    self._arrived()
                    await self.go.wait()
                    self._next_hb[i] = time.monotonic() + self.spec.heartbeat_s * rng.random()
                while time.monotonic() < self.deadline:
                    if time.monotonic() >= self._next_hb[i]:
                        await client.publish(
                            topic_heartbeat(venue, device),
                            self._heartbeat(venue, device, max(0, self.spec.backlog - seq)),
                            retain=True,
                        )
                        st.heartbeats += 1
                        self._next_hb[i] = time.monotonic() + self.spec.heartbeat_s
                    if not window:
                        window, taken = self._fill(i, seq, venue, device, backlog_end)
                    if not window:  # nothing journaled: wait for the pacer or the ticker
                        self._wake[i] = asyncio.get_running_loop().create_future()
                        await self._wake[i]
                        self._wake[i] = None
                        continue
                    # a window in flight, like the device's sender: all acknowledged, or all
                    # sent again (same ids, same times) after a reconnect
                    sent = datetime.now(UTC)
                    if b == 1:
                        futs = [client.publish(topic, p) for p in window]
                    else:
                        chunks = range(0, len(window), b)
                        futs = [
                            client.publish(topic, batch_payload(window[k : k + b])) for k in chunks
                        ]
                    await (futs[0] if len(futs) == 1 else asyncio.gather(*futs))
                    seq += len(window)
                    st.acked = seq
                    if taken:
                        acked = datetime.now(UTC)
                        for t in self._outbox[i][:taken]:
                            self._sent_lag.append((sent - t).total_seconds())
                            self._acked_lag.append((acked - t).total_seconds())
                    del self._outbox[i][:taken]
                    window, taken = [], 0
                return
            except MqttError:
                st.reconnects += 1
                await asyncio.sleep(0.2 + rng.random() * 0.3)
            finally:
                self._clients[i] = None
                if client is not None:
                    client.close()

    def _fill(
        self, i: int, seq: int, venue: str, device: str, backlog_end: datetime
    ) -> tuple[list[bytes], int]:
        """The next window: backlog first, then what the outbox holds (unpaced: made now)."""
        most = self.spec.window * self.spec.batch
        out: list[bytes] = []
        while len(out) < most and seq + len(out) < self.spec.backlog:
            k = seq + len(out)
            # queued while offline: journaled in the last `backlog` seconds
            t = backlog_end - timedelta(seconds=self.spec.backlog - k)
            out.append(self._event(i, k, venue, device, t))
        taken = 0
        if self.spec.rate:
            for t in self._outbox[i][: most - len(out)]:
                out.append(self._event(i, seq + len(out), venue, device, t))
                taken += 1
        else:
            now = datetime.now(UTC)
            while len(out) < most:
                out.append(self._event(i, seq + len(out), venue, device, now))
        return out, taken

    def _event(self, i: int, seq: int, venue: str, device: str, t: datetime) -> bytes:
        live_n = seq - self.spec.backlog
        every = self.spec.alert_every
        if every and live_n >= 0 and live_n % every == every - 1:
            reason = "CODE_RED"
        else:
            reason = REASONS[(i + seq) % (4 if every else len(REASONS))]
        return event_payload(self.spec.run, i, seq, venue, device, t, reason)

    @staticmethod
    def _heartbeat(venue: str, device: str, backlog: int) -> bytes:
        return json.dumps(
            {
                "device_id": device,
                "venue": venue,
                "gate": "g1",
                "time": datetime.now(UTC).isoformat(),
                "bundle_version": "7",
                "bundle_age_s": 60.0,
                "camera": "ok",
                "gate_state": "closed",
                "disk_free_bytes": 10_000_000_000,
                "software": "loadgen",
                "outbox_backlog": backlog,
                "faults": "",
            }
        ).encode()


def count_lost(conn: Any, run: str, acked: list[int]) -> int:
    """Acknowledged events of ``run`` (ids run-<i>-<seq>, seq < acked[i]) missing from
    ``events`` in the PostgreSQL connection ``conn``."""
    row = conn.execute(
        "SELECT count(*) FROM events WHERE event_id LIKE %s AND "
        "split_part(event_id, '-', 3)::int < (%s::int[])[split_part(event_id, '-', 2)::int + 1]",
        (f"{run}-%", acked),
    ).fetchone()
    return sum(acked) - int(row[0])


def device_list(n: int, venues: int) -> list[tuple[str, str]]:
    """``n`` devices spread over ``venues`` venues: ids ``v0003-d0042``."""
    return [(f"v{i % venues:04d}", f"v{i % venues:04d}-d{i:05d}") for i in range(n)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--devices", type=int, default=100)
    ap.add_argument("--venues", type=int, default=0, help="default: devices / 2")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--rate", type=float, default=0, help="events/s offered in total (0: max)")
    ap.add_argument("--backlog", type=int, default=0, help="events queued per device")
    ap.add_argument("--heartbeat-s", type=float, default=30)
    ap.add_argument("--alert-every", type=int, default=0)
    ap.add_argument("--window", type=int, default=50, help="messages in flight per device")
    ap.add_argument("--batch", type=int, default=1, help="events per message (1: v1 format)")
    ap.add_argument("--run", default="run")
    ap.add_argument("--passwords", help="JSON file {device id: password}")
    args = ap.parse_args(argv)
    raise_fd_limit(4 * args.devices + 256)  # socket + paho's wake-up socket pair per client
    spec = Spec(
        port=args.port,
        devices=device_list(args.devices, args.venues or max(1, args.devices // 2)),
        seconds=args.seconds,
        rate=args.rate,
        backlog=args.backlog,
        heartbeat_s=args.heartbeat_s,
        run=args.run,
        passwords=json.loads(Path(args.passwords).read_text()) if args.passwords else {},
        alert_every=args.alert_every,
        window=args.window,
        batch=args.batch,
    )
    summary = asyncio.run(Generator(spec).run())
    json.dump(summary, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
