"""``sentinel selftest``: the installer's checklist, run on the device.

Each check returns a :class:`Check` (PASS, WARN, FAIL or SKIP, with one line of
detail); a missing camera or GPIO chip is a FAIL line, never a crash.  Run it with the
service stopped: the service owns the camera and the GPIO lines while it runs.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from sentinel.config import CameraConfig, Config
from sentinel.errors import SentinelError

PASS, WARN, FAIL, SKIP = "PASS", "WARN", "FAIL", "SKIP"
EARLIEST_PLAUSIBLE = datetime(2024, 1, 1, tzinfo=UTC)  # a Pi without RTC/NTP boots in the past
LATEST_PLAUSIBLE = datetime(2100, 1, 1, tzinfo=UTC)
NTP_FLAG = Path("/run/systemd/timesync/synchronized")


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: str
    detail: str


@dataclass(frozen=True, slots=True)
class SelftestOptions:
    skip_relay: bool = False
    click_s: float = 0.3  # how long the relay and each light/buzzer are on
    min_free_mb: int = 200
    warn_free_mb: int = 1024


def check_camera(cam: CameraConfig) -> Check:
    """Grab one frame: resolution and mean brightness (0-255)."""
    from sentinel.scan import open_source

    try:
        source = open_source(cam.source, width=cam.width, height=cam.height, fps=cam.fps)
    except SentinelError as exc:
        return Check("camera", FAIL, f"{cam.source}: {exc}")
    except Exception as exc:  # a driver error is still only a FAIL line
        return Check("camera", FAIL, f"{cam.source}: {type(exc).__name__}: {exc}")
    try:
        frame = next(iter(source.frames()), None)
    except Exception as exc:
        return Check("camera", FAIL, f"{cam.source}: no frame: {exc}")
    finally:
        source.close()
    if frame is None or not isinstance(frame, np.ndarray) or frame.size == 0:
        return Check("camera", FAIL, f"{cam.source}: opened but gave no frame")
    h, w = frame.shape[:2]
    brightness = float(frame.mean())
    detail = f"{w}x{h}, brightness {brightness:.0f}/255 (source {cam.source})"
    device = cam.source.isdigit() or cam.source.startswith("/dev/video")
    if brightness < 8:
        return Check("camera", FAIL, detail + ": black frame (lens cap? no light?)")
    if brightness < 40 or brightness > 230:
        return Check(
            "camera", WARN, detail + ": too dark or too bright for screens, see hardware.md"
        )
    if device and (w, h) != (cam.width, cam.height):
        return Check("camera", WARN, detail + f": asked for {cam.width}x{cam.height}")
    return Check("camera", PASS, detail)


def check_gate(
    cfg: Config, opts: SelftestOptions, *, pin_factory: Any, sleep: Callable[[float], None]
) -> list[Check]:
    """Relay click, lights and buzzer, and the door/exit inputs."""
    from sentinel.gate.gate import Gate

    g = cfg.gate
    try:
        gate = Gate(g, pin_factory=pin_factory)
    except SentinelError as exc:
        return [Check("gpio", FAIL, f"{g.pin_factory}: {exc}")]
    checks = []
    if g.pin_factory == "mock":
        checks.append(Check("gpio", WARN, "gate.pin_factory = 'mock': no real pins are switched"))
    try:
        if opts.skip_relay:
            checks.append(Check("relay", SKIP, "--skip-relay"))
        else:
            released, relocked = gate.click(opts.click_s, sleep)
            where = f"GPIO{g.relay_pin} {'active-high' if g.relay_active_high else 'active-low'}"
            ok = released and relocked
            checks.append(
                Check(
                    "relay",
                    PASS if ok else FAIL,
                    f"{where}, {g.lock_type}: clicked for {opts.click_s:g} s and locked again"
                    if ok
                    else f"{where}: did not read back (released={released}, locked={relocked})",
                )
            )
        outputs = [("green", gate.green_led, g.green_led_pin), ("red", gate.red_led, g.red_led_pin)]
        if gate.buzzer is not None:
            outputs.append(("buzzer", gate.buzzer, g.buzzer_pin))
        bad = []
        for name, dev, _pin in outputs:
            dev.on()
            on = bool(dev.value)
            sleep(opts.click_s)
            dev.off()
            if not on or dev.value:
                bad.append(name)
        names = ", ".join(f"{n} GPIO{p}" for n, _d, p in outputs)
        checks.append(
            Check("lights", FAIL, f"did not read back: {', '.join(bad)}")
            if bad
            else Check("lights", PASS, f"{names} switched on and off: did you see/hear each?")
        )
        door = gate.door_is_open()
        if door is None:
            checks.append(Check("door contact", SKIP, "not fitted (gate.door_pin unset)"))
        elif door:
            checks.append(
                Check("door contact", WARN, f"GPIO{g.door_pin} reads OPEN: shut the door")
            )
        else:
            checks.append(Check("door contact", PASS, f"GPIO{g.door_pin} reads shut"))
        pressed = gate.exit_pressed()
        if pressed is None:
            checks.append(Check("exit button", SKIP, "not fitted (gate.exit_pin unset)"))
        elif pressed:
            checks.append(Check("exit button", WARN, f"GPIO{g.exit_pin} reads PRESSED: stuck?"))
        else:
            checks.append(Check("exit button", PASS, f"GPIO{g.exit_pin} reads released"))
    finally:
        gate.close()
    return checks


def check_clock(now: datetime, trust_updated: datetime | None, ntp_flag: Path) -> Check:
    """The wall clock is plausible: not before 2024, not before the last sync."""
    stamp = now.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    if not EARLIEST_PLAUSIBLE <= now < LATEST_PLAUSIBLE:
        return Check("clock", FAIL, f"{stamp} is not plausible: set the time (NTP or an RTC)")
    if trust_updated is not None and now < trust_updated:
        return Check("clock", FAIL, f"{stamp} is before the last data sync ({trust_updated:%F})")
    if not ntp_flag.exists():
        return Check("clock", WARN, f"{stamp}; not NTP-synchronised: fit an RTC if offline")
    return Check("clock", PASS, f"{stamp}, NTP-synchronised")


def check_disk(data_dir: Path, opts: SelftestOptions) -> Check:
    """Free space where the journal lives."""
    p = data_dir.resolve()
    while not p.exists() and p != p.parent:
        p = p.parent
    usage = shutil.disk_usage(p)
    free_mb = usage.free / 1e6
    detail = f"{free_mb / 1000:.1f} GB free of {usage.total / 1e9:.1f} GB at {p}"
    from sentinel.journal.space import WRITE_RESERVE_BYTES

    if usage.free < WRITE_RESERVE_BYTES:  # the journal refuses events: DISK_FULL
        return Check("disk", FAIL, detail + " — DISK_FULL: events are not journaled")
    if free_mb < opts.min_free_mb:
        return Check("disk", FAIL, detail + f" (need {opts.min_free_mb} MB)")
    if free_mb < opts.warn_free_mb:
        return Check("disk", WARN, detail)
    return Check("disk", PASS, detail)


def load_trust(cfg: Config) -> tuple[Any, str]:
    """The service's trust provider, or None and why there is none."""
    from sentinel.daemon import make_trust

    try:
        return make_trust(cfg), ""
    except SentinelError as exc:
        return None, str(exc)
    except Exception as exc:
        return None, f"unreadable: {type(exc).__name__}: {exc}"


