"""``sentinel demo --serve``: the real service, as ``sentinel run`` starts it, on a demo setup.

Everything lives in one directory (a temporary one unless ``--out``; there its
``authority/`` and ``data/`` are made afresh at each start and kept after exit):

* a demo authority (root key, DCC signer, health-code issuer, status set) publishing a
  signed bundle, served over HTTP on 127.0.0.1 (a free port) by a local publisher;
* the device's config: sync from that publisher (pinned root key), mock GPIO pins,
  the kiosk and the pages on ``host:port`` (``http://127.0.0.1:8080/kiosk``), a one-day
  retention window purged every minute, a looping camera of rendered presentations
  (:mod:`sentinel.demo_camera`);
* a manager and an auditor account with one-time passwords printed at start (made
  for this run's data directory only), and the kiosk PIN.

The service is :class:`sentinel.daemon.Daemon` itself; Ctrl-C (SIGINT) or SIGTERM stops
it, then the publisher, and removes the temporary directory.  Exit code 0.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import shutil
import tempfile
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from sentinel.authority import healthcode_issue as hci
from sentinel.config import (
    CameraConfig,
    Config,
    GateConfig,
    RetentionConfig,
    TrustConfig,
    VenueConfig,
    WebConfig,
)
from sentinel.credentials.healthcode_keys import HealthCodeKeys
from sentinel.demo import make_cases
from sentinel.demo_camera import (
    PASSPORT_GREEN,
    PASSPORT_RED,
    DemoCamera,
    Scene,
    card_scene,
    health_scenes,
    interleave,
    qr_scene,
    td3,
)
from sentinel.errors import ConfigError
from sentinel.journal import Event, Journal
from sentinel.reasons import ReasonCode, is_admit

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEMO_USERS = (("manager", "manager"), ("auditor", "auditor"))


def _publish(out: Path, now: datetime, device_dir: Path) -> tuple[list[Scene], Path]:
    """The demo authority: publish bundle v1 into ``out/site`` (the status key sealed to
    the device of ``device_dir``, as if it had enrolled); return the scenes and the root
    public key file a device pins."""
    from sentinel.authority.publish import Inputs, StatusRecord, generate_root_key, publish
    from sentinel.trust import bundle as bm
    from sentinel.trust import sealing

    cases, trust_list = make_cases(now)
    issuer = hci.Issuer.generate()
    until = now + timedelta(days=30)
    status = [
        StatusRecord("green", until, "P", "XXA", PASSPORT_GREEN),
        StatusRecord("red", until, "P", "XXA", PASSPORT_RED),
        StatusRecord("green", until, subject_id="DEMOGREEN0A1"),
        StatusRecord("red", until, subject_id="DEMOCHNG0D4E"),
    ]
    root = generate_root_key()
    seal = sealing.load_or_create_seal_key(device_dir).public_key()
    publish(
        out / "site",
        Inputs(
            status=status,
            signers=trust_list,
            revocations=[],
            extra_parts={"healthcode_keys": HealthCodeKeys((issuer.trusted(),)).to_json_bytes()},
        ),
        [root],
        now=now,
        expires_in=timedelta(days=7),
        devices={sealing.fingerprint(seal): seal},
    )
    root_pub = out / "root_pub.pem"
    root_pub.write_bytes(bm.public_pem(root))

    dcc = [qr_scene(c.name, c.expected, c.text) for c in cases]
    health = health_scenes(issuer)
    cards = [
        card_scene("passport, status green", ReasonCode.ADMIT, td3("DEMO", "ALEX", PASSPORT_GREEN)),
        card_scene("passport, status red", ReasonCode.STATUS_RED, td3("DEMO", "RED", PASSPORT_RED)),
    ]
    scenes = dcc + health + cards
    admits = [s for s in scenes if is_admit(s.expected)]
    refusals = [s for s in scenes if not is_admit(s.expected)]
    return interleave(admits, refusals), root_pub


def demo_config(out: Path, publisher_url: str, root_pub: Path, host: str, port: int) -> Config:
    """The device config of the demo service (what a provisioned sentinel.toml holds)."""
    return replace(
        Config(),
        data_dir=str(out / "data"),
        venue=VenueConfig(id="demo-venue", name="Demo Venue", name_zh="演示场所"),
        # mock pins; a short unlock pulse so each presentation shows its own lock state
        gate=GateConfig(pin_factory="mock", pulse_s=1.0),
        camera=CameraConfig(source="demo-camera", loop=True),
        trust=TrustConfig(publisher_url=publisher_url, root_key=str(root_pub), sync_interval_s=60),
        retention=RetentionConfig(retention_days=1, purge_interval_s=60),
        web=WebConfig(enabled=True, host=host, port=port, kiosk_result_s=1.6),
    )


def _seed_old_events(data_dir: Path, now: datetime) -> int:
    """A few refusals from three days ago: outside the one-day window, so the purge at
    start deletes them (its log line shows it)."""
    with Journal(data_dir / "journal.db", retention_days=30) as j:
        for h in range(6):
            t = now - timedelta(days=3, hours=h)
            j.record(Event(t, "demo-venue", "gate-1", "refuse", "EXPIRED", "dcc_vaccination"))
    return 6


def _accounts(data_dir: Path) -> tuple[list[tuple[str, str, str]], str]:
    """The demo's manager and auditor with fresh random passwords, and a kiosk PIN."""
    from sentinel.web.users import UserStore

    store = UserStore(data_dir / "users.db")
    out = []
    for name, role in DEMO_USERS:
        password = secrets.token_urlsafe(9)  # 12 characters, 72 bits
        store.add(name, role, password)
        out.append((name, role, password))
    pin = f"{secrets.randbelow(10**6):06d}"
    store.set_pin(pin)
    return out, pin


