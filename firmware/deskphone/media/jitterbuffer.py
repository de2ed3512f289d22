"""Adaptive jitter buffer for the one RTP audio stream we receive (pure: time comes as ``now``).

Theory of operation
-------------------
Everything is counted in RTP timestamp units (samples), never in sequence numbers, so
packets carrying 10, 20, 40 or 60 ms all work. Payloads are cut on a *playout grid* of
``frame_samples``-sized frames (G.711: one octet per sample), anchored on the first packet
of a stream and again on each talk spurt that starts into an empty buffer. ``get`` hands out
the frame at the playout point ``P`` and moves ``P`` on by a frame, so the sound card's
clock, which paces ``get``, paces playout.

Two clocks meet here, the sender's (RTP timestamps) and ours (``arrival`` and ``now``).
For a packet whose first sample falls in grid frame ``f`` and which arrives at ``a``:

- *transit* ``= a * rate - f`` (any origin; RFC 3550 §6.4.1's relative transit time);
- ``base`` = the smallest transit of the last second: the network's fastest path. A
  sliding minimum follows clock skew, which makes transit drift by up to 5 ms/s;
- *spread* ``= transit - base``: how much later than the fastest path the packet came.

At each ``get`` the playout offset ``o = now * rate - P`` (smoothed against the card's
scheduling jitter) gives ``delay = o - base``: how long the fastest packets wait. A packet is
in time if its spread is below the delay, so the *target* delay is the peak of recent
spreads (it rises at once and decays with a 5 s time constant: a high percentile of
recent relative transit) plus half a frame of hysteresis, bounded to [min, max].

The level error ``e = delay - target`` then picks one action per ``get``:

====================  =====================================  =============================
action                when                                   effect
====================  =====================================  =============================
insert (grow)         delay < target at a missing frame;     gap frame; ``P`` stays
                      e < -frame/2 in speech
skip (shrink, free)   e >= frame in a gap                    ``P`` moves on, repeatedly
drop (skew)           e >= 3/2 frame in speech               one audio frame dropped
====================  =====================================  =============================

A *gap* is a frame ``P`` missing once 60 ms of missing frames have played (``_GAP_FRAMES``:
concealment has faded to silence), or no stream. The target used for ``e`` only falls at a
gap or a talk-spurt start (marker bit), so in running speech only clock skew (sender
±0.5 %: one frame each 4 s) costs a dropped frame, and most skew is absorbed in silences.
A marker packet arriving into an empty buffer re-anchors the grid on it (RFC 3551 §4.1:
the spurt start is where playout may move).

A frame lost in speech is concealed and leaves the level as it is: skipping it would join
the frames either side with a step and a jump in time, and letting the target fall there
would drop the frames after it (bench/voice_quality.py, 5 % loss with 30 ms jitter: PESQ
3.51 with both, 3.76 without). At a missing frame the buffer grows against the current
target, not the one held for ``e``: growth goes where concealment runs already.

``arrival`` is when the packet came in (the kernel's receive time), so it is at or before
the ``now`` of the first ``get`` that can play it, by up to a frame: transit and spread are
measured without the media thread's 20 ms turn in them, and the delay (``now`` against the
fastest path) includes the wait until the turn.

After a MISSING frame, ``peek`` hands out the next frame held whole and its distance, for
the concealer to run the gap into (plc.py).

RFC 4733 events (DTMF) share the audio's SSRC and sequence numbers, and a sender may send
them instead of its audio (most do). ``put_event`` takes their sequence numbers, so the
audio either side of a digit is in sequence, and marks the stretch from the event's start
to the next audio as *quiet*: a frame missing there is the sender's silence, not a loss.
It plays as SILENCE, and counts as a gap (the level may change there, for free), as
between talk spurts; concealing it would make up the voice from before the key press.

A new SSRC, a sequence jump of more than MAX_DROPOUT or a timestamp more than
``max_delay + 1 s`` off the stream's timeline restarts the stream; counters carry on.

``put`` and ``pop`` (``get`` without the ``Frame``) each open with a fast path for the
usual case (the next packet in sequence, one whole frame, into an empty slot; a whole frame
to play with no level change due) that does what the general path does in fewer steps:
the media thread runs them 50 times a second on cold caches. ``_put`` and ``_pop`` are the
general paths, and a test holds the two to the same results bit for bit.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from dataclasses import dataclass
from typing import Any, Final

from deskphone.media.rtp import MAX_DROPOUT, seq_diff, ts_diff

__all__ = ["Frame", "FrameKind", "JitterBuffer"]

_TS_MASK: Final = 0xFFFFFFFF
_SEEN_WINDOW: Final = 128  # sequence numbers remembered behind the newest, to spot duplicates
_SEEN_MASK: Final = (1 << _SEEN_WINDOW) - 1
_BASE_WINDOW_S: Final = 1.0  # the fastest path is the minimum transit over this long
_SPREAD_DECAY_S: Final = 5.0  # time constant with which the target shrinks
_JUMP_S: Final = 1.0  # this far beyond max delay off the timeline is a jump, not jitter
_STALE_S: Final = 0.5  # after an SSRC change, the old SSRC's stragglers are dropped this long
_GAP_FRAMES: Final = 3  # MISSING frames after speech before a gap counts as SILENCE (PLC: 60 ms)
_LEVEL_GAIN: Final = 1.0 / 16  # smoothing of the playout offset against scheduling jitter
_START_SLACK: Final = 1e-6  # samples: float noise in now * rate when a get lands on time


class FrameKind(enum.Enum):
    """What ``get`` hands the media loop."""

    AUDIO = "audio"  # payload holds one frame of the sender's audio
    MISSING = "missing"  # lost, late or stretched mid-speech: conceal it (PLC)
    SILENCE = "silence"  # no stream yet, or a gap between talk spurts


_AUDIO: Final = FrameKind.AUDIO


@dataclass(frozen=True, slots=True)
class Frame:
    """One playout period: ``payload`` is ``frame_samples`` octets for AUDIO, else empty;
    ``timestamp`` is the RTP timestamp of its first sample (of the next one for gaps)."""

    kind: FrameKind
    payload: bytes
    timestamp: int


# One grid frame's octets as they arrive: [octets, covered, marker], ``covered`` with bit i
# set for sample i. A list rather than a class: built and read 50 times a second on the
# media thread, where a constructor call is a noticeable part of a packet's cost.
_Slot = list[Any]


class JitterBuffer:
    """Reorders, times and hands out one RTP audio stream, frame by frame.

    ``put`` each received packet (``arrival``: when it came in, in seconds on the media
    thread's monotonic clock, at or before the next ``get``'s ``now``); ``get(now)`` once
    per playout period on the same clock. Not thread-safe: both
    run on the media thread.
    """

    def __init__(self, clock_rate: int = 8000, frame_samples: int = 160,
                 min_delay_ms: int = 20, max_delay_ms: int = 200) -> None:
        if clock_rate <= 0 or frame_samples <= 0:
            raise ValueError(f"jitter buffer is invalid: clock rate {clock_rate}, "
                             f"frame of {frame_samples} samples")
        if not 0 <= min_delay_ms <= max_delay_ms:
            raise ValueError(f"jitter buffer is invalid: delay bounds {min_delay_ms}.."
                             f"{max_delay_ms} ms")
        self.clock_rate = clock_rate
        self.frame_samples = frame_samples
        self._rate = float(clock_rate)
        self._fs = frame_samples
        self._full = (1 << frame_samples) - 1
        self._min = min_delay_ms * clock_rate / 1000.0
        self._max = max_delay_ms * clock_rate / 1000.0
        self._jump = (max_delay_ms / 1000.0 + _JUMP_S) * clock_rate
        # frames held: twice the largest delay plus a few, so a burst fits but not forever
        self._cap = 2 * math.ceil(self._max / frame_samples) + 4
        self._slots: dict[int, _Slot] = {}
        self._fast: deque[tuple[float, float]] = deque()  # (arrival, transit), rising transit
        # counters, kept across restarts
        self._received = 0
        self._expected_prior = 0
        self._late = 0
        self._duplicates = 0
        self._reordered = 0
        self._concealed = 0
        self._inserted = 0
        self._skipped = 0
        self._dropped = 0
        self._overflow = 0
        self._stale = 0
        self._restarts = 0
        # output side, kept across restarts so speech cut off by one still fades out
        self.kind = FrameKind.SILENCE  # of the frame pop() handed out last
        self.timestamp = 0  # ... and its RTP timestamp
        self._since_audio = 0
        self._silent = True
        self._ssrc: int | None = None
        self._previous_ssrc: int | None = None
        self._switched_at = 0.0
        self._reset(0, 0, 0.0)

    def _reset(self, seq: int, timestamp: int, arrival: float) -> None:
        """Start a stream whose first packet is (seq, timestamp, arrival)."""
        self._play = timestamp  # P: extended timestamp of the next frame to play
        self._playing = False
        self._started = False  # some frame of this stream has played
        self._slots.clear()
        self._max_seq = seq - 1  # extended; the first packet is then one ahead
        self._min_seq = seq
        self._seen = 0  # bit k: sequence number max_seq - k arrived
        self._fast.clear()
        # quiet stretches (put_event): [start, end) extended timestamps, end None until
        # audio comes; and the start timestamp of the last event, whose packets all carry it
        self._quiet: list[list[Any]] = []
        self._event_ts: int | None = None
        self._base = arrival * self._rate - timestamp
        self._spread = 0.0
        self._last_arrival = arrival
        self._offset = 0.0  # smoothed now * rate - P
        self._target_eff = self._min

    # -- receiving ------------------------------------------------------------------------

    def put(self, seq: int, timestamp: int, ssrc: int, marker: bool,
            payload: bytes | bytearray, arrival: float) -> None:
        """Take one received packet: reorder it into place, or count why it is dropped."""
        fs = self._fs
        if ssrc == self._ssrc and not marker and len(payload) == fs:
            # The usual packet: the next in sequence, one whole frame on the grid, on the
            # timeline, into an empty slot. The general path below does the same in more
            # steps; the media thread runs this 50 times a second on cold caches.
            play = self._play
            t = play + ((timestamp - play + 0x80000000) & _TS_MASK) - 0x80000000
            transit = arrival * self._rate - t
            slots = self._slots
            if ((seq - self._max_seq) & 0xFFFF == 1 and t >= play and not (t - play) % fs
                    and -self._jump <= transit - self._base <= self._jump
                    and t not in slots and len(slots) < self._cap):
                self._max_seq += 1
                self._seen = ((self._seen << 1) | 1) & _SEEN_MASK
                self._received += 1
                # _time(t, arrival), with the packet on the grid
                fast = self._fast
                while fast and fast[-1][1] >= transit:
                    fast.pop()
                fast.append((arrival, transit))
                while fast[0][0] < arrival - _BASE_WINDOW_S:
                    fast.popleft()
                self._base = base = fast[0][1]
                spread = transit - base
                last = self._last_arrival
                if spread >= self._spread:
                    self._spread = spread
                elif arrival > last:
                    step = (arrival - last) / _SPREAD_DECAY_S
                    self._spread += (spread - self._spread) * (step if step < 1.0 else 1.0)
                if arrival > last:
                    self._last_arrival = arrival
                slots[t] = [payload, self._full, False]
                if self._quiet:
                    self._audio_at(t)
                return
        self._put(seq, timestamp, ssrc, marker, payload, arrival)

    def _put(self, seq: int, timestamp: int, ssrc: int, marker: bool,
             payload: bytes | bytearray, arrival: float) -> None:
        """``put`` for every case."""
        if ssrc != self._ssrc:
            if ssrc == self._previous_ssrc and arrival - self._switched_at < _STALE_S:
                self._stale += 1  # a straggler of the stream we just left
                return
            if self._ssrc is not None:
                self._previous_ssrc, self._switched_at = self._ssrc, arrival
            self._restart(ssrc, seq, timestamp, arrival)
        rate = self._rate
        d = seq_diff(seq, self._max_seq & 0xFFFF)
        t = self._play + ts_diff(timestamp, self._play & _TS_MASK)
        if abs(d) > MAX_DROPOUT or d > 0:
            off_timeline = abs(arrival * rate - self._floor(t) - self._base) > self._jump
            if off_timeline:
                # the sender restarted its clock (RFC 3550 §5.1: a new random timestamp)
                self._restart(ssrc, seq, timestamp, arrival)
                d, t = 1, self._play
            elif d < -MAX_DROPOUT or d > MAX_DROPOUT:
                # ... or only its numbering (RFC 3550 A.1): the audio runs on, keep it
                self._renumber(seq)
                d = 1
        # sequence bookkeeping (RFC 3550 A.1, modulo 2^16 via seq_diff)
        ext = self._max_seq + d
        if d > 0:
            self._seen = ((self._seen << d) | 1) & _SEEN_MASK
            self._max_seq = ext
        else:
            back = -d
            if back < _SEEN_WINDOW:
                if self._seen >> back & 1:
                    self._duplicates += 1
                    return
                self._seen |= 1 << back
            if back:
                self._reordered += 1
            self._min_seq = min(self._min_seq, ext)
        self._received += 1
        if d <= 0 and abs(arrival * rate - self._floor(t) - self._base) > self._jump:
            self._late += 1  # an old packet from before a jump
            return
        if marker and d > 0 and self._playing and not self._slots:
            # a talk spurt starts into an empty buffer: playout may move here (RFC 3551 §4.1)
            self._playing = False
            self._play = t
        self._time(t, arrival)
        if self._quiet and payload:
            self._audio_at(t)
        self._store(t, marker, payload)

    def put_event(self, seq: int, timestamp: int, ssrc: int) -> None:
        """Take an RFC 4733 event packet of the stream: its sequence number, so that the
        audio either side of it is in sequence (not lost), and, from the event's start to
        the next audio, frames with no audio as the sender's silence (it sent the event
        instead), not losses to conceal. Its arrival says nothing of the audio's timing:
        every packet of an event carries the event's start timestamp (RFC 4733 §2.5.1.2).
        Another SSRC's events, or any before the audio's first packet, are not the
        stream's: ignored."""
        if ssrc != self._ssrc:
            return
        d = seq_diff(seq, self._max_seq & 0xFFFF)
        if abs(d) > MAX_DROPOUT:
            return  # a jump in numbering is for the audio to show (_put)
        if d > 0:
            self._seen = ((self._seen << d) | 1) & _SEEN_MASK
            self._max_seq += d
        else:
            back = -d
            if back < _SEEN_WINDOW:
                if self._seen >> back & 1:
                    self._duplicates += 1
                    return
                self._seen |= 1 << back
            if back:
                self._reordered += 1
            self._min_seq = min(self._min_seq, self._max_seq - back)
        self._received += 1
        if timestamp == self._event_ts:
            return  # the same event again (its updates, its end sent three times)
        self._event_ts = timestamp
        t = self._play + ts_diff(timestamp, self._play & _TS_MASK)
        for start, end in self._quiet:
            if start <= t and (end is None or t < end):
                return  # a next digit (or segment) while no audio came between
        # up to the audio held after it, if any (it came first: reordered)
        end = min((s for s in self._slots if s >= t), default=None)
        self._quiet.append([t, end])

    def _audio_at(self, t: int) -> None:
        """Audio at extended timestamp ``t`` ends every quiet stretch it comes after."""
        for stretch in self._quiet:
            start, end = stretch
            if start <= t and (end is None or t < end):
                stretch[1] = t

    def _quiet_now(self) -> bool:
        """Whether frame P lies in a quiet stretch (forgetting those played past)."""
        quiet, play = self._quiet, self._play
        while quiet and quiet[0][1] is not None and quiet[0][1] <= play:
            del quiet[0]
        return any(start < play + self._fs and (end is None or play < end)
                   for start, end in quiet)

    def _restart(self, ssrc: int, seq: int, timestamp: int, arrival: float) -> None:
        if self._ssrc is not None:
            self._restarts += 1
            self._expected_prior += self._max_seq - self._min_seq + 1
        self._ssrc = ssrc
        self._reset(seq, timestamp, arrival)

    def _renumber(self, seq: int) -> None:
        self._restarts += 1
        self._expected_prior += self._max_seq - self._min_seq + 1
        self._max_seq = seq - 1
        self._min_seq = seq
        self._seen = 0

    def _floor(self, t: int) -> int:
        """Start of the grid frame holding extended timestamp ``t``."""
        return self._play + (t - self._play) // self._fs * self._fs

    def _time(self, t: int, arrival: float) -> None:
        """Fold one packet's arrival into the fastest path and the spread. (RFC 3550's
        interarrival jitter is ReceiveStats' business, in rtp.py: the engine feeds both.)"""
        transit = arrival * self._rate - self._floor(t)
        fast = self._fast
        while fast and fast[-1][1] >= transit:
            fast.pop()
        fast.append((arrival, transit))
        while fast[0][0] < arrival - _BASE_WINDOW_S:
            fast.popleft()
        self._base = fast[0][1]
        spread = transit - self._base
        if spread >= self._spread:
            self._spread = spread  # grow at once
        else:
            step = max(0.0, arrival - self._last_arrival) / _SPREAD_DECAY_S
            self._spread += (spread - self._spread) * min(1.0, step)
        self._last_arrival = max(self._last_arrival, arrival)

    def _store(self, t: int, marker: bool, payload: bytes | bytearray) -> None:
        """Cut the payload on the grid; slices whose frame has played are late."""
        size = len(payload)
        if not size:
            return
        fs = self._fs
        end = t + size
        first = self._floor(t)
        if first < self._play and not self._started and self._play - first <= self._max:
            self._play = first  # an earlier packet came second: start playout from it
        stored = False
        pos = t
        while pos < end:
            frame = self._floor(pos)
            stop = min(end, frame + fs)
            if frame >= self._play:
                piece = payload if stop - pos == size else payload[pos - t:stop - t]
                self._slice(frame, pos - frame, piece, marker and pos == t)
                stored = True
            pos = stop
        if not stored:
            self._late += 1

    def _slice(self, frame: int, offset: int, piece: bytes | bytearray, marker: bool) -> None:
        count = len(piece)
        bits = ((1 << count) - 1) << offset
        slot = self._slots.get(frame)
        if slot is None:
            if count == self._fs:
                self._slots[frame] = [piece, bits, marker]
            else:
                data = bytearray(self._fs)
                data[offset:offset + count] = piece
                self._slots[frame] = [data, bits, marker]
            if len(self._slots) > self._cap:
                del self._slots[min(self._slots)]  # rare: drop the oldest to bound the buffer
                self._overflow += 1
            return
        if not bits & ~slot[1]:
            return  # these samples are here already (a repacketised copy)
        data = slot[0] if isinstance(slot[0], bytearray) else bytearray(slot[0])
        data[offset:offset + count] = piece
        slot[0] = data
        slot[1] |= bits
        slot[2] = slot[2] or marker

    def recode(self, table: bytes) -> None:
        """Map every octet held through ``table`` (``bytes.translate``): for a call whose
        codec changes mid-call (a re-INVITE from PCMU to PCMA), so that what was received
        in the old law plays as itself in the new one."""
        for slot in self._slots.values():
            slot[0] = slot[0].translate(table)

    # -- playing ---------------------------------------------------------------------------

    def _target(self) -> float:
        """The delay the buffer aims for, in timestamp units."""
        return min(self._max, max(self._min, self._spread + self._fs / 2))

    def get(self, now: float) -> Frame:
        """The frame to play now; call once per frame period (the sound card's pace)."""
        payload = self.pop(now)
        if payload is None:
            return Frame(self.kind, b"", self.timestamp)
        return Frame(FrameKind.AUDIO, bytes(payload), self.timestamp)

    def pop(self, now: float) -> bytes | bytearray | None:
        """``get`` without the ``Frame``: the octets of the frame to play now, or None when
        it has no audio; ``kind`` and ``timestamp`` then describe the frame. The octets may
        be the ``payload`` object given to ``put``."""
        play = self._play
        slot = self._slots.get(play)
        if slot is not None and self._playing and slot[1] == self._full and not slot[2]:
            # The usual frame: here whole, no level change due. Same as the general path.
            fs = self._fs
            target = self._spread + fs / 2
            if target < self._min:
                target = self._min
            if target > self._max:
                target = self._max
            if target <= self._target_eff:
                offset = self._offset + (now * self._rate - play - self._offset) * _LEVEL_GAIN
                error = offset - self._base - self._target_eff
                if -fs / 2 <= error < 1.5 * fs:
                    self._offset = offset
                    del self._slots[play]
                    self._play = play + fs
                    self._since_audio = 0
                    self._silent = False
                    self.kind = _AUDIO
                    self.timestamp = play & _TS_MASK
                    data: bytes | bytearray = slot[0]
                    return data
        return self._pop(now)

    def _pop(self, now: float) -> bytes | bytearray | None:
        """``pop`` for every case."""
        if self._ssrc is None:
            self._gap(0)
            return None
        fs = self._fs
        target = self._target()
        offset = now * self._rate - self._play
        if not self._playing:
            if offset + _START_SLACK < self._base + target:
                self._gap(self._play)  # the first frame is not due yet
                return None
            self._playing = self._started = True
            self._offset = offset
            self._target_eff = target
        else:
            self._offset += (offset - self._offset) * _LEVEL_GAIN
        slot = self._slots.get(self._play)
        complete = slot is not None and slot[1] == self._full
        # a frame the sender sent an event instead of (put_event): silence, as between
        # talk spurts, from its first frame
        quiet = not complete and bool(self._quiet) and self._quiet_now()
        if quiet:
            self._silent = True
        # a gap: frame P missing after concealment has faded (60 ms), or quiet; a frame
        # lost in speech is concealed, and neither lowers the level nor lets it be lowered
        gap = not complete and (quiet or self._since_audio >= _GAP_FRAMES)
        if target > self._target_eff or gap or (slot is not None and slot[2]):
            self._target_eff = target  # grow at once; shrink only at a gap or spurt start
        level = self._offset - self._base
        error = level - self._target_eff
        if error < -fs / 2 if complete else level < target:
            self._offset += fs  # play a gap frame and keep P: the delay grows a frame
            self._inserted += 1
            self._gap(self._play)
            return None
        if complete:
            if error >= 1.5 * fs:  # skew ran the level up through speech: drop one frame
                del self._slots[self._play]
                self._advance()
                self._dropped += 1
                slot = self._slots.get(self._play)
        else:
            while error >= fs and gap and not complete:  # skip through the gap: free
                if slot is not None:
                    del self._slots[self._play]
                self._advance()
                self._skipped += 1
                error -= fs
                slot = self._slots.get(self._play)
                complete = slot is not None and slot[1] == self._full
        return self._emit(slot)

    def peek(self, frames: int = 3) -> tuple[bytes | bytearray, int] | None:
        """The next frame held whole among the next ``frames`` to play, as (octets,
        distance): it plays ``distance`` frames after the one ``pop`` handed out last,
        unless the level changes first. For concealment to run into (plc.py), after a
        MISSING frame; None when none is here yet."""
        slots, play, fs, full = self._slots, self._play, self._fs, self._full
        for k in range(frames):
            slot = slots.get(play + k * fs)
            if slot is not None and slot[1] == full:
                data: bytes | bytearray = slot[0]
                return data, k + 1
        return None

    def _advance(self) -> None:
        self._play += self._fs
        self._offset -= self._fs

    def _emit(self, slot: _Slot | None) -> bytes | bytearray | None:
        """Play frame P from ``slot`` and move P on."""
        timestamp = self._play & _TS_MASK
        self._play += self._fs
        if slot is None:
            self._gap(timestamp)
            return None
        del self._slots[self._play - self._fs]
        self.timestamp = timestamp
        if slot[1] == self._full:
            self._since_audio = 0
            self._silent = False
            self.kind = _AUDIO
            data: bytes | bytearray = slot[0]
            return data
        self._silent = False  # part of it came: a loss inside speech
        self._since_audio += 1
        self._concealed += 1
        self.kind = FrameKind.MISSING
        return None

    def _gap(self, timestamp: int) -> None:
        """A frame with no audio: MISSING while concealment may still be heard, else
        SILENCE once speech has faded and nothing is waiting."""
        if not self._silent and self._since_audio >= _GAP_FRAMES and not self._slots:
            self._silent = True
        self._since_audio += 1
        self.timestamp = timestamp & _TS_MASK
        if self._silent:
            self.kind = FrameKind.SILENCE
            return None
        self._concealed += 1
        self.kind = FrameKind.MISSING
        return None

    # -- reporting -------------------------------------------------------------------------

    def stats(self) -> dict[str, float]:
        """Counters since creation (across restarts) and the current delays.

        ``received`` counts distinct packets (late ones too, and RFC 4733 events: they
        take sequence numbers of the stream), so ``received + lost == expected``;
        ``late`` packets came after their frame played; ``concealed`` counts MISSING
        frames; ``inserted`` / ``skipped`` / ``dropped`` are level adjustments (gap
        frames added, gap frames skipped, audio frames dropped for clock skew).
        """
        expected = self._expected_prior + self._max_seq - self._min_seq + 1
        ms = 1000.0 / self._rate
        return {
            "received": self._received,
            "expected": expected,
            "lost": expected - self._received,
            "late": self._late,
            "duplicates": self._duplicates,
            "reordered": self._reordered,
            "concealed": self._concealed,
            "inserted": self._inserted,
            "skipped": self._skipped,
            "dropped": self._dropped,
            "overflow": self._overflow,
            "stale": self._stale,
            "restarts": self._restarts,
            "buffered": len(self._slots),
            "delay_ms": (self._offset - self._base) * ms if self._started else 0.0,
            "target_ms": self._target() * ms,
        }

    def __repr__(self) -> str:
        ssrc = "none" if self._ssrc is None else f"{self._ssrc:#010x}"
        s = self.stats()
        return (f"JitterBuffer(ssrc={ssrc}, buffered={len(self._slots)} frames, "
                f"delay={s['delay_ms']:.1f} ms, target={s['target_ms']:.1f} ms)")
