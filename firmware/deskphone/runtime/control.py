"""The consoles' view of the running phone (``console.PhoneControl`` and friends).

Commands that act go through the phone controller as events, exactly as a key or the
hook would: the console drives the same state machine a person does.

With ``allow_direct_uris`` off, ``dial`` calls only numbers and URIs at the account's
domain (``[console] allow_direct_uris``): whoever gets at the console cannot make the phone
call, or open SIP/TCP to, a host of their choosing.
"""

from __future__ import annotations

from collections.abc import Callable

from ..console import CommandError
from ..phone import events as pe
from ..phone.controller import PhoneError
from ..provision.discovery import valid_url
from ..sip.errors import LocalProtocolError
from ..sip.uri import SipUri
from .phone import PhoneRuntime

DIRECT_OFF = "direct SIP URIs are off (console.allow_direct_uris = false): "


def direct_uri_refusal(uri: SipUri, home: SipUri, transport: str) -> str | None:
    """Why ``uri`` may not be dialled with direct URIs off, or None if it may.

    ``uri`` is what the endpoint would call (``Endpoint.target_uri``: a number becomes a
    URI at the domain); ``home`` is the account's AoR, whose host and port are the domain,
    as the endpoint routes them (no port, or the domain's, goes through the proxy);
    ``transport`` is the account's. Pure: no I/O.
    """
    domain = home.host + (f":{home.port}" if home.port is not None else "")
    if uri.host != home.host:
        return f"{DIRECT_OFF}{uri} is not at the account's domain {domain}"
    if uri.port not in (None, home.port):
        return f"{DIRECT_OFF}{uri} names port {uri.port}; the account's domain is {domain}"
    if uri.param("maddr") is not None:  # RFC 3261 §19.1.1: maddr overrides the host
        return f"{DIRECT_OFF}{uri} has maddr, which sends the call to another host"
    asked = uri.param("transport")
    if asked is not None and asked.lower() != transport.lower():
        return f"{DIRECT_OFF}{uri} asks for transport={asked}; the account uses {transport}"
    if uri.headers:
        return f"{DIRECT_OFF}{uri} carries headers"
    return None


class RuntimeControl:
    def __init__(self, runtime: PhoneRuntime, *, allow_direct_uris: bool = True,
                 provision: Callable[[str | None], dict[str, object]] | None = None,
                 provisioning_status: Callable[[], dict[str, object]] | None = None) -> None:
        self.rt = runtime  # replaced when a provisioned account rebuilds the SIP side
        self.allow_direct_uris = allow_direct_uris
        self._provision = provision
        self._provisioning_status = provisioning_status

    def provision(self, url: str | None) -> dict[str, object]:
        """``provision [url]``: a sync now; what it finds arrives as events."""
        if self._provision is None:
            raise CommandError("provisioning is off on this phone")
        if url is not None and not (valid_url(url) and url.lower().startswith(
                ("http://", "https://"))):
            raise CommandError(f"provision: {url[:80]!r} is not an http:// or https:// URL")
        return self._provision(url)

    def _command(self, event: object) -> None:
        try:
            self.rt.command(event)
        except PhoneError as e:
            raise CommandError(str(e)) from None

    # ------------------------------------------------------------- PhoneControl

    def status(self) -> dict[str, object]:
        ep = self.rt.endpoint
        cid = self.rt.controller.call_id
        call = None
        if cid is not None:
            try:
                call = ep.call(cid).info()
            except Exception:  # the SIP side is already done with it
                call = None
        status: dict[str, object] = {
            "registered": ep.registered,
            "aor": ep.aor,
            "registration": ep.reg.state.value,
            "phone": self.rt.controller.state.value,
            "call": call,
        }
        if self._provisioning_status is not None:
            status["provisioning"] = self._provisioning_status()
        return status

    def dial(self, target: str) -> dict[str, object]:
        if not self.allow_direct_uris:
            self._check_direct(target)
        self._command(pe.DialCommand(target))
        return self._placed()

    def _check_direct(self, target: str) -> None:
        ep = self.rt.endpoint
        try:
            uri = ep.target_uri(target)
        except LocalProtocolError:
            return  # not a URI at all: dialling it fails with the parser's reason
        refusal = direct_uri_refusal(uri, SipUri.parse(ep.aor), ep.config.local.transport)
        if refusal is not None:
            raise CommandError(refusal)

    def redial(self) -> dict[str, object]:
        self._command(pe.RedialCommand())
        return self._placed()

    def _placed(self) -> dict[str, object]:
        placed = self.rt.last_placed
        if isinstance(placed, pe.CallFailed):
            raise CommandError(placed.reason)
        if placed is None:
            raise CommandError("no call placed")
        return {"call_id": placed.call_id, "to": placed.uri}

    def answer(self) -> dict[str, object]:
        cid = self.rt.controller.call_id
        self._command(pe.AnswerCommand())
        return {"call_id": cid}

    def hangup(self) -> dict[str, object]:
        cid = self.rt.controller.call_id
        self._command(pe.HangupCommand())
        return {"call_id": cid}

    # ------------------------------------------------------------- CallControl

    def stats(self) -> dict[str, object]:
        cid = self.rt.controller.call_id
        session = self.rt.media.session(cid) if self.rt.media is not None else None
        if session is None:
            raise CommandError("no call with media")
        return {"call_id": cid, **session.stats()}

    def dtmf(self, digits: str) -> dict[str, object]:
        before = self.rt.controller.call_id
        self.rt.last_dtmf_method = None
        self._command(pe.DtmfCommand(digits))
        method = self.rt.last_dtmf_method
        return {"call_id": before, "digits": digits.upper(),
                "method": method.value if method is not None else None}

    def hold(self, on: bool) -> dict[str, object]:
        cid = self.rt.controller.call_id
        self._command(pe.HoldCommand(on))
        return {"call_id": cid, "hold": on}

    def mute(self, on: bool) -> dict[str, object]:
        cid = self.rt.controller.call_id
        self._command(pe.MuteCommand(on))
        return {"call_id": cid, "muted": on}

    # ------------------------------------------------------------ the hardware

    def hook(self, state: str) -> dict[str, object]:
        events: dict[str, pe.HardwareEvent] = {"off": pe.HookOff(), "on": pe.HookOn(),
                                               "flash": pe.HookFlash()}
        if state not in events:
            raise CommandError(f'hook: expected "on", "off" or "flash", got {state!r}')
        self.rt.hardware_event(events[state])
        return {"hook": state, "phone": self.rt.controller.state.value}

    def key(self, keys: str) -> dict[str, object]:
        names = parse_keys(keys)
        for name in names:
            self.rt.hardware_event(pe.KeyPressed(name))
            self.rt.hardware_event(pe.KeyReleased(name))
        return {"keys": names, "phone": self.rt.controller.state.value}

    def screen(self) -> dict[str, object]:
        return {"lines": self.rt.current_screen().text_lines()}

    def history(self) -> dict[str, object]:
        return {"calls": self.rt.history.as_dicts()}


def parse_keys(text: str) -> list[str]:
    """``1002#`` (digit keys in order) or one function key's name (``redial``)."""
    if text in pe.FUNCTION_KEYS:
        return [text]
    bad = sorted({c for c in text if c not in pe.DIGIT_KEYS})
    if bad or not text:
        raise CommandError(
            f"key: {text!r} is neither digits (0-9 * #) nor a function key "
            f"({', '.join(pe.FUNCTION_KEYS)})")
    return list(text)
