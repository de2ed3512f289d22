"""The phone's states and every transition between them, in one table.

Theory of operation
-------------------
A desk phone is in exactly one ``State``. Each input (the hook, a key, a console
command, a SIP event, a timer) is reduced to a *kind* (``"hook_off"``, ``"digit"``,
``"ended"``...). ``TRANSITIONS[state][kind]`` lists the states that input may lead to;
the controller's handler for that kind picks one (a digit may complete the number or
not) and the controller refuses any pick outside the table. A kind missing from a
state's row means the input does nothing there: a key pressed while ringing is
ignored, a console command is refused with a reason. Inputs that never change the
state (mute, DTMF, a media update) are listed too, as staying where they are, so the
table is the whole story of what each state accepts.

``off-hook`` below means the audio path is open: the handset is lifted or the
speaker (hands-free) is on.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final


class State(enum.Enum):
    IDLE = "idle"  # on-hook, no call
    PREDIAL = "predial"  # on-hook, digits typed: lifting the handset or # dials them
    DIALTONE = "dialtone"  # off-hook, dial tone, nothing typed yet
    COLLECTING = "collecting"  # off-hook, digits typed, waiting for the number to complete
    CALLING = "calling"  # INVITE out, the far end not alerting yet (proceeding)
    RINGBACK = "ringback"  # the far end is alerting (180/183)
    RINGING = "ringing"  # an incoming call alerts us
    TALKING = "talking"
    HELD = "held"  # we put the far end on hold
    ENDED = "ended"  # a call ended or failed with the path still open: reason and tone


S = State


def _row(**kinds: tuple[State, ...]) -> Mapping[str, frozenset[State]]:
    return MappingProxyType({k: frozenset(v) for k, v in kinds.items()})


# incoming while busy: answered 486 by the controller, the state unchanged
TRANSITIONS: Final[Mapping[State, Mapping[str, frozenset[State]]]] = MappingProxyType({
    S.IDLE: _row(
        hook_off=(S.DIALTONE,), speaker=(S.DIALTONE,), digit=(S.PREDIAL, S.IDLE),
        dial=(S.CALLING, S.ENDED), redial=(S.CALLING, S.ENDED, S.IDLE),
        incoming=(S.RINGING, S.IDLE), hook_on=(S.IDLE,), hook_flash=(S.IDLE,),
        timer=(S.IDLE,)),
    S.PREDIAL: _row(
        digit=(S.PREDIAL, S.CALLING, S.ENDED), hook_off=(S.CALLING, S.ENDED),
        speaker=(S.CALLING, S.ENDED), dial=(S.CALLING, S.ENDED),
        redial=(S.CALLING, S.ENDED, S.PREDIAL), hangup=(S.IDLE,), timer=(S.IDLE,),
        incoming=(S.RINGING,)),
    S.DIALTONE: _row(
        digit=(S.COLLECTING, S.CALLING, S.ENDED, S.DIALTONE), hook_on=(S.IDLE, S.DIALTONE),
        hook_off=(S.DIALTONE,),
        speaker=(S.IDLE, S.DIALTONE), hook_flash=(S.DIALTONE,),
        dial=(S.CALLING, S.ENDED), redial=(S.CALLING, S.ENDED, S.DIALTONE),
        hangup=(S.IDLE, S.DIALTONE), timer=(S.ENDED,), incoming=(S.DIALTONE,)),
    S.COLLECTING: _row(
        digit=(S.COLLECTING, S.CALLING, S.ENDED), hook_on=(S.IDLE, S.COLLECTING),
        hook_off=(S.COLLECTING,),
        speaker=(S.IDLE, S.COLLECTING), hook_flash=(S.DIALTONE,),
        dial=(S.CALLING, S.ENDED), hangup=(S.IDLE, S.DIALTONE),
        timer=(S.CALLING, S.ENDED, S.COLLECTING), incoming=(S.COLLECTING,)),
    S.CALLING: _row(
        call_placed=(S.CALLING,), call_failed=(S.ENDED, S.IDLE),
        ringing=(S.RINGBACK,), connected=(S.TALKING,), ended=(S.ENDED, S.IDLE),
        hook_on=(S.IDLE, S.CALLING), speaker=(S.IDLE, S.CALLING), hangup=(S.IDLE, S.ENDED),
        hook_off=(S.CALLING,), mute=(S.CALLING,), incoming=(S.CALLING,),
        timer=(S.ENDED, S.IDLE, S.CALLING)),
    S.RINGBACK: _row(
        ringing=(S.RINGBACK,), connected=(S.TALKING,), ended=(S.ENDED, S.IDLE),
        hook_on=(S.IDLE, S.RINGBACK), speaker=(S.IDLE, S.RINGBACK), hook_off=(S.RINGBACK,),
        hangup=(S.IDLE, S.ENDED), mute=(S.RINGBACK,), incoming=(S.RINGBACK,),
        timer=(S.ENDED, S.IDLE, S.RINGBACK)),
    S.RINGING: _row(
        hook_off=(S.TALKING,), speaker=(S.TALKING,), answer=(S.TALKING,),
        hangup=(S.IDLE,), ended=(S.IDLE,), incoming=(S.RINGING,), timer=(S.IDLE, S.RINGING)),
    S.TALKING: _row(
        connected=(S.TALKING,), updated=(S.TALKING,), ended=(S.ENDED, S.IDLE),
        hook_on=(S.IDLE, S.TALKING), speaker=(S.IDLE, S.TALKING), hangup=(S.IDLE, S.ENDED),
        hook_off=(S.TALKING,),
        hold=(S.HELD, S.TALKING), hook_flash=(S.HELD, S.TALKING), digit=(S.TALKING,),
        dtmf=(S.TALKING,), mute=(S.TALKING,), incoming=(S.TALKING,),
        update_failed=(S.HELD, S.TALKING)),
    S.HELD: _row(
        updated=(S.HELD,), connected=(S.HELD,), ended=(S.ENDED, S.IDLE),
        hook_on=(S.IDLE, S.HELD), hook_off=(S.HELD,),
        speaker=(S.IDLE, S.HELD), hangup=(S.IDLE, S.ENDED), hold=(S.TALKING, S.HELD),
        hook_flash=(S.TALKING, S.HELD), mute=(S.HELD,), incoming=(S.HELD,),
        update_failed=(S.TALKING, S.HELD)),
    S.ENDED: _row(
        hook_on=(S.IDLE, S.ENDED), speaker=(S.IDLE, S.ENDED), hook_off=(S.DIALTONE,),
        hook_flash=(S.DIALTONE,), hangup=(S.IDLE, S.ENDED), timer=(S.IDLE,),
        dial=(S.CALLING, S.ENDED), redial=(S.CALLING, S.ENDED),
        incoming=(S.RINGING, S.ENDED)),
})
"""``TRANSITIONS[state][kind]``: the states an input of that kind may lead to."""

IN_CALL: Final = frozenset({S.CALLING, S.RINGBACK, S.RINGING, S.TALKING, S.HELD})
"""States with a call on the line (the controller holds its Call-ID)."""
