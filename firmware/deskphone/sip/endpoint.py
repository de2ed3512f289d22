"""The phone's SIP user agent, sans I/O (after aioquic's connection API).

Theory of operation
-------------------
``Endpoint`` is fed whole messages with the address they came from
(``receive``) and the time (``handle_timer``), and is told what the person
wants (``register``, ``dial``, ``answer``, ``hangup``). It hands back bytes to
send with their destination (``datagrams_to_send``), the next moment it wants
to be woken (``get_timer``), and what happened (``next_event``).

Inside, three layers: transactions (transaction.py) absorb retransmissions;
the registration and the calls (the transaction users) decide what to send
next; dialogs (dialog.py) route in-dialog requests through the proxy's
Record-Route. A client transaction's responses reach its user through the
callback registered with it; everything runs in the caller's thread and no
callback does I/O.

Where requests go: out-of-dialog requests to the account's domain go to the
outbound proxy (the registrar); a SIP URI naming another IP address is called
directly (a lab bench without a PBX). In-dialog requests follow the route set.
Responses go back where the request came from (RFC 3581's behaviour), with or without
``rport``: a deliberate departure from RFC 3261 §18.2.2's Via sent-by port, so a forged
Via cannot aim our responses at a third party's port; we send only where packets came from.

NOTIFYs outside a call go by their event package (RFC 6665 §8.2.1): ``check-sync`` is
obeyed only from the proxy's exact address, whatever ``accept_from`` says (a bench that
takes calls from anyone must not let anyone make it fetch a config); ``ua-profile`` only
for a plug-and-play SUBSCRIBE of ours (``pnp_subscribe``); ``message-summary`` is answered
and ignored; anything else gets 489.
"""

from __future__ import annotations

import heapq
import itertools
import re
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol

from ..provision.discovery import (
    PNP_CONTENT_TYPE,
    PNP_GROUP,
    PNP_PORT,
    pnp_subscribe_request,
    pnp_url_from_body,
)
from ..sdp import Direction as SdpDirection
from ..sdp import (
    MediaCaps,
    NegotiatedMedia,
    NoCommonCodec,
    SdpError,
    SessionDescription,
    accept_answer,
    make_answer,
    make_offer,
)
from . import events as ev
from .auth import AuthError, Challenge, Credentials, DigestClient
from .call import Call, CallState, Direction
from .dialog import Dialog
from .errors import LocalProtocolError, RemoteProtocolError
from .message import Headers, Request, Response, Via, parse_header_params, parse_message
from .registration import (
    Registration,
    RegState,
    Rng,
    granted_expires,
    refresh_delay,
    retry_delay,
    via_nat_address,
)
from .transaction import (
    TIMEOUT,
    Addr,
    ClientTransaction,
    ServerTransaction,
    Timeout,
    TimerValues,
    TxState,
)
from .uri import (
    Address,
    Params,
    SipUri,
    Uri,
    bracketed,
    get_param,
    host_port,
    is_token,
    parse_uint,
    parse_uri,
    valid_host,
)

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, NOTIFY"
ALLOWED = frozenset(m.strip() for m in ALLOW.split(","))
ACCEPT = "application/sdp"
KNOWN_METHODS = frozenset({"INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "INFO", "NOTIFY",
                           "REGISTER", "SUBSCRIBE", "PUBLISH", "MESSAGE", "REFER", "UPDATE",
                           "PRACK"})
SUPPORTED_EXTENSIONS: frozenset[str] = frozenset()  # option tags we implement (Require)
ALLOW_EVENTS = "check-sync, ua-profile, message-summary"  # NOTIFY packages (RFC 6665 §8.2.2)
PNP_WINDOW = 300.0  # how long a plug-and-play SUBSCRIBE waits for its NOTIFY (seconds)
PNP_PENDING_MAX = 8  # plug-and-play SUBSCRIBEs waiting at once; the oldest goes first

REASONS = {
    100: "Trying", 180: "Ringing", 200: "OK", 400: "Bad Request", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout",
    415: "Unsupported Media Type", 416: "Unsupported URI Scheme", 420: "Bad Extension",
    481: "Call/Transaction Does Not Exist", 482: "Loop Detected", 486: "Busy Here",
    487: "Request Terminated", 488: "Not Acceptable Here", 489: "Bad Event",
    491: "Request Pending", 500: "Server Internal Error", 501: "Not Implemented",
    503: "Service Unavailable", 505: "Version Not Supported", 513: "Message Too Large",
}
END_REASONS: dict[int, ev.EndReason] = {
    404: ev.EndReason.NOT_FOUND, 408: ev.EndReason.TIMEOUT, 480: ev.EndReason.UNAVAILABLE,
    486: ev.EndReason.BUSY, 487: ev.EndReason.CANCELLED, 488: ev.EndReason.NOT_ACCEPTABLE,
    600: ev.EndReason.BUSY, 603: ev.EndReason.DECLINED, 604: ev.EndReason.NOT_FOUND,
}


@dataclass(frozen=True, slots=True)
class EndpointConfig:
    user: str
    domain: str  # host[:port] of the account: sip:user@domain is our AoR
    password: str = field(repr=False)
    registrar: SipUri | None  # Request-URI of REGISTER; None: no registrar (a lab bench)
    proxy: Addr | None  # where out-of-dialog requests go (the registrar, resolved)
    local: Addr  # our address as we advertise it in Via and Contact
    display_name: str = ""
    auth_user: str | None = None
    expires: int = 3600
    user_agent: str = "deskphone"
    timers: TimerValues = TimerValues()
    media: MediaCaps = MediaCaps()
    rtp_host: str | None = None  # advertised in SDP (default: local.host)
    rtp_ports: tuple[int, int] = (16384, 16482)
    retry_base: float = 30.0  # registration retry back-off (RFC 5626 §4.5)
    retry_max: float = 1800.0
    nat_rewrite: bool = True  # re-register with the address the registrar saw
    # whom we trust (issue: a desk phone on a hostile LAN)
    accept_from: str = "any"  # "proxy": out-of-dialog requests only from the proxy's host
    realm: str | None = None  # the account's digest realm; None: learnt from the registrar
    allow_rfc2069: bool = False  # answer challenges without qop (offline-crackable)
    max_server_tx: int = 512  # live server transactions, all sources (a flood's cap)
    max_server_tx_per_source: int = 64  # ... from one host
    # where pnp_subscribe sends: the SIP multicast group, or a unicast stand-in (tests)
    pnp_target: Addr = Addr("udp", PNP_GROUP, PNP_PORT)


@dataclass(frozen=True, slots=True)
class _PnpSubscription:
    """A plug-and-play SUBSCRIBE of ours, waiting for its NOTIFY: RFC 6665 §4.1.2.4
    matches the NOTIFY by Call-ID and our From tag (its To tag), never by where it came
    from (the SUBSCRIBE went to a multicast group: any host may answer)."""

    tag: str
    until: float


_Deadline = tuple[float, int, bool, tuple[str, str], "ClientTransaction | ServerTransaction"]
"""(deadline, tie-break, client?, key, transaction) in the endpoint's timer heap."""


class PortSource(Protocol):
    """Where RTP ports come from. The app's pool binds a socket pair per port, so a
    port we put in SDP is one we hold; the default here only cycles the range."""

    def allocate(self) -> int: ...

    def release(self, port: int) -> None: ...


class PortCycle:
    def __init__(self, lo: int, hi: int) -> None:
        self._lo, self._hi, self._next = lo, hi, lo

    def allocate(self) -> int:
        port = self._next
        self._next = port + 2 if port + 2 <= self._hi else self._lo
        return port

    def release(self, port: int) -> None:
        pass


