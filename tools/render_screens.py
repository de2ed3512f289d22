#!/usr/bin/env python3
"""Render every screen of the phone to a PNG for the docs (docs/screens/), through the
real path: the controller's view -> phone.screens -> hw.display on luma's dummy device.

    .venv/bin/python tools/render_screens.py [OUTDIR]
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "firmware"))

from deskphone.hw.screenshot import render_png  # noqa: E402
from deskphone.phone import events as pe  # noqa: E402
from deskphone.phone.controller import PhoneController, PhoneSettings  # noqa: E402
from deskphone.phone.screens import Screen, screen_for  # noqa: E402
from deskphone.sdp import PCMU, Direction, NegotiatedMedia  # noqa: E402
from deskphone.sip import events as sip  # noqa: E402

MEDIA = NegotiatedMedia("192.0.2.7", 4000, 16384, PCMU, 101, 20, Direction.SENDRECV, False)


def screens() -> dict[str, Screen]:
    out: dict[str, Screen] = {}
    c = PhoneController(PhoneSettings(), aor="sip:1001@pbx.example")

    def snap(name: str, now: float = 0.0) -> None:
        out[name] = screen_for(c.view(), now, clock="09:41", address="192.0.2.10")

    snap("registering")
    c.handle(sip.RegistrationFailed(403, "Forbidden", 30.0), 0)
    snap("registration-failed")
    c.handle(sip.Registered("sip:1001@pbx.example", "sip:1001@192.0.2.10", 3600), 0)
    snap("idle")
    for k in "1002":
        c.handle(pe.KeyPressed(k), 0)
    snap("predial")
    c.handle(pe.HookOff(), 0)
    c.handle(pe.CallPlaced("c1", "1002", "sip:1002@pbx.example"), 0)
    c.handle(sip.CallRinging("c1", 180), 0)
    snap("ringback")
    c.handle(sip.CallConnected("c1", MEDIA), 1.0)
    snap("in-call", 43.0)
    c.handle(pe.HookFlash(), 50.0)
    snap("on-hold", 52.0)
    c.handle(pe.HookOn(), 60.0)
    c.handle(sip.IncomingCall("c2", "sip:1003@pbx.example", "Carol Jones"), 61.0)
    snap("incoming", 61.0)
    c.handle(pe.HookOff(), 62.0)
    c.handle(sip.CallEnded("c2", "busy", 486), 63.0)  # (not how it ends; shows the screen)
    c2 = PhoneController(PhoneSettings(), aor="sip:1001@pbx.example")
    c2.handle(pe.HookOff(), 0)
    snap_c2 = screen_for(c2.view(), 0)
    out["dial-tone"] = snap_c2
    c2.handle(pe.KeyPressed("1"), 0)
    c2.handle(pe.KeyPressed("0"), 0)
    c2.handle(pe.KeyPressed("0"), 0)
    c2.handle(pe.KeyPressed("9"), 0)
    c2.handle(pe.KeyPressed("#"), 0)
    c2.handle(pe.CallPlaced("c3", "1009", "sip:1009@pbx.example"), 0)
    c2.handle(sip.CallEnded("c3", "busy", 486), 1)
    out["busy"] = screen_for(c2.view(), 1)
    return out


def main() -> int:
    outdir = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "screens"
    outdir.mkdir(parents=True, exist_ok=True)
    for name, screen in screens().items():
        render_png(screen, outdir / f"{name}.png", scale=3)
        print(f"{outdir / f'{name}.png'}: {' | '.join(screen.text_lines())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
