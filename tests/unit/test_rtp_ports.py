"""The RTP port pool binds the pairs it hands out, at random, and skips ports others
hold."""

from __future__ import annotations

import random
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
    pool = RtpPortPool("127.0.0.1", base, base + 6, rng=random.Random(1))
    a, b = pool.allocate(), pool.allocate()
    assert a != b and {a, b} <= {base, base + 2, base + 4, base + 6}
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
        for seed in range(12):  # whichever order the pairs are tried in
            pool = RtpPortPool("127.0.0.1", base, base + 4, rng=random.Random(seed))
            assert {pool.allocate(), pool.allocate()} == {base + 2, base + 4}
            with pytest.raises(OSError, match="no free RTP port pair"):
                pool.allocate()
            pool.close()
    finally:
        squatter.close()


def test_ports_are_random_yet_a_seeded_rng_repeats_them() -> None:
    """Ports handed out in order are ports a stranger can guess and send to before the
    peer does; a seeded rng makes the order a test can rely on."""
    base = free_even_block(64)

    def five(seed: int) -> list[int]:
        pool = RtpPortPool("127.0.0.1", base, base + 62, rng=random.Random(seed))
        try:
            return [pool.allocate() for _ in range(5)]
        finally:
            pool.close()

    ports = five(7)
    assert ports == five(7)
    assert ports != five(8)
    assert ports != sorted(ports)  # not in order: 1 in 120 for random picks; seed 7 isn't
    assert all(p % 2 == 0 and base <= p <= base + 62 for p in ports)


def test_every_pair_is_handed_out_once_and_none_twice() -> None:
    base = free_even_block(32)
    pool = RtpPortPool("127.0.0.1", base, base + 30, rng=random.Random(3))
    held = [pool.allocate() for _ in range(16)]
    assert sorted(held) == list(range(base, base + 32, 2))  # each even port, once
    with pytest.raises(OSError, match="no free RTP port pair"):
        pool.allocate()
    pool.release(held[5])
    assert pool.allocate() == held[5]  # the one free pair, found at random too
    pool.close()


def test_the_first_pick_spreads_over_the_range() -> None:
    """The first port is drawn from the whole range, not the start of it."""
    base = free_even_block(16)
    firsts = set()
    for seed in range(200):
        pool = RtpPortPool("127.0.0.1", base, base + 14, rng=random.Random(seed))
        firsts.add(pool.allocate())
        pool.close()
    assert firsts == set(range(base, base + 16, 2))


def test_the_system_rng_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not Python's default generator, whose state its outputs give away."""
    made: list[random.Random] = []

    class System(random.Random):
        def __init__(self) -> None:
            super().__init__(0)
            made.append(self)

    monkeypatch.setattr(random, "SystemRandom", System)
    base = free_even_block()
    pool = RtpPortPool("127.0.0.1", base, base + 6)
    port = pool.allocate()
    pool.close()
    assert len(made) == 1
    assert port % 2 == 0 and base <= port <= base + 6
