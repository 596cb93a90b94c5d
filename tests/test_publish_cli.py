"""The commands end to end: publish keygen/build/demo, sync --from and over HTTP, status."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from sentinel import config
from sentinel.authority import dcc_issue as di
from sentinel.authority.testing import BundleServer
from sentinel.cli import main
from sentinel.daemon import Daemon, make_trust
from sentinel.errors import ConfigError
from sentinel.trust import FileTrust
from sentinel.trust.store import StoreTrust


def _toml(path: Path, data_dir: Path, root_pub: Path, url: str | None = None) -> Path:
    lines = [f'data_dir = "{data_dir}"', "[trust]", f'root_key = "{root_pub}"']
    if url:
        lines.append(f'publisher_url = "{url}"')
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture()
def authority(tmp_path):
    auth = tmp_path / "authority"
    assert main(["publish", "keygen", "--out", str(auth)]) == 0
    assert os.stat(auth / "root_key.pem").st_mode & 0o777 == 0o600
    signer = di.make_signer("XX")
    (tmp_path / "dsc.pem").write_bytes(signer.certificate.public_bytes(Encoding.PEM))
    until = (datetime.now(UTC) + timedelta(days=5)).date().isoformat()
    (tmp_path / "status.csv").write_text(
        "doc_type,country,number,status,valid_until,subject_id\n"
        f"P,XXA,C01X00T47,green,{until},\n"
        f"I,D<<,T22000129,yellow,{until},\n"
        f",,,red,{until},subj-9\n"
    )
    (tmp_path / "revoked.txt").write_text("# revoked\nUCI:" + "ab" * 16 + "\n")
    (tmp_path / "rules.json").write_text('{"rules": []}')
    (tmp_path / "hc.json").write_text('{"issuers": []}')
    # the device (data_dir var/) enrolls: its seal key is what the status key is sealed to
    cfg = _toml(tmp_path / "s.toml", tmp_path / "var", auth / "root_pub.pem")
    req, reg = tmp_path / "enrollment.json", tmp_path / "devices.json"
    assert main(["enroll", "-c", str(cfg), "--out", str(req)]) == 0
    assert main(["enroll", "--register", str(req), "--registry", str(reg)]) == 0
    return auth


def _build(tmp_path: Path, *extra: str) -> int:
    return main(
        [
            "publish",
            "build",
            "--key",
            str(tmp_path / "authority" / "root_key.pem"),
            "--out",
            str(tmp_path / "site"),
            "--status",
            str(tmp_path / "status.csv"),
            "--signers",
            str(tmp_path / "dsc.pem"),
            "--revocations",
            str(tmp_path / "revoked.txt"),
            "--rules",
            str(tmp_path / "rules.json"),
            "--part",
            f"healthcode_keys={tmp_path / 'hc.json'}",
            "--devices",
            str(tmp_path / "devices.json"),
            *extra,
        ]
    )


def test_publish_sync_from_dir_and_status(authority, tmp_path, capsys) -> None:
    assert _build(tmp_path) == 0
    site = tmp_path / "site"
    assert (site / "manifest.json").exists() and (site / "manifests" / "1.json").exists()
    # raw numbers never leave the authority side
    for p in site.rglob("*"):
        if p.is_file():
            assert b"C01X00T47" not in p.read_bytes() and b"subj-9" not in p.read_bytes()
    cfg = _toml(tmp_path / "s.toml", tmp_path / "var", authority / "root_pub.pem")
    assert main(["sync", "-c", str(cfg), "--from", str(site)]) == 0
    assert "applied bundle version 1 (full" in capsys.readouterr().out

    assert main(["status", "-c", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "bundle version   1" in out and "status entries   3" in out
    assert "revocations      1" in out and "signers          1" in out

    trust = StoreTrust(tmp_path / "var")
    try:
        assert trust.status().lookup_document("ID", "D", "t22000129").status == "yellow"
        assert trust.status().lookup_subject("subj-9").status == "red"
        assert trust.part("healthcode_keys") == b'{"issuers": []}'
        assert trust.state().is_revoked(["UCI:" + "ab" * 16])
        for p in (tmp_path / "var").rglob("*"):
            if p.is_file():
                assert b"C01X00T47" not in p.read_bytes()
    finally:
        trust.close()

    # a second version: changed status, published with a delta, applied as a delta
    text = (tmp_path / "status.csv").read_text().replace("green", "red", 1)
    (tmp_path / "status.csv").write_text(text)
    assert _build(tmp_path) == 0
    assert "delta from 1" in capsys.readouterr().out
    assert main(["sync", "-c", str(cfg), "--from", str(site)]) == 0
    assert "version 2 (delta" in capsys.readouterr().out

    # the same directory again: nothing to do; a foreign root key: refused, exit 1
    assert main(["sync", "-c", str(cfg), "--from", str(site)]) == 0
    assert "up to date" in capsys.readouterr().out
    other = tmp_path / "other"
    assert main(["publish", "keygen", "--out", str(other)]) == 0
    rc = main(
        ["sync", "-c", str(cfg), "--from", str(site), "--root-key", str(other / "root_pub.pem")]
    )
    assert rc == 1
    assert "not signed by the pinned authority root key" in capsys.readouterr().err
    assert main(["status", "-c", str(cfg), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["version"] == 2 and "BundleSignatureError" in report["last_error"]


def test_bad_inputs_are_one_line_errors(authority, tmp_path, capsys) -> None:
    (tmp_path / "status.csv").write_text(
        "doc_type,country,number,status,valid_until\nP,X,1,blue,2030-01-01\n"
    )
    assert _build(tmp_path) == 2
    assert "status must be green, yellow or red" in capsys.readouterr().err
    (tmp_path / "status.csv").write_text("number,status,valid_until\n1,green,2030-01-01\n")
    (tmp_path / "revoked.txt").write_text("NOPE:12\n")
    assert _build(tmp_path) == 2
    assert "revocation key" in capsys.readouterr().err
    assert not (tmp_path / "site" / "manifest.json").exists()


def test_demo_authority_can_be_pinned_and_synced(tmp_path, capsys) -> None:
    args = ["publish", "demo", "--out", str(tmp_path / "demo")]
    assert main([*args, "--device-data-dir", str(tmp_path / "var")]) == 0
    out = capsys.readouterr().out
    assert "root_key =" in out
    demo = tmp_path / "demo"
    cfg = _toml(tmp_path / "s.toml", tmp_path / "var", demo / "root_pub.pem")
    assert main(["sync", "-c", str(cfg), "--from", str(demo / "site")]) == 0
    trust = make_trust(config.load(cfg))
    assert isinstance(trust, StoreTrust)
    try:
        assert trust.status().lookup_document("P", "XXA", "C01X00T47").status == "green"
        assert trust.status().lookup_subject("demo-subject-2").status == "red"
        assert len(trust.trust_list()) == 1
    finally:
        trust.close()


def test_make_trust_choices(tmp_path) -> None:
    with pytest.raises(ConfigError, match="no trust data"):
        make_trust(config.from_dict({"data_dir": str(tmp_path / "a")}))
    tl = tmp_path / "trust.json"
    tl.write_text('{"signers": []}')
    plain = config.from_dict({"data_dir": str(tmp_path / "a"), "trust": {"trust_file": str(tl)}})
    assert isinstance(make_trust(plain), FileTrust)
    waiting = config.from_dict(
        {
            "data_dir": str(tmp_path / "b"),
            "trust": {"trust_file": str(tl), "publisher_url": "http://127.0.0.1:9"},
        }
    )
    t = make_trust(waiting)
    assert isinstance(t, StoreTrust)
    assert t.state().bundle_version.startswith("file:")  # serves the fallback until a sync
    t.close()


def test_daemon_syncs_on_its_timer(tmp_path) -> None:
    from sentinel.authority.testing import build_test_bundle

    signer = di.make_signer("XX")
    b = build_test_bundle(tmp_path / "site", signers=[signer.der], status=[])
    root_pub = b.write_root_pub(tmp_path / "root_pub.pem")
    with BundleServer(tmp_path / "site") as server:
        cfg = config.from_dict(
            {
                "data_dir": str(tmp_path / "var"),
                "camera": {"source": str(tmp_path / "none.png")},
                "trust": {"publisher_url": server.url, "root_key": str(root_pub)},
            }
        )
        with Daemon(cfg) as d:
            assert d.trust.state().bundle_version == ""
            jobs = [j for j in d.periodic if j.name == "trust-sync"]
            assert len(jobs) == 1
            jobs[0].func()  # what the timer thread runs
            assert d.trust.state().bundle_version == "1"
            assert len(d.trust.trust_list()) == 1
            assert d.trust_sync.failures == 0
            # not due again until the interval has passed: no second request
            n = len(server.requests)
            assert jobs[0].func() is False and len(server.requests) == n
        server.close()


def test_service_backs_off_after_failures(tmp_path) -> None:
    from sentinel.authority.publish import generate_root_key
    from sentinel.config import TrustConfig
    from sentinel.trust.service import SyncService
    from sentinel.trust.store import BundleStore
    from sentinel.trust.sync import HttpSource, Syncer

    clock = [1000.0]
    wall = datetime(2022, 5, 1, tzinfo=UTC)
    with BundleStore(tmp_path / "var") as store:
        src = HttpSource("http://127.0.0.1:9", timeout_s=2)  # discard port: refused
        syncer = Syncer(store, src, root_key=generate_root_key().public_key(), clock=lambda: wall)
        cfg = TrustConfig(retry_min_s=10, retry_max_s=40, sync_interval_s=3600)
        svc = SyncService(syncer, cfg, monotonic=lambda: clock[0], wall=lambda: wall)
        delays = []
        for _ in range(4):
            assert svc.tick() is True
            delays.append(svc.next_at - clock[0])
            assert svc.tick() is False  # not due yet
            clock[0] = svc.next_at
        src.close()
        assert [5 <= x <= 10 for x in delays[:1]] == [True]
        assert 10 <= delays[1] <= 20 and 20 <= delays[2] <= 40 and 20 <= delays[3] <= 40
        assert store.meta("next_sync") is not None and store.meta("last_error")


def test_build_keeps_parts_not_given(authority, tmp_path, capsys) -> None:
    assert _build(tmp_path) == 0
    cfg = _toml(tmp_path / "s.toml", tmp_path / "var", authority / "root_pub.pem")
    assert main(["sync", "-c", str(cfg), "--from", str(tmp_path / "site")]) == 0
    (tmp_path / "rules2.json").write_text('{"rules": [1]}')
    key = str(tmp_path / "authority" / "root_key.pem")
    site = str(tmp_path / "site")
    rules2 = str(tmp_path / "rules2.json")
    assert main(["publish", "build", "--key", key, "--out", site, "--rules", rules2]) == 0
    capsys.readouterr()
    assert main(["sync", "-c", str(cfg), "--from", site]) == 0
    n_rules = (tmp_path / "rules2.json").stat().st_size
    assert f"full, {n_rules} bytes" in capsys.readouterr().out  # only the rules travel
    with StoreTrust(tmp_path / "var") as t:
        assert t.state().bundle_version == "2"
        assert t.part("rules") == b'{"rules": [1]}'
        assert len(t.trust_list()) == 1 and len(t.status()) == 3
    # --no-carry drops what is not given
    args = ["publish", "build", "--key", key, "--out", site, "--rules", rules2, "--no-carry"]
    assert main(args) == 0
    assert main(["sync", "-c", str(cfg), "--from", site]) == 0
    with StoreTrust(tmp_path / "var") as t:
        assert t.status() is None and len(t.trust_list()) == 0
