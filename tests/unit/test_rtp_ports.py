"""The RTP port pool binds the pairs it hands out and skips ports others hold."""

from __future__ import annotations

import socket

import pytest

from deskphone.transport.rtp import RtpPortPool


def free_even_block(n: int = 8) -> int:
    for base in range(40000, 60000, 64):
        socks = []
        try:
            for p in range(base, base + n):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free block")


def test_pairs_are_bound_and_released() -> None:
    base = free_even_block()
    pool = RtpPortPool("127.0.0.1", base, base + 6)
    a, b = pool.allocate(), pool.allocate()
    assert (a, b) == (base, base + 2)
    rtp, rtcp = pool.sockets(a)
    assert rtp.getsockname()[1] == a and rtcp.getsockname()[1] == a + 1
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with pytest.raises(OSError):
        probe.bind(("127.0.0.1", a))  # really held
    probe.close()
    pool.release(a)
    assert pool.held == [b]
    pool.close()
    assert pool.held == []


def test_a_port_taken_by_someone_else_is_skipped() -> None:
    base = free_even_block()
    squatter = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    squatter.bind(("127.0.0.1", base + 1))  # the RTCP half of the first pair
    try:
        pool = RtpPortPool("127.0.0.1", base, base + 4)
        assert pool.allocate() == base + 2
        assert pool.allocate() == base + 4
        with pytest.raises(OSError, match="no free RTP port pair"):
            pool.allocate()
        pool.close()
    finally:
        squatter.close()
