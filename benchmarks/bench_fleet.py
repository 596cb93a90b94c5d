"""Fleet benchmark on loopback: simulated devices → mosquitto → ingester → PostgreSQL.

    .venv/bin/python benchmarks/bench_fleet.py [--devices 1000] [--events 10] [--report-rows N]

Devices are simulated identities, each with its own SQLite journal+outbox; their backlogs
drain ``--concurrent`` devices (sender connections) at a time, since a thousand paho client
threads in one process would measure this test rig, not the broker and the ingester.
Prints events/s ingested, p50/p99 lag from journal write to PostgreSQL row, peak RSS of
broker and ingester, and the manager report query time over N events.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sentinel.fleet import central  # noqa: E402
from sentinel.fleet.mqtt import BrokerSettings  # noqa: E402
from sentinel.fleet.outbox import Outbox  # noqa: E402
from sentinel.fleet.sender import Sender  # noqa: E402
from sentinel.journal import Event, Journal  # noqa: E402
from tests.servers import Mosquitto, postgres  # noqa: E402


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--events", type=int, default=10)
    ap.add_argument("--concurrent", type=int, default=50, help="devices connected at once")
    ap.add_argument("--report-rows", type=int, default=10_000_000)
    args = ap.parse_args()
    # each simulated device holds ~9 file descriptors (journal, keys, outbox, WAL files)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    tmp = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    broker = Mosquitto(tmp / "mqtt")
    broker.start()
    with postgres() as dsn:
        conn = psycopg.connect(dsn, autocommit=True)
        central.migrate(conn)
        ing = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sentinel",
                "central",
                "ingest",
                "--dsn",
                dsn,
                "--broker",
                f"127.0.0.1:{broker.port}",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert ing.stdout is not None
        ing.stdout.readline()  # "ingesting from ..."
        # journal writes: every device's events into its own SQLite file (journal + outbox
        # in one transaction). Files are closed after writing: paho's select() loop cannot
        # use file descriptors above 1024, and a real device has one journal, not 1,000.
        devices = [f"dev{d:04d}" for d in range(args.devices)]
        total = args.devices * args.events
        t0 = time.perf_counter()
        for dev in devices:
            with Journal(tmp / f"{dev}.db") as j:
                ob = Outbox(j.path, dev)
                j.hooks.append(ob.hook)
                for i in range(args.events):
                    j.record(
                        Event(
                            datetime.now(UTC),
                            f"venue{dev[-2:]}",
                            "g1",
                            "refuse" if i % 4 else "admit",
                            "EXPIRED",
                            "dcc-test",
                        )
                    )
                ob.close()
        t_write = time.perf_counter() - t0
        # Phase A, throughput: every device's backlog drains, --concurrent devices
        # connected at a time.
        t1 = time.perf_counter()
        for k in range(0, len(devices), args.concurrent):
            wave = [
                (Outbox(tmp / f"{dev}.db", dev), dev) for dev in devices[k : k + args.concurrent]
            ]
            senders = [
                Sender(ob, BrokerSettings(port=broker.port), venue="v", device_id=dev)
                for ob, dev in wave
            ]
            for s in senders:
                s.start()
            for s in senders:
                s.drained(300, time.monotonic)
                s.stop()
            for ob, _dev in wave:
                ob.close()
            # paho frees a stopped client's wake-up socket pair only when the client is
            # collected, and its callbacks form reference cycles: collect between waves
            del senders
            gc.collect()
        while int(conn.execute("SELECT count(*) FROM events").fetchone()[0]) < total:
            if time.perf_counter() - t1 > 600:
                print("timeout waiting for ingestion")
                break
            time.sleep(0.1)
        t_ingest = time.perf_counter() - t1
        # Phase B, lag: --concurrent devices online, each journaling live events
        conn.execute("TRUNCATE events")
        journals, live = [], []
        for dev in devices[: args.concurrent]:
            j = Journal(tmp / f"{dev}.db")
            ob = Outbox(j.path, dev)
            j.hooks.append(ob.hook)
            journals.append((j, ob))
            live.append(Sender(ob, BrokerSettings(port=broker.port), venue="v", device_id=dev))
        for s in live:
            s.start()
        n_live = 0
        for _round in range(args.events):
            for j, _ob in journals:
                j.record(
                    Event(datetime.now(UTC), "venue-live", "g1", "refuse", "EXPIRED", "dcc-test")
                )
                n_live += 1
        while int(conn.execute("SELECT count(*) FROM events").fetchone()[0]) < n_live:
            if time.perf_counter() - t1 > 900:
                break
            time.sleep(0.1)
        senders = live
        lags = [
            r[0]
            for r in conn.execute(
                "SELECT extract(epoch FROM ingested_at - time) FROM events"
            ).fetchall()
        ]
        broker_rss = peak_rss_mib(broker.proc.pid) if broker.proc else float("nan")
        ing_rss = peak_rss_mib(ing.pid)
        for s in senders:
            s.stop()
        for j, ob in journals:
            ob.close()
            j.close()
        ing.terminate()
        ing.wait()
        lags_s = sorted(float(x) for x in lags)
        print(
            f"devices {args.devices} x {args.events} events = {total} events "
            f"({args.concurrent} device connections at a time)"
        )
        print(f"journal write (all devices, serial): {total / t_write:,.0f} events/s")
        print(f"ingested: {total / t_ingest:,.0f} events/s end to end ({t_ingest:.1f} s)")
        print(
            f"lag journal write -> PostgreSQL row: p50 {statistics.median(lags_s):.2f} s, "
            f"p99 {lags_s[int(len(lags_s) * 0.99) - 1]:.2f} s ({len(lags_s)} live events "
            f"from {len(live)} connected devices)"
        )
        print(f"peak RSS: broker {broker_rss:.1f} MiB, ingester {ing_rss:.1f} MiB")
        # the report over many events: synthetic rows straight into PostgreSQL
        if args.report_rows:
            now = datetime.now(UTC)
            for k in range(13):
                central.ensure_partitions(conn, (now - timedelta(days=31 * k)).date(), 0)
            t2 = time.perf_counter()
            conn.execute(
                "INSERT INTO events (event_id, device_id, venue, gate, time, decision, reason, "
                "credential_kind, bundle_version) SELECT 'r' || g, 'dev' || (g %% 1000), "
                "'venue' || (g %% 300), 'g' || (g %% 4), now() - (g %% 31536000) * interval "
                "'1 second', CASE WHEN g %% 5 = 0 THEN 'refuse' ELSE 'admit' END, "
                "(ARRAY['EXPIRED','TEST_TOO_OLD','BAD_SIGNATURE','REVOKED'])[1 + g %% 4], "
                "'dcc-test', '7' FROM generate_series(1, %s) g",
                (args.report_rows,),
            )
            conn.execute("ANALYZE events")
            t_load = time.perf_counter() - t2
            conn.execute("INSERT INTO managers VALUES ('alice', 'venue7'), ('alice', 'venue8')")
            times = []
            for _ in range(7):
                t3 = time.perf_counter()
                central.refusals_by_reason(conn, "alice", now - timedelta(days=30), now)
                times.append(time.perf_counter() - t3)
            times_y = []
            for _ in range(3):
                t3 = time.perf_counter()
                central.refusals_by_reason(conn, "alice", now - timedelta(days=365), now)
                times_y.append(time.perf_counter() - t3)
            print(
                f"report over {args.report_rows:,} events (loaded in {t_load:.0f} s): "
                f"manager's 2 venues, 30 days: median {statistics.median(times) * 1000:.1f} ms;"
                f" 365 days: median {statistics.median(times_y) * 1000:.1f} ms"
            )
        conn.close()
    broker.stop()
    os.system(f"rm -rf {tmp}")  # noqa: S605
    return 0


if __name__ == "__main__":
    sys.exit(main())
