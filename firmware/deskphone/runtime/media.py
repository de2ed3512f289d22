"""The phone's media plant: one sound device, RTP port pairs, a media thread per call,
and the local tone player. Runs on the asyncio loop's thread; each call's media runs in
its own thread (media/engine.py) and reports back through ``on_event``."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Any

from ..media.audio import AudioBackend
from ..media.engine import MediaOptions, MediaSession, TonePlayer
from ..media.tones import ToneSpec, get_tone
from ..sdp import NegotiatedMedia
from ..transport.rtp import RtpPortPool

log = logging.getLogger("deskphone.media")

RINGTONE_HZ = (1000.0, 1250.0)  # a ringtone, not a network tone: no country sets it

MediaEventSink = Callable[[str, dict[str, Any]], None]
"""Called in the media thread with (call_id, event dict); the owner hops to its loop."""


class MediaPlant:
    def __init__(self, audio: AudioBackend, ports: RtpPortPool, *, tones_country: str,
                 options: MediaOptions, on_event: MediaEventSink) -> None:
        self.audio = audio
        self.ports = ports
        self._country = tones_country
        self._options = options
        self._on_event = on_event
        self.sessions: dict[str, MediaSession] = {}
        self._tone: TonePlayer | None = None
        self._stopping: TonePlayer | None = None  # told to stop, maybe not yet off the device

    def set_tones(self, country: str) -> None:
        """The country whose call-progress tones play from now on (a provisioned change)."""
        self._country = country

    # the endpoint's PortSource: a port in SDP is a pair we hold
    def allocate(self) -> int:
        return self.ports.allocate()

    def release(self, port: int) -> None:
        self.ports.release(port)

    def start(self, call_id: str, media: NegotiatedMedia, *, muted: bool = False) -> None:
        """Start the call's media thread, or tell a running one of new media."""
        self._quiet()
        session = self.sessions.get(call_id)
        if session is not None:
            session.update(media)
            return
        if not media.active:
            return
        try:
            rtp_sock, rtcp_sock = self.ports.sockets(media.local_port)
        except KeyError:
            log.error("call %s: RTP port %d is not held", call_id, media.local_port)
            return
        sink = self._on_event

        def on_media_event(e: dict[str, Any]) -> None:  # runs in the media thread
            sink(call_id, e)

        session = MediaSession(media, rtp_sock, self.audio, rng=random.Random(),
                               rtcp_sock=None if media.rtcp_mux else rtcp_sock,
                               options=self._options, on_event=on_media_event, muted=muted)
        self.sessions[call_id] = session
        session.start()

    def stop(self, call_id: str) -> None:
        session = self.sessions.pop(call_id, None)
        if session is not None:
            session.stop()
            log.info("call %s media: %s", call_id, session.stats())

    def session(self, call_id: str | None) -> MediaSession | None:
        return self.sessions.get(call_id) if call_id is not None else None

    def play_tone(self, name: str, seconds: float | None = None) -> None:
        self.stop_tone()
        self._quiet()
        try:
            spec = get_tone(self._country, name)
        except KeyError as e:
            log.warning("no %s tone: %s", name, e)
            return
        self._tone = TonePlayer(self.audio, spec, seconds)
        self._tone.start()

    def play_ringtone(self, cadence: tuple[tuple[int, int], ...]) -> None:
        """The ringer through the sound device: a two-tone chirp at the ring cadence."""
        self.stop_tone()
        self._quiet()
        self._tone = TonePlayer(self.audio, ToneSpec(RINGTONE_HZ, -10.0, cadence))
        self._tone.start()

    def stop_tone(self) -> None:
        """Silence the tone without waiting for its thread (see _quiet)."""
        if self._tone is not None:
            self._quiet()
            self._tone.request_stop()
            self._stopping, self._tone = self._tone, None

    def _quiet(self) -> None:
        """Wait for a tone told to stop to let go of the sound device, before anything
        else uses it (a call's media, the next tone); at most one frame."""
        if self._stopping is not None:
            self._stopping.stop()
            self._stopping = None

    def close(self) -> None:
        self.stop_tone()
        self._quiet()
        for call_id in list(self.sessions):
            self.stop(call_id)
        self.ports.close()
        self.audio.close()
