"""Key press to screen: from the keypad's pin edge to the new frame handed to the OLED.

The phone (``app.Phone`` on the mock board of bench/idle.py, registered at Kamailio)
runs on its asyncio loop in a thread of this process; this thread is the person. With
the handset off, each digit is pressed on the mock matrix (``PhoneSim.press``: the
column edge arrives on this thread) and held until its frame is out; the latency is
from just before ``press()`` to the luma device's ``display()`` being called with the
frame showing that digit (``time.perf_counter()`` both). Numbers are 10 random digits
(each one changes the title), then the handset goes back and is lifted again.

Split: scan + debounce (press -> ``KeyPressed`` leaves the keypad driver, on the timer
thread), hand-off (-> the loop takes the event), loop -> frame (controller, actions,
screen, render; shown apart for a number's first digit, which also stops the dial
tone), and alone: ``MediaPlant.stop_tone`` (the dial tone's, the loop joining the tone
thread) and ``Display.render`` (every frame drawn in the run).

    python bench/keypress.py [--presses 200] [--digits 10] [--key-debounce MS]

``--key-debounce`` overrides ``HardwareTiming.key_debounce`` (the firmware's default:
20 ms), to see what a shorter one would give.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from idle import MockBoard, PortAllocator, kamailio, phone_toml

TARGET_P95_MS = 30.0


class Stamps:
    """What the phone's threads saw, under one condition the person's thread waits on."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.frames: list[float] = []  # device.display() calls
        self.screens: list[tuple[list[str], float | None]] = []  # (lines, its frame's stamp)
        self.emitted: list[tuple[Any, float]] = []  # (hardware event, stamp)
        self.taken: list[tuple[Any, float]] = []  # (hardware event, the loop took it)
        self.render: list[float] = []  # seconds in Display.render
        self.stop_tone: list[float] = []  # seconds in MediaPlant.stop_tone (a tone playing)
        self.events: list[dict[str, Any]] = []  # console events
        self._frames_seen = 0

    def wait(self, predicate: Any, timeout: float = 2.0) -> Any:
        with self.cond:
            if not self.cond.wait_for(predicate, timeout):
                raise RuntimeError(f"timed out; last screens: {self.screens[-3:]}")
            return predicate()

    def on_broadcast(self, event: dict[str, Any]) -> None:  # the loop
        with self.cond:
            if event.get("event") == "screen":
                frame = self.frames[-1] if len(self.frames) > self._frames_seen else None
                self._frames_seen = len(self.frames)
                self.screens.append((list(event["lines"]), frame))
            self.events.append(event)
            self.cond.notify_all()

    def on_event(self, event: Any, forward: Any) -> None:  # the keypad's / hook's thread
        stamp = time.perf_counter()
        with self.cond:
            self.emitted.append((event, stamp))
            self.cond.notify_all()
        forward(event)


