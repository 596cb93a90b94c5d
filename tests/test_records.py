"""Sealed check-in records: only the authority opens them; they go with the retention."""

from __future__ import annotations

import io
import json
import os
from contextlib import redirect_stdout
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import pytest
from gpiozero.pins.mock import MockFactory

from sentinel.authority import healthcode_issue as hci
from sentinel.authority import records as arec
from sentinel.cli import main
from sentinel.config import Config, replace
from sentinel.credentials import healthcode_service, records
from sentinel.credentials.healthcode_keys import HealthCodeKeys
from sentinel.credentials.trustlist import TrustList
from sentinel.daemon import Daemon
from sentinel.journal.audit import open_audit
from sentinel.scan.synth import Degrade, blank_frame, place, render_qr
from sentinel.trust import StaticTrust

NOW = datetime(2022, 5, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.fixture(scope="module")
def record_key() -> records.x25519.X25519PrivateKey:
    return arec.generate_record_key()


def rec(subject: str = "K7Q2M9X4T1B8", at: datetime = NOW) -> records.CheckinRecord:
    return records.CheckinRecord(subject, at, "venue-1", "gate-1")


def test_seal_opens_only_with_the_authority_key(record_key) -> None:  # type: ignore[no-untyped-def]
    line = records.seal(rec(), record_key.public_key())
    assert arec.open_sealed(line, record_key) == rec()
    assert "K7Q2M9X4T1B8" not in json.dumps(line)
    with pytest.raises(ValueError, match="does not open"):
        arec.open_sealed(line, arec.generate_record_key())
    # two seals of the same record differ (fresh ephemeral key each time)
    assert records.seal(rec(), record_key.public_key())["sealed"] != line["sealed"]


def test_moved_or_edited_record_does_not_open(record_key) -> None:  # type: ignore[no-untyped-def]
    line = records.seal(rec(), record_key.public_key())
    with pytest.raises(ValueError):  # hour is bound into the HPKE info
        arec.open_sealed({**line, "hour": "2022-05-20T12"}, record_key)
    raw = bytearray(records.base64.b64decode(line["sealed"]))
    raw[-1] ^= 1
    with pytest.raises(ValueError):
        arec.open_sealed({**line, "sealed": records.base64.b64encode(raw).decode()}, record_key)


def test_append_purge_and_torn_tail(tmp_path: Path, record_key) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "checkins.jsonl"
    pub = record_key.public_key()
    old = [rec(f"OLD{k}", NOW - 20 * DAY + timedelta(minutes=k)) for k in range(3)]
    new = [rec(f"NEW{k}", NOW - timedelta(hours=k)) for k in range(2)]
    for r in old + new:
        records.append_record(path, records.seal(r, pub))
    assert path.stat().st_mode & 0o777 == 0o600
    with path.open("ab") as f:  # a power cut mid-write leaves a torn line
        f.write(b'{"v":1,"hour":"2022-05-01T1')
    records.append_record(path, records.seal(rec("AFTER"), pub))
    lines = records.read_records(path)
    assert len(lines) == 6  # the torn line is skipped, the next record stands alone
    assert records.purge_records(path, NOW, retention_days=14) == 4  # 3 old + the torn line
    opened = [arec.open_sealed(d, record_key).subject for d in records.read_records(path)]
    assert sorted(opened) == ["AFTER", "NEW0", "NEW1"]
    assert not list(tmp_path.glob(".*.tmp"))
    assert records.purge_records(path, NOW, retention_days=14) == 0


def test_purge_edge_is_the_whole_hour(tmp_path: Path, record_key) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "c.jsonl"
    at = NOW - 14 * DAY + timedelta(minutes=30)  # 12:30, fourteen days ago
    records.append_record(path, records.seal(rec(at=at), record_key.public_key()))
    assert records.purge_records(path, NOW + timedelta(minutes=59), 14) == 0
    assert records.purge_records(path, NOW + timedelta(hours=1), 14) == 1


def test_export_handover_and_audit(tmp_path: Path, record_key) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "data"
    path = data / records.RECORDS_FILE
    today = datetime.now(UTC)  # the CLI exports at the real time, after a purge
    records.append_record(
        path, records.seal(rec("GONE", today - 20 * DAY), record_key.public_key())
    )
    for k in range(3):
        records.append_record(path, records.seal(rec(f"SUBJ-{k}", today), record_key.public_key()))
    conf = tmp_path / "s.toml"
    conf.write_text('data_dir = "data"\n[venue]\nid = "venue-1"\n', encoding="utf-8")
    out = tmp_path / "handover.jsonl"
    buf = io.StringIO()
    with redirect_stdout(buf):
        assert main(["records", "export", "--config", str(conf), "--out", str(out)]) == 0
    assert "3 sealed check-in records" in buf.getvalue()
    header = json.loads(out.read_bytes().split(b"\n")[0])
    assert header["format"] == records.HANDOVER_FORMAT and header["records"] == 3
    assert b"SUBJ-" not in out.read_bytes()
    with open_audit(data) as audit:
        entries = [e for e in audit.entries() if e["kind"] == "export"]
    assert len(entries) == 1
    details = json.loads(entries[0]["details"])
    assert details["scope"] == "checkin_records" and details["records"] == 3
    # the authority opens the handover file
    keyfile = tmp_path / "record.pem"
    keyfile.write_bytes(arec.private_key_pem(record_key))
    buf = io.StringIO()
    with redirect_stdout(buf):
        assert main(["records", "open", "--key", str(keyfile), str(out)]) == 0
    rows = [json.loads(x) for x in buf.getvalue().splitlines()]
    assert sorted(r["subject"] for r in rows) == ["SUBJ-0", "SUBJ-1", "SUBJ-2"]
    assert {r["venue"] for r in rows} == {"venue-1"}


def test_keygen_cli_adds_record_key(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys.json"
    buf = io.StringIO()
    with redirect_stdout(buf):
        rc = main(
            [
                "records",
                "keygen",
                "--private",
                str(tmp_path / "r.pem"),
                "--keys-file",
                str(keys_file),
            ]
        )
    assert rc == 0
    keys = HealthCodeKeys.load(keys_file)
    priv = arec.load_private_key(tmp_path / "r.pem")
    assert len(keys.record_keys) == 1
    line = records.seal(rec(), keys.record_keys[0])
    assert arec.open_sealed(line, priv).subject == "K7Q2M9X4T1B8"
    assert os.stat(tmp_path / "r.pem").st_mode & 0o777 == 0o600


def test_daemon_records_admitted_codes_then_purges(tmp_path: Path, record_key) -> None:  # type: ignore[no-untyped-def]
    """A real daemon over camera frames: admitted green → one sealed record; red → none."""
    issuer = hci.Issuer.generate()
    keys = HealthCodeKeys((issuer.trusted(),), (record_key.public_key(),)).to_json_bytes()
    green = hci.issue(issuer, "GREEN0000001", "green", issued_at=NOW, status_valid_until=NOW + DAY)
    red = hci.issue(issuer, "RED000000002", "red", issued_at=NOW, status_valid_until=NOW + DAY)
    frames = tmp_path / "frames"
    frames.mkdir()
    n = 0
    for text in (green, red):
        for k in range(3):
            img = place(render_qr(text, module_px=6), 640, 480, Degrade(angle_deg=5), seed=k)
            cv2.imwrite(str(frames / f"{n:03d}.png"), img)
            n += 1
        for _ in range(4):
            cv2.imwrite(str(frames / f"{n:03d}.png"), blank_frame(640, 480, n))
            n += 1
    cfg = replace(Config(), data_dir=str(tmp_path / "data"))
    cfg = replace(
        cfg,
        camera=replace(cfg.camera, source=str(frames)),
        scan=replace(cfg.scan, fallback=None),
        healthcode=replace(cfg.healthcode, checkin_records=True),
    )
    trust = StaticTrust(TrustList(), parts={"healthcode_keys": keys})
    with Daemon(cfg, pin_factory=MockFactory(), trust=trust, clock=lambda: NOW) as d:
        healthcode_service.attach(d)  # the lead adds the module to PART_MODULES
        assert any(p.name == "checkin-records-purge" for p in d.periodic)
        assert d.run() == 0
        assert d.gate.pulses == 1
    path = tmp_path / "data" / records.RECORDS_FILE
    lines = records.read_records(path)
    assert [arec.open_sealed(x, record_key).subject for x in lines] == ["GREEN0000001"]
    assert b"GREEN0000001" not in path.read_bytes()
    # the retention purge removes it and says so in the audit chain
    assert healthcode_service.purge(tmp_path / "data", NOW + 15 * DAY, 14) == 1
    assert records.read_records(path) == []
    with open_audit(tmp_path / "data") as audit:
        kinds = [(e["kind"], json.loads(e["details"]).get("scope")) for e in audit.entries()]
    assert ("purge", "checkin_records") in kinds


def test_records_off_by_default(tmp_path: Path) -> None:
    cfg = replace(Config(), data_dir=str(tmp_path))
    trust = StaticTrust(TrustList())
    with Daemon(cfg, pin_factory=MockFactory(), trust=trust) as d:
        before = (len(d.pipeline.listeners), len(d.periodic))
        healthcode_service.attach(d)
        assert (len(d.pipeline.listeners), len(d.periodic)) == before
