"""Typed settings: a TOML file (tomllib) laid over embedded defaults.

Every section is a frozen dataclass; the loader checks each key of the file against
the dataclass fields and their types, so a typo or a wrong type stops the program with
one line naming the file and the key (``ConfigError``; the CLI exits 2).

Adding a setting: add a field with a default to the section's dataclass. The loader
needs no change. Supported field types: bool, int, float, str, ``X | None`` of those,
and ``list[...]``/``tuple[...]`` of those.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sentinel.errors import ConfigError
from sentinel.safefs import read_bounded


@dataclass(frozen=True, slots=True)
class VenueConfig:
    id: str = "demo-venue"
    name: str = "Demo Venue"
    name_zh: str = "演示场所"


@dataclass(frozen=True, slots=True)
class GateConfig:
    id: str = "gate-1"
    # "mock" (gpiozero MockFactory; demo and tests) or "lgpio" (a Raspberry Pi). Never guessed.
    pin_factory: str = "mock"
    relay_pin: int = 17
    relay_active_high: bool = True
    # "fail-secure": locked when unpowered; "fail-safe": unlocked when unpowered.
    lock_type: str = "fail-secure"
    pulse_s: float = 3.0
    green_led_pin: int = 22
    red_led_pin: int = 27
    buzzer_pin: int | None = 23
    door_pin: int | None = None
    exit_pin: int | None = None
    held_open_s: float = 15.0
    # Door contact wiring (to GND, internal pull-up): "nc" = contact closed while the door
    # is shut (the usual reed contact; a cut wire reads as open), "no" = the reverse.
    door_contact: str = "nc"
    # Debounce for the door contact and exit button; 0 turns it off.
    input_bounce_s: float = 0.05

    def __post_init__(self) -> None:  # also when built in code: an endless unlock is impossible
        for key in ("pulse_s", "held_open_s", "input_bounce_s"):
            check_range(f"gate.{key}", getattr(self, key), "gate", key)


@dataclass(frozen=True, slots=True)
class CameraConfig:
    # A camera index ("0"), a device path ("/dev/video0"), a video file, an image file or
    # an image directory; "picamera2" for the Raspberry Pi camera module.
    source: str = "0"
    width: int = 1280
    height: int = 720
    fps: int = 15
    exposure: float | None = None
    # Region of interest as [x, y, w, h] in pixels; empty for the whole frame.
    roi: list[int] = field(default_factory=list)
    # Loop a file source forever (demo kiosks); otherwise the run ends with the file.
    loop: bool = False


@dataclass(frozen=True, slots=True)
class ScanConfig:
    # Chosen by benchmarks/bench_scan.py (docs/scanner.md): zxing-cpp with retries read
    # every frame pyzbar did, so no fallback by default (it cost 35-45 ms per empty frame).
    backend: str = "zxing"
    fallback: str | None = None
    cooldown_s: float = 5.0
    motion_threshold: float = 2.0
    # A still scene is decoded again after this many skipped frames anyway.
    motion_recheck_frames: int = 15
    # Retry frames where the primary found nothing (1.5x upscale, local contrast).
    retries: bool = True
    # Read ID documents (MRZ, identity number) from the camera; "template" (the default),
    # or "cnn" and "tesseract" for comparison only: the cnn engine accepted wrong numbers
    # on the bench (docs/scanner.md, Known limits, has the measurements).
    id_documents: bool = True
    ocr_engine: str = "template"
    # Look for an ID document on every Nth decoded frame without a barcode.
    id_every_frames: int = 2
    # Venue option: a certificate must be followed within identity_window_s by an ID
    # document of the same person (names and birth date from the MRZ).
    identity_match: bool = False
    identity_window_s: float = 10.0


@dataclass(frozen=True, slots=True)
class TrustConfig:
    # A JSON trust list of signer certificates (used when no bundle has been applied).
    trust_file: str | None = None
    publisher_url: str | None = None
    # Pinned authority root public key (PEM file path), set at provisioning.
    root_key: str | None = None
    sync_interval_s: int = 3600
    max_data_age_hours: float = 48.0
    # What to do with data older than max_data_age_hours: "refuse" or "warn" (admit with warning).
    stale_action: str = "refuse"
    # Sync: per-request timeout, and the retry backoff after a failed sync (doubling, jittered).
    sync_timeout_s: float = 30.0
    retry_min_s: float = 30.0
    retry_max_s: float = 1800.0


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    accepted_types: list[str] = field(default_factory=lambda: ["v", "t", "r"])
    max_test_age_hours: float = 72.0
    accepted_test_types: list[str] = field(default_factory=lambda: ["LP6464-4", "LP217198-3"])
    min_days_after_vaccination: int = 14
    max_days_after_vaccination: int | None = None
    booster_required: bool = False
    # Named venue mode: "3G", "2G", "2G+", "booster" or "custom" (accepted_types decides).
    mode: str = "custom"
    clock_skew_s: float = 300.0
    # 2G+: how long the first certificate waits for the second one at the same gate.
    second_credential_s: float = 20.0


@dataclass(frozen=True, slots=True)
class RetentionConfig:
    # Personal fields (encrypted under day keys) and event rows: this many calendar days
    # (UTC) including today; older days are purged (keys destroyed, rows deleted).
    retention_days: int = 14
    # Non-personal daily counts (reports further back).
    aggregate_days: int = 400
    # How often the daemon runs the (idempotent) purge; hourly keeps the promise tight.
    purge_interval_s: int = 3600


@dataclass(frozen=True, slots=True)
class WebConfig:
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 8080
    session_minutes: int = 30
    kiosk_result_s: float = 5.0
    # Login and kiosk-PIN lock-out: this many failures in a row lock for lockout_minutes.
    max_failures: int = 5
    lockout_minutes: int = 15
    # Seconds between kiosk status refreshes (data freshness) on the live stream.
    status_interval_s: float = 10.0
    # Host names the pages answer to besides ``host`` (guards against DNS rebinding).
    allowed_hosts: list[str] = field(default_factory=lambda: ["127.0.0.1", "localhost"])
    # Kiosk sound (sentinel/web/cues.py): a tone per result, admit / refuse / staff needed;
    # volume 0..1; spoken zh/en prompts when install made them (scripts/make_prompts.py).
    sound: bool = True
    volume: float = 0.8
    spoken_prompts: bool = True


@dataclass(frozen=True, slots=True)
class HealthCodeConfig:
    enabled: bool = True
    clock_skew_s: float = 30.0
    # Sealed check-in records for the authority (docs/healthcode.md); off by default.
    checkin_records: bool = False
    # Trusted issuing keys (JSON, docs/healthcode.md) when no bundle ships "healthcode_keys".
    keys_file: str | None = None
    # Lifetime of codes made by `sentinel issue-code`; codes claiming more than the maximum
    # are refused (it also bounds the replay guard's memory).
    code_lifetime_s: float = 120.0
    max_code_lifetime_s: float = 600.0


@dataclass(frozen=True, slots=True)
class FleetConfig:
    enabled: bool = False
    device_id: str = ""
    broker_host: str = "127.0.0.1"
    broker_port: int = 1883
    tls: bool = False
    ca_file: str | None = None
    username: str | None = None
    password_file: str | None = None
    heartbeat_s: int = 60
    outbox_max: int = 100000
    batch_events: int = 100  # events per MQTT message (1: one v1 message per event)


@dataclass(frozen=True, slots=True)
class Config:
    data_dir: str = "./var"
    venue: VenueConfig = field(default_factory=VenueConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    camera: CameraConfig = field(default_factory=CameraConfig)
    scan: ScanConfig = field(default_factory=ScanConfig)
    trust: TrustConfig = field(default_factory=TrustConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    web: WebConfig = field(default_factory=WebConfig)
    healthcode: HealthCodeConfig = field(default_factory=HealthCodeConfig)
    fleet: FleetConfig = field(default_factory=FleetConfig)

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)


# Value checks beyond types: (section, key) -> (allowed values)
_CHOICES: dict[tuple[str, str], tuple[str, ...]] = {
    ("gate", "pin_factory"): ("mock", "lgpio", "rpigpio", "native"),
    ("gate", "lock_type"): ("fail-secure", "fail-safe"),
    ("gate", "door_contact"): ("nc", "no"),
    ("trust", "stale_action"): ("refuse", "warn"),
    ("policy", "mode"): ("custom", "3G", "2G", "2G+", "booster"),
    ("scan", "backend"): ("zxing", "pyzbar", "opencv"),
    ("scan", "fallback"): ("zxing", "pyzbar", "opencv"),
    ("scan", "ocr_engine"): ("cnn", "template", "tesseract"),
}


# Numeric ranges beyond "finite": (section, key) -> (min, max), both inclusive.  An admit
# pulse of inf left the lock released for good; huge ages or retention overflowed dates.
_DAY_S, _YEAR_H, _TEN_YEARS_D = 86400, 366 * 24, 3660
_RANGES: dict[tuple[str, str], tuple[float, float]] = {
    ("gate", "pulse_s"): (0.001, 60),
    ("gate", "held_open_s"): (0.001, 3600),
    ("gate", "input_bounce_s"): (0, 1),
    ("camera", "width"): (16, 10000),
    ("camera", "height"): (16, 10000),
    ("camera", "fps"): (1, 240),
    ("scan", "cooldown_s"): (0, 3600),
    ("scan", "identity_window_s"): (0, 3600),
    ("trust", "sync_interval_s"): (10, 7 * _DAY_S),
    ("trust", "max_data_age_hours"): (0, _YEAR_H),
    ("trust", "sync_timeout_s"): (1, 3600),
    ("trust", "retry_min_s"): (1, _DAY_S),
    ("trust", "retry_max_s"): (1, 7 * _DAY_S),
    ("policy", "max_test_age_hours"): (0, _YEAR_H),
    ("policy", "min_days_after_vaccination"): (0, _TEN_YEARS_D),
    ("policy", "max_days_after_vaccination"): (0, _TEN_YEARS_D),
    ("policy", "clock_skew_s"): (0, _DAY_S),
    ("policy", "second_credential_s"): (0, 3600),
    ("retention", "retention_days"): (1, _TEN_YEARS_D),
    ("retention", "aggregate_days"): (1, _TEN_YEARS_D),
    ("retention", "purge_interval_s"): (1, _DAY_S),
    ("web", "port"): (0, 65535),
    ("web", "session_minutes"): (1, 7 * 24 * 60),
    ("web", "kiosk_result_s"): (0, 600),
    ("web", "max_failures"): (1, 100),
    ("web", "lockout_minutes"): (1, 7 * 24 * 60),
    ("web", "status_interval_s"): (0.1, 3600),
    ("healthcode", "clock_skew_s"): (0, 3600),
    ("healthcode", "code_lifetime_s"): (1, _DAY_S),
    ("healthcode", "max_code_lifetime_s"): (1, _DAY_S),
    ("fleet", "broker_port"): (1, 65535),
    ("fleet", "heartbeat_s"): (1, _DAY_S),
    ("fleet", "outbox_max"): (1, 10**8),
    ("fleet", "batch_events"): (1, 1000),
}
_NUMBER_MAX = 10**9  # any other number (GPIO pins, frame counts, ...)
MAX_CONFIG_BYTES = 1 << 20


def check_range(dotted: str, value: float, where: str, key: str, source: str = "<config>") -> None:
    """ConfigError unless ``value`` is finite and inside its range (``_RANGES``)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{source}: '{dotted}' must be a finite number, got {value!r}")
    if value < 0:
        raise ConfigError(f"{source}: '{dotted}' must not be negative")
    lo, hi = _RANGES.get((where, key), (0, _NUMBER_MAX))
    if not lo <= value <= hi:
        raise ConfigError(f"{source}: '{dotted}' must be between {lo:g} and {hi:g}, got {value!r}")


