"""City view with real parts: hierarchy and scopes in SQL, roll-ups against a full recount,
shared-subscription ingesters (one killed between commit and ack, one SIGKILLed mid-stream),
and alerts to the street office.  Tens of devices: the big numbers are bench_fleet.py's.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
import pytest

from sentinel.errors import FleetError
from sentinel.fleet import alerts, central, city, lagstats, loadgen
from sentinel.fleet.ingest import Batch, Ingester, parse_event, parse_topic
from sentinel.fleet.mqtt import BrokerSettings
from sentinel.fleet.wire import batch_payload
from tests.servers import Mosquitto, postgres
from tests.test_fleet import until

FAST = "set_tcp_nodelay true\n"
CSV = """city,district,street,grid,community,venue,street_name
sh,huangpu,nanjing-rd,g1,c1,v0000,Nanjing Road
sh,huangpu,nanjing-rd,g1,c2,v0001,Nanjing Road
sh,huangpu,bund-st,g2,c3,v0002,The Bund
sh,xuhui,hengshan-rd,g3,c4,v0003,Hengshan Road
sh,xuhui,hengshan-rd,g3,c4,v0004,Hengshan Road
"""
NOW = datetime.now(UTC)


@pytest.fixture(scope="module")
def pg_dsn() -> Iterator[str]:
    with postgres() as dsn:
        yield dsn


@pytest.fixture
def db(pg_dsn: str) -> Iterator[psycopg.Connection]:
    conn = psycopg.connect(pg_dsn, autocommit=True)
    central.migrate(conn)
    conn.execute(
        "TRUNCATE events, devices, managers, central_audit, rollup_hourly, rollup_daily, "
        "rollup_delta, alerts, areas, venue_places, office_scopes"
    )
    city.import_hierarchy(conn, CSV)
    city.add_scope(conn, "office-nanjing", "street", "nanjing-rd")
    city.add_scope(conn, "office-hengshan", "street", "hengshan-rd")
    city.add_scope(conn, "office-huangpu", "district", "huangpu")
    yield conn
    conn.close()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    b = Mosquitto(tmp_path / "mqtt", extra=FAST)
    b.start()
    yield b
    b.stop()


def event(venue: str, k: int, reason: str = "EXPIRED", t: datetime | None = None) -> tuple:
    doc = loadgen.event_payload("t", k, k, venue, f"{venue}-d", t or NOW, reason)
    return parse_event(doc, parse_topic(f"sentinel/{venue}/{venue}-d/events"))


def write(pg_dsn: str, rows: list[tuple], fold: bool = True) -> None:
    """Through the ingester's own batch statement (no broker needed here); ``fold``: then
    fold the roll-up deltas into the roll-ups, as the ingester does every second."""
    ing = Ingester(pg_dsn, BrokerSettings(port=1))
    ing._commit(Batch(events=rows))
    if fold:
        ing.compact()
    ing.db.close()


def test_hierarchy_import_refuses_inconsistency(db: psycopg.Connection) -> None:
    for bad in (
        CSV + "sh,xuhui,nanjing-rd,g9,c9,v0009\n",  # a street under two districts
        "city,district,street,grid,venue\nsh,h,s,g,v\n",  # no community column
        CSV + "sh,huangpu,bund-st,g2,c3,v 9\n",  # a space in an id
    ):
        with pytest.raises(FleetError):
            city.import_hierarchy(db, bad)
    assert db.execute("SELECT count(*) FROM venue_places").fetchone()[0] == 5  # unchanged
    assert city.parent_chain(db, 5, "v0002") == [
        (0, "sh"),
        (1, "huangpu"),
        (2, "bund-st"),
        (3, "g2"),
        (4, "c3"),
        (5, "v0002"),
    ]


def test_office_sees_only_its_subtree_in_sql(db: psycopg.Connection, pg_dsn: str) -> None:
    write(pg_dsn, [event(f"v000{i % 5}", i, "REVOKED" if i % 2 else "ADMIT") for i in range(50)])
    start, end = NOW - timedelta(hours=2), NOW + timedelta(hours=1)
    assert central.manager_venues(db, "office-nanjing") == ["v0000", "v0001"]
    assert central.manager_venues(db, "office-huangpu") == ["v0000", "v0001", "v0002"]
    assert central.manager_venues(db, "stranger") == []
    # the street office sees its street and below, never the district or city above it
    assert city.area_counts(db, "office-nanjing", 0, "sh", start, end) is None
    assert city.area_counts(db, "office-nanjing", 1, "huangpu", start, end) is None
    assert city.area_counts(db, "office-nanjing", 2, "bund-st", start, end) is None
    assert city.drill_down(db, "office-nanjing", 1, "huangpu", start, end, NOW) == []
    own = city.area_counts(db, "office-nanjing", 2, "nanjing-rd", start, end)
    assert own is not None and own.total == 20 and own.name == "Nanjing Road"
    kids = city.drill_down(db, "office-nanjing", 2, "nanjing-rd", start, end, NOW)
    assert [(k.area, k.total) for k in kids] == [("g1", 20)]
    venue = city.area_counts(db, "office-nanjing", 5, "v0001", start, end)
    assert venue is not None and venue.refused == 5 and venue.by_reason == [("REVOKED", 5)]
    assert city.area_counts(db, "office-nanjing", 5, "v0003", start, end) is None
    # the district office drills into both its streets; the auditor (None) sees the city
    d = city.drill_down(db, "office-huangpu", 1, "huangpu", start, end, NOW)
    assert [(k.area, k.total) for k in d] == [("bund-st", 10), ("nanjing-rd", 20)]
    top = city.drill_down(db, None, 0, "sh", start, end, NOW)
    assert [(k.area, k.total) for k in top] == [("huangpu", 30), ("xuhui", 20)]
    # the same rule straight in SQL
    assert db.execute("SELECT area_visible('office-nanjing', 0, 'sh')").fetchone() == (False,)
    assert db.execute("SELECT area_visible('office-huangpu', 4, 'c3')").fetchone() == (True,)


def test_rollups_match_a_full_recount_even_with_redelivery(
    db: psycopg.Connection, pg_dsn: str
) -> None:
    rows = [event(f"v000{i % 6}", i, t=NOW - timedelta(minutes=37 * i)) for i in range(300)]
    write(pg_dsn, rows[:200], fold=False)
    assert city.stored_rollups(db) == city.recount(db)  # the deltas, not folded yet
    write(pg_dsn, rows[100:])  # 100 redelivered: must change nothing
    assert db.execute("SELECT count(*) FROM rollup_delta").fetchone() == (0,)  # all folded
    assert db.execute("SELECT count(*) FROM events").fetchone()[0] == 300
    assert city.stored_rollups(db) == city.recount(db)
    assert city.stored_rollups(db, "day") == city.recount(db, "day")
    # windows cutting days and hours: whole days from rollup_daily, edges from rollup_hourly
    hour = NOW.replace(minute=0, second=0, microsecond=0)
    for back, length in ((0, 1), (5, 3), (30, 50), (100, 80), (190, 200)):
        start = hour - timedelta(hours=back + length) + timedelta(hours=1)
        end = start + timedelta(hours=length)
        (want,) = db.execute(
            "SELECT count(*) FROM events WHERE venue <> 'v0005' AND time >= %s AND time < %s",
            (start, end),
        ).fetchone()
        got = city.area_counts(db, None, 0, "sh", start, end)
        assert got is not None and got.total == want, (back, length)
    # v0005 is outside the hierarchy: counted at venue level only
    got = db.execute(
        "SELECT level, sum(n) FROM rollup_hourly WHERE area IN ('v0005', 'sh') GROUP BY 1"
    ).fetchall()
    assert sorted((int(a), int(b)) for a, b in got) == [(0, 250), (5, 50)]


def test_readers_add_unfolded_deltas_and_the_fold_changes_no_figure(
    db: psycopg.Connection, pg_dsn: str
) -> None:
    rows = [event(f"v000{i % 5}", i, t=NOW - timedelta(minutes=53 * i)) for i in range(200)]
    write(pg_dsn, rows[:120])
    write(pg_dsn, rows[80:], fold=False)  # 40 redelivered, 80 new still as deltas
    assert db.execute("SELECT count(*) FROM rollup_delta").fetchone()[0] > 0
    hour = NOW.replace(minute=0, second=0, microsecond=0)
    windows = [(hour - timedelta(hours=h), NOW + timedelta(hours=1)) for h in (2, 30, 200)]
    areas = [(0, "sh"), (1, "huangpu"), (2, "nanjing-rd"), (3, "g3"), (4, "c4"), (5, "v0001")]

    def figures() -> list:
        out = []
        for start, end in windows:
            for lvl, a in areas:
                whole = city.area_counts(db, None, lvl, a, start, end)
                kids = city.drill_down(db, None, lvl, a, start, end, NOW)
                assert whole is not None
                out.append((whole.total, whole.refused, sorted((k.area, k.total) for k in kids)))
        return out

    before = figures()
    start, end = windows[2]  # 200 hours: every event, 80 of them only as deltas
    (want,) = db.execute(
        "SELECT count(*) FROM events WHERE time >= %s AND time < %s", (start, end)
    ).fetchone()
    assert before[2 * len(areas)][0] == want == 200  # the city's total counts the deltas
    folder = Ingester(pg_dsn, BrokerSettings(port=1))  # any run of the same shard folds them
    folder.compact()
    folder.db.close()
    assert db.execute("SELECT count(*) FROM rollup_delta").fetchone() == (0,)
    assert figures() == before
    assert city.stored_rollups(db) == city.recount(db)
    assert city.stored_rollups(db, "day") == city.recount(db, "day")


def run_devices(port: int, n: int, seconds: float, **kw) -> dict:
    spec = loadgen.Spec(port=port, devices=loadgen.device_list(n, 5), seconds=seconds, **kw)
    return asyncio.run(loadgen.Generator(spec).run())


def lost(db: psycopg.Connection, run: str, acked: list[int]) -> int:
    return loadgen.count_lost(db, run, acked)


def test_two_ingesters_share_the_stream_and_roll_up_exactly(
    db: psycopg.Connection, pg_dsn: str, broker: Mosquitto
) -> None:
    ings = [
        Ingester(pg_dsn, BrokerSettings(port=broker.port), client_id=f"c{k}", lag_stats=True)
        for k in (1, 2)
    ]
    for ing in ings:
        ing.start()
        assert ing.conn.subscribed.wait(20)
    try:
        out = run_devices(broker.port, 20, 1.5, backlog=15, run="s", window=5)
        assert out["connected"] == 20 and out["events"] >= 300
        assert until(lambda: sum(i.ingested for i in ings) >= out["events"], 30)
        assert all(i.ingested > 0 for i in ings), [i.ingested for i in ings]  # split
        assert lost(db, "s", out["acked"]) == 0
        assert db.execute("SELECT count(*) FROM devices").fetchone()[0] == 20
        assert city.stored_rollups(db) == city.recount(db)
        assert city.stored_rollups(db, "day") == city.recount(db, "day")
        # the running ingesters fold their deltas by themselves (every second)
        assert until(lambda: db.execute("SELECT count(*) FROM rollup_delta").fetchone()[0] == 0)
        assert all(i.compactions > 0 for i in ings)
        assert city.stored_rollups(db) == city.recount(db)
        # every committed event has its lag, and journal -> commit is its parts' sum
        hist = lagstats.merge(i.lag.to_json() for i in ings if i.lag is not None)
        assert sum(hist["total"].values()) == sum(hist["arrive"].values()) == out["events"]
        assert sum(hist["wait"].values()) == sum(hist["pg"].values()) == out["events"]
        p = {k: lagstats.percentile(h, 0.5) for k, h in hist.items()}
        assert p["total"] >= max(p["arrive"], p["wait"], p["pg"]), p
    finally:
        for ing in ings:
            ing.stop()


def cli_ingester(
    dsn: str, port: int, cid: str, env: dict | None = None, batch: int = 1000
) -> subprocess.Popen:
    p = subprocess.Popen(
        [sys.executable, "-m", "sentinel", "central", "ingest", "--dsn", dsn]
        + ["--broker", f"127.0.0.1:{port}", "--client-id", cid, "--batch-max", str(batch)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    assert p.stdout is not None and p.stdout.readline().startswith("ingesting")
    return p


def publish(port: int, rows: list[bytes], venue: str) -> None:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="pub")
    c.connect("127.0.0.1", port)
    c.loop_start()
    infos = [c.publish(f"sentinel/{venue}/{venue}-d/events", r, qos=1) for r in rows]
    for info in infos:
        info.wait_for_publish(10)
    c.disconnect()
    c.loop_stop()


@pytest.mark.parametrize("per_message", [1, 10], ids=["v1", "v2-batches"])
def test_crash_between_commit_and_ack_duplicates_nothing(
    db: psycopg.Connection, pg_dsn: str, broker: Mosquitto, per_message: int
) -> None:
    crash = cli_ingester(
        pg_dsn, broker.port, "c1", {"SENTINEL_TEST_INGEST_DIE_AFTER_COMMIT": "1"}, batch=100
    )
    payloads = [
        loadgen.event_payload("k", 0, i, "v0000", "v0000-d", NOW, "REVOKED") for i in range(400)
    ]
    if per_message > 1:  # v2: one PUBACK covers ten events, acknowledged after the commit
        n = per_message
        payloads = [batch_payload(payloads[k : k + n]) for k in range(0, 400, n)]
    publish(broker.port, payloads, "v0000")
    assert crash.wait(30) == 137  # died right after its first commit, before any PUBACK
    crash.communicate()
    committed = db.execute("SELECT count(*) FROM events").fetchone()[0]
    assert 0 < committed <= 100
    again = cli_ingester(pg_dsn, broker.port, "c1")  # same id: the broker redelivers
    try:
        assert until(lambda: db.execute("SELECT count(*) FROM events").fetchone()[0] == 400)
    finally:
        again.send_signal(signal.SIGTERM)
        summary = again.communicate(timeout=30)[0]
    assert f"redelivered {committed}" in summary  # every committed one came again: skipped
    assert city.stored_rollups(db) == city.recount(db)
    assert city.stored_rollups(db, "day") == city.recount(db, "day")
    n_alerts = db.execute("SELECT count(*), count(DISTINCT event_id) FROM alerts").fetchone()
    assert n_alerts == (400, 400)


@pytest.mark.parametrize("batch", [1, 20], ids=["v1", "v2-batches"])
def test_sigkill_mid_stream_loses_nothing(
    db: psycopg.Connection, pg_dsn: str, broker: Mosquitto, batch: int
) -> None:
    procs = {cid: cli_ingester(pg_dsn, broker.port, cid) for cid in ("c1", "c2")}
    result: dict = {}
    kw = {"rate": 400, "run": "x", "window": 5, "batch": batch, "backlog": 60 if batch > 1 else 0}
    gen = threading.Thread(target=lambda: result.update(run_devices(broker.port, 20, 3.0, **kw)))
    gen.start()
    try:
        assert until(lambda: db.execute("SELECT count(*) FROM events").fetchone()[0] > 100)
        procs["c1"].kill()  # SIGKILL while batches are flowing
        procs["c1"].communicate()
        procs["c1"] = cli_ingester(pg_dsn, broker.port, "c1")
        gen.join(60)
        total = sum(result["acked"])
        assert total > 300
        assert until(lambda: lost(db, "x", result["acked"]) == 0, 30)
    finally:
        for p in procs.values():
            p.kill()
            p.communicate()
    dup = db.execute("SELECT count(*) - count(DISTINCT event_id) FROM events").fetchone()[0]
    assert dup == 0
    assert city.stored_rollups(db) == city.recount(db)
    assert city.stored_rollups(db, "day") == city.recount(db, "day")


def test_alert_reaches_the_street_office_within_2_s_and_is_audited(
    db: psycopg.Connection, pg_dsn: str, broker: Mosquitto
) -> None:
    ing = Ingester(pg_dsn, BrokerSettings(port=broker.port), client_id="c-alert")
    ing.start()
    assert ing.conn.subscribed.wait(20)
    try:
        t = datetime.now(UTC)
        publish(
            broker.port,
            [
                loadgen.event_payload("a", 0, 0, "v0001", "v0001-d", t, "CODE_RED"),
                loadgen.event_payload("a", 0, 1, "v0001", "v0001-d", t, "EXPIRED"),
                loadgen.event_payload("a", 0, 2, "v0001", "v0001-d", t, "ADMIT"),
            ],
            "v0001",
        )
        assert until(lambda: alerts.list_alerts(db, "office-nanjing") != [], 5)
        assert until(lambda: ing.ingested == 3)
    finally:
        ing.stop()
    (a,) = alerts.list_alerts(db, "office-nanjing")
    assert (a.raised_at - t).total_seconds() < 2.0
    assert (a.venue, a.gate, a.reason, a.street, a.state) == (
        "v0001",
        "g1",
        "CODE_RED",
        "nanjing-rd",
        "open",
    )
    assert alerts.list_alerts(db, "office-hengshan") == []
    assert alerts.list_alerts(db, "office-huangpu") == [a]  # the district above sees it too
    # another street's office cannot touch it; the responsible one acknowledges and closes
    assert not alerts.act(db, "office-hengshan", a.id, "acknowledge", "not mine")
    assert alerts.act(db, "office-nanjing", a.id, "acknowledge", "  on our way\n")
    assert not alerts.act(db, "office-nanjing", a.id, "acknowledge", "twice")
    with pytest.raises(FleetError):
        alerts.act(db, "office-nanjing", a.id, "close", "   ")  # a note is required
    assert alerts.act(db, "office-nanjing", a.id, "close", "visitor sent home; gate fine")
    assert alerts.list_alerts(db, "office-nanjing") == []
    (done,) = alerts.list_alerts(db, "office-nanjing", states=("closed",))
    assert (done.ack_by, done.ack_note, done.closed_by) == (
        "office-nanjing",
        "on our way",
        "office-nanjing",
    )
    kinds = [e["kind"] for e in central.audit_entries(db)][::-1]
    assert kinds == ["alert_raised", "alert_acknowledged", "alert_closed"]
    assert central.verify_audit(db) == (3, None)
    cols = [
        r[0]
        for r in db.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'alerts'"
        )
    ]
    assert not {"name", "display_name", "document_number", "device_id"} & set(cols)


def test_mark_kind_refuses_unknown_reasons(db: psycopg.Connection) -> None:
    with pytest.raises(FleetError):
        alerts.mark_kind(db, "<script>")
    alerts.mark_kind(db, "TEST_POSITIVE")
    assert "TEST_POSITIVE" in alerts.marked_kinds(db)
    alerts.mark_kind(db, "TEST_POSITIVE", on=False)
    assert "TEST_POSITIVE" not in alerts.marked_kinds(db)


def _plan_nodes(plan: dict) -> Iterator[dict]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _plan_nodes(child)


def explain(db: psycopg.Connection, sql: str, params: object) -> list[dict]:
    (doc,) = db.execute(f"EXPLAIN (FORMAT JSON) {sql}", params).fetchone()
    return list(_plan_nodes(doc[0]["Plan"]))


def test_index_plan_explained(db: psycopg.Connection, pg_dsn: str) -> None:
    """The report, roll-up and alert queries use their indexes and prune partitions."""
    central.ensure_partitions(db, (NOW - timedelta(days=200)).date(), months=8)
    db.execute(
        "INSERT INTO events (event_id, device_id, venue, gate, time, decision, reason, "
        "credential_kind, bundle_version) SELECT 'p' || g, 'd', 'v000' || (g %% 5), 'g1', "
        "%s - g * interval '250 seconds', "
        "CASE WHEN g %% 3 = 0 THEN 'admit' ELSE 'refuse' END, 'EXPIRED', 'dcc-test', '7' "
        "FROM generate_series(1, 60000) g",
        (NOW,),
    )
    db.execute(
        "INSERT INTO rollup_hourly SELECT l, a, h, 'refuse', 'EXPIRED', 1 "
        "FROM generate_series(0, 5) l, (VALUES ('sh'), ('huangpu'), ('nanjing-rd'), ('g1'), "
        "('c1'), ('v0000')) AS x(a), "
        "generate_series(%s::timestamptz - interval '200 days', %s, interval '1 hour') h",
        (NOW, NOW),
    )
    db.execute(
        "INSERT INTO rollup_daily SELECT level, area, (hour AT TIME ZONE 'UTC')::date, "
        "decision, reason, sum(n) FROM rollup_hourly GROUP BY 1, 2, 3, 4, 5"
    )
    db.execute(
        "INSERT INTO alerts (event_id, venue, gate, time, reason, state) SELECT 'a' || g, "
        "'v000' || (g % 5), 'g1', now(), 'CODE_RED', "
        "CASE WHEN g % 50 = 0 THEN 'open' ELSE 'closed' END FROM generate_series(1, 20000) g"
    )
    db.execute("ANALYZE")
    start, end = NOW - timedelta(days=90), NOW - timedelta(days=60)
    q = central.RefusalQuery(start, end, ["v0000", "v0001"])
    nodes = explain(
        db,
        f"SELECT * FROM events WHERE {central._REFUSED_WHERE} ORDER BY time LIMIT 200",
        q.params(),
    )
    scanned = {n["Relation Name"] for n in nodes if "Relation Name" in n}
    months = {f"events_{(NOW - timedelta(days=d)):%Y_%m}" for d in (60, 90)}
    assert scanned <= months, scanned  # partitions outside the 30 days are pruned
    seq = [(n["Relation Name"], n.get("Plan Rows")) for n in nodes if n["Node Type"] == "Seq Scan"]
    assert not seq, seq
    assert any("Index" in n["Node Type"] for n in nodes), nodes
    params = {"u": None, "lvl": 1, "a": "huangpu", "offline_before": NOW}
    params.update(city._window(start, NOW))
    nodes = explain(db, city._CHILDREN, params)
    assert {"rollup_hourly_pkey", "rollup_daily_pkey"} <= {n.get("Index Name") for n in nodes}
    # rollup_delta holds only the last seconds' counts (folded every second): read whole
    folded = ("rollup_hourly", "rollup_daily")
    assert not [
        n for n in nodes if n["Node Type"] == "Seq Scan" and n.get("Relation Name") in folded
    ]
    nodes = explain(
        db,
        "SELECT * FROM alerts WHERE state <> 'closed' AND venue = ANY(%s) ORDER BY raised_at",
        (["v0000"],),
    )
    assert any(n.get("Index Name") == "alerts_venue_open" for n in nodes), nodes


def test_cli_hierarchy_import_and_rollup_check(
    db: psycopg.Connection, pg_dsn: str, tmp_path: Path
) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "sentinel", "central", *args, "--dsn", pg_dsn],
            capture_output=True,
            text=True,
        )

    (tmp_path / "city.csv").write_text(CSV)
    assert "imported 5 venues" in cli("hierarchy-import", str(tmp_path / "city.csv")).stdout
    write(pg_dsn, [event(f"v000{i % 5}", i) for i in range(20)])
    ok = cli("rollup-check")
    assert ok.returncode == 0 and "match a full recount" in ok.stdout
    db.execute("UPDATE rollup_daily SET n = n + 1 WHERE level = 2 AND area = 'bund-st'")
    bad = cli("rollup-check")
    assert bad.returncode == 1 and "daily roll-ups DIFFER" in bad.stdout
    assert cli("scope-add", "u", "planet", "x").returncode == 1


def test_generator_resends_a_window_the_same_after_a_broker_restart(
    db: psycopg.Connection, pg_dsn: str, broker: Mosquitto
) -> None:
    """The load generator's windows cut by a broker restart go again with the same ids and
    journal times: none lost, none a second row (the key is (event_id, time))."""
    # a plain subscription: mosquitto 2.0.11 does not restore shared ones (docs/fleet.md)
    ing = Ingester(pg_dsn, BrokerSettings(port=broker.port), client_id="c-restart", group=None)
    ing.start()
    assert ing.conn.subscribed.wait(20)
    result: dict = {}
    kw = {"rate": 300, "run": "r", "window": 5, "batch": 5, "grace_s": 20}
    gen = threading.Thread(target=lambda: result.update(run_devices(broker.port, 10, 6.0, **kw)))
    gen.start()
    try:
        assert until(lambda: db.execute("SELECT count(*) FROM events").fetchone()[0] > 100)
        broker.stop()  # SIGTERM: the broker saves what it acknowledged
        broker.start()
        gen.join(90)
        assert result["reconnects"] > 0  # the devices did lose their connections
        assert until(lambda: lost(db, "r", result["acked"]) == 0, 30)
    finally:
        ing.stop()
    rows, ids = db.execute("SELECT count(*), count(DISTINCT event_id) FROM events").fetchone()
    # (a window cut by the deadline may be in without its PUBACK: more rows than acked)
    assert rows == ids >= sum(result["acked"]) > 300


def test_poison_fields_are_refused_and_the_rest_of_the_batch_is_written(
    db: psycopg.Connection, pg_dsn: str
) -> None:
    """A NUL character or an out-of-range backlog used to fail the whole COPY/INSERT (and
    stop the writer, the batch redelivered for ever); now they are refused alone."""
    import json

    good = loadgen.event_payload("p", 0, 0, "v0000", "v0000-d", NOW, "EXPIRED")
    doc = json.loads(loadgen.event_payload("p", 0, 1, "v0000", "v0000-d", NOW, "EXPIRED"))
    doc["gate"] = "g\u0000"
    hb = {"time": NOW.isoformat(), "outbox_backlog": 2**40}
    ing = Ingester(pg_dsn, BrokerSettings(port=1))
    b = ing._parse(
        [
            (
                "sentinel/v0000/v0000-d/events",
                batch_payload([good, json.dumps(doc).encode()]),
                1,
                1,
                0,
                0.0,
            ),
            ("sentinel/v0000/v0000-d/heartbeat", json.dumps(hb).encode(), 2, 1, 0, 0.0),
        ]
    )
    assert b.rejected == 2 and len(b.events) == 1 and not b.heartbeats
    ing._commit(b)
    ing.db.close()
    assert db.execute("SELECT event_id FROM events").fetchall() == [("p-0-0",)]


def test_a_message_postgresql_refuses_is_refused_alone(
    db: psycopg.Connection, pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever the checks miss and PostgreSQL refuses costs that message only: the batch
    is written one message at a time, the refused one acknowledged and counted."""
    import json

    from sentinel.fleet import ingest, wire

    def lax(payload: bytes, topic, now):  # type: ignore[no-untyped-def]
        rows, bad = wire.parse_events(payload, topic, now)
        if b"smuggled" in payload:  # as if a check were missing: a NUL reaches the COPY
            rows = [(r[0], r[1], r[2], "g\x00", *r[4:]) for r in rows]
        return rows, bad

    monkeypatch.setattr(ingest, "parse_events", lax)
    acked: list[int] = []
    ing = Ingester(pg_dsn, BrokerSettings(port=1))
    monkeypatch.setattr(ing.conn.client, "ack", lambda mid, qos: acked.append(mid))
    items = []
    for k, run in enumerate(["a", "smuggled", "b"]):
        payloads = [
            loadgen.event_payload(run, 0, i, "v0000", "v0000-d", NOW, "EXPIRED") for i in range(3)
        ]
        items.append(("sentinel/v0000/v0000-d/events", batch_payload(payloads), k + 1, 1, 0, 0.0))
    hb = {"time": NOW.isoformat(), "outbox_backlog": 1}
    items.append(("sentinel/v0000/v0000-d/heartbeat", json.dumps(hb).encode(), 9, 1, 0, 0.0))
    ing._write(ing._parse(items))
    ing.db.close()
    ids = [r[0] for r in db.execute("SELECT event_id FROM events ORDER BY 1")]
    assert ids == ["a-0-0", "a-0-1", "a-0-2", "b-0-0", "b-0-1", "b-0-2"]
    assert db.execute("SELECT count(*) FROM devices").fetchone()[0] == 1
    assert sorted(acked) == [1, 2, 3, 9]  # the refused one too: a redelivery would fail again
    assert ing.rejected == 3 and ing.ingested == 6
    assert city.stored_rollups(db) == city.recount(db)
