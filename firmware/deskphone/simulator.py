"""The simulated phone: the firmware on a machine without a Pi, in a terminal.

The very code a Pi runs (app.Phone: controller, runtime, keypad scanner, hook detector,
ringer cadence, OLED renderer), with three things swapped: gpiozero's MockFactory for the
pins, luma's dummy device for the OLED, and whatever audio the config names. The keyboard
drives the far end of the mock wires (``hw.sim.PhoneSim``): a digit closes that matrix
contact for a moment, the space bar lifts or replaces the handset. The OLED's actual frame
is drawn with half-block characters, with its text beneath it and the recent events.

Keys: 0-9 * #  keypad | space  handset up/down | f  hook flash | s  speaker |
      h  hold | m  mute | r  redial | q  quit
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import termios
import tty
from collections import deque
from collections.abc import Callable
from typing import Any, TextIO

from .app import Phone
from .config import PhoneConfig
from .phone import events as pe
from .phone.screens import Screen
from .runtime.devices import Devices

KEY_HELP = ("0-9*# keypad  space handset  f flash  s speaker  h hold  m mute  r redial  "
            "q quit")
FUNCTION_KEYS = {"s": "speaker", "h": "hold", "m": "mute", "r": "redial"}
PRESS_SECONDS = 0.12  # how long a tapped key stays closed (a terminal sends no key-up)
FLASH_SECONDS = 0.3


def sound_device() -> str | None:
    """ALSA's default device if one opens (a desktop's PulseAudio or PipeWire), else None."""
    saved = os.dup(2)  # alsa-lib prints its reasons to stderr, over the terminal UI
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        import alsaaudio  # the [alsa] extra; absent: no sound

        pcm = alsaaudio.PCM(alsaaudio.PCM_PLAYBACK, device="default")
        pcm.close()
    except Exception:
        return None
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    return "default"


def default_config(*, user: str = "100", sip_port: int = 5062, console_port: int = 5099,
                   peer: str = "127.0.0.1:5064", rtp_port: int = 17000,
                   state_dir: str = "", audio: str = "auto") -> str:
    """The embedded default: no registrar (offline), numbers dialled go to ``peer``; sound
    through the default ALSA device when there is one (``audio="auto"``), else silence."""
    state = f'state_dir = "{state_dir}"\n' if state_dir else ""
    device = sound_device() if audio == "auto" else None
    sound = ('backend = "alsa"\ndevice = "default"\nringtone = true\n' if device
             else 'backend = "null"\n')
    return (
        "[account]\n"
        f'user = "{user}"\npassword = ""\n'
        f'domain = "{peer}"\n'
        f'display_name = "Phone {user}"\n'
        "[sip]\n"
        f'listen = "127.0.0.1:{sip_port}"\n'
        f"rtp_port_min = {rtp_port}\nrtp_port_max = {rtp_port + 18}\n"
        "[console]\n"
        f'listen = "tcp:127.0.0.1:{console_port}"\n'
        "[phone]\n" + state +
        "[audio]\n" + sound
    )


class SimHardware:
    """Builds the mock devices for app.Phone and keeps what the terminal shows."""

    def __init__(self, on_change: Callable[[], None]) -> None:
        self._on_change = on_change
        self.sim: Any = None
        self.display: Any = None
        self.leds: dict[str, str] = {}
        self.ringing = False
        self.events: deque[str] = deque(maxlen=6)

    def build(self, on_event: Callable[[pe.HardwareEvent], None]) -> Devices:
        from .hw.mockboard import MockBoard

        board = MockBoard(on_ringer_change=self._ringer)
        devices = board.build(on_event)
        self.sim, self.display = board.sim, board.display
        sim_self = self

        class Leds:  # the board's lamps, and the terminal told of each change
            def set(self, name: str, mode: str) -> None:
                board.hardware.leds.set(name, mode)
                sim_self.leds[name] = mode
                sim_self._on_change()

        class ShownDisplay:  # the board's OLED, and the terminal redrawn with it
            def show(self, screen: Screen) -> bool:
                drew = board.display.show(screen)
                sim_self._on_change()
                return bool(drew)

        return Devices(ringer=devices.ringer, leds=Leds(), display=ShownDisplay(),
                       close=board.close)

    def _ringer(self, on: bool) -> None:  # the thread that rang or stopped the ringer
        self.ringing = on
        self._on_change()


class Terminal:
    """Draws the phone and reads keys; raw mode only when stdin is a terminal."""

    def __init__(self, phone: Phone, hw: SimHardware, out: TextIO = sys.stdout, *,
                 compact: bool = False) -> None:
        self.phone, self.hw, self.out, self.compact = phone, hw, out, compact
        self._loop: asyncio.AbstractEventLoop | None = None
        self._dirty = False
        self._saved: Any = None

    def changed(self) -> None:  # any thread
        loop = self._loop
        if loop is not None and not self._dirty:
            self._dirty = True
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self.draw)

    def note(self, event: dict[str, Any]) -> None:
        name = event.get("event")
        if name in ("screen",):
            return
        detail = " ".join(f"{k}={v}" for k, v in event.items()
                          if k not in ("event", "call_id") and v not in (None, ""))
        self.hw.events.append(f"{name} {detail}".strip())
        self.changed()

    def draw(self) -> None:
        from .hw.termframe import braille_lines, half_block_lines

        self._dirty = False
        hw = self.hw
        frame = hw.display.frame if hw.display is not None else None
        draw = braille_lines if self.compact else half_block_lines
        lines = draw(frame, border=True) if frame is not None else []
        rt = self.phone.runtime
        screen = rt.screen.text_lines() if rt is not None and rt.screen is not None else []
        sim = hw.sim
        status = (f"handset {'UP' if sim is not None and sim.offhook else 'down'}   "
                  f"ringer {'RINGING' if hw.ringing else 'off'}   lamps " +
                  " ".join(f"{k}:{v}" for k, v in sorted(hw.leds.items())))
        text = ["\x1b[H\x1b[2J", *lines, "screen: " + " | ".join(x for x in screen if x),
                status, "", *hw.events, "", KEY_HELP]
        self.out.write("\r\n".join(text) + "\r\n")
        self.out.flush()

    async def run(self) -> None:
        self._loop = loop = asyncio.get_running_loop()
        fd = sys.stdin.fileno()
        if os.isatty(fd):
            self._saved = termios.tcgetattr(fd)
            tty.setcbreak(fd)
        loop.add_reader(fd, self._on_input, fd)
        self.draw()

    def close(self) -> None:
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(Exception):
                loop.remove_reader(sys.stdin.fileno())
        if self._saved is not None:
            termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, self._saved)
            self._saved = None

    def _on_input(self, fd: int) -> None:
        try:
            data = os.read(fd, 64)
        except OSError:
            data = b""
        if not data:
            self.phone.request_stop()
            return
        for ch in data.decode("utf-8", "ignore"):
            self.key(ch)

    def key(self, ch: str) -> None:
        sim, loop = self.hw.sim, self._loop
        if sim is None or loop is None:
            return
        if ch in pe.DIGIT_KEYS or ch.lower() in FUNCTION_KEYS:
            key = ch if ch in pe.DIGIT_KEYS else FUNCTION_KEYS[ch.lower()]
            sim.press(key)
            loop.call_later(PRESS_SECONDS, sim.release, key)
        elif ch == " ":
            (sim.hang_up if sim.offhook else sim.lift)()
            self.changed()
        elif ch.lower() == "f" and sim.offhook:
            sim.hang_up()
            loop.call_later(FLASH_SECONDS, sim.lift)
        elif ch.lower() == "q" or ch == "\x03":
            self.phone.request_stop()


async def run_simulator(cfg: PhoneConfig, *, compact: bool = False,
                        local: dict[str, Any] | None = None,
                        provisioned: bool = False) -> None:
    terminal: Terminal | None = None

    def on_change() -> None:
        if terminal is not None:
            terminal.changed()

    hw = SimHardware(on_change)
    phone = Phone(cfg, hardware=hw.build, local=local, provisioned=provisioned)
    terminal = Terminal(phone, hw, compact=compact)
    phone.add_listener(terminal.note)
    try:
        start = asyncio.ensure_future(phone.run())
        started = asyncio.ensure_future(phone.started.wait())
        await asyncio.wait([start, started], return_when=asyncio.FIRST_COMPLETED)
        started.cancel()
        if not start.done():
            await terminal.run()
        await start
    finally:
        terminal.close()
