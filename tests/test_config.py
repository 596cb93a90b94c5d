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
