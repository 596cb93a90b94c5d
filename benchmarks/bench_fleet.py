"""Fleet benchmark on 127.0.0.1: simulated devices → mosquitto → N ingesters → PostgreSQL.

    nice -n 10 .venv/bin/python benchmarks/bench_fleet.py --ingesters 2 --devices 10000 --seconds 60

Starts its own mosquitto (per-device passwords and ACL, as in production) and a throwaway
PostgreSQL cluster (tests/servers.py), then:

1. offered load: the one-process load generator (sentinel.fleet.loadgen, every device its
   own MQTT client and heartbeats) while the ingesters are away: each device uploads a
   backlog of ``--backlog`` events in v2 messages of up to ``--batch`` events (as a device
   drains its outbox after being offline), then live events at ``--queue-rate`` for
   ``--seconds``; the broker queues for two ingester groups (persistent MQTT 5 sessions
   on shared subscriptions);
2. ingest rate: group "solo" (1 ingester) drains its copy into database ``solo``, then
   group "fleet" (``--ingesters``) drains the same messages into database ``fleet``:
   events/s into PostgreSQL and the 1 → K ratio, separated from the generator's own
   limit, with the CPU the broker, the ingesters and PostgreSQL each used;
3. lag, a separate phase: with the ingesters online, ``--rate`` events/s offered (devices
   send what their outbox holds: at 0.5 event/s per device, one event per message);
   journal-write (event time) to PostgreSQL row (``ingested_at``) p50/p99.  The last
   line's lag is this phase's;
4. crashes: ``--kills`` SIGKILLs of a random ingester while batches flow, each restarted
   with the same client id; lost = acknowledged ids missing, duplicated = extra rows, and
   the roll-ups against a full recount;
5. roll-ups over ``--rollup-events`` events: the hourly roll-up rows those events make,
   synthesised in PostgreSQL with generate_series (not raw event rows), then the city
   pages' queries per level (scope check in SQL included), median and p99.

The last line is ``fleet: <N> events/s into PostgreSQL with <K> ingesters, <D> devices,
lag p99 <L> s, lost <x>, duplicated <y>``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sentinel.fleet import central, city, lagstats, loadgen  # noqa: E402
from sentinel.fleet.brokerauth import write_broker_auth  # noqa: E402
from tests.servers import Mosquitto, postgres  # noqa: E402

# autosave 60 s (the tests' broker saves every second; with ~0.5 GB queued for two groups
# a save per second kept mosquitto busy writing: in one run 595 devices' backlogs and all
# live traffic went unacknowledged)
BROKER_TUNING = "set_tcp_nodelay true\nmax_inflight_messages 0\nautosave_interval 60\n"


def proc_stat(pid: int) -> tuple[float, float]:
    """(peak RSS MiB, CPU seconds) of a live process."""
    rss = float("nan")
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                rss = int(line.split()[1]) / 1024
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return rss, (int(f[11]) + int(f[12])) / 100
    except (OSError, IndexError, ValueError):
        return rss, float("nan")


def cpu_of(pid: int) -> float:
    """CPU seconds (user + system) of a live process, 0 when it is gone."""
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / 100
    except (OSError, IndexError, ValueError):
        return 0.0


def postgres_pids(dsn: str) -> list[int]:
    """The postmaster (from its postmaster.pid) and its children: the server's processes."""
    base = next(kv.split("=", 1)[1] for kv in dsn.split() if kv.startswith("host="))
    root = int((Path(base) / "data" / "postmaster.pid").read_text().split()[0])
    pids = [root]
    for st in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(st.read_text().rsplit(")", 1)[1].split()[1]) == root:
                pids.append(int(st.parent.name))
        except (OSError, IndexError, ValueError):
            pass
    return pids


