"""The gate: lock relay, indicators and door inputs on gpiozero, around the door machine.

The relay's *unlock* level follows the lock type (``gate.lock_type``):

* **fail-secure** (electric strike, motor lock): locked when unpowered, so the relay is
  energised only to unlock.
* **fail-safe** (magnetic lock, fail-safe strike): unlocked when unpowered, so the relay
  is energised to hold the door locked, from start until stop.

``gate.relay_active_high`` says which pin level energises the relay (active-low boards
are common).  At start the relay goes straight to *locked*; ``close()`` (service stop)
and a crash leave it de-energised, which is the lock type's own power-loss state:
locked for fail-secure, released for fail-safe (what fire-exit rules require of it).

Door logic lives in :mod:`sentinel.gate.door` (pure); this class feeds it events from
``admit()``, the inputs and its scheduler, carries out the effects on the pins and
reports alarms and exits to ``listeners`` (the service journals them).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gpiozero import LED, Buzzer, DigitalInputDevice, DigitalOutputDevice
from gpiozero.exc import GPIOZeroError

from sentinel.config import GateConfig
from sentinel.errors import ConfigError, HardwareError
from sentinel.gate import door as d
from sentinel.gate import indicators as ind
from sentinel.gate.pins import make_pin_factory
from sentinel.gate.timers import Handle, Scheduler, ThreadScheduler
from sentinel.reasons import ReasonCode

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class GateSignal:
    """Something to journal and show: an alarm, its end, or an exit.  No personal data."""

    reason: ReasonCode
    kind: str  # the journal's decision column: "event" or "exit"


Listener = Callable[[GateSignal], None]


class Gate:
    """Drives the lock relay, green/red LEDs, buzzer; reads door contact and exit button.

    ``admit()`` unlocks for ``pulse_s`` (a second admit while unlocked extends the window,
    it does not pulse twice); ``refuse()`` flashes red; ``pulses`` counts unlock windows
    opened.  Inject ``pin_factory`` (MockFactory in tests) and ``scheduler`` (a
    :class:`~sentinel.gate.timers.ManualScheduler` drives time without sleeps).
    """

    def __init__(
        self,
        config: GateConfig,
        *,
        pin_factory: Any = None,
        scheduler: Scheduler | None = None,
    ) -> None:
        self.config = config
        self.scheduler: Scheduler = scheduler or ThreadScheduler()
        self.listeners: list[Listener] = []
        self.pulses = 0  # unlock windows opened (extensions are not counted)
        self.grants = 0  # admit / exit / override requests
        self.door = d.Door()
        self._lock = threading.RLock()
        self._wake: Handle | None = None
        self._fault = False
        self._closed = False
        self._devices: list[Any] = []
        _check_pins(config)
        self._energised_when_locked = config.lock_type == "fail-safe"
        self._own_factory = pin_factory is None
        self.pin_factory = pin_factory or make_pin_factory(config.pin_factory)
        try:
            self._open_devices()
        except BaseException:
            self._close_devices()
            self._close_factory()
            raise
        self.green = ind.Channel(self.green_led, self.scheduler, self._lock)
        self.red = ind.Channel(self.red_led, self.scheduler, self._lock)
        self.buzz = ind.Channel(self.buzzer, self.scheduler, self._lock)
        if self.door_contact is not None and self.door_is_open():
            # Found open at start (a restart, a propped door): not forced, but the
            # held-open time starts now.
            self.door = d.Door(state=d.DoorState.OPEN, opened_at=self.scheduler.now())
            self._dispatch(d.Tick())
        self._wire_inputs()

    # --- devices ---------------------------------------------------------------------

    def _device(self, key: str, make: Callable[[], Any]) -> Any:
        try:
            dev = make()
        except (GPIOZeroError, OSError, RuntimeError) as exc:  # lgpio raises its own too
            raise HardwareError(
                f"gate.{key} = {getattr(self.config, key)}: {type(exc).__name__}: {exc}"
            ) from None
        self._devices.append(dev)
        return dev

    def _open_devices(self) -> None:
        cfg, pf = self.config, self.pin_factory
        # the relay first, and straight to "locked": initial_value is applied as the
        # pin becomes an output, so the lock never sees a released state at start
        self.relay = self._device(
            "relay_pin",
            lambda: DigitalOutputDevice(
                cfg.relay_pin,
                active_high=cfg.relay_active_high,
                initial_value=self._energised_when_locked,
                pin_factory=pf,
            ),
        )
        self.green_led = self._device(
            "green_led_pin", lambda: LED(cfg.green_led_pin, pin_factory=pf)
        )
        self.red_led = self._device("red_led_pin", lambda: LED(cfg.red_led_pin, pin_factory=pf))
        self.buzzer = None
        if cfg.buzzer_pin is not None:
            self.buzzer = self._device("buzzer_pin", lambda: Buzzer(cfg.buzzer_pin, pin_factory=pf))
        bounce = cfg.input_bounce_s or None
        self.door_contact = None
        if cfg.door_pin is not None:
            self.door_contact = self._device(
                "door_pin",
                lambda: _contact(cfg.door_pin, bounce, pf),
            )
        self.exit_button = None
        if cfg.exit_pin is not None:
            self.exit_button = self._device(
                "exit_pin",
                lambda: _contact(cfg.exit_pin, bounce, pf),
            )

    def _wire_inputs(self) -> None:
        if self.door_contact is not None:
            # pull-up, contact to GND: the input is active (low) while the contact is closed
            shut_when_active = self.config.door_contact == "nc"
            on_shut, on_open = self._door_closed, self._door_opened
            self.door_contact.when_activated = on_shut if shut_when_active else on_open
            self.door_contact.when_deactivated = on_open if shut_when_active else on_shut
        if self.exit_button is not None:
            self.exit_button.when_activated = self.request_exit

    def _close_factory(self) -> None:
        if self._own_factory:
            try:
                self.pin_factory.close()
            except Exception:
                log.exception("closing the pin factory failed")

    def _close_devices(self) -> None:
        for dev in reversed(self._devices):
            try:
                dev.close()
            except Exception:  # closing must go on for the others
                log.exception("closing %r failed", dev)
        self._devices.clear()

    # --- reading ---------------------------------------------------------------------

    @property
    def state(self) -> d.DoorState:
        return self.door.state

    @property
    def unlocked(self) -> bool:
        """True while the relay holds the lock released."""
        return bool(self.relay.value) != self._energised_when_locked

    def door_is_open(self) -> bool | None:
        """The door contact's reading (None: no contact fitted)."""
        if self.door_contact is None:
            return None
        closed = bool(self.door_contact.is_active)
        return not closed if self.config.door_contact == "nc" else closed

    def exit_pressed(self) -> bool | None:
        return None if self.exit_button is None else bool(self.exit_button.is_active)

    # --- commands --------------------------------------------------------------------

    def admit(self) -> None:
        """Unlock for ``pulse_s`` (or extend the open window), green light, one beep."""
        self._grant(self.config.pulse_s)
        with self._lock:
            if self._closed:
                return
            self.red.cancel_flash()
            self.buzz.flash(ind.ADMIT_BEEP)

    def refuse(self) -> None:
        """Red flashes and two beeps; the lock is not touched."""
        with self._lock:
            if self._closed:
                return
            self.red.flash(ind.REFUSE_RED)
            self.buzz.flash(ind.REFUSE_BEEP)

    def request_exit(self) -> None:
        """The request-to-exit button: unlock like an admit, reported as an exit."""
        if self._closed:
            return
        self._grant(self.config.pulse_s)
        self._emit([GateSignal(ReasonCode.EXIT, "exit")])

    def override(self) -> None:
        """Staff open the gate once.  Journaling and audit belong to the caller."""
        self._grant(self.config.pulse_s)

    def fault(self, active: bool = True) -> None:
        """Show (or clear) a device fault: slow red blink, three long beeps at onset."""
        with self._lock:
            if self._closed or active == self._fault:
                return
            self._fault = active
            if active:
                self.buzz.flash(ind.FAULT_BEEP)
            self._refresh_background()

    def click(self, seconds: float, sleep: Callable[[float], None]) -> tuple[bool, bool]:
        """Selftest: release the lock for ``seconds`` and secure it again, blocking.

        Returns whether the relay read back as released, then as locked.  Only for an
        idle gate (the self-test owns the pins while the service is stopped).
        """
        with self._lock:
            self._set_locked(False)
            released = self.unlocked
        sleep(seconds)
        with self._lock:
            self._set_locked(True)
            return released, not self.unlocked

    def tick(self) -> None:
        """Let the door machine check its deadlines (the service calls this periodically)."""
        self._dispatch(d.Tick())

    # --- the machine -----------------------------------------------------------------

    def _grant(self, duration_s: float) -> None:
        with self._lock:
            if self._closed:
                return
            self.grants += 1
        self._dispatch(d.Grant(duration_s))

    def _door_opened(self) -> None:
        self._dispatch(d.Opened())

    def _door_closed(self) -> None:
        self._dispatch(d.Closed())

    def _dispatch(self, event: d.DoorEvent) -> None:
        signals: list[GateSignal] = []
        with self._lock:
            if self._closed:
                return
            now = self.scheduler.now()
            self.door, effects = d.step(self.door, event, now, self.config.held_open_s)
            for effect in effects:
                match effect:
                    case d.Unlock():
                        self.pulses += 1
                        self._set_locked(False)
                        self.green.set_background(True)
                    case d.Lock():
                        self._set_locked(True)
                        self.green.set_background(None)
                    case d.Alarm(reason=r):
                        log.warning("door alarm: %s", r.value)
                        signals.append(GateSignal(r, "event"))
                    case d.AlarmCleared():
                        signals.append(GateSignal(ReasonCode.DOOR_CLOSED, "event"))
                    case d.WakeAt(at=at):
                        self._schedule_wake(at - now)
            if not any(isinstance(e, d.WakeAt) for e in effects) and self._wake is not None:
                self._wake.cancel()
                self._wake = None
            self._refresh_background()
        self._emit(signals)

    def _schedule_wake(self, delay_s: float) -> None:
        if self._wake is not None:
            self._wake.cancel()
        self._wake = self.scheduler.call_later(max(0.0, delay_s), self.tick)

    def _set_locked(self, locked: bool) -> None:
        energise = self._energised_when_locked if locked else not self._energised_when_locked
        self.relay.value = 1 if energise else 0
        log.debug("gate: %s (relay %s)", "locked" if locked else "unlocked", self._relay_word())

    def _relay_word(self) -> str:
        return "energised" if self.relay.value else "de-energised"

    def _refresh_background(self) -> None:
        if self.door.alarm:
            self.red.set_background(ind.ALARM_RED)
            self.buzz.set_background(ind.ALARM_BEEP)
        else:
            self.red.set_background(ind.FAULT_RED if self._fault else None)
            self.buzz.set_background(None)

    def _emit(self, signals: list[GateSignal]) -> None:
        for sig in signals:
            for listener in list(self.listeners):
                try:
                    listener(sig)
                except Exception:  # journaling trouble must not stop the gate
                    log.exception("gate listener failed")

    # --- lifetime --------------------------------------------------------------------

    def close(self) -> None:
        """De-energise the relay (the lock type's power-loss state) and release the pins."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._wake is not None:
                self._wake.cancel()
                self._wake = None
            for ch in (self.green, self.red, self.buzz):
                ch.stop()
            try:
                self.relay.off()
                # read back from the pin: what the lock is left in after the service stops
                state = "released" if self.unlocked else "locked"
                log.info("gate stopped: relay %s, lock %s", self._relay_word(), state)
            finally:
                self._close_devices()
                self._close_factory()

    def __enter__(self) -> Gate:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _contact(pin: int, bounce_s: float | None, pin_factory: Any) -> DigitalInputDevice:
    """A dry contact to GND on an internal pull-up: active while the contact is closed.

    Not ``gpiozero.Button``: its hold thread would delay ``close()`` by ``hold_time``
    while a door contact is (as usual) closed.
    """
    return DigitalInputDevice(pin, pull_up=True, bounce_time=bounce_s, pin_factory=pin_factory)


def _check_pins(cfg: GateConfig) -> None:
    """Each configured pin once; a clash is a config mistake, named by its keys."""
    keys = ("relay_pin", "green_led_pin", "red_led_pin", "buzzer_pin", "door_pin", "exit_pin")
    seen: dict[int, str] = {}
    for key in keys:
        pin = getattr(cfg, key)
        if pin is None:
            continue
        if pin in seen:
            raise ConfigError(f"gate.{key} and gate.{seen[pin]} both use GPIO {pin}")
        seen[pin] = key