def check_data(trust: Any, now: datetime, missing: str = "") -> Check:
    """Trust data present, and how old it is against trust.max_data_age_hours."""
    if trust is None:
        return Check("data", FAIL, missing or "no trust data configured")
    from sentinel.trust.applied import StoreTrust

    state = trust.state()
    if isinstance(trust, StoreTrust) and not state.bundle_version and state.updated_at is None:
        # a store with nothing this release can read: none synced yet, or one an older
        # release applied in an older format (an upgrade) -- the service would refuse all
        return Check("data", FAIL, "no bundle applied that this release reads: run sentinel sync")
    version = state.bundle_version or "(no version)"
    if state.updated_at is None:
        return Check("data", PASS, f"{version}: local trust file, no sync (no age limit)")
    age = now - state.updated_at
    hours = age.total_seconds() / 3600
    detail = f"{version}: synced {hours:.1f} h ago (max {state.max_age.total_seconds() / 3600:g} h)"
    if age > state.max_age:
        stale = FAIL if state.stale_action == "refuse" else WARN
        return Check("data", stale, detail + f": STALE, action '{state.stale_action}'")
    if age > state.max_age / 2:
        return Check("data", WARN, detail + ": sync soon")
    return Check("data", PASS, detail)


def run_selftest(
    cfg: Config,
    opts: SelftestOptions | None = None,
    *,
    pin_factory: Any = None,
    trust: Any = None,
    now: datetime | None = None,
    sleep: Callable[[float], None] = time.sleep,
    ntp_flag: Path = NTP_FLAG,
) -> list[Check]:
    """Every check, in the order an installer walks them."""
    opts = opts or SelftestOptions()
    now = now or datetime.now(UTC)
    checks = [check_camera(cfg.camera)]
    checks += check_gate(cfg, opts, pin_factory=pin_factory, sleep=sleep)
    missing, owned = "", trust is None
    if trust is None:
        trust, missing = load_trust(cfg)
    try:
        updated = trust.state().updated_at if trust is not None else None
        checks.append(check_clock(now, updated, ntp_flag))
        checks.append(check_disk(Path(cfg.data_dir), opts))
        checks.append(check_data(trust, now, missing))
    finally:
        close = getattr(trust, "close", None) if owned else None
        if close is not None:
            close()
    return checks


def format_table(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    lines = [f"{'check':<{width}}  result  detail"]
    lines += [f"{c.name:<{width}}  {c.status:<6}  {c.detail}" for c in checks]
    failed = sum(c.status == FAIL for c in checks)
    warned = sum(c.status == WARN for c in checks)
    plural = "s" if failed != 1 else ""
    lines.append(
        f"selftest: {failed} failure{plural}, {warned} warning(s)"
        if failed
        else f"selftest: no failures, {warned} warning(s)"
    )
    return "\n".join(lines)
