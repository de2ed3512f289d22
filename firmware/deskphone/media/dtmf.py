"""DTMF as RFC 4733 telephone-events: the payload, a sender and a receiver.

Pure: no sockets, no clock. Time is the RTP timestamp, in samples of the
telephone-event clock (8000 Hz unless the SDP says otherwise). The RTP header
itself belongs to the engine: the sender hands back a payload, the marker bit
and the RTP timestamp for each packet, and the receiver is fed the same three
plus the SSRC.

Theory of operation, sender (RFC 4733 §2.5.1): ``start`` queues a digit;
``next_packet`` is called once per packet time while ``busy``. Every packet of
one event carries the RTP timestamp of the event's start and the duration so
far (§2.5.1.2); the first has the marker bit (§2.2.2); the packet that reports
the final duration has the E bit and is sent three times in all (§2.5.1.4).
An event longer than the 16-bit duration field can say is cut into segments
(§2.5.1.3). Digits follow each other with at least ``gap_ms`` of silence.

Theory of operation, receiver (RFC 4733 §2.5.2): an event is known by its
SSRC, its start timestamp and its event code. Each digit is reported once,
when it ends: on the first packet with the E bit, on the first packet of a
later event (the end packets were all lost), or from ``tick`` when nothing has
been heard of it for ``timeout_ms``. Duplicates, the retransmitted end
packets, packets that arrive after the digit was reported, and packets of an
event whose first packet was lost are all recognised by that key. Digits are
reported in the order they were pressed: a digit first heard after a later
one has been reported is dropped rather than reported out of order.
"""

from __future__ import annotations

import struct
from collections import deque
from dataclasses import dataclass

__all__ = [
    "FLASH",
    "DtmfDigit",
    "DtmfReceiver",
    "DtmfSender",
    "TelephoneEvent",
    "digit_to_event",
    "event_to_digit",
]

# RFC 4733 §3.2, Table 3: the DTMF events. Flash (hook flash, event 16) has no
# key of its own; it is written "!" here, as in Asterisk's SendDTMF.
FLASH = "!"
_DIGITS = "0123456789*#ABCD" + FLASH
_EVENT_OF_DIGIT = {digit: event for event, digit in enumerate(_DIGITS)}
_LAST_DTMF_EVENT = len(_DIGITS) - 1  # 16

_MAX_DURATION = 0xFFFF  # §2.3.5: the duration field is 16 bits
_END_PACKETS = 3  # §2.5.1.4: the final packet is sent three times
_RTP_TS_MOD = 1 << 32
_EVENT = struct.Struct("!BBH")


def digit_to_event(digit: str) -> int:
    """The RFC 4733 §3.2 event code of a key: ``"0"``-``"9"``, ``"*"``, ``"#"``,
    ``"A"``-``"D"`` (either case) and ``"!"`` for flash."""
    event = _EVENT_OF_DIGIT.get(digit.upper()) if len(digit) == 1 else None
    if event is None:
        raise ValueError(f"DTMF digit is invalid: {digit!r}")
    return event


def event_to_digit(event: int) -> str:
    """The key of an RFC 4733 §3.2 DTMF event code (0-16)."""
    if not 0 <= event <= _LAST_DTMF_EVENT:
        raise ValueError(f"DTMF event is invalid: {event} is not in 0..{_LAST_DTMF_EVENT}")
    return _DIGITS[event]


def _ts(value: int) -> int:
    """An RTP timestamp, wrapped to 32 bits."""
    return value % _RTP_TS_MOD


