"""The runtime's ringer: the bell (GPIO), and the ringtone through the sound device."""

from __future__ import annotations

import asyncio

from sipfakes import endpoint

from deskphone.phone.controller import PhoneController, PhoneSettings
from deskphone.runtime.phone import PhoneRuntime
from deskphone.sip import events as ev


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    def ring(self, cadence: object) -> None:
        self.calls.append(("ring", cadence))

    def stop(self) -> None:
        self.calls.append(("stop", None))

    def play_ringtone(self, cadence: object) -> None:
        self.calls.append(("ringtone", cadence))

    def stop_tone(self) -> None:
        self.calls.append(("stop_tone", None))

    def session(self, call_id: object) -> None:
        return None


def runtime(ringtone: bool) -> tuple[PhoneRuntime, Recorder, Recorder, list[dict[str, object]]]:
    bell, sound = Recorder(), Recorder()
    events: list[dict[str, object]] = []
    ep = endpoint("1001", "127.0.0.1")
    rt = PhoneRuntime(ep, PhoneController(PhoneSettings(), aor=ep.aor), send=lambda d, a: None,
                      clock=lambda: 0.0, ringer=bell, ring_cadence=((400, 200), (400, 2000)),
                      media=sound, ringtone=ringtone,  # type: ignore[arg-type]
                      broadcast=events.append)
    return rt, bell, sound, events


def test_an_incoming_call_rings_the_bell_and_the_ringtone_with_the_cadence() -> None:
    async def main() -> None:
        rt, bell, sound, events = runtime(ringtone=True)
        rt._on_sip_event(ev.IncomingCall("c1", "sip:1002@x", None))  # noqa: SLF001
        cadence = ((400, 200), (400, 2000))
        assert bell.calls == [("ring", cadence)]
        assert sound.calls == [("ringtone", cadence)]
        assert {"event": "ringer", "on": True} in events
        rt.close()

    asyncio.run(main())


def test_without_a_ringtone_the_sound_device_stays_quiet() -> None:
    async def main() -> None:
        rt, bell, sound, events = runtime(ringtone=False)
        rt._on_sip_event(ev.IncomingCall("c1", "sip:1002@x", None))  # noqa: SLF001
        assert sound.calls == [] and bell.calls[0][0] == "ring"
        rt.close()

    asyncio.run(main())
