"""The long-running service: wires scan → pipeline → gate/journal, plus background parts.

Parts start in order and stop in reverse.  The frame loop and every background timer
wait on one ``stop`` event (set by SIGTERM/SIGINT), never on bare sleeps; restarts
belong to systemd.  On any exit the gate is closed, which leaves the relay locked.
"""

from __future__ import annotations

import importlib
import logging
import resource
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from sentinel.config import Config
from sentinel.errors import ConfigError
from sentinel.gate import Gate
from sentinel.journal import Journal
from sentinel.journal.space import DiskFull
from sentinel.pipeline import Pipeline
from sentinel.reasons import ReasonCode
from sentinel.safefs import private_dir
from sentinel.scan.sources import Backoff, FrameSource, supervised_frames
from sentinel.sdnotify import DEFAULT_WATCHDOG_INTERVAL_S, WatchdogPinger
from sentinel.trust import FileTrust, TrustProvider

log = logging.getLogger(__name__)

# Areas that plug into the service.  Each module, when it exists, has ``attach(daemon)``
# which may add periodic jobs (sync, purge, heartbeat), pipeline listeners (kiosk, fleet)
# and closers; they run in this order and their closers in reverse.
PART_MODULES = [
    "sentinel.trust.service",
    "sentinel.journal.service",
    "sentinel.gate.service",
    "sentinel.web.service",
    "sentinel.fleet.service",
    "sentinel.credentials.healthcode_service",
]
# Parts whose failure must not stop the gate: the pages (port taken, users.db unreadable).
OPTIONAL_PARTS = frozenset({"sentinel.web.service"})
FD_LIMIT = 65536  # descriptors wanted (systemd's default soft limit is 1024)


