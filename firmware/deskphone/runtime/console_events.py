"""The console's JSON shape of what happens: SIP events, the hook and the keys."""

from __future__ import annotations

from typing import Any

from ..phone import events as pe
from ..sip import events as ev


def event_to_console(event: ev.Event) -> dict[str, Any] | None:
    """The console's JSON shape of an endpoint event (None: log only)."""
    if isinstance(event, ev.Registered):
        return {"event": "registered", "aor": event.aor, "contact": event.contact,
                "expires": event.expires}
    if isinstance(event, ev.RegistrationFailed):
        return {"event": "registration_failed", "status": event.status,
                "reason": event.reason, "retry_in": event.retry_in}
    if isinstance(event, ev.Unregistered):
        return {"event": "unregistered", "reason": event.reason}
    if isinstance(event, ev.IncomingCall):
        return {"event": "incoming", "call_id": event.call_id, "from": event.remote_uri,
                "display_name": event.display_name}
    if isinstance(event, ev.CallRinging):
        ringing: dict[str, Any] = {"event": "ringing", "call_id": event.call_id,
                                   "status": event.status}
        if event.media is not None:
            ringing.update(early_media=True, codec=event.media.codec.encoding,
                           remote_media=f"{event.media.remote_address}:"
                                        f"{event.media.remote_port}")
        return ringing
    if isinstance(event, ev.CallConnected | ev.CallUpdated):
        out: dict[str, Any] = {
            "event": "connected" if isinstance(event, ev.CallConnected) else "updated",
            "call_id": event.call_id}
        if event.media is not None:
            out.update(codec=event.media.codec.encoding,
                       remote_media=f"{event.media.remote_address}:{event.media.remote_port}",
                       direction=event.media.direction.value)
        return out
    if isinstance(event, ev.CallUpdateFailed):
        return {"event": "update_failed", "call_id": event.call_id, "status": event.status,
                "reason": event.reason}
    if isinstance(event, ev.CallEnded):
        return {"event": "ended", "call_id": event.call_id, "reason": event.reason,
                "status": event.status}
    if isinstance(event, ev.DtmfReceived):
        return {"event": "dtmf", "call_id": event.call_id, "digit": event.digit,
                "duration_ms": event.duration_ms}
    return None


def hardware_to_console(event: pe.HardwareEvent) -> dict[str, Any] | None:
    """``hook`` and ``key`` events: what the person's hands did."""
    if isinstance(event, pe.HookOff):
        return {"event": "hook", "state": "off"}
    if isinstance(event, pe.HookOn):
        return {"event": "hook", "state": "on"}
    if isinstance(event, pe.HookFlash):
        return {"event": "hook", "state": "flash"}
    if isinstance(event, pe.KeyPressed):
        return {"event": "key", "key": event.key, "action": "pressed"}
    if isinstance(event, pe.KeyHeld):
        return {"event": "key", "key": event.key, "action": "held"}
    return None  # releases: not worth a line each