class CpuMeter:
    """CPU seconds of broker, ingesters and PostgreSQL over a phase: who fills a core."""

    def __init__(self, rig: Rig, dsn: str) -> None:
        self.rig, self.dsn = rig, dsn

    def snap(self) -> dict[str, float]:
        broker = self.rig.broker.proc.pid if self.rig.broker.proc else 0
        return {
            "broker": cpu_of(broker),
            "ingesters": sum(cpu_of(p.pid) for p in self.rig.procs.values()),
            "postgres": sum(cpu_of(p) for p in postgres_pids(self.dsn)),
            "t": time.perf_counter(),
        }

    @staticmethod
    def cores(a: dict[str, float], b: dict[str, float], events: int, extra_s: float = 0) -> str:
        """'broker 0.05 cores (2 µs/event), ...' between snapshots a and b; ``extra_s``:
        CPU seconds of the generator in the same span."""
        wall = max(b["t"] - a["t"], 1e-3)
        parts = []
        total = extra_s
        for k in ("broker", "ingesters", "postgres"):
            d = b[k] - a[k]
            total += d
            parts.append(f"{k} {d / wall:.2f} cores ({d / max(events, 1) * 1e6:.0f} µs/event)")
        per = total / max(events, 1)
        return (
            ", ".join(parts) + f"; all {total / wall:.2f} cores, {per * 1e6:.0f} µs CPU/event "
            f"(= {1 / max(per, 1e-9):,.0f} events/s per core we would have to ourselves)"
        )


