"""ArrivalTimes: the kernel's receive stamp of the packet just read, on the caller's clock."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from deskphone.transport.rtp import ArrivalTimes


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    yield rx, tx
    rx.close()
    tx.close()


def stamping(rx: socket.socket, tx: socket.socket, arrived: ArrivalTimes) -> None:
    """Wait until the kernel stamps packets: the first ioctl turns stamping on through a
    work queue, so the packets of the next moments may come unstamped (dated as read)."""
    for _ in range(100):
        tx.sendto(b"warm-up", rx.getsockname())
        time.sleep(0.02)
        now = time.monotonic()
        rx.recv(2048)
        if now - arrived(now) > 0.01:
            return
    pytest.fail("the kernel never stamped a packet")


def test_a_packet_that_waited_is_dated_when_it_came(
        pair: tuple[socket.socket, socket.socket]) -> None:
    rx, tx = pair
    arrived = ArrivalTimes(rx)  # stamping on before the packets come
    stamping(rx, tx, arrived)
    for wait in (0.06, 0.0):
        tx.sendto(b"\x80" * 172, rx.getsockname())
        time.sleep(wait)
        now = time.monotonic()
        rx.recv(2048)
        age = now - arrived(now)
        # the packet sat in the socket for `wait` seconds before it was read
        assert wait <= age + 0.002, (wait, age)
        assert age < wait + 0.05, (wait, age)


def test_speed_scales_the_age_to_the_callers_clock(
        pair: tuple[socket.socket, socket.socket]) -> None:
    rx, tx = pair
    arrived = ArrivalTimes(rx, speed=5.0)
    stamping(rx, tx, arrived)
    tx.sendto(b"x", rx.getsockname())
    time.sleep(0.04)
    rx.recv(2048)
    assert 0.2 - 0.01 <= 100.0 - arrived(100.0) < 0.2 + 0.25


def test_no_stamp_means_now(pair: tuple[socket.socket, socket.socket]) -> None:
    """A socket that has received nothing has no stamp: the answer is the read time."""
    rx, _ = pair
    assert ArrivalTimes(rx)(42.0) == 42.0


def test_an_old_stamp_or_a_stepped_wall_clock_is_not_believed(
        pair: tuple[socket.socket, socket.socket]) -> None:
    rx, tx = pair
    step = [0.0]  # what the wall clock is put forward by
    arrived = ArrivalTimes(rx, wall=lambda: time.time() + step[0])
    stamping(rx, tx, arrived)
    tx.sendto(b"x", rx.getsockname())
    time.sleep(0.01)
    rx.recv(2048)
    step[0] = 0.5  # a plausible age is believed
    assert 6.4 < arrived(7.0) < 6.6
    step[0] = 3600.0  # an hour's NTP step between stamp and read
    assert arrived(7.0) == 7.0
    step[0] = -3600.0
    assert arrived(7.0) == 7.0


def inline(arrived: ArrivalTimes, now: float) -> float:
    """What the media thread's fast path does with the parts (engine.py)."""
    try:
        arrived.stamp()
        sec, usec = arrived.unpack(arrived.buf)
        age = arrived.wall() - (sec + usec * 1e-6)
        return now - age * arrived.speed if 0.0 < age < 1.0 else now
    except OSError:
        return now


def test_the_parts_inline_give_the_calls_answer(
        pair: tuple[socket.socket, socket.socket]) -> None:
    rx, tx = pair
    wall = [1_700_000_000.0]
    arrived = ArrivalTimes(rx, speed=5.0, wall=lambda: wall[0])
    assert inline(arrived, 3.0) == arrived(3.0) == 3.0  # nothing read: no stamp
    real = ArrivalTimes(rx)
    stamping(rx, tx, real)
    tx.sendto(b"x", rx.getsockname())
    time.sleep(0.01)
    rx.recv(2048)
    real.stamp()
    sec, usec = real.unpack(real.buf)
    # believed (scaled 5x), believed, from the future, too old
    for age, answer in ((0.02, 6.9), (0.5, 4.5), (-0.1, 7.0), (2.0, 7.0)):
        wall[0] = sec + usec * 1e-6 + age
        assert inline(arrived, 7.0) == arrived(7.0) == pytest.approx(answer)


def test_without_siocgstamp_the_answer_is_now() -> None:
    """A socket with no receive stamps (a Unix socket here; BSD and macOS have none):
    ``stamp()`` does nothing and the zero stamp left in ``buf`` is never believed."""
    a, b = socket.socketpair()
    with a, b:
        arrived = ArrivalTimes(a)
        b.send(b"x")
        a.recv(16)
        assert arrived.stamp() is None
        assert arrived(42.0) == inline(arrived, 42.0) == 42.0
