"""The phone's hardware without a Pi: gpiozero's MockFactory with ``hw.sim.PhoneSim`` on
the far end of the wires, and luma's dummy OLED. The simulator, the hardware-in-the-loop
tests and the benchmarks all build the phone on it: the drivers are the Pi's own, only
the pin factory and the display device differ. gpiozero and luma are imported here, at
the edge, when a board is made."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..phone import events as pe
from ..runtime.devices import Devices

EventSink = Callable[[pe.HardwareEvent], None]


class MockBoard:
    """Mock pins, the person's side (``sim``), and ``build``: app.Phone's hardware builder.

    ``device`` makes the display's luma device (default: a 128x64 dummy); ``on_event``
    wraps the drivers' event sink (a bench stamps events on their way in); ``timing`` is
    ``hw.hardware.HardwareTiming`` (None: the drivers' defaults); ``on_ringer_change`` is
    told when ringing starts and stops.
    """

    def __init__(self, *, device: Callable[[], Any] | None = None,
                 on_event: Callable[[pe.HardwareEvent, EventSink], None] | None = None,
                 timing: Any = None,
                 on_ringer_change: Callable[[bool], None] | None = None) -> None:
        from gpiozero.pins.mock import MockFactory, MockPWMPin

        from .pins import PinMap
        from .sim import PhoneSim
        from .timing import ThreadScheduler

        self.pinmap = PinMap()
        self.factory = MockFactory(pin_class=MockPWMPin)
        self.sim = PhoneSim(self.factory, self.pinmap)  # first: it owns the far ends
        self.scheduler = ThreadScheduler()
        self._device = device
        self._on_event = on_event
        self._timing = timing
        self._on_ringer_change = on_ringer_change
        self.display: Any = None
        self.hardware: Any = None
        self._closed = False

    def build(self, on_event: EventSink) -> Devices:
        from .display import Display
        from .hardware import Hardware

        sink = on_event
        if self._on_event is not None:
            wrap = self._on_event

            def sink(event: pe.HardwareEvent) -> None:
                wrap(event, on_event)

        self.hardware = Hardware(self.pinmap, pin_factory=self.factory,
                                 scheduler=self.scheduler, on_event=sink,
                                 timing=self._timing,
                                 on_ringer_change=self._on_ringer_change)
        if self._device is not None:
            device = self._device()
        else:
            from luma.core.device import dummy

            device = dummy(width=128, height=64, mode="1")
        self.display = Display(device)
        return Devices(ringer=self.hardware.ringer, leds=self.hardware.leds,
                       display=self.display, close=self.close)

    def ringer_level(self) -> float:
        """What the ringer pin carries now (a PWM pin: its duty cycle)."""
        return self.sim.level(self.pinmap.ringer_pin)

    def close(self) -> None:
        """Release every pin and thread (idempotent: the phone closes its devices, and
        whoever made the board closes it too)."""
        if self._closed:
            return
        self._closed = True
        if self.hardware is not None:
            self.hardware.close()
        if self.display is not None:
            self.display.close()
        self.scheduler.close()
        self.sim.close()
        self.factory.reset()