class Endpoint:
    def __init__(self, config: EndpointConfig, rng: Rng, now: float = 0.0,
                 ports: PortSource | None = None) -> None:
        self.config = config
        self._ports = ports or PortCycle(*config.rtp_ports)
        self._rng = rng
        self._out: list[tuple[bytes, Addr]] = []
        self._events: deque[ev.Event] = deque()
        self._client_tx: dict[tuple[str, str], ClientTransaction] = {}
        self._tu: dict[tuple[str, str], Callable[[Response | Timeout, float], None]] = {}
        self._server_tx: dict[tuple[str, str], ServerTransaction] = {}
        # every transaction's next deadline, lazily invalidated (see _stale)
        self._deadlines: list[_Deadline] = []
        self._seq = itertools.count()
        self._per_host: Counter[str] = Counter()  # live server transactions per source
        self._calls: dict[str, Call] = {}
        self._awaiting_ack: dict[str, Call] = {}  # hung up after our 2xx: BYE on its ACK
        self._auth = DigestClient(
            Credentials(config.auth_user or config.user, config.password),
            lambda: self._hex(16))
        try:  # one host:port parser: the URI's ("[::1]:5060" included)
            domain = SipUri.parse(f"sip:{config.domain}")
        except RemoteProtocolError as e:
            raise LocalProtocolError(f"bad domain {config.domain!r}: {e}") from None
        self._domain_host = domain.host.lower()
        self._domain_port = domain.port
        self._aor = SipUri(host=self._domain_host, user=config.user, port=self._domain_port)
        self._from_tag_reg = self._hex(10)
        self.reg = Registration(call_id=self._hex(24) + "@deskphone",
                                contact=self._contact_uri(config.local.host, config.local.port),
                                expires=config.expires)
        self._reg_creds: list[tuple[str, str]] = []
        self._realm = config.realm  # the account's realm: configured, or the registrar's
        self.dropped_requests = 0  # out-of-dialog requests from strangers (accept_from)
        self.internal_errors = 0  # exceptions receive() caught: bugs, logged rate-limited
        self._now = now  # the time of the last input, for the warnings' rate limit
        self._warned: dict[str, list[float]] = {}  # host -> [next allowed, held back]
        self.overload_drops = 0  # requests refused by the transaction caps (floods)
        self._next_summary: dict[str, float] = {}  # kind -> when its next line may go
        self._pnp: dict[str, _PnpSubscription] = {}  # Call-ID -> waiting for its NOTIFY

    # ---------------------------------------------------------------- I/O side

    def receive(self, data: bytes, source: Addr, now: float) -> None:
        """Feed one whole message: a UDP datagram or a frame cut from a TCP stream."""
        self._now = now
        try:
            msg = parse_message(data, stream=source.reliable)
        except RemoteProtocolError as e:
            self._reject_unparsable(data, source, e)
            return
        try:
            if isinstance(msg, Request):
                self._on_request(msg, source, now)
            else:
                self._on_response(msg, source, now)
        except RemoteProtocolError as e:
            if isinstance(msg, Request) and msg.method != "ACK":
                self._reply_raw(msg, source, e.status_hint, str(e))
            self._warn(f"{'request' if isinstance(msg, Request) else 'response'} "
                       f"dropped: {e}", source)
        except Exception as e:  # our bug: no input may wedge a state machine or the loop
            self.internal_errors += 1
            if self._summary_due("error", now):
                self._warn(f"internal error on a {type(msg).__name__.lower()}: "
                           f"{type(e).__name__}: {e} ({self.internal_errors} so far)", source)
            if isinstance(msg, Request) and msg.method != "ACK":
                self._reply_raw(msg, source, 500, "internal error")

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Addr]]:
        out, self._out = self._out, []
        return out

    def next_event(self) -> ev.Event | None:
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        heap = self._deadlines
        while heap and self._stale(heap[0]):
            heapq.heappop(heap)
        times = [heap[0][0]] if heap else []
        if self.reg.refresh_at is not None:
            times.append(self.reg.refresh_at)
        if self.reg.retry_at is not None:
            times.append(self.reg.retry_at)
        times += [c.info_next_at for c in self._calls.values() if c.info_next_at is not None]
        return min(times) if times else None

    def handle_timer(self, now: float) -> None:
        self._now = now
        for call in list(self._calls.values()):
            if call.info_next_at is not None and call.info_next_at <= now:
                self._next_info_digit(call, now)
        heap = self._deadlines
        while heap and heap[0][0] <= now:  # only the due ones: linear in what is due
            entry = heapq.heappop(heap)
            if self._stale(entry):
                continue
            _, _, client, key, tx = entry
            if tx.terminated:
                self._forget_tx(client, key, tx)
                continue
            if client:
                assert isinstance(tx, ClientTransaction)
                if tx.on_timer(now) is TIMEOUT:
                    self._deliver(key, TIMEOUT, now)
            else:
                assert isinstance(tx, ServerTransaction)
                if tx.on_timer(now) is TIMEOUT:
                    self._server_timeout(tx, now)
            if tx.terminated:
                self._forget_tx(client, key, tx)
        reg = self.reg
        if reg.refresh_at is not None and reg.refresh_at <= now:
            reg.refresh_at = None
            self._send_register(now, reg.expires)
        if reg.retry_at is not None and reg.retry_at <= now:
            reg.retry_at = None
            self._send_register(now, reg.expires)

    def transport_error(self, addr: Addr, now: float) -> None:
        """The transport could not deliver to ``addr`` (TCP refused/reset, ICMP)."""
        for key, ctx in list(self._client_tx.items()):
            if ctx.addr == addr and not ctx.terminated:
                ctx.transport_error()
                self._client_tx.pop(key, None)
                self._deliver(key, TIMEOUT, now)
                self._tu.pop(key, None)

    # --------------------------------------------------------------- user side

    @property
    def registered(self) -> bool:
        return self.reg.state is RegState.REGISTERED or (
            self.reg.state is RegState.REGISTERING and self.reg.granted > 0)

    @property
    def aor(self) -> str:
        return str(self._aor)

    @property
    def calls(self) -> list[Call]:
        return list(self._calls.values())

    def call(self, call_id: str | None = None) -> Call:
        """The call with this id, or the only call when ``call_id`` is None."""
        if call_id is None:
            if not self._calls:
                raise LocalProtocolError("no call")
            return next(reversed(self._calls.values()))
        try:
            return self._calls[call_id]
        except KeyError:
            raise LocalProtocolError(f"no call {call_id!r}") from None

    def set_proxy(self, proxy: Addr) -> None:
        """The registrar's address, once it resolves (it may not at boot: no network yet)."""
        self.config = replace(self.config, proxy=proxy)

    def register(self, now: float) -> None:
        if self.config.registrar is None or self.config.proxy is None:
            return  # nothing to register with: calls go to SIP URIs directly
        if self.reg.state in (RegState.REGISTERING, RegState.UNREGISTERING):
            return
        self.reg.retry_at = None
        self._send_register(now, self.reg.expires)

    def unregister(self, now: float) -> None:
        """Remove our binding (Expires: 0); ``Unregistered`` follows."""
        reg = self.reg
        reg.refresh_at = reg.retry_at = None
        if reg.state is RegState.REGISTERING:
            # §10.2: one REGISTER at a time. The one in flight carries on with Expires: 0
            # once its final response is in (see _on_register_response).
            reg.state = RegState.UNREGISTERING
        elif reg.state is RegState.REGISTERED or reg.granted:
            reg.state = RegState.UNREGISTERING
            self._send_register(now, 0)
        else:
            reg.state = RegState.UNREGISTERED
            self._events.append(ev.Unregistered("not registered"))

    def dial(self, target: str, now: float) -> str:
        """Start an outgoing call; returns its Call-ID."""
        uri = self.target_uri(target)
        hop = self._next_hop_for(uri)  # before anything is held: it may refuse the target
        call_id = self._hex(24) + "@deskphone"
        try:
            port = self._rtp_port()
        except OSError as e:
            raise LocalProtocolError(f"no RTP port: {e}") from None
        offer = make_offer(self.config.media, self._rtp_host, port, self._session_id(),
                           1)
        call = Call(call_id=call_id, direction=Direction.OUTGOING, remote=Address(uri),
                    local_tag=self._hex(10), state=CallState.DIALING, local_port=port,
                    local_sdp=offer)
        self._calls[call_id] = call
        frm = self._our_address().with_param("tag", call.local_tag)
        headers = [
            ("Max-Forwards", "70"),
            ("From", str(frm)),
            ("To", f"<{uri}>"),
            ("Call-ID", call_id),
            ("CSeq", "1 INVITE"),
            ("Contact", self._contact_value()),
            ("Allow", ALLOW),
            ("User-Agent", self.config.user_agent),
            ("Content-Type", "application/sdp"),
        ]
        invite = Request("INVITE", uri, Headers(headers), bytes(offer))
        call.invite_addr = hop
        self._send_invite(call, invite, now)
        return call_id

    def answer(self, now: float, call_id: str | None = None) -> None:
        call = self.call(call_id)
        if call.state is not CallState.INCOMING or call.invite_tx is None:
            raise LocalProtocolError(f"call is {call.state.value}, not ringing")
        invite = call.invite_tx.request
        body = bytes(call.local_sdp) if call.local_sdp is not None else b""
        resp = self._response(invite, 200, to_tag=call.local_tag, contact=True,
                              record_route=True,
                              extra=[("Content-Type", "application/sdp")] if body else [],
                              body=body)
        call.dialog = Dialog.from_uas(invite, call.local_tag)
        call.state = CallState.ANSWERED
        call.invite_tx.respond(resp, now)

    def ring(self, now: float, call_id: str | None = None) -> None:
        """Tell the caller we are alerting: 180 Ringing (RFC 3261 §13.3.1.1)."""
        call = self.call(call_id)
        if call.state is not CallState.INCOMING or call.invite_tx is None:
            raise LocalProtocolError(f"call is {call.state.value}, not ringing")
        call.invite_tx.respond(self._response(call.invite_tx.request, 180,
                                              to_tag=call.local_tag, contact=True,
                                              record_route=True), now)

    def reject(self, now: float, code: int = 486, call_id: str | None = None) -> None:
        """Turn an incoming call away with a final response (486 Busy Here, 480, 603)."""
        if not 400 <= code < 700:
            raise LocalProtocolError(f"not a rejection code: {code}")
        call = self.call(call_id)
        if call.state is not CallState.INCOMING or call.invite_tx is None:
            raise LocalProtocolError(f"call is {call.state.value}, not ringing")
        call.invite_tx.respond(
            self._response(call.invite_tx.request, code, to_tag=call.local_tag), now)
        self._end(call, ev.EndReason.REJECTED, code)

    def hangup(self, now: float, call_id: str | None = None) -> None:
        """End the call whatever its state: CANCEL, reject, or BYE."""
        call = self.call(call_id)
        st = call.state
        if st is CallState.DIALING:
            if call.got_provisional:  # a 100 Trying is enough for a CANCEL
                self._send_cancel(call, now)
            else:
                call.cancel_pending = True  # §9.1: CANCEL only once a 1xx came
            self._end(call, ev.EndReason.CANCELLED, None)
        elif st is CallState.RINGING_OUT:
            self._send_cancel(call, now)
            self._end(call, ev.EndReason.CANCELLED, None)
        elif st is CallState.INCOMING:
            self.reject(now, 486, call.call_id)
        elif st is CallState.ANSWERED:
            # §15: no BYE before our 2xx is ACKed (or its transaction times out); the
            # call is over for the person now, the BYE follows the ACK
            self._awaiting_ack[call.call_id] = call
            self._end(call, ev.EndReason.LOCAL_HANGUP, None)
        elif st is CallState.CONNECTED:
            self._send_bye(call, now)
            self._end(call, ev.EndReason.LOCAL_HANGUP, None)

    def pnp_subscribe(self, now: float, mac: str) -> str:
        """Ask a SIP plug-and-play server where to provision from; returns the Call-ID.

        A SUBSCRIBE for ``ua-profile`` (RFC 6080 §4.1, built by provision.discovery)
        goes to ``config.pnp_target`` (224.0.1.75:5060) in a non-INVITE client
        transaction (Timers E and F); a NOTIFY with an ``application/url`` body for
        it within ``PNP_WINDOW`` seconds becomes ``ProvisioningUrlOffered``. This is
        trust on first use: any host on the LAN can answer first, so the phone uses
        it only when no URL is configured and DHCP gave none."""
        local = self.config.local
        call_id = self._hex(24) + "@deskphone"
        tag = self._hex(10)
        try:
            req = pnp_subscribe_request(mac, local.host, local.port, call_id, tag,
                                        "z9hG4bK" + self._hex(16))
        except ValueError as e:
            raise LocalProtocolError(str(e)) from None
        for old, sub in list(self._pnp.items()):
            if sub.until < now:
                del self._pnp[old]
        while len(self._pnp) >= PNP_PENDING_MAX:
            del self._pnp[next(iter(self._pnp))]
        self._pnp[call_id] = _PnpSubscription(tag, now + PNP_WINDOW)
        target = self.config.pnp_target

        def tu(resp: Response | Timeout, t: float) -> None:
            # 200/202 or nothing: the NOTIFY is what counts, and it may still come
            if isinstance(resp, Timeout):
                self._warn("plug-and-play SUBSCRIBE: no response", target)
            elif resp.status >= 300:
                self._warn(f"plug-and-play SUBSCRIBE: {resp.status} {resp.reason}",
                           target)

        self._start_client_tx(req, target, now, tu)
        return call_id

    def target_uri(self, target: str) -> SipUri:
        """What the person dialled as a URI: ``1002`` -> ``sip:1002@<domain>``."""
        target = target.strip()
        if not target:
            raise LocalProtocolError("nothing to dial")
        try:
            if target.lower().startswith(("sip:", "sips:")):
                return SipUri.parse(target)
            if "@" in target:
                return SipUri.parse("sip:" + target)
            return SipUri.parse(f"sip:{target}@{self.config.domain}")
        except RemoteProtocolError as e:
            raise LocalProtocolError(f"cannot dial {target!r}: {e}") from None

    # ------------------------------------------------------------ registration

    def _send_register(self, now: float, expires: int,
                       creds: list[tuple[str, str]] | None = None) -> None:
        reg = self.reg
        if expires > 0 and reg.state is not RegState.UNREGISTERING:
            reg.state = RegState.REGISTERING
        contacts = [f"<{reg.contact}>"]
        if reg.old_contact is not None:
            contacts.append(f"<{reg.old_contact}>;expires=0")
        headers = [
            ("Max-Forwards", "70"),
            ("From", str(self._our_address().with_param("tag", self._from_tag_reg))),
            ("To", str(self._our_address())),
            ("Call-ID", reg.call_id),
            ("CSeq", f"{reg.next_cseq()} REGISTER"),
            ("Contact", ", ".join(contacts)),
            ("Expires", str(expires)),
            ("Allow", ALLOW),
            ("User-Agent", self.config.user_agent),
            *(creds or []),
        ]
        self._reg_creds = list(creds or [])
        assert self.config.registrar is not None and self.config.proxy is not None
        req = Request("REGISTER", self.config.registrar, Headers(headers))
        def tu(resp: Response | Timeout, t: float) -> None:
            try:
                self._on_register_response(resp, t, expires)
            except Exception as e:  # whatever the registrar sent: never stuck REGISTERING
                self._register_failed(None, f"bad response from registrar: "
                                            f"{type(e).__name__}", t)

        self._start_client_tx(req, self.config.proxy, now, tu)

    def _on_register_response(self, resp: Response | Timeout, now: float, expires: int) -> None:
        reg = self.reg
        unregistering = reg.state is RegState.UNREGISTERING
        if isinstance(resp, Timeout):
            return self._register_failed(None, "no response from registrar", now)
        code = resp.status
        if code < 200:
            return None
        if unregistering and expires > 0:
            # the REGISTER that was in flight when unregister() came: whatever it did,
            # remove the binding now (answering its challenge, if that is what came)
            expires = 0
            if code not in (401, 407):
                return self._send_register(now, 0)
        if code in (401, 407):
            challenges, refused = self._challenges(resp, self.config.proxy, learn=True)
            if refused is not None:
                return self._register_failed(code, refused, now)
            creds = self._auth.answer(challenges, "REGISTER", str(self.config.registrar),
                                      b"", self._reg_creds)
            if creds is None:
                return self._register_failed(code, "auth failed", now)
            return self._send_register(now, expires, creds)
        if code == 423 and not unregistering:
            try:
                wanted = resp.min_expires
            except RemoteProtocolError:
                wanted = None  # unreadable: a failure like any other 423
            if wanted is not None and expires < wanted <= 86400:
                reg.expires = wanted
                return self._send_register(now, reg.expires)
        if code >= 300:
            return self._register_failed(code, resp.reason or str(code), now)
        # 2xx
        reg.failures = 0
        reg.old_contact = None
        if unregistering or expires == 0:
            reg.state = RegState.UNREGISTERED
            reg.granted = 0
            self._events.append(ev.Unregistered("un-registered"))
            return None
        granted = granted_expires(resp, reg.contact, expires)
        nat = via_nat_address(resp) if self.config.nat_rewrite else None
        if nat is not None and not reg.nat_rewritten:
            host, port = nat
            if self.config.local.reliable:
                # over TCP rport is the connection's ephemeral port: only a
                # different IP means NAT, and we keep listening where we are
                port = reg.contact.port or 5060
            if (host, port) != (reg.contact.host_bare, reg.contact.port or 5060):
                # RFC 3581: we are behind NAT; bind the address the registrar sees
                reg.nat_rewritten = True
                reg.old_contact = reg.contact
                reg.contact = self._contact_uri(host, port)
                return self._send_register(now, expires)
        reg.state = RegState.REGISTERED
        reg.granted = granted
        reg.refresh_at = now + refresh_delay(granted) if granted > 0 else None
        self._events.append(ev.Registered(self.aor, str(reg.contact), granted))
        return None

    def _register_failed(self, status: int | None, reason: str, now: float) -> None:
        reg = self.reg
        if reg.state is RegState.UNREGISTERING:
            reg.state = RegState.UNREGISTERED
            reg.granted = 0
            self._events.append(ev.Unregistered(f"un-register failed: {reason}"))
            return
        reg.failures += 1
        reg.granted = 0
        reg.state = RegState.RETRY_WAIT
        delay = retry_delay(reg.failures, self.config.retry_base, self.config.retry_max,
                            self._rng)
        reg.retry_at = now + delay
        self._events.append(ev.RegistrationFailed(status, reason, round(delay, 1)))

    # ---------------------------------------------------------- outgoing calls

    def _send_invite(self, call: Call, invite: Request, now: float) -> None:
        """Each INVITE (the first, or one retried with credentials) is a new
        transaction: a fresh branch; kept whole, since CANCEL copies its Via."""
        assert call.invite_addr is not None
        headers = invite.headers.remove("Via").add("Via", self._via(), first=True)
        invite = invite.with_headers(headers)
        call.invite = invite
        call.got_provisional = False  # of this transaction, the one a CANCEL would name
        self._start_client_tx(invite, call.invite_addr, now,
                              lambda r, t: self._on_invite_response(call, r, t))

    def _on_invite_response(self, call: Call, resp: Response | Timeout, now: float) -> None:
        if isinstance(resp, Timeout):
            if call.live:
                self._end(call, ev.EndReason.TIMEOUT, 408)
            return
        code = resp.status
        if code < 200:
            call.got_provisional = True
            if call.cancel_pending:
                call.cancel_pending = False
                self._send_cancel(call, now)
            elif call.live and code > 100:
                early = self._early_media(call, resp)
                if early is not None or (call.state is CallState.DIALING
                                         and code in (180, 183)):
                    call.state = CallState.RINGING_OUT
                    self._events.append(ev.CallRinging(call.call_id, code, early))
            return
        if code < 300:
            self._on_invite_2xx(call, resp, now)
            return
        if code in (401, 407) and call.live and call.invite is not None:
            invite = call.invite
            sent = [(n, v) for n, v in invite.headers
                    if n in ("Authorization", "Proxy-Authorization")]
            challenges, refused = self._challenges(resp, call.invite_addr, learn=True)
            if refused is not None:
                self._warn(f"call {call.call_id}: {refused}", str(call.invite_addr))
                self._end(call, refused, code)
                return
            creds = self._auth.answer(challenges, "INVITE", str(invite.uri), invite.body,
                                      sent)
            if creds is None:
                self._end(call, ev.EndReason.AUTH_FAILED, code)
                return
            headers = invite.headers.remove("Authorization").remove("Proxy-Authorization")
            headers = headers.set("CSeq", f"{invite.cseq.seq + 1} INVITE")
            for n, v in creds:
                headers = headers.add(n, v)
            self._send_invite(call, invite.with_headers(headers), now)
            return
        if call.live:
            self._end(call, END_REASONS.get(code, ev.EndReason.FAILED), code)

    def _early_media(self, call: Call, resp: Response) -> NegotiatedMedia | None:
        """The media an SDP answer in a provisional response negotiates: the first such
        answer only (a later one, or one from another fork, changes nothing until the 2xx
        says). A bad one is warned about and the call goes on without early media."""
        if (resp.content_type != "application/sdp" or not resp.body
                or call.local_sdp is None or call.early_media is not None):
            return None
        try:
            answer = SessionDescription.parse(resp.body)
            media = accept_answer(call.local_sdp, answer)
        except SdpError as e:
            self._warn(f"call {call.call_id}: bad SDP in {resp.status}: {e}",
                       str(call.invite_addr))
            return None
        call.early_media = media
        call.early_tag = resp.to.tag
        call.remote_sdp = answer
        return media

    def _on_invite_2xx(self, call: Call, resp: Response, now: float) -> None:
        to_tag = resp.to.tag or ""
        invite = call.invite
        assert invite is not None
        if call.dialog is not None:
            if call.dialog.remote_tag == to_tag and call.ack is not None:
                assert call.ack_addr is not None
                self._send(call.ack, call.ack_addr)  # 2xx retransmission: ACK again
                return
            # §13.2.2.4: a second fork answered too: ACK it, then BYE it
            dialog = Dialog.from_uac(invite, resp)
            self._ack_and_bye(dialog, now, call.invite_addr)
            return
        if not resp.contacts:
            # §12.1.2 needs the callee's Contact as the remote target: without one, ACK
            # and BYE the Request-URI (the 2xx must still be ACKed, §13.2.2.4) and end
            # the call rather than leave it ringing
            resp = resp.with_headers(resp.headers.add("Contact", f"<{invite.uri}>"))
            call.dialog = Dialog.from_uac(invite, resp)
            ack, hop = call.dialog.new_request("ACK", self._via(), None, cseq=invite.cseq.seq)
            call.ack, call.ack_addr = ack, self._addr_for_uri(hop, self._peer(call))
            self._send(ack, call.ack_addr)
            self._warn(f"call {call.call_id}: 2xx without Contact", str(call.invite_addr))
            self._send_bye(call, now)
            self._end(call, ev.EndReason.BAD_ANSWER, 502)
            return
        dialog = Dialog.from_uac(invite, resp)
        call.dialog = dialog
        ack, hop = dialog.new_request("ACK", self._via(), None, cseq=invite.cseq.seq)
        call.ack = ack
        call.ack_addr = self._addr_for_uri(hop, self._peer(call))
        self._send(ack, call.ack_addr)
        if not call.live:  # hung up while it rang: too late to CANCEL, so BYE
            self._send_bye(call, now)
            return
        media: NegotiatedMedia | None = None
        try:
            if (call.early_media is not None and resp.content_type != "application/sdp"
                    and to_tag == call.early_tag):
                # the answer came in a 18x and the 2xx (of the same fork) does not repeat
                # it (RFC 3261 wants it repeated; not every UA does): the early media
                # goes on
                call.media = call.early_media
                call.state = CallState.CONNECTED
                self._events.append(ev.CallConnected(call.call_id, call.early_media))
                return
            if resp.content_type != "application/sdp" or call.local_sdp is None:
                raise SdpError("2xx to our offer carries no SDP answer")
            answer = SessionDescription.parse(resp.body)
            media = accept_answer(call.local_sdp, answer)
            call.remote_sdp = answer
        except SdpError as e:
            self._warn(f"call {call.call_id}: bad SDP answer: {e}", str(call.ack_addr))
            self._send_bye(call, now)
            self._end(call, ev.EndReason.MEDIA_FAILED, 488)
            return
        call.media = media
        call.state = CallState.CONNECTED
        self._events.append(ev.CallConnected(call.call_id, media))

    def _ack_and_bye(self, dialog: Dialog, now: float, peer: Addr | None) -> None:
        invite_seq = dialog.local_seq
        ack, hop = dialog.new_request("ACK", self._via(), None, cseq=invite_seq)
        addr = self._addr_for_uri(hop, peer)
        self._send(ack, addr)
        bye, hop = dialog.new_request("BYE", self._via(), None)
        self._start_client_tx(bye, self._addr_for_uri(hop, peer), now, lambda r, t: None)

    def _send_cancel(self, call: Call, now: float) -> None:
        """§9.1: CANCEL copies the INVITE's Request-URI, Via, Call-ID, From, To, Route."""
        invite = call.invite
        if invite is None or call.invite_addr is None:
            return
        h = invite.headers
        headers = [
            ("Via", h.get_all("Via")[0]),
            *(("Route", r) for r in h.get_all("Route")),
            ("Max-Forwards", "70"),
            ("From", h.get("From") or ""),
            ("To", h.get("To") or ""),
            ("Call-ID", invite.call_id),
            ("CSeq", f"{invite.cseq.seq} CANCEL"),
            ("User-Agent", self.config.user_agent),
        ]
        cancel = Request("CANCEL", invite.uri, Headers(headers))
        self._start_client_tx(cancel, call.invite_addr, now, lambda r, t: None)

    def _send_bye(self, call: Call, now: float) -> None:
        self._in_dialog(call, "BYE", now)

    def _in_dialog(self, call: Call, method: str, now: float,
                   extra: list[tuple[str, str]] | None = None, body: bytes = b"",
                   tu: Callable[[Response | Timeout, float], None] | None = None,
                   contact: bool = False) -> Request | None:
        """A request inside the call's dialog, routed by its route set (§12.2.1)."""
        if call.dialog is None:
            return None
        req, hop = call.dialog.new_request(
            method, self._via(), self._contact_value() if contact else None,
            [("User-Agent", self.config.user_agent), *(extra or [])], body)
        self._start_client_tx(req, self._addr_for_uri(hop, self._peer(call)), now,
                              tu or (lambda r, t: None))
        return req

    # ---------------------------------------------------- in-call requests we send

    def hold(self, now: float, on: bool = True, call_id: str | None = None) -> None:
        """Put the call on hold (re-INVITE, a=sendonly) or take it off (RFC 3264 §8.4)."""
        call = self.call(call_id)
        if call.state is not CallState.CONNECTED or call.dialog is None:
            raise LocalProtocolError(f"call is {call.state.value}, not connected")
        if call.reinvite_out is not None or call.reinvite_tx is not None:
            raise LocalProtocolError("a re-INVITE is already in progress")
        version = call.local_sdp.origin.session_version + 1 if call.local_sdp else 2
        offer = make_offer(self.config.media, self._rtp_host, call.local_port,
                           self._session_id(call), version,
                           direction=SdpDirection.SENDONLY if on else SdpDirection.SENDRECV)
        req = self._in_dialog(call, "INVITE", now, [("Allow", ALLOW),
                                                    ("Content-Type", "application/sdp")],
                              bytes(offer),
                              lambda r, t: self._on_reinvite_response(call, r, t), contact=True)
        call.reinvite_out = req
        call.reinvite_offer = offer

    def _on_reinvite_response(self, call: Call, resp: Response | Timeout, now: float) -> None:
        req, offer = call.reinvite_out, call.reinvite_offer
        if isinstance(resp, Timeout) or req is None or offer is None:
            call.reinvite_out = call.reinvite_offer = None
            if isinstance(resp, Timeout) and call.live:
                # §14.1: a re-INVITE that times out ends the dialog
                self._send_bye(call, now)
                self._end(call, ev.EndReason.TIMEOUT, 408)
            return
        if resp.status < 200:
            return
        call.reinvite_out = call.reinvite_offer = None
        if resp.status >= 300:
            if resp.status in (408, 481) and call.live:  # §14.1
                self._send_bye(call, now)
                self._end(call, END_REASONS.get(resp.status, ev.EndReason.FAILED), resp.status)
            else:
                self._warn(f"call {call.call_id}: re-INVITE refused: {resp.status} "
                           f"{resp.reason}", "")
                if call.live:  # the media stays as it was: the phone must hear of it
                    self._events.append(ev.CallUpdateFailed(call.call_id, resp.status,
                                                            resp.reason or ""))
            return
        assert call.dialog is not None
        ack, hop = call.dialog.new_request("ACK", self._via(), None, cseq=req.cseq.seq)
        self._send(ack, self._addr_for_uri(hop, self._peer(call)))
        contacts = resp.contacts
        if contacts:
            call.dialog.remote_target = contacts[0].uri
        try:
            answer = SessionDescription.parse(resp.body)
            call.media = accept_answer(offer, answer)
        except SdpError as e:
            self._warn(f"call {call.call_id}: bad SDP in re-INVITE answer: {e}", "")
            return
        call.local_sdp, call.remote_sdp = offer, answer
        self._events.append(ev.CallUpdated(call.call_id, call.media))

    def send_info(self, now: float, content_type: str, body: bytes,
                  call_id: str | None = None) -> None:
        """An INFO in the call, e.g. DTMF as application/dtmf-relay when the far end
        did not take RFC 4733 telephone-events."""
        call = self.call(call_id)
        if call.state is not CallState.CONNECTED:
            raise LocalProtocolError(f"call is {call.state.value}, not connected")
        self._in_dialog(call, "INFO", now, [("Content-Type", content_type)], body)

    def send_dtmf_info(self, now: float, digits: str, call_id: str | None = None, *,
                       duration_ms: int = 160, gap_ms: int = 80) -> None:
        """DTMF as SIP INFO (application/dtmf-relay), one digit at a time: the next
        INFO leaves ``gap_ms`` after the previous one's final response, so a proxy with
        parallel workers cannot reorder them (123# arrived as 132# at a far end once)."""
        call = self.call(call_id)
        if call.state is not CallState.CONNECTED:
            raise LocalProtocolError(f"call is {call.state.value}, not connected")
        call.info_digits.extend((d, duration_ms, gap_ms) for d in digits)
        if not call.info_busy and call.info_next_at is None:
            self._next_info_digit(call, now)

    def _next_info_digit(self, call: Call, now: float) -> None:
        call.info_next_at = None
        if not call.info_digits or not call.live or call.state is not CallState.CONNECTED:
            call.info_digits.clear()
            return
        digit, duration, gap = call.info_digits.popleft()
        call.info_busy = True

        def done(resp: Response | Timeout, t: float) -> None:
            if isinstance(resp, Response) and resp.status < 200:
                return
            call.info_busy = False
            if call.info_digits:
                call.info_next_at = t + gap / 1000

        self._in_dialog(call, "INFO", now, [("Content-Type", "application/dtmf-relay")],
                        f"Signal={digit}\r\nDuration={duration}\r\n".encode(), done)

    def ping(self, now: float, call_id: str | None = None) -> None:
        """OPTIONS inside the call: is the far end still there? (RFC 3261 §11)."""
        call = self.call(call_id)
        if call.state is not CallState.CONNECTED:
            raise LocalProtocolError(f"call is {call.state.value}, not connected")

        def tu(resp: Response | Timeout, t: float) -> None:
            gone = isinstance(resp, Timeout) or resp.status in (408, 481)
            if gone and call.live:
                self._send_bye(call, t)
                self._end(call, ev.EndReason.FAR_END_GONE, 408 if isinstance(resp, Timeout)
                          else resp.status)

        self._in_dialog(call, "OPTIONS", now, [("Accept", ACCEPT)], tu=tu)

    # ---------------------------------------------------------------- requests

    def _on_request(self, req: Request, source: Addr, now: float) -> None:
        method = req.method
        via = req.top_via  # validates Via; raises RemoteProtocolError -> 400
        req = self._stamp_via(req, via, source)
        # mandatory headers (§8.1.1); each accessor raises RemoteProtocolError
        req.from_, req.to, req.call_id  # noqa: B018
        req.cseq  # noqa: B018 (also checks that its method is the request's)
        branch = via.branch or ""
        key = (branch, "INVITE" if method == "ACK" else method)
        stx = self._server_tx.get(key)
        if stx is not None and stx.matches(req):
            stx.receive(req, now)
            if method != "ACK" or stx.state is not TxState.ACCEPTED:
                return
        if method == "ACK":
            self._on_ack(req, now)
            return
        if not req.to.tag and not self._trusted_source(source):
            # a stranger's out-of-dialog request (a scan, a ghost call): no answer at all,
            # so the phone reflects nothing and tells the scanner nothing
            self.dropped_requests += 1
            if self._summary_due("drop", now):
                self._warn(f"{method} from a host that is not the proxy dropped "
                           f"({self.dropped_requests} so far)", source)
            return
        if (not (req.to.tag and req.call_id in self._calls)  # a live call's own: always
                and not self._room_for(source.host)):
            # a flood: no new transaction. The proxy is told to come back (503, stateless,
            # §21.5.4); anyone else gets nothing, so a flood reflects nothing
            self.overload_drops += 1
            if self._summary_due("overload", now):
                self._warn(f"overloaded: {len(self._server_tx)} transactions live, "
                           f"{self.overload_drops} requests refused so far", source)
            if self._from_proxy(source):
                self._send(self._response(req, 503, to_tag=self._hex(10),
                                          extra=[("Retry-After", "5")]), source)
            return
        if method not in KNOWN_METHODS:
            self._reply(req, source, 501, now, extra=[("Allow", ALLOW)])
            return
        if method not in ALLOWED:
            self._reply(req, source, 405, now, extra=[("Allow", ALLOW)])
            return
        required = [t.strip() for v in req.headers.get_all("Require") for t in v.split(",")]
        unsupported = [t for t in required if t and t not in SUPPORTED_EXTENSIONS]
        if unsupported and method != "CANCEL":
            self._reply(req, source, 420, now, extra=[("Unsupported", ", ".join(unsupported))])
            return
        if method == "CANCEL":
            self._on_cancel(req, source, now)
            return
        to_tag = req.to.tag
        if method == "NOTIFY" and (not to_tag or self._find_dialog_call(req) is None):
            self._on_notify(req, source, now)
            return
        if to_tag:
            self._on_in_dialog(req, source, to_tag, now)
            return
        if method == "INVITE":
            if not self._names_us(req.uri):
                self._reply(req, source, 404, now)  # not a scan's lucky guess
                return
            self._on_invite(req, source, now)
        elif method == "OPTIONS":
            self._reply(req, source, 200, now, extra=[
                ("Allow", ALLOW), ("Accept", ACCEPT), ("Accept-Language", "en")])
        else:
            self._reply(req, source, 481, now)

    def _on_notify(self, req: Request, source: Addr, now: float) -> None:
        """A NOTIFY that no call of ours owns, by its event package (RFC 6665 §8.2.1)."""
        values = req.headers.get_all("Event")
        if not values and req.call_id in self._pnp:
            self._on_pnp_notify(req, source, now)  # PnP servers may leave Event out
            return
        try:
            package, params = _event(values)
        except RemoteProtocolError as e:
            self._reply(req, source, 400, now, reason="Bad Event Header",
                        extra=[("Warning", f'399 deskphone "{_warning_text(str(e))}"')])
            return
        if package == "check-sync":
            self._on_check_sync(req, source, params, now)
        elif package == "ua-profile":
            self._on_pnp_notify(req, source, now)
        elif package == "message-summary":
            self._reply(req, source, 200, now)  # MWI: answered (no lamp for it yet)
        else:
            self._reply(req, source, 489, now, extra=[("Allow-Events", ALLOW_EVENTS)])

    def _on_check_sync(self, req: Request, source: Addr, params: Params,
                       now: float) -> None:
        """``Event: check-sync[;reboot=true|false]``: fetch the config again. Obeyed from
        the proxy's own address only, even with ``accept_from = "any"``, and answered
        with or without a subscription (Asterisk sends it unsolicited, and Polycom and
        Yealink phones take it so)."""
        if not self._is_proxy(source):
            self._reply(req, source, 403, now)
            self._warn("check-sync NOTIFY from an address that is not the proxy refused",
                       source)
            return
        if not self._names_us(req.uri):
            self._reply(req, source, 404, now)
            return
        raw = get_param(params, "reboot")
        reboot = None if raw is None else {"true": True, "false": False}.get(
            raw.strip('"').lower())
        if raw is not None and reboot is None:
            self._warn(f"check-sync reboot={raw[:20]!r} is neither true nor false: "
                       f"taken as unsaid", source)
        self._reply(req, source, 200, now)
        self._events.append(ev.CheckSyncRequested(reboot))

    def _on_pnp_notify(self, req: Request, source: Addr, now: float) -> None:
        """The plug-and-play server's answer to ``pnp_subscribe``: a URL (RFC 6080 §4.1)."""
        call_id = req.call_id
        sub = self._pnp.get(call_id)
        if sub is not None and sub.until < now:
            del self._pnp[call_id]
            sub = None
        if sub is None or req.to.tag != sub.tag:
            self._reply(req, source, 481, now)  # RFC 6665 §4.1.3: no such subscription
            return
        if req.content_type != PNP_CONTENT_TYPE:
            self._reply(req, source, 415, now, extra=[("Accept", PNP_CONTENT_TYPE)])
            return
        url = pnp_url_from_body(req.body)
        if url is None:
            self._reply(req, source, 400, now, reason="Bad URL")
            self._warn("plug-and-play NOTIFY without a usable URL refused", source)
            return
        del self._pnp[call_id]  # one URL per SUBSCRIBE (Expires: 0): the first one wins
        self._reply(req, source, 200, now)
        self._events.append(ev.ProvisioningUrlOffered(url, source))

    def _on_invite(self, req: Request, source: Addr, now: float) -> None:
        call_id = req.call_id
        from_tag = req.from_.tag or ""
        same = self._calls.get(call_id)
        if same is not None:
            theirs = (same.invite_tx.request.from_.tag or "") if same.invite_tx else None
            if from_tag in (theirs, same.local_tag):
                # §8.2.2.2: the same request reached us by another path, or our own
                # INVITE came back to us (a call to ourselves)
                self._reply(req, source, 482, now)
            else:  # one call per Call-ID here: the live call must not be replaced
                self._reply(req, source, 486, now,
                            extra=[("Warning", '399 deskphone "Call-ID already in use"')])
            return
        stx = self._new_server_tx(req, source)
        if req.body and req.content_type != "application/sdp":
            stx.respond(self._response(req, 415, extra=[("Accept", ACCEPT)]), now)
            return
        try:
            port = self._rtp_port()
        except OSError as e:  # every RTP port pair taken or unbindable: say so, stay up
            stx.respond(self._response(req, 503, extra=[("Retry-After", "30")]), now)
            self._warn(f"INVITE refused: {e}", str(source))
            return
        offer: SessionDescription | None = None
        local_sdp: SessionDescription
        media: NegotiatedMedia | None = None
        try:
            if req.body:
                offer = SessionDescription.parse(req.body)
                local_sdp, media = make_answer(offer, self.config.media, self._rtp_host, port,
                                               self._session_id(), 1)
            else:  # offer in our 200, answer in the ACK (§13.2.1)
                local_sdp = make_offer(self.config.media, self._rtp_host, port,
                                       self._session_id(), 1)
        except NoCommonCodec as e:
            self._ports.release(port)
            stx.respond(self._response(req, 488, extra=[
                ("Warning", f'305 deskphone "{_warning_text(str(e))}"')]), now)
            self._warn(f"INVITE refused: {e}", str(source))
            return
        except SdpError as e:
            self._ports.release(port)
            stx.respond(self._response(req, 400, reason="Bad SDP", extra=[
                ("Warning", f'399 deskphone "{_warning_text(str(e))}"')]), now)
            return
        remote = req.from_
        call = Call(call_id=call_id, direction=Direction.INCOMING,
                    remote=Address(remote.uri, remote.display_name), local_tag=self._hex(10),
                    state=CallState.INCOMING, local_port=port, local_sdp=local_sdp,
                    remote_sdp=offer, media=media, invite_tx=stx,
                    remote_offer_in_ack=offer is None)
        self._calls[call_id] = call
        # 100 at once (stops the caller's retransmissions); whether we ring (180) or
        # turn the call away (486...) is the phone's decision: ring() / reject()
        stx.respond(self._response(req, 100), now)
        self._events.append(ev.IncomingCall(call_id, str(remote.uri), remote.display_name))

    def _on_cancel(self, req: Request, source: Addr, now: float) -> None:
        branch = req.top_via.branch or ""
        invite_tx = self._server_tx.get((branch, "INVITE"))
        if invite_tx is None or not invite_tx.matches(req):  # §9.2: branch and sent-by
            self._reply(req, source, 481, now)
            return
        call = self._calls.get(invite_tx.request.call_id)
        tag = call.local_tag if call is not None else self._hex(10)
        # §9.2: the 200 to the CANCEL carries the To tag of our responses to the INVITE
        stx = self._new_server_tx(req, source)
        stx.respond(self._response(req, 200, to_tag=tag), now)
        if invite_tx.state is TxState.PROCEEDING:
            invite_tx.respond(self._response(invite_tx.request, 487, to_tag=tag), now)
            if call is not None and call.invite_tx is invite_tx:
                self._end(call, ev.EndReason.CANCELLED, 487)

    def _on_ack(self, req: Request, now: float) -> None:
        hung_up = self._awaiting_ack.get(req.call_id)
        if hung_up is not None and hung_up.invite_tx is not None and (
                req.to.tag or "") == hung_up.local_tag:
            del self._awaiting_ack[req.call_id]
            hung_up.invite_tx.acked()  # the 2xx stops; now the BYE may go (§15)
            self._send_bye(hung_up, now)
            return
        call = self._find_dialog_call(req)
        if call is None:
            return  # stray ACK: nothing to answer (§17.2.3)
        tx = call.reinvite_tx or call.invite_tx
        if tx is not None:
            tx.acked()
        if call.remote_offer_in_ack and req.body and call.local_sdp is not None:
            try:
                answer = SessionDescription.parse(req.body)
                call.media = accept_answer(call.local_sdp, answer)
                call.remote_sdp = answer
            except SdpError as e:
                self._warn(f"call {call.call_id}: bad SDP in ACK: {e}", "")
                self._send_bye(call, now)
                self._end(call, ev.EndReason.MEDIA_FAILED, 488)
                return
            call.remote_offer_in_ack = False
        if call.state is CallState.ANSWERED:
            call.state = CallState.CONNECTED
            self._events.append(ev.CallConnected(call.call_id, call.media))
        elif call.reinvite_tx is not None:
            call.reinvite_tx = None
            if req.body:  # the answer to our offer in the 2xx of an offerless re-INVITE
                self._events.append(ev.CallUpdated(call.call_id, call.media))

    def _on_in_dialog(self, req: Request, source: Addr, to_tag: str, now: float) -> None:
        call = self._find_dialog_call(req)
        method = req.method
        if call is None or call.dialog is None:
            self._reply(req, source, 481, now)
            return
        dialog = call.dialog
        if not dialog.check_remote_seq(req):
            self._reply(req, source, 500, now, reason="CSeq Out Of Order")
            return
        if method == "BYE":
            self._reply(req, source, 200, now)
            self._end(call, ev.EndReason.REMOTE_HANGUP, None)
        elif method == "INVITE":
            self._on_reinvite(call, req, source, now)
        elif method == "INFO":
            self._reply(req, source, 200, now)
            digit = _dtmf_relay(req)
            if digit is not None:
                self._events.append(ev.DtmfReceived(call.call_id, *digit))
        elif method == "OPTIONS":
            self._reply(req, source, 200, now, extra=[("Allow", ALLOW), ("Accept", ACCEPT)])
        else:
            self._reply(req, source, 200, now)

    def _on_reinvite(self, call: Call, req: Request, source: Addr, now: float) -> None:
        """A target refresh / hold / media change inside the call (§14.2)."""
        assert call.dialog is not None
        if (call.reinvite_tx is not None or call.reinvite_out is not None
                or call.state is not CallState.CONNECTED):
            self._reply(req, source, 491, now)  # §14.2: glare, or too early
            return
        stx = self._new_server_tx(req, source)
        contacts = req.contacts
        if contacts:
            call.dialog.remote_target = contacts[0].uri
        version = (call.local_sdp.origin.session_version + 1) if call.local_sdp else 1
        try:
            if req.body:
                offer = SessionDescription.parse(req.body)
                # RFC 3264 §8.4: while we hold, our answer keeps us not receiving (a
                # far end holding us too gets inactive, not recvonly)
                local_sdp, media = make_answer(offer, self.config.media, self._rtp_host,
                                               call.local_port, self._session_id(call),
                                               version, hold=self._we_hold(call))
                call.remote_sdp, call.media = offer, media
            else:
                local_sdp = make_offer(self.config.media, self._rtp_host, call.local_port,
                                       self._session_id(call), version)
                call.remote_offer_in_ack = True
        except NoCommonCodec as e:
            stx.respond(self._response(req, 488, to_tag=call.local_tag,
                                       extra=[("Warning",
                                               f'305 deskphone "{_warning_text(str(e))}"')]),
                       now)
            return
        except SdpError as e:
            stx.respond(self._response(req, 400, to_tag=call.local_tag, reason="Bad SDP",
                                       extra=[("Warning",
                                               f'399 deskphone "{_warning_text(str(e))}"')]),
                       now)
            return
        call.local_sdp = local_sdp
        call.reinvite_tx = stx
        stx.respond(self._response(req, 200, to_tag=call.local_tag, contact=True,
                                   extra=[("Content-Type", "application/sdp")],
                                   body=bytes(local_sdp)), now)
        self._events.append(ev.CallUpdated(call.call_id, call.media))

    def _server_timeout(self, stx: ServerTransaction, now: float) -> None:
        """Timer H/L: our final response was never ACKed (§13.3.1.4: then BYE)."""
        hung_up = self._awaiting_ack.get(stx.request.call_id)
        if hung_up is not None and hung_up.invite_tx is stx:
            del self._awaiting_ack[stx.request.call_id]
            self._send_bye(hung_up, now)  # §15: the transaction timed out; BYE anyway
            return
        call = self._calls.get(stx.request.call_id)
        if call is None:
            return
        if call.invite_tx is stx and call.state is CallState.ANSWERED:
            self._send_bye(call, now)
            self._end(call, ev.EndReason.NO_ACK, 408)

    def _find_dialog_call(self, req: Request) -> Call | None:
        call = self._calls.get(req.call_id)
        if call is None or call.dialog is None:
            return None
        if (req.to.tag or "") != call.local_tag or (req.from_.tag or "") != \
                call.dialog.remote_tag:
            return None
        return call

    # --------------------------------------------------------------- responses

    def _on_response(self, resp: Response, source: Addr, now: float) -> None:
        via = resp.top_via
        cseq = resp.cseq
        key = (via.branch or "", "INVITE" if cseq.method == "ACK" else cseq.method)
        ctx = self._client_tx.get(key)
        if ctx is None:
            # a 2xx retransmission after the INVITE transaction ended: ACK again
            call = self._calls.get(resp.call_id)
            if (cseq.method == "INVITE" and 200 <= resp.status < 300 and call is not None
                    and call.ack is not None and call.ack_addr is not None):
                self._send(call.ack, call.ack_addr)
            return
        passed = ctx.receive(resp, now)
        if ctx.terminated:
            self._client_tx.pop(key, None)
        if passed is not None:
            self._deliver(key, passed, now)
        if ctx.terminated:
            self._tu.pop(key, None)

    def _deliver(self, key: tuple[str, str], result: Response | Timeout, now: float) -> None:
        tu = self._tu.get(key)
        if tu is not None:
            tu(result, now)

    # ----------------------------------------------------------------- helpers

    def _start_client_tx(self, req: Request, addr: Addr, now: float,
                         tu: Callable[[Response | Timeout, float], None]) -> None:
        if req.headers.get("Via") is None:
            req = req.with_headers(req.headers.add("Via", self._via(addr), first=True))
        branch = req.top_via.branch or ""
        key = (branch, req.method)
        self._tu[key] = tu
        ctx = ClientTransaction(req, addr, self._send, self.config.timers, now)
        self._client_tx[key] = ctx
        self._watch(True, key, ctx)

    def _new_server_tx(self, req: Request, source: Addr) -> ServerTransaction:
        stx = ServerTransaction(req, source, self._send, self.config.timers)
        key = (req.top_via.branch or "", req.method)
        old = self._server_tx.get(key)
        if old is not None:
            self._forget_tx(False, key, old)
        self._server_tx[key] = stx
        self._per_host[source.host] += 1
        self._watch(False, key, stx)
        return stx

    # ---------------------------------------------------------- transaction timers

    def _watch(self, client: bool, key: tuple[str, str],
               tx: ClientTransaction | ServerTransaction) -> None:
        """Keep ``tx``'s next deadline in the heap whenever its timers change."""
        def changed() -> None:
            # a terminated transaction is due at once: handle_timer forgets it
            d = 0.0 if tx.terminated else tx.deadline()
            if d is not None:
                heapq.heappush(self._deadlines, (d, next(self._seq), client, key, tx))
                if len(self._deadlines) > 2 * (len(self._client_tx) + len(self._server_tx)) + 64:
                    self._compact_deadlines()

        tx.timers.changed = changed
        changed()

    def _compact_deadlines(self) -> None:
        """Drop the stale entries: under a flood they pile up behind a live deadline at the
        top (a call's) and keep forgotten transactions alive."""
        self._deadlines = [e for e in self._deadlines if not self._stale(e)]
        heapq.heapify(self._deadlines)

    def _room_for(self, host: str) -> bool:
        """Is there room for one more server transaction from ``host``? At a cap, the
        oldest answered non-INVITE transaction (there only to repeat its final response
        to a retransmission) is let go first: a flood of OPTIONS from the proxy's host
        must not lock a real INVITE from the same proxy out for 32 s (Timer J)."""
        full_host = self._per_host[host] >= self.config.max_server_tx_per_source
        if not full_host and len(self._server_tx) < self.config.max_server_tx:
            return True
        done = [(key, tx) for key, tx in self._server_tx.items()
                if not tx.invite and tx.state is TxState.COMPLETED
                and (not full_host or tx.addr.host == host)]
        if not done:
            return False
        key, tx = done[0]  # dicts keep insertion order: the oldest
        self._forget_tx(False, key, tx)
        return True

    def _stale(self, entry: _Deadline) -> bool:
        """An entry the transaction has moved past (a newer one is in the heap), or of
        a transaction already gone."""
        d, _, client, key, tx = entry
        table: Mapping[tuple[str, str], object] = self._client_tx if client else \
            self._server_tx
        if table.get(key) is not tx:
            return True
        return not tx.terminated and tx.deadline() != d

    def _forget_tx(self, client: bool, key: tuple[str, str],
                   tx: ClientTransaction | ServerTransaction) -> None:
        if client:
            tx.timers.changed = None
            if self._client_tx.get(key) is tx:
                del self._client_tx[key]
                self._tu.pop(key, None)
            return
        tx.timers.changed = None  # the closure refers to tx: break the cycle for the GC
        if self._server_tx.get(key) is tx:
            del self._server_tx[key]
            host = tx.addr.host
            self._per_host[host] -= 1
            if self._per_host[host] <= 0:
                del self._per_host[host]

    def _reply(self, req: Request, source: Addr, code: int, now: float, *,
               reason: str | None = None, extra: list[tuple[str, str]] | None = None) -> None:
        """A final response in a server transaction of its own."""
        stx = self._new_server_tx(req, source)
        stx.respond(self._response(req, code, reason=reason, extra=extra,
                                   to_tag=None if code == 100 else self._hex(10)), now)

    def _response(self, req: Request, code: int, *, reason: str | None = None,
                  to_tag: str | None = None, contact: bool = False,
                  record_route: bool = False, extra: list[tuple[str, str]] | None = None,
                  body: bytes = b"") -> Response:
        """§8.2.6.2: copy Via, From, To (adding our tag), Call-ID, CSeq."""
        h = req.headers
        to = h.get("To") or ""
        if to_tag and code > 100 and ";tag=" not in to.lower().replace(" ", ""):
            to = f"{to};tag={to_tag}"
        items: list[tuple[str, str]] = [("Via", v) for v in h.get_all("Via")]
        if record_route:
            items += [("Record-Route", v) for v in h.get_all("Record-Route")]
        items += [("From", h.get("From") or ""), ("To", to),
                  ("Call-ID", h.get("Call-ID") or ""), ("CSeq", h.get("CSeq") or "")]
        if contact:
            items.append(("Contact", self._contact_value()))
        items.append(("Server", self.config.user_agent))
        items += extra or []
        return Response(code, reason or REASONS.get(code, "Unknown"), Headers(items), body)

    def _reply_raw(self, req: Request, source: Addr, code: int, why: str) -> None:
        """Answer a request whose headers did not parse: copy them as they are."""
        h = req.headers
        needed = [h.get(n) for n in ("Via", "From", "To", "Call-ID", "CSeq")]
        if any(v is None for v in needed):
            return
        items = [("Via", v) for v in h.get_all("Via")]
        to = h.get("To") or ""
        if ";tag=" not in to:
            to += ";tag=" + self._hex(10)
        items += [("From", h.get("From") or ""), ("To", to),
                  ("Call-ID", h.get("Call-ID") or ""), ("CSeq", h.get("CSeq") or ""),
                  ("Server", self.config.user_agent),
                  ("Warning", f'399 deskphone "{_warning_text(why)}"')]
        resp = Response(code, REASONS.get(code, "Bad Request"), Headers(items))
        self._send(resp, source)

    def _reject_unparsable(self, data: bytes, source: Addr, err: RemoteProtocolError) -> None:
        """A request we cannot parse gets 400 if enough of it can be read to answer."""
        self._warn(f"unparsable message dropped: {err}", str(source))
        text = data[:4096].decode("utf-8", "replace").replace("\r\n", "\n")
        first, _, rest = text.lstrip("\n").partition("\n")
        if first.startswith("SIP/") or first.startswith("ACK ") or not first:
            return  # a response or an ACK: never answered
        raw: list[tuple[str, str]] = []
        for line in rest.split("\n\n", 1)[0].split("\n"):
            name, colon, value = line.partition(":")
            if colon and name.strip():
                raw.append((name.strip(), value.strip()))
        h = Headers(raw)
        if any(h.get(n) is None for n in ("Via", "From", "To", "Call-ID", "CSeq")):
            return
        req = Request("UNKNOWN", SipUri(host="invalid"), h)
        self._reply_raw(req, source, err.status_hint, str(err))

    def _stamp_via(self, req: Request, via: Via, source: Addr) -> Request:
        """§18.2.1 + RFC 3581: note where the request really came from."""
        new = via
        if via.host.strip("[]") != source.host:
            new = new.with_param("received", source.host)
        if via.param("rport") == "":
            new = new.with_param("rport", str(source.port))
        if new is via:
            return req
        return req.with_headers(req.headers.replace_first("Via", str(new)))

    def _send(self, msg: Request | Response, addr: Addr) -> None:
        self._out.append((bytes(msg), addr))

    def _via(self, addr: Addr | None = None) -> str:
        local = self.config.local
        return (f"SIP/2.0/{local.transport.upper()} {host_port(local.host, local.port)}"
                f";branch=z9hG4bK{self._hex(16)};rport")

    def _contact_uri(self, host: str, port: int) -> SipUri:
        params: tuple[tuple[str, str | None], ...] = ()
        if self.config.local.transport != "udp":
            params = (("transport", self.config.local.transport),)
        return SipUri(host=bracketed(host), user=self.config.user, port=port, params=params)

    def _contact_value(self) -> str:
        return f"<{self.reg.contact}>"

    def _our_address(self) -> Address:
        return Address(self._aor, self.config.display_name or None)

    def _next_hop_for(self, uri: SipUri) -> Addr:
        """Our domain goes through the proxy; another IP address is called directly."""
        if (self.config.proxy is not None and uri.host == self._domain_host
                and (uri.port or None) in (self._domain_port, None)):
            return self.config.proxy
        return self._addr_for_uri(uri)

    def _addr_for_uri(self, uri: Uri, peer: Addr | None = None) -> Addr:
        """Where a request for ``uri`` goes: an IP address directly, anything else through
        the proxy; with no proxy, inside a call, to the peer the call came from or went to
        (a far end whose Contact names a host we cannot resolve without I/O)."""
        if not isinstance(uri, SipUri) or not _is_ip(uri.host_bare):
            if self.config.proxy is not None:
                return self.config.proxy
            if peer is not None:
                return peer
            raise LocalProtocolError(
                f"no registrar to route {uri} through: dial a SIP URI with an IP address")
        transport = uri.param("transport")
        t = transport.lower() if transport else self.config.local.transport
        return Addr(t, uri.host_bare, uri.port or 5060)

    def _challenges(self, resp: Response, sent_to: Addr | None, *,
                    learn: bool) -> tuple[list[tuple[str, str]], ev.EndReason | None]:
        """The challenges of a 401/407 we may answer, or why we answer none.

        A digest response is an offline-crackable hash of the password over a nonce the
        challenger chose, so it goes only to the configured outbound proxy (never to a
        host a dialled URI named), only for the account's realm (configured, else the
        first one the proxy asks for), and only with qop (RFC 2069's bare MD5 unless
        allowed)."""
        if self.config.proxy is None or sent_to != self.config.proxy:
            return [], ev.EndReason.AUTH_NOT_OUR_PROXY
        parsed: list[tuple[tuple[str, str], Challenge]] = []
        for name, value in resp.headers:
            if name in ("WWW-Authenticate", "Proxy-Authenticate"):
                try:
                    parsed.append(((name, value), Challenge.parse(name, value)))
                except AuthError:
                    continue  # Basic, garbage: never answered
        if not parsed:
            return [], ev.EndReason.AUTH_FAILED
        if self._realm is None and learn:
            self._realm = parsed[0][1].realm
        ours = [(pair, c) for pair, c in parsed if c.realm == self._realm]
        if not ours:
            return [], ev.EndReason.AUTH_FOREIGN_REALM
        if not self.config.allow_rfc2069:
            ours = [(pair, c) for pair, c in ours if c.qop]
            if not ours:
                return [], ev.EndReason.AUTH_NO_QOP
        return [pair for pair, _ in ours], None

    @staticmethod
    def _we_hold(call: Call) -> bool:
        """Our SDP says we do not receive: our own hold offer (sendonly), or inactive."""
        sd = call.local_sdp
        if sd is None:
            return False
        audio = [m for m in sd.media if m.media == "audio" and m.port != 0]
        return bool(audio) and sd.media_direction(audio[0]) in (SdpDirection.SENDONLY,
                                                                SdpDirection.INACTIVE)

    def _trusted_source(self, source: Addr) -> bool:
        """``accept_from = "proxy"``: only the outbound proxy's host starts anything."""
        return self.config.accept_from != "proxy" or self._from_proxy(source)

    def _from_proxy(self, source: Addr) -> bool:
        proxy = self.config.proxy
        return proxy is not None and source.host == proxy.host

    def _is_proxy(self, source: Addr) -> bool:
        """From the proxy's own host and port: what may make the phone act on its config.
        Kamailio relays with a Via of its own; where the datagram came from is what counts."""
        proxy = self.config.proxy
        return (proxy is not None and source.port == proxy.port
                and source.host.strip("[]").lower() == proxy.host.strip("[]").lower())

    def _names_us(self, uri: Uri) -> bool:
        """Is the Request-URI ours: our user, or our contact's (RFC 3261 §8.2.2.1)?"""
        if not isinstance(uri, SipUri) or uri.user is None:
            return False
        return uri.user in (self.config.user, self.reg.contact.user)

    def _peer(self, call: Call) -> Addr | None:
        """The address the call's INVITE went to, or came from."""
        if call.invite_addr is not None:
            return call.invite_addr
        return call.invite_tx.addr if call.invite_tx is not None else None

    def _end(self, call: Call, reason: ev.EndReason, status: int | None) -> None:
        """The call is over for the person; transactions may still finish on the wire
        (a CANCEL's 487, a BYE's 200): their callbacks hold the Call, not the table.
        ``CallEnded`` carries no port: the runtime knows each call's ``local_port``."""
        if not call.live:
            return
        call.state = CallState.ENDED
        self._calls.pop(call.call_id, None)
        # the port stays held: the runtime stops the call's media and frees the port when
        # it sees CallEnded (a pure core never calls back into I/O)
        self._events.append(ev.CallEnded(call.call_id, reason, status))

    def _rtp_port(self) -> int:
        return self._ports.allocate()

    @property
    def _rtp_host(self) -> str:
        return self.config.rtp_host or self.config.local.host

    def _session_id(self, call: Call | None = None) -> int:
        if call is not None and call.local_sdp is not None:
            return call.local_sdp.origin.session_id
        return self._rng.getrandbits(31)

    def _hex(self, n: int) -> str:
        return format(self._rng.getrandbits(n * 4), f"0{n}x")

    def _summary_due(self, kind: str, now: float) -> bool:
        """A counted kind of trouble (drops, overload, our errors) gets one line with its
        count per 10 s, whichever hosts cause it."""
        if now < self._next_summary.get(kind, 0.0):
            return False
        self._next_summary[kind] = now + 10.0
        return True

    def _warn(self, text: str, source: str | Addr) -> None:
        """A ProtocolWarning, at most one per source host per 10 s (the next one says
        how many were held back): a flood of garbage must not flood the log too."""
        host = source.host if isinstance(source, Addr) else str(source).rsplit(":", 1)[0]
        if host:
            now = self._now
            slot = self._warned.get(host)
            if slot is not None and now < slot[0]:
                slot[1] += 1
                return
            if slot is not None and slot[1]:
                text += f" (and {slot[1]} more from there since the last)"
            if len(self._warned) >= 1024:
                self._warned.clear()
            self._warned[host] = [now + 10.0, 0]
        self._events.append(ev.ProtocolWarning(text, str(source)))