def pin_state(gate: Any) -> dict[str, bool]:
    """The mock pins as the demo shows them: lock released, LEDs and buzzer on."""

    def on(dev: Any) -> bool:
        return dev is not None and bool(dev.value)

    return {
        "unlocked": bool(gate.unlocked),
        "green": on(gate.green_led),
        "red": on(gate.red_led),
        "buzzer": on(gate.buzzer),
    }


def _pins(gate: Any) -> str:
    p = pin_state(gate)
    lock = "OPEN  " if p["unlocked"] else "locked"
    return f"lock {lock} green {'on ' if p['green'] else 'off'} red {'on ' if p['red'] else 'off'}"


class PinFeed:
    """Shows the mock pins on the kiosk: a "pins" message when they change, and every
    ``every`` ticks for a page that just connected."""

    def __init__(self, gate: Any, hub: Any, every: int = 10) -> None:
        self.gate, self.hub, self.every = gate, hub, every
        self.last: dict[str, bool] | None = None
        self.ticks = 0

    def __call__(self) -> None:
        now = pin_state(self.gate)
        self.ticks += 1
        if now != self.last or self.ticks % self.every == 0:
            self.last = now
            self.hub.publish("pins", now)


def serve_demo(
    *,
    stream: TextIO,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    out_dir: Path | None = None,
) -> int:
    """Run the demo service until SIGINT/SIGTERM; return the exit code."""
    from sentinel.authority.testing import BundleServer
    from sentinel.daemon import Daemon
    from sentinel.trust.store import BundleStore
    from sentinel.trust.sync import HttpSource, Syncer

    tmp = out_dir is None
    out = Path(tempfile.mkdtemp(prefix="sentinel-demo-")) if out_dir is None else out_dir
    out.mkdir(parents=True, exist_ok=True)
    for sub in ("authority", "data"):  # --out again: a fresh demo, not a half-old one
        shutil.rmtree(out / sub, ignore_errors=True)
    now = datetime.now(UTC)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise

    def say(text: str) -> None:
        print(text, file=stream, flush=True)

    try:
        scenes, root_pub = _publish(out / "authority", now, out / "data")
        with BundleServer(out / "authority" / "site") as publisher:
            cfg = demo_config(out, publisher.url, root_pub, host, port)
            data = Path(cfg.data_dir)
            data.mkdir(parents=True, exist_ok=True)
            # Provisioning's first sync (sentinel sync): the device starts with data.
            from sentinel.trust.service import pinned_root_key

            with BundleStore(data) as store, contextlib.closing(HttpSource(publisher.url)) as src:
                Syncer(store, src, root_key=pinned_root_key(cfg.trust)).sync()
            seeded = _seed_old_events(data, now)
            users, pin = _accounts(data)
            holder: list[Daemon] = []
            cams: list[DemoCamera] = []

            def show(event: Event, decision: Any) -> None:
                if event.decision not in ("admit", "refuse", "override"):
                    return
                d = holder[0]
                scene = cams[-1].current if cams else None
                name = scene.name if scene else "(staff)"
                ok = scene is None or scene.expected.value == event.reason
                say(
                    f"  {event.time:%H:%M:%S} {'ok  ' if ok else 'FAIL'} "
                    f"{event.decision.upper():<8} {event.reason:<20} {name:<24} {_pins(d.gate)}"
                )

            def opener() -> DemoCamera:
                cams[:] = [DemoCamera(scenes, holder[0].stop)]
                return cams[0]

            try:
                daemon = Daemon(cfg, opener=opener)
            except ConfigError as exc:  # the port is taken, most likely
                raise ConfigError(
                    f"{exc}; choose another: sentinel demo --serve --port N"
                ) from None
            with daemon:
                holder.append(daemon)
                daemon.pipeline.listeners.append(show)
                daemon.install_signal_handlers()
                from sentinel.daemon import Periodic

                feed = PinFeed(daemon.gate, daemon.web.context.hub)
                daemon.add_periodic(Periodic("demo-pins", 0.2, feed))
                base = f"http://{host}:{daemon.web.server.port}"
                say("Sentinel demo service (the real service on a demo authority)")
                say(f"  kiosk      {base}/kiosk")
                say(f"  sign in    {base}/login")
                for name, role, password in users:
                    say(f"  {role:<10} user {name!r}, one-time password: {password}")
                say(f"  kiosk PIN  {pin} (staff 'open once' on the kiosk)")
                say(f"  publisher  {publisher.url} (demo authority, bundle synced, every 60 s)")
                say(f"  retention  1 day, purge every 60 s ({seeded} old rows to purge)")
                say(f"  data       {out}{' (removed at exit)' if tmp else ''}")
                say(f"  camera     {len(scenes)} presentations in a loop, admits and refusals")
                say("Ctrl-C stops the demo.")
                rc = daemon.run()
        say("demo stopped: service, web server and publisher closed")
        return rc
    finally:
        if tmp:
            shutil.rmtree(out, ignore_errors=True)
