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
