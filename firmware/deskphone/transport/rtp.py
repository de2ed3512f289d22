"""RTP/RTCP socket pairs, bound when a port goes into an SDP body.

The SIP core asks for a port when it builds an offer or an answer; binding
the pair right then means the port we advertise is one we hold (two phones on
one lab machine, or a port some other program took, cannot collide with us),
and early media can arrive before the call is answered. The pair is picked at random
from the range: a port handed out in order is one a stranger on the LAN can guess and
send to before the peer does.

``ArrivalTimes`` tells when the packet just read from a socket came, from the
kernel's receive stamp: the media thread reads its socket once per 20 ms frame,
so the time of the read says nothing of the network's jitter.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import logging
import random
import socket
import struct
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class RtpPortPool:
    """Even RTP port + odd RTCP port, bound on ``host``, from [low, high], at random
    (``rng``: the system's, unless a test wants a seeded one)."""

    def __init__(self, host: str, low: int, high: int, *,
                 rng: random.Random | None = None) -> None:
        if low % 2:
            low += 1
        self.host = host
        self.low, self.high = low, high
        self._rng = rng if rng is not None else random.SystemRandom()
        self._held: dict[int, tuple[socket.socket, socket.socket]] = {}

    def allocate(self) -> int:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        span = (self.high - self.low) // 2 + 1
        # Every pair once, in a random order drawn as it goes (a Fisher-Yates shuffle of
        # the pair indexes whose moved entries live in ``moved``): the first pick costs
        # one draw however wide the range, and a pair held or taken sends us on to
        # another random one, not to its neighbour.
        moved: dict[int, int] = {}
        for left in range(span, 0, -1):
            j = self._rng.randrange(left)
            index = moved.get(j, j)
            moved[j] = moved.get(left - 1, left - 1)
            port = self.low + 2 * index
            if port in self._held:
                continue
            rtp = socket.socket(family, socket.SOCK_DGRAM)
            rtcp = socket.socket(family, socket.SOCK_DGRAM)
            try:
                rtp.bind((self.host, port))
                rtcp.bind((self.host, port + 1))
            except OSError:
                rtp.close()
                rtcp.close()
                continue
            self._held[port] = (rtp, rtcp)
            return port
        raise OSError(f"no free RTP port pair in {self.low}-{self.high} on {self.host}")

    def sockets(self, port: int) -> tuple[socket.socket, socket.socket]:
        return self._held[port]

    def release(self, port: int) -> None:
        pair = self._held.pop(port, None)
        if pair is not None:
            for s in pair:
                s.close()

    def close(self) -> None:
        for port in list(self._held):
            self.release(port)

    @property
    def held(self) -> list[int]:
        return sorted(self._held)


# SIOCGSTAMP: the receive time of the last packet read from the socket, as a struct
# timeval. The _NEW request (Linux 5.1+) gives two 64-bit fields on every architecture;
# the old one gives the C library's timeval (32-bit fields on a 32-bit Raspberry Pi OS).
_SIOCGSTAMP_NEW = 0x80108906
_SIOCGSTAMP_OLD = 0x8906
_TIMEVAL_NEW = struct.Struct("qq")
_TIMEVAL_OLD = struct.Struct("ll")


class ArrivalTimes:
    """When the packet last read from ``sock`` arrived, on the caller's clock.

    Called with ``now``, the caller's clock read a little before the packet was read,
    it answers ``now`` less the packet's age: the kernel stamps each datagram as it
    comes in (the real-time clock, hence the conversion), and the first ioctl turns
    the stamping on. Where there is no stamp (the first packet, or a system without
    SIOCGSTAMP) the answer is ``now``. ``speed`` is for a caller whose clock runs
    faster than real time (tests): seconds of its clock per real second.

    One ioctl per packet: ~0.6 µs, where reading the stamp with ``recvmsg`` would cost
    the source address formatted as a str for every packet (on the media thread's cold
    caches, recvmsg_into with SO_TIMESTAMPNS measured ~50 µs a packet against ~43 for
    recv_into and this ioctl).

    A caller that cannot afford a Python call per packet (the media thread: on its cold
    caches the call costs more than the ioctl) does the same inline from the parts:
    ``stamp()`` puts the stamp of the packet last read into ``buf`` (raising OSError if
    it has none), ``unpack(buf)`` reads it as (seconds, microseconds) on ``wall``'s
    clock, and ``speed`` is as above. Without SIOCGSTAMP, ``stamp()`` does nothing and
    ``buf`` holds a zero stamp, too old to believe: the answer is ``now``, as here.
    """

    def __init__(self, sock: socket.socket, *, speed: float = 1.0,
                 wall: Callable[[], float] = time.time) -> None:
        self._fd = sock.fileno()
        self.speed = speed
        self.wall = wall
        self.buf = bytearray(_TIMEVAL_NEW.size)
        self._request = _SIOCGSTAMP_NEW
        self._timeval = _TIMEVAL_NEW
        for request, timeval in ((_SIOCGSTAMP_NEW, _TIMEVAL_NEW), (_SIOCGSTAMP_OLD, _TIMEVAL_OLD)):
            try:
                fcntl.ioctl(self._fd, request, self.buf, True)  # turns stamping on
            except OSError as e:
                if e.errno != errno.ENOENT:  # ENOENT: no packet stamped yet, as expected
                    continue
            self._request, self._timeval = request, timeval
            break
        else:
            self._request = 0  # no stamps here: arrival is ``now``
            log.debug("no SIOCGSTAMP on this system: RTP arrival times are the read times")
        # a C callable, so that calling it costs no Python frame
        self.stamp: Callable[[], object] = (
            functools.partial(fcntl.ioctl, self._fd, self._request, self.buf, True)
            if self._request else _no_stamp)
        self.unpack: Callable[[bytearray], tuple[int, int]] = self._timeval.unpack_from

    def __call__(self, now: float) -> float:
        try:
            self.stamp()
        except OSError:
            return now
        sec, usec = self.unpack(self.buf)
        age = self.wall() - (sec + usec * 1e-6)
        if age <= 0.0:  # it came after ``now`` was read, or the wall clock stepped
            return now
        return now - age * self.speed if age < 1.0 else now


def _no_stamp() -> None:
    """``ArrivalTimes.stamp`` where the system has no SIOCGSTAMP: ``buf`` stays zero."""
