"""Builds the phone's devices from ``[hardware]``: the one place that decides which pin
factory and which display a running phone gets (the simulator passes its own)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..config import PhoneConfig
from ..phone import events as pe
from ..runtime.devices import Devices
from .pins import is_raspberry_pi as on_a_pi

log = logging.getLogger("deskphone.hw")


def build_devices(cfg: PhoneConfig, on_event: Callable[[pe.HardwareEvent], None]) -> Devices:
    """The devices ``[hardware]`` asks for; headless (none) off a Pi unless told."""
    hw = cfg.hardware
    gpio = hw.gpio
    if gpio == "auto":
        gpio = "lgpio" if on_a_pi() else "none"
    display_kind = hw.display
    if display_kind == "auto":
        display_kind = "ssd1306" if on_a_pi() else "none"
    closers: list[Callable[[], None]] = []
    ringer = leds = display = None
    if gpio == "lgpio":
        try:
            import lgpio  # noqa: F401 - Debian's python3-lgpio, or the [pi] extra
        except ImportError:
            log.error("no lgpio module: the keypad, hook and ringer are off "
                      "(apt-get install python3-lgpio)")
            gpio = "none"
    if gpio != "none":
        from .hardware import Hardware
        from .pins import PinMap, make_pin_factory
        from .timing import ThreadScheduler

        scheduler = ThreadScheduler()
        factory = make_pin_factory(gpio)
        hardware = Hardware(PinMap.from_overrides(hw.pin_overrides()),
                            pin_factory=factory, scheduler=scheduler, on_event=on_event)
        ringer, leds = hardware.ringer, hardware.leds
        # the factory last: it holds the gpiochip handle a restarted phone opens again
        closers += [hardware.close, scheduler.close, factory.close]
        log.info("hardware on the %s pin factory", gpio)
    if display_kind != "none":
        from .display import Display, open_device

        try:
            device = open_device(display_kind, interface=hw.display_interface,
                                 i2c_port=hw.oled_i2c_bus, i2c_address=hw.oled_i2c_address)
        except Exception as e:  # no panel on the bus: the phone works without a screen
            log.warning("no %s display at I2C 0x%02x: %s", display_kind, hw.oled_i2c_address,
                        e)
        else:
            display = Display(device)
            closers.append(display.close)

    def close() -> None:
        for c in reversed(closers):
            try:
                c()
            except Exception:
                log.exception("closing a device failed")

    return Devices(ringer=ringer, leds=leds, display=display, close=close)