# Settings that name files: resolved relative to the config file's directory.
_PATH_KEYS: tuple[tuple[str, str], ...] = (
    ("trust", "trust_file"),
    ("trust", "root_key"),
    ("healthcode", "keys_file"),
    ("fleet", "ca_file"),
    ("fleet", "password_file"),
)


def _type_ok(value: Any, tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        return any(_type_ok(value, a) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if origin in (list, tuple):
        args = typing.get_args(tp)
        inner = args[0] if args else Any
        return isinstance(value, list) and all(_type_ok(v, inner) for v in value)
    if tp is Any:
        return True
    if tp is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, tp)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _build(cls: type, data: dict[str, Any], where: str, source: str) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{where}.{key}" if where else key
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(f"{source}: unknown key '{dotted}' (known here: {known})")
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: '{dotted}' must be a table [{dotted}]")
            kwargs[key] = _build(tp, value, dotted, source)
            continue
        if not _type_ok(value, tp):
            raise ConfigError(
                f"{source}: '{dotted}' must be {_type_name(tp)}, got {type(value).__name__} "
                f"{value!r}"
            )
        choices = _CHOICES.get((where, key))
        if choices and value not in choices:
            raise ConfigError(f"{source}: '{dotted}' must be one of {', '.join(choices)}")
        numbers = value if isinstance(value, list) else [value]
        for v in numbers:
            if isinstance(v, float | int) and not isinstance(v, bool):
                check_range(dotted, v, where, key, source)
        kwargs[key] = float(value) if tp is float else value
    return cls(**kwargs)


def from_dict(data: dict[str, Any], source: str = "<config>") -> Config:
    """Build a Config from a parsed TOML mapping; raise ConfigError naming the key."""
    return _build(Config, data, "", source)


def load(path: str | Path | None) -> Config:
    """Load settings from ``path`` over the embedded defaults (None: defaults only)."""
    if path is None:
        return Config()
    p = Path(path)
    try:  # a regular file of bounded size (not a FIFO or /dev/zero)
        raw = read_bounded(p, MAX_CONFIG_BYTES)
    except FileNotFoundError:
        raise ConfigError(f"{p}: config file not found") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read config file: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: config file is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from None
    except RecursionError:  # tomllib recurses per nesting level
        raise ConfigError(f"{p}: not valid TOML: nested too deeply") from None
    cfg = from_dict(data, str(p))
    base = p.parent
    if not Path(cfg.data_dir).is_absolute():
        cfg = dataclasses.replace(cfg, data_dir=str(base / cfg.data_dir))
    # Relative file paths in the file mean "next to this config file", wherever it is run.
    for section, key in _PATH_KEYS:
        sub = getattr(cfg, section)
        value = getattr(sub, key)
        if value and not Path(value).is_absolute():
            sub = dataclasses.replace(sub, **{key: str(base / value)})
            cfg = dataclasses.replace(cfg, **{section: sub})
    return cfg


def replace(cfg: Any, **changes: Any) -> Any:
    """dataclasses.replace, re-exported for callers building configs in code."""
    return dataclasses.replace(cfg, **changes)