def _ts_diff(a: int, b: int) -> int:
    """``a - b`` for RTP timestamps that may have wrapped (RFC 3550 §5.1 serial
    arithmetic): the signed 32-bit difference."""
    d = (a - b) % _RTP_TS_MOD
    return d - _RTP_TS_MOD if d >= _RTP_TS_MOD // 2 else d


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """One RFC 4733 §2.3 event report: 4 bytes on the wire.

    ``event`` is any code of the IANA registry (0-255): DTMF is 0-16, and the
    receiver ignores the rest, as §2.5.2.1 asks. ``volume`` is the power of
    the tone in -dBm0 (10 means -10 dBm0). ``duration`` is in timestamp units
    since the event (or its segment, §2.5.1.3) began. The R bit is reserved:
    sent as 0 and ignored on receipt (§2.3.3).
    """

    event: int
    end: bool = False
    volume: int = 10
    duration: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.event <= 0xFF:
            raise ValueError(f"telephone event is invalid: event {self.event} is not in 0..255")
        if not 0 <= self.volume <= 63:
            raise ValueError(f"telephone event is invalid: volume {self.volume} is not in 0..63")
        if not 0 <= self.duration <= _MAX_DURATION:
            raise ValueError(
                f"telephone event is invalid: duration {self.duration} is not in 0..65535"
            )

    @classmethod
    def parse(cls, payload: bytes) -> tuple[TelephoneEvent, ...]:
        """Every event report in a telephone-event payload.

        RFC 4733 §2.5.1.5 lets a sender pack several reports into one packet,
        4 bytes each, the earliest first; §2.5.2.4 has the receiver take them
        in order. Raises ``ValueError`` and nothing else on bad input.
        """
        if not payload:
            raise ValueError("telephone-event payload is invalid: it is empty")
        if len(payload) % _EVENT.size:
            raise ValueError(
                f"telephone-event payload is invalid: {len(payload)} bytes is not "
                f"a whole number of 4-byte events"
            )
        return tuple(
            cls(
                event=event,
                end=bool(flags & 0x80),
                volume=flags & 0x3F,
                duration=duration,
            )
            for event, flags, duration in _EVENT.iter_unpack(bytes(payload))
        )

    def __bytes__(self) -> bytes:
        return _EVENT.pack(self.event, (0x80 if self.end else 0) | self.volume, self.duration)

    @property
    def digit(self) -> str | None:
        """The key this event is, or ``None`` for a non-DTMF event."""
        return _DIGITS[self.event] if self.event <= _LAST_DTMF_EVENT else None


@dataclass(frozen=True, slots=True)
class DtmfDigit:
    """A digit received: the key, how long it sounded, and the RTP timestamp at
    which it began. ``end_seen`` is False when its end packets were all lost
    and the end was inferred (from the next event, or from ``tick``)."""

    digit: str
    duration_ms: int
    timestamp: int
    end_seen: bool = True


@dataclass(slots=True)
class _Sending:
    """The event the sender is sending now."""

    event: int
    total: int  # timestamp units the event lasts
    segment_ts: int  # RTP timestamp of the current segment (§2.5.1.3)
    segment_base: int  # units of the event before the current segment
    elapsed: int = 0  # units reported so far
    first: bool = True  # the next packet is the event's first: marker bit
    ends_sent: int = 0  # packets with the E bit sent so far


