"""Doubles for media tests: a fast clock, an in-memory sound card, an impairment relay;
and a lockstep clock, for tests that run the media thread one turn at a time.

The fast clock runs ``speed`` times faster than the wall clock, and everything that
paces (the sound card double, the relay's delays, the jitter buffer's arrival
times) uses it, so five seconds of a call take one second of test time while
every component still sees 20 ms between frames.
"""

from __future__ import annotations

import random
import socket
import threading
import time
from collections import deque
from collections.abc import Callable

import numpy as np

from deskphone.media.audio.base import Pacer

T0 = 1000.0  # the lockstep clock's first tick


class ScaledClock:
    def __init__(self, speed: float = 5.0) -> None:
        self.speed = speed
        self._t0 = time.monotonic()

    def __call__(self) -> float:
        return (time.monotonic() - self._t0) * self.speed

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds / self.speed)

    def wall(self) -> float:
        return 1_700_000_000.0 + self()


class LockstepClock:
    """Fake time that the Pacer's sleep moves, one tick each time the test says so."""

    def __init__(self) -> None:
        self.t = T0
        self._asleep = threading.Semaphore(0)  # the thread finished a turn and sleeps
        self._go = threading.Semaphore(0)
        self.free = False  # at the end: sleeps return at once

    def __call__(self) -> float:
        return self.t

    def wall(self) -> float:
        return 1_700_000_000.0 + self.t

    def sleep(self, seconds: float) -> None:
        if not self.free:
            self._asleep.release()
            assert self._go.acquire(timeout=10), "the test never let the next tick come"
        self.t += seconds

    def turn_done(self) -> None:
        assert self._asleep.acquire(timeout=10), "the media thread never finished its turn"

    def tick(self) -> None:
        self._go.release()


class Arrivals:
    """Stands in for ``transport.rtp.ArrivalTimes``: each packet read gets the next
    arrival stamp the test queued, on the lockstep clock."""

    def __init__(self, clock: LockstepClock) -> None:
        self.wall = clock  # the "kernel's" clock: the same as the thread's here
        self.speed = 1.0
        self.buf = bytearray(16)
        self.queued: deque[float] = deque()
        self._current = 0.0

    def stamp(self) -> None:
        if not self.queued:
            raise OSError("no stamp")
        self._current = self.queued.popleft()

    def unpack(self, buf: bytearray) -> tuple[int, int]:
        sec = int(self._current)
        return sec, round((self._current - sec) * 1e6)

    def __call__(self, now: float) -> float:
        try:
            self.stamp()
        except OSError:
            return now
        sec, usec = self.unpack(self.buf)
        age = self.wall() - (sec + usec * 1e-6)
        return now - age if 0.0 < age < 1.0 else now


class MemoryAudio:
    """Plays ``mic`` (then silence) as capture; keeps everything played."""

    name = "memory"
    frame_samples = 160

    def __init__(self, mic: np.ndarray, clock: ScaledClock | LockstepClock) -> None:
        self.mic = mic.astype(np.int16)
        self._pos = 0
        self._pacer = Pacer(0.02, clock=clock, sleep=clock.sleep)
        self.played: list[np.ndarray] = []
        self.started = self.stopped = 0

    def start(self) -> None:
        self.started += 1

    def read(self) -> np.ndarray:
        self._pacer.wait()
        chunk = self.mic[self._pos:self._pos + 160]
        self._pos += 160
        if len(chunk) < 160:
            chunk = np.concatenate((chunk, np.zeros(160 - len(chunk), np.int16)))
        return chunk

    def write(self, frame: np.ndarray) -> None:
        self.played.append(frame.copy())

    def stop(self) -> None:
        self.stopped += 1

    def close(self) -> None:
        pass

    def output(self) -> np.ndarray:
        return np.concatenate(self.played) if self.played else np.zeros(0, np.int16)


def udp_socket(host: str = "127.0.0.1") -> socket.socket:
    """A UDP socket on a free port of ``host`` (127.0.0.2 is another host: a stranger
    whose IP is not the peer's)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((host, 0))
    return s


class ImpairmentRelay:
    """A UDP relay between two RTP endpoints that loses, delays, reorders, duplicates.

    Each side sends to the relay's port for it; the relay forwards to the other
    side after ``delay() `` seconds of the scaled clock.
    """

    def __init__(self, clock: ScaledClock, *, loss: float = 0.0, jitter_ms: float = 0.0,
                 duplicate: float = 0.0, reorder: float = 0.0, seed: int = 7,
                 corrupt: Callable[[bytes], bytes | None] | None = None) -> None:
        self.clock = clock
        self.rng = random.Random(seed)
        self.loss, self.jitter_ms = loss, jitter_ms
        self.duplicate, self.reorder = duplicate, reorder
        self.corrupt = corrupt
        self.a_side = udp_socket()  # A sends here
        self.b_side = udp_socket()  # B sends here
        self.a_addr: tuple[str, int] | None = None  # learned from A's packets
        self.b_addr: tuple[str, int] | None = None
        self.forwarded = self.dropped = 0
        self._stop = threading.Event()
        self._queue: list[tuple[float, socket.socket, bytes, tuple[str, int]]] = []
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._rx, args=(s,), daemon=True)
                         for s in (self.a_side, self.b_side)]
        self._threads.append(threading.Thread(target=self._tx, daemon=True))

    def set_targets(self, a: tuple[str, int], b: tuple[str, int]) -> None:
        self.a_addr, self.b_addr = a, b

    @property
    def port_for_a(self) -> int:
        return int(self.a_side.getsockname()[1])

    @property
    def port_for_b(self) -> int:
        return int(self.b_side.getsockname()[1])

    def start(self) -> None:
        for s in (self.a_side, self.b_side):
            s.settimeout(0.05)
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(1)
        self.a_side.close()
        self.b_side.close()

    def _rx(self, sock: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                data, _ = sock.recvfrom(4096)
            except (TimeoutError, OSError):
                continue
            to_b = sock is self.a_side
            dest = self.b_addr if to_b else self.a_addr
            out = self.b_side if to_b else self.a_side  # the far side sees the relay's port
            if dest is None:
                continue
            if self.corrupt is not None:
                data2 = self.corrupt(data)
                if data2 is None:
                    self.dropped += 1
                    continue
                data = data2
            if self.rng.random() < self.loss:
                self.dropped += 1
                continue
            delay = self.rng.uniform(0, self.jitter_ms / 1000)
            if self.rng.random() < self.reorder:
                delay += 0.045  # overtaken by the next two packets
            copies = 2 if self.rng.random() < self.duplicate else 1
            with self._lock:
                for i in range(copies):
                    self._queue.append((self.clock() + delay + i * 0.001, out, data, dest))

    def _tx(self) -> None:
        while not self._stop.is_set():
            now = self.clock()
            with self._lock:
                due = [q for q in self._queue if q[0] <= now]
                self._queue = [q for q in self._queue if q[0] > now]
            for _, sock, data, dest in sorted(due, key=lambda q: q[0]):
                try:
                    sock.sendto(data, dest)
                    self.forwarded += 1
                except OSError:
                    pass
            time.sleep(0.0005)