def _is_ip(host: str) -> bool:
    return bool(re.fullmatch(r"[0-9.]+", host)) and valid_host(host) or ":" in host


def _event(values: list[str]) -> tuple[str, Params]:
    """The event type (lower case) and parameters of an Event header (RFC 6665 §8.4:
    ``event-type *( SEMI event-param )``); RemoteProtocolError when absent or malformed."""
    if not values:
        raise RemoteProtocolError("missing Event header")
    if len(values) > 1:
        raise RemoteProtocolError("more than one Event header")
    package, params = parse_header_params(values[0])
    if not is_token(package):
        raise RemoteProtocolError(f"bad Event type {package[:40]!r}")
    return package.lower(), params


def _warning_text(text: str) -> str:
    return text.replace("\\", "").replace('"', "'")[:200]


def _dtmf_relay(req: Request) -> tuple[str, int] | None:
    """application/dtmf-relay INFO bodies: ``Signal=5`` / ``Duration=160``."""
    if req.content_type != "application/dtmf-relay":
        return None
    fields = {}
    for line in req.body.decode("utf-8", "replace").splitlines():
        k, _, v = line.partition("=")
        fields[k.strip().lower()] = v.strip()
    signal = fields.get("signal")
    if not signal:
        return None
    try:
        duration = parse_uint(fields.get("duration", "0") or "0", 6, "dtmf-relay Duration")
    except RemoteProtocolError:
        duration = 0
    return signal[:8], duration


__all__ = ["Endpoint", "EndpointConfig", "Addr", "TimerValues", "parse_uri"]