class DtmfSender:
    """Turns key presses into telephone-event payloads, one per packet time.

    The engine calls ``start(digit, timestamp)`` with the RTP timestamp of its
    next outgoing frame, then ``next_packet()`` once per ``ptime_ms`` for as
    long as ``busy`` is true, and sends what it returns (``None``: send audio,
    or nothing, for that frame). Each call stands for one packet time, so the
    sender's clock advances by ``ptime_ms`` per call.
    """

    def __init__(
        self,
        clock_rate: int = 8000,
        ptime_ms: int = 20,
        volume: int = 10,
        *,
        gap_ms: int = 40,
        min_duration_ms: int = 40,
    ) -> None:
        if clock_rate <= 0:
            raise ValueError(f"DTMF sender is invalid: clock rate {clock_rate}")
        if ptime_ms <= 0 or (ptime_ms * clock_rate) % 1000:
            raise ValueError(
                f"DTMF sender is invalid: {ptime_ms} ms is not a whole number of "
                f"samples at {clock_rate} Hz"
            )
        if not 0 <= volume <= 63:
            raise ValueError(f"DTMF sender is invalid: volume {volume} is not in 0..63")
        if gap_ms < 0 or min_duration_ms <= 0:
            raise ValueError(
                f"DTMF sender is invalid: gap {gap_ms} ms, minimum duration {min_duration_ms} ms"
            )
        self.clock_rate = clock_rate
        self.ptime = ptime_ms * clock_rate // 1000  # timestamp units per packet
        self.volume = volume
        # ITU-T Q.24: a digit is at least 40 ms of tone and 40 ms of pause.
        self.gap = gap_ms * clock_rate // 1000
        self.min_duration_ms = min_duration_ms
        self._queue: deque[tuple[int, int]] = deque()
        self._current: _Sending | None = None
        self._clock: int | None = None  # RTP timestamp of the next call's frame
        self._next_start: int | None = None  # earliest start of the next event

    @property
    def busy(self) -> bool:
        """True while an event is being sent or digits wait their turn."""
        return self._current is not None or bool(self._queue)

    def start(self, digit: str, timestamp: int, duration_ms: int = 100) -> None:
        """Queue ``digit`` to sound for ``duration_ms`` (at least
        ``min_duration_ms``). ``timestamp`` is the RTP timestamp of the
        engine's next frame; it sets the clock when the sender is idle and is
        ignored while earlier digits are still queued."""
        event = digit_to_event(digit)
        if duration_ms <= 0:
            raise ValueError(f"DTMF duration is invalid: {duration_ms} ms")
        duration_ms = max(duration_ms, self.min_duration_ms)
        if not self.busy:
            self._clock = _ts(timestamp)
        self._queue.append((event, duration_ms * self.clock_rate // 1000))

    def next_packet(self) -> tuple[bytes, bool, int] | None:
        """The next packet as ``(payload, marker, rtp_timestamp)``, or ``None``
        when there is nothing to send in this packet time."""
        if self._clock is None:
            return None
        try:
            return self._packet(self._clock)
        finally:
            self._clock = _ts(self._clock + self.ptime)

    def _packet(self, now: int) -> tuple[bytes, bool, int] | None:
        current = self._current
        if current is None:
            if not self._queue:
                return None
            if self._next_start is not None and _ts_diff(now, self._next_start) < 0:
                return None  # still in the pause between digits
            event, total = self._queue.popleft()
            current = self._current = _Sending(event, total, segment_ts=now, segment_base=0)

        if current.ends_sent:
            # §2.5.1.4: the final packet again, unchanged.
            return self._emit(current, current.elapsed - current.segment_base, end=True)

        current.elapsed = min(current.elapsed + self.ptime, current.total)
        in_segment = current.elapsed - current.segment_base
        if in_segment > _MAX_DURATION:
            # §2.5.1.3: the segment ends at the largest duration the field holds;
            # the next one begins where it ended, without the marker bit.
            packet = self._emit(current, _MAX_DURATION, end=False)
            current.segment_base += _MAX_DURATION
            current.segment_ts = _ts(current.segment_ts + _MAX_DURATION)
            return packet
        return self._emit(current, in_segment, end=current.elapsed >= current.total)

    def _emit(self, current: _Sending, duration: int, *, end: bool) -> tuple[bytes, bool, int]:
        payload = bytes(TelephoneEvent(current.event, end, self.volume, duration))
        marker, current.first = current.first, False
        if end:
            current.ends_sent += 1
            if current.ends_sent == _END_PACKETS:
                self._current = None
                self._next_start = _ts(current.segment_ts + duration + self.gap)
        return payload, marker, current.segment_ts


@dataclass(slots=True)
class _Receiving:
    """The event the receiver is hearing now."""

    ssrc: int
    event: int
    timestamp: int  # RTP timestamp of the event's start
    segment_ts: int  # RTP timestamp of the segment last heard (§2.5.2.3)
    segment_base: int  # units of the event before that segment
    duration: int  # longest duration heard in that segment


class DtmfReceiver:
    """Turns received telephone-event payloads into digits, each reported once.

    ``feed`` takes the payload, RTP timestamp, marker bit and SSRC of each
    telephone-event packet, in arrival order; ``tick`` takes the RTP
    timestamp the stream has reached, so that a digit whose end packets were
    all lost is still reported, ``timeout_ms`` after the last news of it.
    Both return the digits that ended, oldest first.
    """

    def __init__(self, clock_rate: int = 8000, *, timeout_ms: int = 200) -> None:
        if clock_rate <= 0 or timeout_ms <= 0:
            raise ValueError(
                f"DTMF receiver is invalid: clock rate {clock_rate}, timeout {timeout_ms} ms"
            )
        self.clock_rate = clock_rate
        self.timeout = timeout_ms * clock_rate // 1000
        self._current: _Receiving | None = None
        # The last events reported, per SSRC, as (start timestamp, event code):
        # their retransmitted end packets and late arrivals are dropped.
        self._reported: dict[int, deque[tuple[int, int]]] = {}

    @property
    def sounding(self) -> str | None:
        """The digit heard now and not yet ended, if any."""
        return event_to_digit(self._current.event) if self._current else None

    def feed(
        self, payload: bytes, timestamp: int, marker: bool, ssrc: int
    ) -> tuple[DtmfDigit, ...]:
        """Take one telephone-event packet. Raises ``ValueError`` if the payload
        is malformed (nothing else changes then)."""
        events = TelephoneEvent.parse(payload)
        digits: list[DtmfDigit] = []
        start = _ts(timestamp)
        for report in events:
            # §2.5.2.4: each report in a packet begins where the one before ended.
            if report.event <= _LAST_DTMF_EVENT:
                self._take(report, start, marker, ssrc, digits)
            start = _ts(start + report.duration)
        return tuple(digits)

    def tick(self, rtp_timestamp_now: int) -> tuple[DtmfDigit, ...]:
        """Report the digit in progress if nothing has been heard of it for
        ``timeout_ms`` of RTP time: its end packets were all lost."""
        current = self._current
        if current is None:
            return ()
        heard_until = _ts(current.segment_ts + current.duration)
        if _ts_diff(_ts(rtp_timestamp_now), heard_until) <= self.timeout:
            return ()
        return (self._finish(end_seen=False),)

    def end_lost(self) -> tuple[DtmfDigit, ...]:
        """Report the digit in progress, if any, as ended now: for a caller that knows by
        its own clock that nothing of it has come for long enough (``tick`` judges that on
        the RTP timeline instead)."""
        return (self._finish(end_seen=False),) if self._current is not None else ()

    def _take(
        self, report: TelephoneEvent, start: int, marker: bool, ssrc: int, digits: list[DtmfDigit]
    ) -> None:
        if self._already_reported(ssrc, start, report.event):
            return
        current = self._current
        if current is not None and current.ssrc == ssrc and _ts_diff(start, current.segment_ts) < 0:
            if _ts_diff(start, current.timestamp) >= 0:
                return  # a late packet of an earlier segment of this event
            # An event that began before the one sounding now, first heard now:
            # it is over. Reporting it now keeps the digits in order, since the
            # one sounding now is reported only when it ends.
            digits.append(
                self._record(ssrc, report.event, start, start, report.duration, report.end)
            )
            return
        if current is not None and (current.ssrc, current.event) == (ssrc, report.event):
            if start == current.segment_ts:
                current.duration = max(current.duration, report.duration)
                if report.end:
                    digits.append(self._finish(end_seen=True))
                return
            if not marker and self._continues(current, start):
                # §2.5.2.3: a new segment of a long event, not a new event.
                current.segment_base += _ts_diff(start, current.segment_ts)
                current.segment_ts = start
                current.duration = report.duration
                if report.end:
                    digits.append(self._finish(end_seen=True))
                return
        if current is not None:
            # A new event began, so the one in progress ended; its ends were lost.
            digits.append(self._finish(end_seen=False))
        self._current = _Receiving(
            ssrc, report.event, start, start, segment_base=0, duration=report.duration
        )
        if report.end:
            digits.append(self._finish(end_seen=True))

    def _continues(self, current: _Receiving, start: int) -> bool:
        """Whether an event starting at ``start`` is the next segment of
        ``current`` (§2.5.2.3): it begins where a full segment of it ends.
        A sender may close a segment a packet time short of 0xFFFF, so
        ``timeout_ms`` of slack is allowed; a repeated press of the same key
        begins far sooner than that, so it is never mistaken for one."""
        step = _ts_diff(start, current.segment_ts)
        return _MAX_DURATION - self.timeout <= step <= _MAX_DURATION

    def _already_reported(self, ssrc: int, start: int, event: int) -> bool:
        reported = self._reported.get(ssrc)
        if not reported:
            return False
        if (start, event) in reported:
            return True
        # Older than the newest event reported from this source: a straggler.
        return _ts_diff(start, reported[-1][0]) < 0

    def _finish(self, *, end_seen: bool) -> DtmfDigit:
        current = self._current
        assert current is not None
        self._current = None
        total = current.segment_base + current.duration
        return self._record(
            current.ssrc, current.event, current.timestamp, current.segment_ts, total, end_seen
        )

    def _record(
        self, ssrc: int, event: int, start: int, last_segment: int, total: int, end_seen: bool
    ) -> DtmfDigit:
        """Remember an event as reported and make its digit."""
        reported = self._reported.setdefault(ssrc, deque(maxlen=8))
        reported.append((start, event))
        if last_segment != start:
            reported.append((last_segment, event))  # its last segment
        return DtmfDigit(
            digit=event_to_digit(event),
            duration_ms=total * 1000 // self.clock_rate,
            timestamp=start,
            end_seen=end_seen,
        )