def hierarchy_csv(venues: list[str]) -> str:
    """city → up to 10 districts → streets of 50 venues → grids of 10 → communities of 2."""
    lines = ["city,district,street,grid,community,venue"]
    streets = -(-len(venues) // 50)
    for k, v in enumerate(venues):
        district = (k // 50) * min(10, streets) // streets
        lines.append(f"c0,d{district},s{k // 50},g{k // 10},b{k // 2},{v}")
    return "\n".join(lines) + "\n"


class Rig:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
        self.devices = loadgen.device_list(args.devices, args.venues or max(1, args.devices // 2))
        self.fleet_users = [f"central-{k}" for k in range(1, args.ingesters + 1)]
        t = time.perf_counter()
        self.passwords = write_broker_auth(
            self.tmp / "auth", self.devices, ["central-solo", *self.fleet_users]
        )
        (self.tmp / "devices.json").write_text(json.dumps(self.passwords))
        for user in ["central-solo", *self.fleet_users]:
            (self.tmp / f"{user}.pw").write_text(self.passwords[user])
        print(
            f"broker credentials for {len(self.passwords)} users: {time.perf_counter() - t:.1f} s"
        )
        self.broker = Mosquitto(self.tmp / "mqtt", auth_dir=self.tmp / "auth", extra=BROKER_TUNING)
        self.procs: dict[str, subprocess.Popen[str]] = {}
        self.ing_rss = 0.0
        self.ing_cpu = 0.0
        self.gen_rss = 0.0
        self.outputs: dict[str, str] = {}  # the last stdout of each stopped ingester

    def ingester(
        self, user: str, group: str, dsn: str, extra: tuple[str, ...] = ()
    ) -> subprocess.Popen[str]:
        p = subprocess.Popen(
            [sys.executable, "-m", "sentinel", "central", "ingest", "--dsn", dsn,
             "--broker", f"127.0.0.1:{self.broker.port}", "--client-id", user,
             "--group", group, "--username", user,
             "--batch-wait-ms", str(self.args.batch_wait_ms),
             "--compact-every-s", str(self.args.compact_every_s),
             "--password-file", str(self.tmp / f"{user}.pw"), *extra],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert p.stdout is not None
        line = p.stdout.readline()
        assert line.startswith("ingesting"), line
        self.procs[user] = p
        return p

    def sample(self, user: str) -> None:
        p = self.procs.get(user)
        if p is not None and p.poll() is None:
            self.ing_rss = max(self.ing_rss, proc_stat(p.pid)[0])

    def stop(self, user: str, sig: int = signal.SIGTERM) -> str:
        p = self.procs.pop(user)
        rss, cpu = proc_stat(p.pid)
        self.ing_rss = max(self.ing_rss, rss)
        self.ing_cpu += cpu if cpu == cpu else 0.0
        p.send_signal(sig)
        out = p.communicate(timeout=60)[0]
        self.outputs[user] = out
        return out.strip().splitlines()[-1] if out.strip() else ""

    def generate(self, run: str, seconds: float, **kw: Any) -> dict[str, Any]:
        cmd = [sys.executable, "-m", "sentinel.fleet.loadgen", "--port", str(self.broker.port),
               "--devices", str(kw.get("devices", self.args.devices)),
               "--venues", str(self.args.venues or max(1, self.args.devices // 2)),
               "--seconds", str(seconds), "--run", run,
               "--passwords", str(self.tmp / "devices.json"),
               "--rate", str(kw.get("rate", 0)), "--backlog", str(kw.get("backlog", 0)),
               "--window", str(kw.get("window", self.args.window)),
               "--batch", str(kw.get("batch", self.args.batch))]  # fmt: skip
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        summary = json.loads(out.stdout)
        self.gen_rss = max(self.gen_rss, summary["peak_rss_mib"])
        return summary


def wait_rows(conn: psycopg.Connection[Any], run: str, want: int, limit_s: float) -> float:
    """Seconds until ``want`` rows of ``run`` are in, or ``limit_s`` passed."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < limit_s:
        (n,) = conn.execute(
            "SELECT count(*) FROM events WHERE event_id LIKE %s", (f"{run}-%",)
        ).fetchone()
        if n >= want:
            break
        time.sleep(1.0)  # a count over a million rows costs the server: not too often
    return time.perf_counter() - t0


def drain_rate(conn: psycopg.Connection[Any], run: str) -> float:
    """Rows per second over the span of their ingested_at (first to last row)."""
    n, span = conn.execute(
        "SELECT count(*), extract(epoch FROM max(ingested_at) - min(ingested_at)) "
        "FROM events WHERE event_id LIKE %s",
        (f"{run}-%",),
    ).fetchone()
    return float(n) / max(float(span or 0), 1e-3)


def duplicated(conn: psycopg.Connection[Any]) -> int:
    rows, distinct, rolled = conn.execute(
        "SELECT count(*), count(DISTINCT event_id), "
        "(SELECT coalesce(sum(n), 0) FROM rollup_hourly WHERE level = 5) "
        "+ (SELECT coalesce(sum(n), 0) FROM rollup_delta) FROM events"
    ).fetchone()
    return int(rows - distinct) + abs(int(rolled) - int(rows))


def rollup_bench(dsn: str, events: int, venues: int, samples: int) -> list[str]:
    """Synthesised roll-ups of ``events`` events over a year; per-level query timings."""
    out = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        central.migrate(conn)
        names = [f"rv{k:05d}" for k in range(venues)]
        city.import_hierarchy(conn, hierarchy_csv(names))
        hours = 365 * 24
        end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        t0 = end - timedelta(hours=hours)
        cells = venues * hours
        base, extra = divmod(events, cells)
        t = time.perf_counter()
        conn.execute("ALTER TABLE rollup_hourly DROP CONSTRAINT rollup_hourly_pkey")
        conn.execute(
            "INSERT INTO rollup_hourly (level, area, hour, decision, reason, n) "
            "SELECT 5, 'rv' || lpad(v::text, 5, '0'), %s::timestamptz + h * interval '1 hour', "
            "CASE WHEN (v + h) %% 6 = 5 THEN 'admit' ELSE 'refuse' END, "
            "(ARRAY['EXPIRED','TEST_TOO_OLD','REVOKED','BAD_SIGNATURE','CODE_RED','ADMIT'])"
            "[1 + (v + h) %% 6], %s + CASE WHEN v::bigint * %s + h < %s THEN 1 ELSE 0 END "
            "FROM generate_series(0, %s - 1) v, generate_series(0, %s - 1) h",
            (t0, base, hours, extra, venues, hours),
        )
        conn.execute(
            "INSERT INTO rollup_hourly (level, area, hour, decision, reason, n) "
            "SELECT l, p.path[l + 1], r.hour, r.decision, r.reason, sum(r.n) "
            "FROM rollup_hourly r JOIN venue_places p ON p.venue = r.area "
            "CROSS JOIN generate_series(0, 4) l WHERE r.level = 5 GROUP BY 1, 2, 3, 4, 5"
        )
        conn.execute(
            "ALTER TABLE rollup_hourly ADD PRIMARY KEY (level, area, hour, decision, reason, shard)"
        )
        conn.execute("ALTER TABLE rollup_daily DROP CONSTRAINT rollup_daily_pkey")
        conn.execute(
            "INSERT INTO rollup_daily SELECT level, area, (hour AT TIME ZONE 'UTC')::date, "
            "decision, reason, sum(n) FROM rollup_hourly GROUP BY 1, 2, 3, 4, 5"
        )
        conn.execute(
            "ALTER TABLE rollup_daily ADD PRIMARY KEY (level, area, day, decision, reason, shard)"
        )
        conn.execute("VACUUM ANALYZE")
        load_s = time.perf_counter() - t
        # and what the ingesters have not folded yet: 1 s of live traffic at 5,000 events/s,
        # one event per message (each its own delta row), added after the total is checked
        conn.execute(
            "INSERT INTO rollup_delta (shard, venue, hour, decision, reason, n) "
            "SELECT g %% 2, 'rv' || lpad((g %% %s)::text, 5, '0'), %s, 'refuse', 'EXPIRED', 1 "
            "FROM generate_series(1, 5000) g",
            (venues, end - timedelta(hours=1)),
        )
        conn.execute("ANALYZE rollup_delta")
        per_level = conn.execute(
            "SELECT level, sum(n), count(*) FROM rollup_hourly GROUP BY 1 UNION ALL "
            "SELECT level, sum(n), count(*) FROM rollup_daily GROUP BY 1"
        ).fetchall()
        assert all(int(s) == events for _l, s, _c in per_level), per_level
        n_rows = sum(int(c) for _l, _s, c in per_level)
        out.append(
            f"roll-ups of {events:,} events over 365 days, {venues} venues: {n_rows:,} hourly "
            f"and daily roll-up rows synthesised in PostgreSQL with generate_series "
            f"({load_s:.0f} s; not raw event rows); every level sums to the same total; "
            f"plus 5,000 unfolded roll-up deltas the readers add (1 s at 5,000 events/s: "
            f"the ingesters fold every second)"
        )
        rng = random.Random(7)
        for level in range(6):
            areas = [r[0] for r in conn.execute("SELECT id FROM areas WHERE level = %s", (level,))]
            times = []
            for i in range(samples):
                area = rng.choice(areas)
                user = f"office-{level}-{i}"
                city.add_scope(conn, user, city.LEVELS[level], area)
                q0 = time.perf_counter()
                whole = city.area_counts(conn, user, level, area, t0, end)
                kids = city.drill_down(conn, user, level, area, end - timedelta(days=30), end, end)
                times.append(time.perf_counter() - q0)
                assert whole is not None and whole.total > 0
                assert level == 5 or kids
            times.sort()
            out.append(
                f"roll-up report, {city.LEVELS[level]:<9} (365-day total + 30-day drill-down, "
                f"{samples} offices): median {statistics.median(times) * 1000:.1f} ms, "
                f"p99 {times[min(len(times) - 1, int(len(times) * 0.99))] * 1000:.1f} ms"
            )
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ingesters", type=int, default=2)
    ap.add_argument("--devices", type=int, default=10_000)
    ap.add_argument("--venues", type=int, default=0, help="default: devices / 2")
    ap.add_argument("--seconds", type=float, default=60, help="offered-load phase")
    ap.add_argument("--backlog", type=int, default=100, help="events queued per device")
    ap.add_argument("--window", type=int, default=5, help="messages in flight per device")
    ap.add_argument("--batch", type=int, default=100, help="most events per message (v2)")
    ap.add_argument(
        "--queue-rate", type=float, default=2000, help="live events/s after the backlogs"
    )
    ap.add_argument("--rate", type=float, default=5000, help="lag phase: events/s offered")
    ap.add_argument("--lag-seconds", type=float, default=30)
    ap.add_argument(
        "--batch-wait-ms", type=float, default=100, help="ingesters: longest batch gather"
    )
    ap.add_argument(
        "--compact-every-s", type=float, default=1.0, help="ingesters: roll-up delta fold"
    )
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--kill-every", type=float, default=2.5)
    ap.add_argument("--kill-devices", type=int, default=1000)
    ap.add_argument("--rollup-events", type=int, default=100_000_000)
    ap.add_argument("--rollup-venues", type=int, default=1000)
    ap.add_argument("--rollup-samples", type=int, default=50)
    args = ap.parse_args()
    fds = loadgen.raise_fd_limit(4 * args.devices + 4096)  # the broker inherits it too
    print(
        f"open files limit {fds}; machine shared (2 cores, load average "
        f"{os.getloadavg()[0]:.1f} at the start), figures from one run"
    )
    rig = Rig(args)
    rig.broker.start()
    try:
        return run(args, rig)
    finally:
        for p in rig.procs.values():
            p.kill()
        rig.broker.stop()
        shutil.rmtree(rig.tmp, ignore_errors=True)


def run(args: argparse.Namespace, rig: Rig) -> int:
    lines: list[str] = []
    # PostgreSQL's durable defaults (fsync, synchronous_commit on): a row acknowledged to the
    # broker after COMMIT survives a crash of the machine, not only of the process
    lines.append(
        "PostgreSQL: fsync on, synchronous_commit on (durable defaults); ingesters ack after COMMIT"
    )
    with postgres(durable=True) as base_dsn:
        dsns = {}
        with psycopg.connect(base_dsn, autocommit=True) as admin:
            for name in ("solo", "fleet", "rollup"):
                admin.execute(f"CREATE DATABASE {name}")
                dsns[name] = base_dsn.replace("dbname=postgres", f"dbname={name}")
        venues = sorted({v for v, _d in rig.devices})
        for name in ("solo", "fleet"):
            with psycopg.connect(dsns[name], autocommit=True) as c:
                central.migrate(c)
                city.import_hierarchy(c, hierarchy_csv(venues))
        solo = psycopg.connect(dsns["solo"], autocommit=True)
        fleet = psycopg.connect(dsns["fleet"], autocommit=True)
        # 0. sessions and shared subscriptions exist, then every ingester goes away
        rig.ingester("central-solo", "solo", dsns["solo"])
        for u in rig.fleet_users:
            rig.ingester(u, "fleet", dsns["fleet"])
        for u in list(rig.procs):
            rig.stop(u)
        # 1. offered load, queued by the broker for both groups: every device uploads a
        #    backlog (v2 batches of --batch events), then live events at --queue-rate
        g = rig.generate(
            "q", args.seconds, backlog=args.backlog, rate=args.queue_rate, batch=args.batch
        )
        offered = g["events"]
        lines.append(
            f"generator: {g['connected']}/{args.devices} devices connected in "
            f"{g['all_connected_s'] or float('nan'):.1f} s, each its own client id, "
            f"credentials and heartbeat; {offered:,} events ({args.backlog} backlog per "
            f"device, up to {args.batch} per message, then {args.queue_rate:,.0f}/s live) "
            f"acknowledged by the broker in {g['traffic_s']:.1f} s "
            f"({offered / max(g['traffic_s'], 1e-3):,.0f} events/s offered, one process, "
            f"{g['cpu_s'] / max(offered, 1) * 1e6:.0f} µs CPU/event); "
            f"{g['heartbeats']:,} heartbeats, {g['reconnects']} reconnects"
        )
        # 2. drain: 1 ingester, then K ingesters, the same queued messages
        meter = CpuMeter(rig, base_dsn)
        c0 = meter.snap()
        rig.ingester("central-solo", "solo", dsns["solo"])
        wait_rows(solo, "q", offered, 1800)
        c1 = meter.snap()
        rig.stop("central-solo")
        rate1 = drain_rate(solo, "q")
        lost1 = loadgen.count_lost(solo, "q", g["acked"])
        solo.close()
        c2 = meter.snap()
        for u in rig.fleet_users:
            rig.ingester(u, "fleet", dsns["fleet"])
        wait_rows(fleet, "q", offered, 1800)
        c3 = meter.snap()
        rate_k = drain_rate(fleet, "q")
        lost_k = loadgen.count_lost(fleet, "q", g["acked"])
        lines.append(
            f"ingest (queued messages drained into PostgreSQL): 1 ingester {rate1:,.0f} "
            f"events/s, {args.ingesters} ingesters {rate_k:,.0f} events/s, ratio 1 -> "
            f"{args.ingesters}: {rate_k / max(rate1, 1e-9):.2f}"
        )
        lines.append(f"CPU while 1 ingester drained: {meter.cores(c0, c1, offered)}")
        lines.append(
            f"CPU while {args.ingesters} ingesters drained: {meter.cores(c2, c3, offered)}"
        )
        # 3. lag at --rate offered (a separate phase), ingesters online: every device
        #    sends what its outbox holds (one event per message at this rate, mostly)
        #    (ingesters restarted with --lag-stats: per-event journal -> commit, and its split)
        for u in rig.fleet_users:
            rig.sample(u)
            rig.stop(u)
            rig.ingester(u, "fleet", dsns["fleet"], ("--lag-stats",))
        c4 = meter.snap()
        g_lag = rig.generate("lag", args.lag_seconds, rate=args.rate, batch=args.batch)
        wait_rows(fleet, "lag", g_lag["events"], 600)
        c5 = meter.snap()
        for u in rig.fleet_users:
            rig.sample(u)
            rig.stop(u)
            rig.ingester(u, "fleet", dsns["fleet"])
        split = lagstats.merge(
            line.split(" ", 1)[1]
            for u in rig.fleet_users
            for line in rig.outputs.get(u, "").splitlines()
            if line.startswith("lag-stats ")
        )
        lags = [
            float(r[0])
            for r in fleet.execute(
                "SELECT extract(epoch FROM ingested_at - time) FROM events "
                "WHERE event_id LIKE 'lag-%' ORDER BY 1"
            )
        ]
        sql_p99 = lags[min(len(lags) - 1, int(len(lags) * 0.99))] if lags else float("nan")
        total_p99 = lagstats.percentile(split["total"], 0.99)
        p99 = total_p99 if total_p99 is not None else sql_p99

        def pp(kind: str) -> str:
            a, b = (lagstats.percentile(split[kind], q) for q in (0.5, 0.99))
            return "n/a" if a is None or b is None else f"p50 {a:.3f} s, p99 {b:.3f} s"

        lost_lag = loadgen.count_lost(fleet, "lag", g_lag["acked"])
        lag_offered = g_lag["events"] / max(g_lag["traffic_s"], 1e-3)
        lines.append(
            f"lag journal write -> row committed in PostgreSQL at {args.rate:,.0f} events/s "
            f"asked ({lag_offered:,.0f} events/s offered by {g_lag['connected']} devices, "
            f"generator {g_lag['cpu_s'] / max(g_lag['elapsed_s'], 1e-3):.2f} cores), per "
            f"event, measured by the ingesters after COMMIT: {pp('total')} "
            f"({sum(split['total'].values()):,} events; the last line's lag is this p99)"
        )
        lines.append(
            f"lag split: generator (journal time -> sent) p50 {g_lag['sent_lag_p50'] or 0:.3f}"
            f" s, p99 {g_lag['sent_lag_p99'] or 0:.3f} s, its event loop late by p99 "
            f"{g_lag['loop_late_p99'] or 0:.3f} s (max {g_lag['loop_late_max'] or 0:.3f} s); "
            f"journal -> at the ingester (generator + broker) {pp('arrive')}; at the ingester "
            f"-> its transaction begins (batching) {pp('wait')}; PostgreSQL (COPY + statement "
            f"+ COMMIT) {pp('pg')}; for comparison ingested_at - time in SQL (ingested_at is "
            f"the transaction's start) p50 {statistics.median(lags):.3f} s, p99 "
            f"{sql_p99:.3f} s ({len(lags):,} rows)"
        )
        lines.append(
            f"CPU in the lag phase (generator {g_lag['cpu_s']:.0f} s with its connects): "
            f"{meter.cores(c4, c5, g_lag['events'], g_lag['cpu_s'])}"
        )
        for u in rig.fleet_users:
            rig.sample(u)
        # 4. SIGKILL an ingester --kills times while batches flow
        kill_s = args.kills * args.kill_every * 1.5 + 15  # traffic outlasts the last kill
        gen = subprocess.Popen(
            [sys.executable, "-m", "sentinel.fleet.loadgen", "--port", str(rig.broker.port),
             "--devices", str(min(args.kill_devices, args.devices)),
             "--venues", str(args.venues or max(1, args.devices // 2)),
             "--seconds", str(kill_s), "--run", "kill", "--rate", str(args.rate / 2),
             "--window", str(args.window), "--batch", str(args.batch),
             "--passwords", str(rig.tmp / "devices.json")],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        rng = random.Random(1)
        wait_rows(fleet, "kill", 1, 180)
        flowing = 0
        for _k in range(args.kills):
            time.sleep(args.kill_every * (0.5 + rng.random()))
            victim = rng.choice(rig.fleet_users)
            rig.sample(victim)
            (before,) = fleet.execute("SELECT count(*) FROM events").fetchone()
            rig.stop(victim, signal.SIGKILL)
            time.sleep(0.3)
            (after,) = fleet.execute("SELECT count(*) FROM events").fetchone()
            flowing += after > before  # rows still arriving: the kill hit a live stream
            rig.ingester(victim, "fleet", dsns["fleet"])
        g_kill = json.loads(gen.communicate(timeout=900)[0])
        rig.gen_rss = max(rig.gen_rss, g_kill["peak_rss_mib"])
        wait_rows(fleet, "kill", g_kill["events"], 600)
        time.sleep(1.0)  # a last redelivery may still be on its way: it must change nothing
        lost_kill = loadgen.count_lost(fleet, "kill", g_kill["acked"])
        summaries = [rig.stop(u) for u in list(rig.procs)]
        dup = duplicated(fleet)
        rollups_ok = city.stored_rollups(fleet) == city.recount(fleet)
        broker_rss, broker_cpu = proc_stat(rig.broker.proc.pid) if rig.broker.proc else (0, 0)
        lines.append(
            f"crashes: {args.kills} SIGKILLs of an ingester ({flowing} while rows were "
            f"still arriving) while {g_kill['connected']} "
            f"devices sent {g_kill['events']:,} events: lost {lost_kill}, duplicated {dup} "
            f"(rows vs distinct ids vs venue roll-ups), roll-ups = full recount: {rollups_ok}; "
            f"restarted ingesters: {'; '.join(s for s in summaries if s)}"
        )
        lines.append(
            f"peak RSS: generator {rig.gen_rss:.0f} MiB ({args.devices} clients), broker "
            f"{broker_rss:.0f} MiB, ingester {rig.ing_rss:.0f} MiB (largest); CPU: broker "
            f"{broker_cpu:.0f} s, ingesters {rig.ing_cpu:.0f} s in all phases"
        )
        fleet.close()
        if args.rollup_events:
            lines += rollup_bench(
                dsns["rollup"], args.rollup_events, args.rollup_venues, args.rollup_samples
            )
    for line in lines:
        print(line)
    lost = lost1 + lost_k + lost_lag + lost_kill
    print(
        f"fleet: {rate_k:.0f} events/s into PostgreSQL with {args.ingesters} ingesters, "
        f"{args.devices} devices, lag p99 {p99:.2f} s, lost {lost}, duplicated {dup}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
