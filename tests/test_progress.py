"""The shared progress bar: shown on a terminal (or when asked), silent in logs and pipes."""

from __future__ import annotations

import io

from sentinel.progress import progress_bar, wanted


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_silent_when_not_a_terminal(monkeypatch) -> None:
    monkeypatch.delenv("SENTINEL_PROGRESS", raising=False)
    out = io.StringIO()
    with progress_bar(100, "build", "entries", stream=out) as bar:
        bar.update(100)
    assert out.getvalue() == "" and not wanted(out)


def test_shown_on_a_terminal_and_forced_off(monkeypatch) -> None:
    monkeypatch.delenv("SENTINEL_PROGRESS", raising=False)
    out = _Tty()
    with progress_bar(2048, "apply status set", "B", stream=out) as bar:
        bar.update(2048)
    assert "apply status set" in out.getvalue() and "100%" in out.getvalue()
    monkeypatch.setenv("SENTINEL_PROGRESS", "0")
    assert not wanted(_Tty())
    monkeypatch.setenv("SENTINEL_PROGRESS", "1")
    assert wanted(io.StringIO())


def test_publish_build_shows_its_progress(tmp_path, monkeypatch, capsys) -> None:
    """``publish build`` on a terminal: the bar over the CSV bytes is drawn on stderr."""
    from sentinel.authority.publish import Inputs, generate_root_key, publish
    from sentinel.authority.testing import test_devices
    from sentinel.trust import statusset as ss

    monkeypatch.setenv("SENTINEL_PROGRESS", "1")
    csv = tmp_path / "s.csv"
    rows = "".join(f"P,XXA,N{i:06d},green,2030-01-01\n" for i in range(2000))
    csv.write_text("doc_type,country,number,status,valid_until\n" + rows)
    site = tmp_path / "site"
    pub = publish(
        site,
        Inputs(),
        [generate_root_key()],
        status_csv=csv,
        devices=test_devices(site),
        kdf=ss.CHEAP_KDF,
    )
    assert pub.manifest.status is not None and pub.manifest.status.count == 2000
    assert "read status records" in capsys.readouterr().err


def test_a_large_purge_shows_its_progress(tmp_path, monkeypatch, capsys) -> None:
    """``purge`` on a terminal: a bar over the personal and event rows of the expired days,
    drawn to the end (every row counted), on stderr."""
    from datetime import UTC, datetime, timedelta

    from sentinel.journal import Event, Journal
    from sentinel.journal.audit import open_audit
    from sentinel.journal.purge import purge

    monkeypatch.setenv("SENTINEL_PROGRESS", "1")
    now = datetime(2022, 5, 1, 12, 0, tzinfo=UTC)
    t = now - timedelta(days=10)
    with Journal(tmp_path / "j.db", clock=lambda: t, retention_days=3) as j:
        j.record_many(
            [(Event(t + timedelta(seconds=7 * i), "v", "g1", "refuse", "EXPIRED", "dcc", "b7"),
              {"display_name": f"P{i}"}) for i in range(300)]
        )  # fmt: skip
        with open_audit(tmp_path) as audit:
            r = purge(j, audit, retention_days=3, aggregate_days=400, now=now, batch_rows=40)
    assert r.personal_rows == 300 and r.event_rows == 300
    err = capsys.readouterr().err
    assert "purge personal rows" in err and "purge events rows" in err
    assert "300/300" in err


def test_a_large_part_shows_its_download(tmp_path, monkeypatch, capsys) -> None:
    """``sync`` on a terminal: a part at least ``BAR_BYTES`` long is fetched under a bar
    named after it; smaller ones are not (a bar for a 200-byte manifest is noise)."""
    from sentinel.authority.testing import build_test_bundle, sync_dir
    from sentinel.trust import sync as sync_mod

    monkeypatch.setenv("SENTINEL_PROGRESS", "1")
    big = bytes(range(256)) * 64  # 16 KiB
    b = build_test_bundle(tmp_path / "site", parts={"big": big})
    monkeypatch.setattr(sync_mod, "BAR_BYTES", len(big))
    sync_dir(tmp_path / "data", b.site, b.root_public)
    err = capsys.readouterr().err
    assert "fetch big" in err and "100%" in err
    assert "fetch revocations" not in err