def raise_fd_limit(want: int = FD_LIMIT) -> int:
    """Raise the soft RLIMIT_NOFILE towards the hard limit (no privilege needed)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            return target
        except (ValueError, OSError):
            pass
    return soft


@dataclass(slots=True)
class Periodic:
    """A background job run every ``interval_s`` on its own thread until stop."""

    name: str
    interval_s: float
    func: Callable[[], None]
    run_at_start: bool = True


def make_trust(cfg: Config) -> TrustProvider:
    """The applied bundle under data_dir (or, with trust.publisher_url, the one to come),
    falling back to trust.trust_file until a bundle is applied."""
    from sentinel.trust.applied import StoreTrust
    from sentinel.trust.store import BundleStore

    fallback = FileTrust(cfg.trust.trust_file, cfg.trust) if cfg.trust.trust_file else None
    if cfg.trust.publisher_url or BundleStore.exists(cfg.data_dir):
        return StoreTrust(cfg.data_dir, cfg.trust, fallback=fallback)
    if fallback is not None:
        return fallback
    raise ConfigError(
        "no trust data: apply a bundle (sentinel sync --from DIR), set trust.publisher_url "
        "and trust.root_key, or set trust.trust_file (a trust-list JSON) in the config file"
    )


class Daemon:
    def __init__(
        self,
        config: Config,
        *,
        pin_factory: Any = None,
        trust: TrustProvider | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        notify: Callable[[str], object] | None = None,
        watchdog_interval_s: float = DEFAULT_WATCHDOG_INTERVAL_S,
        opener: Callable[[], FrameSource] | None = None,
    ) -> None:
        self.config = config
        # The camera, opened (and reopened) by supervised_frames; None: from camera.source.
        self.opener = opener
        self.clock = clock
        self.stop = threading.Event()
        # sd_notify (sentinel.sdnotify): READY=1 once serving, WATCHDOG=1 at most every
        # watchdog_interval_s (half of systemd's WatchdogSec), STOPPING=1 on the way out.
        self.notify = notify or (lambda _msg: None)
        self.watchdog = WatchdogPinger(
            self.notify,
            watchdog_interval_s or DEFAULT_WATCHDOG_INTERVAL_S,
            monotonic=time.monotonic,
        )
        private_dir(config.data_dir)  # 0700 whatever the umask (D15)
        raise_fd_limit()
        self.trust = trust or make_trust(config)
        self.gate = Gate(config.gate, pin_factory=pin_factory)
        try:
            self.journal = self._open_journal()
        except BaseException:
            self.gate.close()
            raise
        self.pipeline = Pipeline(config, self.trust, self.gate, self.journal)
        self.periodic: list[Periodic] = []
        self._threads: list[threading.Thread] = []
        self._closers: list[Callable[[], None]] = []
        self.frames = 0
        self._retry = Backoff()
        try:
            self._attach_parts()
        except BaseException:
            self.close()
            raise

    # How often a start on a disk too full to open the journal looks again.
    disk_retry_s: float = 30.0

    def _open_journal(self) -> Journal:
        """The journal; on a disk too full even to open it, wait for space (the purge
        timer or an operator frees it) instead of exiting into systemd's restart limit.
        The gate stays locked meanwhile; SIGTERM still stops the service."""
        told = False
        while True:
            try:
                return Journal(Path(self.config.data_dir) / "journal.db")
            except DiskFull as exc:
                if not told:
                    log.error("%s: waiting for free space", exc)
                    self.notify(f"READY=1\nSTATUS=waiting for free space: {exc}")
                    told = True
                self.watchdog()
                if self.stop.wait(min(self.disk_retry_s, self.watchdog.interval_s)):
                    raise

    def _attach_parts(self) -> None:
        for name in PART_MODULES:
            try:
                module = importlib.import_module(name)
            except ModuleNotFoundError as exc:
                if exc.name == name:  # an area without service parts
                    continue
                raise
            if name in OPTIONAL_PARTS:
                try:
                    module.attach(self)
                except Exception as exc:  # the gate keeps serving without its pages (D5)
                    log.error("%s failed to start, running without it: %s", name, exc)
                continue
            module.attach(self)

    def add_periodic(self, job: Periodic) -> None:
        self.periodic.append(job)

    def add_closer(self, func: Callable[[], None]) -> None:
        """Register a part's shutdown; run in reverse order of registration."""
        self._closers.append(func)

    def install_signal_handlers(self) -> None:
        def handler(signum: int, _frame: FrameType | None) -> None:
            log.info("signal %s: stopping", signum)
            self.stop.set()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def _run_periodic(self, job: Periodic) -> None:
        if not job.run_at_start and self.stop.wait(job.interval_s):
            return
        while not self.stop.is_set():
            try:
                job.func()
            except Exception:
                log.exception("%s failed", job.name)
            if self.stop.wait(job.interval_s):
                return

    def run(self) -> int:
        """Run until stop is set or a file source ends; return an exit code."""
        for job in self.periodic:
            t = threading.Thread(target=self._run_periodic, args=(job,), name=job.name, daemon=True)
            t.start()
            self._threads.append(t)
        cam = self.config.camera
        venue, gate = self.config.venue.id, self.config.gate.id
        self.notify(f"READY=1\nSTATUS=serving venue {venue} gate {gate}")
        log.info("sentinel running: venue %s gate %s", venue, gate)
        try:
            while True:
                before = self.frames
                if self._frame_loop(cam):
                    break
                # The source failed with an OSError (EMFILE while flooded, a vanished
                # file): a fault, then again after a pause; the gate stays as it is (D5).
                if self.frames > before:
                    self._retry.reset()
                if self._pause(self._retry.next()):
                    break
        finally:
            self.notify("STOPPING=1")
        return 0

    def _pause(self, seconds: float) -> bool:
        """Wait ``seconds`` (True if stop was set), pinging the watchdog every 5 s."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            if self.stop.wait(min(5.0, left)):
                return True
            self.watchdog()
        return self.stop.is_set()

    def _frame_loop(self, cam: Any) -> bool:
        """Frames until stop or the end of a file source (True), or an OSError (False)."""
        faults = 0
        try:
            # A camera that vanishes or goes black: one CAMERA_FAULT event (kiosk, journal),
            # reopened with backoff waiting on self.stop, CAMERA_RECOVERED when it is back.
            for frame in supervised_frames(
                cam,
                self.stop,
                on_fault=lambda _msg: self.pipeline.device_event(ReasonCode.CAMERA_FAULT),
                on_recover=lambda: self.pipeline.device_event(ReasonCode.CAMERA_RECOVERED),
                idle=self.watchdog,
                opener=self.opener,
            ):
                self.frames += 1
                try:
                    self.pipeline.process_frame(frame, self.clock(), time.monotonic())
                except Exception:  # one bad frame (or a full disk) never ends the service
                    faults += 1
                    if faults in (1, 10) or faults % 1000 == 0:
                        log.exception(
                            "frame %d could not be processed (%d so far)", self.frames, faults
                        )
                # Pinged from the frame loop, so a hung camera or pipeline stops
                # the pings and systemd restarts the service (WatchdogSec=).
                self.watchdog()
        except OSError as exc:
            log.error("camera source failed: %s", exc)
            try:
                self.pipeline.device_event(ReasonCode.CAMERA_FAULT)
            except Exception:
                log.exception("could not record the camera fault")
            return False
        return True

    def close(self) -> None:
        self.stop.set()
        for t in self._threads:
            t.join(timeout=10)
        for func in reversed(self._closers):
            try:
                func()
            except Exception:
                log.exception("shutdown step failed")
        self._closers.clear()
        self.journal.close()
        self.gate.close()  # last: the relay goes to its safe state

    def __enter__(self) -> Daemon:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
