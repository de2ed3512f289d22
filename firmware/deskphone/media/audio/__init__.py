"""Audio backends, chosen by ``[audio] backend`` in the config.

A fixed table, not a registry filled at import: each entry imports its module
only when chosen, so pyalsaaudio is needed only where ALSA is used.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from .base import FRAME_SAMPLES, RATE, AudioBackend, Pacer, Pcm


def _null(**kw: Any) -> AudioBackend:
    from .null import NullBackend

    return NullBackend()


def _file(*, input: str = "", output: str = "", **kw: Any) -> AudioBackend:
    from .wavfile import FileBackend

    return FileBackend(input=input or None, output=output or None)


def _alsa(*, device: str = "", capture_device: str = "", playback_device: str = "",
          **kw: Any) -> AudioBackend:
    from .alsa import AlsaBackend

    return AlsaBackend(device=device or "default", capture_device=capture_device or None,
                       playback_device=playback_device or None)


BACKENDS: Mapping[str, Callable[..., AudioBackend]] = MappingProxyType(
    {"null": _null, "file": _file, "alsa": _alsa})


def open_backend(name: str, **options: Any) -> AudioBackend:
    try:
        factory = BACKENDS[name]
    except KeyError:
        raise ValueError(f"unknown audio backend {name!r} (have: {', '.join(BACKENDS)})") from None
    return factory(**options)


__all__ = ["BACKENDS", "FRAME_SAMPLES", "RATE", "AudioBackend", "Pacer", "Pcm", "open_backend"]
