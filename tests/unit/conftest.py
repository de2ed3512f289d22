"""Hypothesis settings for the whole unit suite.

The property tests check what the code does, not how fast: on a loaded 2-core CI
machine (xdist workers beside the integration peers) a first draw took 2.2 s and
Hypothesis's wall-clock health check failed a correct test. Speed belongs in
bench/ (STYLE.md), so the timing checks are off; the number of examples each test
runs is Hypothesis's default, unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin
from hypothesis import HealthCheck, settings

from deskphone.hw.timing import ManualScheduler

settings.register_profile("deskphone", deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("deskphone")


# the hardware tests' two fixtures: a fresh mock board (every pin PWM-capable, as lgpio's
# software PWM makes them on a Pi), reset afterwards; and a clock that moves only when told


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    f = MockFactory(pin_class=MockPWMPin)
    yield f
    f.reset()


@pytest.fixture
def sched() -> ManualScheduler:
    return ManualScheduler()