def stamped_device(stamps: Stamps) -> Any:
    from luma.core.device import dummy

    class StampedDummy(dummy):  # type: ignore[misc]
        def display(self, image: Any) -> None:
            stamps.frames.append(time.perf_counter())
            super().display(image)

    return StampedDummy(width=128, height=64, mode="1")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def run(presses: int, digits: int, seed: int,
        key_debounce: float | None = None) -> dict[str, list[float]]:
    from deskphone.app import Phone
    from deskphone.config import load_config
    from deskphone.hw.hardware import HardwareTiming
    from deskphone.phone import events as pe

    logging.basicConfig(level=logging.WARNING)
    rng = random.Random(seed)
    stamps = Stamps()
    ports = PortAllocator()
    out: dict[str, list[float]] = {"total": [], "scan": [], "handoff": [], "phone": [],
                                   "total_later": [], "phone_first": [], "phone_later": []}
    with tempfile.TemporaryDirectory(prefix="bench-keys-") as tmp_name, \
            kamailio(Path(tmp_name) / "kamailio", ports) as k:
        tmp = Path(tmp_name)
        config = tmp / "deskphone.toml"
        config.write_text(phone_toml("1001", k, ports.take(), ports.take(udp=False),
                                     ports.take(4, tcp=False, even=True), tmp / "state"))
        timing = HardwareTiming()
        if key_debounce is not None:
            timing = HardwareTiming(key_debounce=key_debounce)
        board = MockBoard(device=lambda: stamped_device(stamps), on_event=stamps.on_event,
                          timing=timing)
        phone = Phone(load_config(config), hardware=board.build)
        phone.add_listener(stamps.on_broadcast)
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_until_complete, args=(phone.run(),),
                                  name="phone-loop")
        thread.start()
        try:
            stamps.wait(lambda: any(e.get("event") == "registered" for e in stamps.events),
                        10.0)
            rt = phone.runtime
            assert rt is not None and board.display is not None
            hardware_event = rt.hardware_event

            def taken(event: Any) -> None:  # the loop, as it takes a hardware event
                with stamps.cond:
                    stamps.taken.append((event, time.perf_counter()))
                hardware_event(event)

            rt.hardware_event = taken  # type: ignore[method-assign]
            render = board.display.render

            def timed_render(screen: Any) -> Any:
                t = time.perf_counter()
                try:
                    return render(screen)
                finally:
                    stamps.render.append(time.perf_counter() - t)

            board.display.render = timed_render
            media = phone.media
            assert media is not None
            stop_tone = media.stop_tone

            def timed_stop_tone() -> None:
                playing = media._tone is not None
                t = time.perf_counter()
                stop_tone()
                if playing:
                    stamps.stop_tone.append(time.perf_counter() - t)

            media.stop_tone = timed_stop_tone  # type: ignore[method-assign]
            sim = board.sim
            done = 0
            while done < presses:
                sim.lift()
                stamps.wait(lambda: stamps.screens
                            and "Dial a number" in stamps.screens[-1][0])
                number = ""
                for _ in range(min(digits, presses - done)):
                    key = rng.choice("0123456789")
                    number += key
                    time.sleep(rng.uniform(0.0, 0.02))  # spread the phase against timers
                    with stamps.cond:
                        n_emitted, n_screens = len(stamps.emitted), len(stamps.screens)
                    t0 = time.perf_counter()
                    sim.press(key)

                    def shown(want: str = number, n: int = n_screens) -> float | None:
                        for lines, frame in stamps.screens[n:]:
                            if len(lines) > 1 and lines[1] == want and frame is not None:
                                return frame
                        return None

                    frame = stamps.wait(shown)
                    with stamps.cond:
                        emitted = next(s for e, s in stamps.emitted[n_emitted:]
                                       if e == pe.KeyPressed(key))
                        took = next(s for e, s in reversed(stamps.taken)
                                    if e == pe.KeyPressed(key))
                    out["total"].append(frame - t0)
                    out["scan"].append(emitted - t0)
                    out["handoff"].append(took - emitted)
                    out["phone"].append(frame - took)
                    if len(number) == 1:
                        out["phone_first"].append(frame - took)
                    else:
                        out["phone_later"].append(frame - took)
                        out["total_later"].append(frame - t0)
                    time.sleep(max(0.0, t0 + 0.06 - time.perf_counter()))  # a finger
                    n_emitted = len(stamps.emitted)
                    sim.release(key)
                    stamps.wait(lambda n=n_emitted, key=key: pe.KeyReleased(key) in
                                [e for e, _ in stamps.emitted[n:]])
                    done += 1
                sim.hang_up()
                stamps.wait(lambda number=number: stamps.screens
                            and stamps.screens[-1][0][1] != number
                            and "# to dial now" not in stamps.screens[-1][0])
        finally:
            loop.call_soon_threadsafe(phone.request_stop)
            thread.join(10)
            loop.close()
    out["render"] = stamps.render
    out["stop_tone"] = stamps.stop_tone
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--presses", type=int, default=200)
    ap.add_argument("--digits", type=int, default=10, help="digits per number dialled")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--key-debounce", type=float, metavar="MS",
                    help="the keypad's debounce time (default: the firmware's)")
    a = ap.parse_args()
    from deskphone.hw.hardware import HardwareTiming

    debounce = a.key_debounce / 1000 if a.key_debounce is not None else None
    out = run(a.presses, a.digits, a.seed, debounce)
    n = len(out["total"])
    used = debounce if debounce is not None else HardwareTiming().key_debounce
    print(f"key press -> frame to the OLED device, {n} presses off-hook, "
          f"numbers of {a.digits} digits, key debounce {used * 1000:g} ms")
    print(f"{'ms':28}{'p50':>8}{'p95':>8}{'max':>8}")
    names = {"total": "pin edge -> frame", "total_later": "  (digits after the 1st)",
             "scan": "  scan + debounce",
             "handoff": "  hand-off to the loop", "phone": "  loop -> frame",
             "phone_first": "    1st digit (tone stops)", "phone_later": "    later digits",
             "stop_tone": "    MediaPlant.stop_tone", "render": "    Display.render"}
    for key, name in names.items():
        v = [x * 1000 for x in out[key]]
        if v:
            print(f"{name:28}{statistics.median(v):8.1f}{percentile(v, 95):8.1f}"
                  f"{max(v):8.1f}")
    p95 = percentile(out["total"], 95) * 1000
    verdict = "met" if p95 <= TARGET_P95_MS else "MISSED"
    print(f"target p95 <= {TARGET_P95_MS:g} ms: {verdict}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
