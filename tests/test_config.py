import subprocess
import sys
from pathlib import Path

import pytest

from sentinel import config
from sentinel.cli import main
from sentinel.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "sentinel.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_defaults_without_file() -> None:
    cfg = config.load(None)
    assert cfg.gate.pin_factory == "mock"
    assert cfg.retention.retention_days == 14


def test_file_overrides_defaults_and_resolves_data_dir(tmp_path: Path) -> None:
    p = write(tmp_path, 'data_dir = "data"\n[venue]\nid = "v-7"\n[gate]\npulse_s = 1\n')
    cfg = config.load(p)
    assert cfg.venue.id == "v-7"
    assert cfg.gate.pulse_s == 1.0 and isinstance(cfg.gate.pulse_s, float)
    assert cfg.venue.name == "Demo Venue"  # untouched default
    assert Path(cfg.data_dir) == tmp_path / "data"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[gate]\npulse_s = 'long'\n", "'gate.pulse_s' must be float"),
        ("[gate]\npulse_secs = 1\n", "unknown key 'gate.pulse_secs'"),
        ("[gaet]\nid = 'x'\n", "unknown key 'gaet'"),
        ("[gate]\nrelay_pin = true\n", "'gate.relay_pin' must be int"),
        ("[gate]\nlock_type = 'open'\n", "'gate.lock_type' must be one of"),
        ("[gate]\npulse_s = -1\n", "'gate.pulse_s' must not be negative"),
        ("gate = 3\n", "'gate' must be a table"),
        ("[policy]\naccepted_types = ['v', 3]\n", "'policy.accepted_types' must be"),
        ("this is = not toml =\n", "not valid TOML"),
    ],
)
def test_bad_config_names_key_and_file(tmp_path: Path, text: str, needle: str) -> None:
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        config.load(p)
    assert needle in str(err.value)
    assert str(p) in str(err.value)
    assert "\n" not in str(err.value)


def test_cli_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = write(tmp_path, "[gate]\npulse_s = 'x'\n")
    assert main(["run", "--config", str(p)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "gate.pulse_s" in err and str(p) in err


def test_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--config", str(tmp_path / "nope.toml")]) == 2
    assert "config file not found" in capsys.readouterr().err


def test_binary_garbage_config(tmp_path: Path) -> None:
    p = tmp_path / "bad.toml"
    p.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="not UTF-8"):
        config.load(p)


def test_relative_file_paths_are_next_to_the_config(tmp_path: Path) -> None:
    p = write(tmp_path, '[trust]\ntrust_file = "t.json"\nroot_key = "/abs/root.pem"\n')
    cfg = config.load(p)
    assert cfg.trust.trust_file == str(tmp_path / "t.json")
    assert cfg.trust.root_key == "/abs/root.pem"


# --- D10 of the security review: values that are typed right but absurd -------------------


@pytest.mark.parametrize(
    ("section", "line", "needle"),
    [
        ("gate", "pulse_s = inf", "finite"),
        ("gate", "pulse_s = nan", "finite"),
        ("gate", "pulse_s = 1e12", "between"),
        ("trust", "max_data_age_hours = inf", "finite"),
        ("trust", "max_data_age_hours = nan", "finite"),
        ("trust", "max_data_age_hours = 1e300", "between"),
        ("web", "lockout_minutes = 9223372036854775807", "between"),
        ("retention", "retention_days = 9223372036854775807", "between"),
        ("camera", "roi = [0, 0, 99999999999, 5]", "between"),
    ],
)
def test_d10_absurd_numbers_stop_with_one_line(
    tmp_path: Path, section: str, line: str, needle: str
) -> None:
    key = line.split(" =")[0]
    p = tmp_path / "s.toml"
    p.write_text(f"[{section}]\n{line}\n")
    with pytest.raises(ConfigError, match=needle) as exc:
        config.load(p)
    assert f"'{section}.{key}'" in str(exc.value) and "\n" not in str(exc.value)


def test_d10_cli_exit_2_and_deep_nesting(tmp_path: Path) -> None:
    p = tmp_path / "s.toml"
    p.write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError, match="nested too deeply"):
        config.load(p)
    p.write_text("[gate]\npulse_s = inf\n")
    r = subprocess.run(
        [sys.executable, "-m", "sentinel", "status", "--config", str(p)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0 and "finite" in r.stderr


def test_d10_pulse_inf_impossible_in_code_too() -> None:
    from sentinel.config import GateConfig, replace

    with pytest.raises(ConfigError, match="finite"):
        GateConfig(pulse_s=float("inf"))
    with pytest.raises(ConfigError, match="between"):
        replace(GateConfig(), pulse_s=1e12)


def test_d10_key_and_config_files_read_bounded(tmp_path: Path) -> None:
    """trust.root_key = "/dev/zero" read until MemoryError; a FIFO config hung."""
    import os

    from sentinel.config import TrustConfig
    from sentinel.trust.service import pinned_root_key

    with pytest.raises(ConfigError, match="root_key"):
        pinned_root_key(TrustConfig(root_key="/dev/zero"))
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="regular file"):
        config.load(fifo)
