"""Dialogs (RFC 3261 §12): who we talk to, by which route, with which CSeq."""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import RemoteProtocolError
from .message import Headers, Request, Response
from .uri import Address, SipUri, Uri


@dataclass(slots=True)
class Dialog:
    """Mutable by design: CSeq numbers advance and a re-INVITE may move the target."""

    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: Address  # our From (UAC) / To (UAS), tag stripped
    remote_uri: Address
    local_seq: int
    remote_seq: int | None
    remote_target: Uri
    route_set: list[Address] = field(default_factory=list)

    @property
    def id(self) -> tuple[str, str, str]:
        return (self.call_id, self.local_tag, self.remote_tag)

    @classmethod
    def from_uac(cls, request: Request, response: Response) -> Dialog:
        """§12.1.2: route set = Record-Route of the response, reversed."""
        contacts = response.contacts
        if not contacts:
            raise RemoteProtocolError("2xx to INVITE without Contact")
        to = response.to
        frm = request.from_
        return cls(
            call_id=request.call_id,
            local_tag=frm.tag or "",
            remote_tag=to.tag or "",
            local_uri=Address(frm.uri, frm.display_name),
            remote_uri=Address(to.uri, to.display_name),
            local_seq=request.cseq.seq,
            remote_seq=None,
            remote_target=contacts[0].uri,
            route_set=list(reversed(response.addresses("Record-Route"))),
        )

    @classmethod
    def from_uas(cls, request: Request, local_tag: str) -> Dialog:
        """§12.1.1: route set = Record-Route of the request, in order."""
        contacts = request.contacts
        if not contacts:
            raise RemoteProtocolError("INVITE without Contact")
        to = request.to
        frm = request.from_
        return cls(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=frm.tag or "",
            local_uri=Address(to.uri, to.display_name),
            remote_uri=Address(frm.uri, frm.display_name),
            local_seq=0,
            remote_seq=request.cseq.seq,
            remote_target=contacts[0].uri,
            route_set=request.addresses("Record-Route"),
        )

    def request_target(self) -> tuple[Uri, list[str], Uri]:
        """§12.2.1.1: (Request-URI, Route values, next-hop URI) for a new request."""
        if not self.route_set:
            return self.remote_target, [], self.remote_target
        first = self.route_set[0].uri
        if isinstance(first, SipUri) and first.loose_route:
            return self.remote_target, [str(r) for r in self.route_set], first
        # strict router: it becomes the Request-URI, the remote target goes last
        ruri = first.without_param("method") if isinstance(first, SipUri) else first
        routes = [str(r) for r in self.route_set[1:]] + [f"<{self.remote_target}>"]
        return ruri, routes, first

    def new_request(self, method: str, via: str, contact: str | None,
                    extra: list[tuple[str, str]] | None = None, body: bytes = b"",
                    cseq: int | None = None) -> tuple[Request, Uri]:
        """Build an in-dialog request; ACK and CANCEL pass ``cseq`` (no increment)."""
        if cseq is None:
            self.local_seq += 1
            cseq = self.local_seq
        ruri, routes, next_hop = self.request_target()
        headers: list[tuple[str, str]] = [("Via", via)]
        headers += [("Route", r) for r in routes]
        headers += [
            ("Max-Forwards", "70"),
            ("From", str(self.local_uri.with_param("tag", self.local_tag))),
            ("To", str(self.remote_uri.with_param("tag", self.remote_tag))),
            ("Call-ID", self.call_id),
            ("CSeq", f"{cseq} {method}"),
        ]
        if contact is not None:
            headers.append(("Contact", contact))
        headers += extra or []
        return Request(method, ruri, Headers(headers), body), next_hop

    def check_remote_seq(self, request: Request) -> bool:
        """§12.2.2: a lower CSeq than the last one is out of order (500)."""
        seq = request.cseq.seq
        if request.method in ("ACK", "CANCEL"):
            return True
        if self.remote_seq is not None and seq <= self.remote_seq:
            return False
        self.remote_seq = seq
        return True
