"""G.711 µ-law and A-law (ITU-T G.711; RTP payload types 0 and 8, RFC 3551 §4.5.14).

Bit-exact with CPython's ``audioop`` (the Sun Microsystems g711.c that most
stacks share) on all 65,536 int16 inputs and all 256 codes. The algorithm runs
once, vectorised, at import to fill four lookup tables; after that a 20 ms
frame is one ``numpy.take`` each way, or one call of ``audioop``'s C loop
where the interpreter has it (see below).

Tables:
  ``ULAW_ENCODE_TABLE`` / ``ALAW_ENCODE_TABLE``: uint8[65536], element i is the
  code of the int16 sample ``i - 32768``.
  ``ULAW_DECODE_TABLE`` / ``ALAW_DECODE_TABLE``: int16[256], element c is the
  linear sample that code c decodes to.

For the real-time thread, ``*_encode_into`` / ``*_decode_into`` write into a
caller's preallocated array (e.g. an array view of the RTP packet buffer's
payload) instead of allocating a fresh result per frame. The media thread,
which wakes every 20 ms to cold caches where a numpy call costs 10-15 µs, uses
no numpy: ``*_encode`` (bytes out) and ``*_decode_octets_into`` (samples
written as octets into the caller's buffer) run ``audioop``'s C loop, and
without audioop the encode table or, for decoding, the decode table split into
two ``bytes.translate`` tables (one per octet of the native int16) written
interleaved: a few C calls either way.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType, ModuleType
from typing import Any, Final

import numpy as np
import numpy.typing as npt

# The standard library's G.711 (the same g711.c) codes a frame in one C loop, several
# times cheaper than a numpy call on the media thread's cold caches. It is in CPython up
# to 3.12 (deprecated by PEP 594) and in the audioop-lts backport after; without it the
# tables below do the work, with the same result (tests/unit/test_g711.py checks both).
_audioop: ModuleType | None
try:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        _audioop = importlib.import_module("audioop")
except ImportError:  # Python 3.13+ without audioop-lts
    _audioop = None

__all__ = [
    "ALAW_DECODE_TABLE",
    "ALAW_ENCODE_TABLE",
    "ALAW_SILENCE",
    "CODECS",
    "PCMA",
    "PCMU",
    "Codec",
    "ULAW_DECODE_TABLE",
    "ULAW_ENCODE_TABLE",
    "ULAW_SILENCE",
    "alaw_decode",
    "alaw_decode_into",
    "alaw_decode_octets_into",
    "alaw_encode",
    "alaw_encode_into",
    "ulaw_decode",
    "ulaw_decode_into",
    "ulaw_decode_octets_into",
    "ulaw_encode",
    "ulaw_encode_into",
]

Pcm = npt.NDArray[np.int16]
Codes = npt.NDArray[np.uint8]
Buffer = bytes | bytearray | memoryview
Octets = bytes | bytearray  # what ``bytes.translate`` takes

ULAW_SILENCE: Final = 0xFF  # code of sample 0 (µ-law inverts all bits)
ALAW_SILENCE: Final = 0xD5  # code of sample 0 (A-law inverts the even bits)

_SEG_UEND = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF], np.int32)
_SEG_AEND = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF], np.int32)
_BIAS: Final = 0x84  # µ-law bias for 16-bit samples (33 << 2)
_CLIP: Final = 8159  # largest 14-bit magnitude µ-law represents


def _segment(magnitude: npt.NDArray[np.int32], ends: npt.NDArray[np.int32]) -> Any:
    """g711.c ``search()``: the first segment whose end is >= the value (8 if none)."""
    return np.searchsorted(ends, magnitude, side="left")


def _build_ulaw_encode() -> Codes:
    """g711.c ``linear2ulaw`` on the 14-bit sample (audioop shifts 16-bit input right by 2)."""
    pcm = (np.arange(65536, dtype=np.int32) - 32768) >> 2
    mask = np.where(pcm < 0, 0x7F, 0xFF)
    magnitude = np.minimum(np.abs(pcm), _CLIP) + (_BIAS >> 2)
    seg = _segment(magnitude, _SEG_UEND)
    # segment 8 (magnitude 8192, the clipped peaks) is "out of range": the maximum code
    uval = np.where(seg >= 8, 0x7F, (seg << 4) | ((magnitude >> (seg + 1)) & 0xF))
    return np.asarray((uval ^ mask) & 0xFF, dtype=np.uint8)


def _build_ulaw_decode() -> Pcm:
    """g711.c ``ulaw2linear``: undo the inversion, rebuild the biased magnitude."""
    uval = ~np.arange(256, dtype=np.int32) & 0xFF
    t = (((uval & 0x0F) << 3) + _BIAS) << ((uval & 0x70) >> 4)
    return np.asarray(np.where(uval & 0x80, _BIAS - t, t - _BIAS), dtype=np.int16)


def _build_alaw_encode() -> Codes:
    """g711.c ``linear2alaw`` on the 13-bit sample (audioop shifts 16-bit input right by 3)."""
    pcm = (np.arange(65536, dtype=np.int32) - 32768) >> 3
    negative = pcm < 0
    mask = np.where(negative, 0x55, 0xD5)
    magnitude = np.where(negative, -pcm - 1, pcm)
    seg = _segment(magnitude, _SEG_AEND)
    quant = np.where(seg < 2, magnitude >> 1, magnitude >> np.minimum(seg, 7)) & 0x0F
    # a 13-bit magnitude is at most 0xFFF, so segment 8 never happens; kept as g711.c has it
    aval = np.where(seg >= 8, 0x7F, (seg << 4) | quant)
    return np.asarray((aval ^ mask) & 0xFF, dtype=np.uint8)


def _build_alaw_decode() -> Pcm:
    """g711.c ``alaw2linear``: undo the even-bit inversion, add the half-step."""
    aval = np.arange(256, dtype=np.int32) ^ 0x55
    seg = (aval & 0x70) >> 4
    t = (aval & 0x0F) << 4
    t = np.where(seg == 0, t + 8, (t + 0x108) << np.maximum(seg - 1, 0))
    return np.asarray(np.where(aval & 0x80, t, -t), dtype=np.int16)


def _readonly(table: npt.NDArray[Any]) -> npt.NDArray[Any]:
    table.flags.writeable = False
    return table


ULAW_ENCODE_TABLE: Final[Codes] = _readonly(_build_ulaw_encode())
ALAW_ENCODE_TABLE: Final[Codes] = _readonly(_build_alaw_encode())
ULAW_DECODE_TABLE: Final[Pcm] = _readonly(_build_ulaw_decode())
ALAW_DECODE_TABLE: Final[Pcm] = _readonly(_build_alaw_decode())

# The same encode tables rotated by half, so they are indexed by the sample's
# own 16 bits read as uint16 (what ``mode="wrap"`` makes of an int16) rather than by
# sample + 32768.
_ULAW_ENC_U16: Final[Codes] = _readonly(np.roll(ULAW_ENCODE_TABLE, 32768))
_ALAW_ENC_U16: Final[Codes] = _readonly(np.roll(ALAW_ENCODE_TABLE, 32768))


def _octet_tables(table: Pcm) -> tuple[bytes, bytes]:
    """A decode table as two ``bytes.translate`` tables: the first and the second octet
    in memory of each code's int16 sample (so native byte order, as numpy reads it)."""
    raw = table.tobytes()
    return raw[0::2], raw[1::2]


_ULAW_OCTETS: Final = _octet_tables(ULAW_DECODE_TABLE)
_ALAW_OCTETS: Final = _octet_tables(ALAW_DECODE_TABLE)

_lin2ulaw: Callable[[Any, int], bytes] | None = None
_lin2alaw: Callable[[Any, int], bytes] | None = None
_ulaw2lin: Callable[[Any, int], bytes] | None = None
_alaw2lin: Callable[[Any, int], bytes] | None = None
if _audioop is not None:
    _lin2ulaw, _lin2alaw = _audioop.lin2ulaw, _audioop.lin2alaw
    _ulaw2lin, _alaw2lin = _audioop.ulaw2lin, _audioop.alaw2lin

_INT16: Final = np.dtype(np.int16)
_UINT8: Final = np.dtype(np.uint8)

# Each per-frame function below is one table take, spelled out per law rather than
# routed through a shared helper: at 100 calls a second on a Pi Zero, the extra Python
# call is a sizeable part of the cost. Encoding takes the int16 samples themselves as
# indices with ``mode="wrap"``: -1 wraps to 65535, which is where the rotated tables keep
# it, so there is no uint16 view to make per frame. ``mode="clip"`` in decoding never
# clips (every uint8 index is in range); neither mode has numpy buffer ``out``. The dtype
# checks try identity first (numpy's built-in dtypes are singletons), equality only if
# that fails.


def _bad_pcm(pcm: Pcm) -> ValueError:
    return ValueError(f"PCM is invalid: dtype is {pcm.dtype}, not int16")


def _bad_out(out: npt.NDArray[Any], dtype: str) -> ValueError:
    return ValueError(f"output is invalid: dtype is {out.dtype}, not {dtype}")


def ulaw_encode(pcm: Pcm) -> bytes:
    """int16 samples -> µ-law codes."""
    if pcm.dtype is not _INT16 and pcm.dtype != _INT16:
        raise _bad_pcm(pcm)
    if _lin2ulaw is not None:
        try:
            return _lin2ulaw(pcm, 2)
        except (ValueError, BufferError):  # not C-contiguous
            pass
    return _ULAW_ENC_U16.take(pcm, mode="wrap").tobytes()


def ulaw_encode_into(pcm: Pcm, out: Codes) -> Codes:
    """int16 samples -> µ-law codes written into ``out`` (uint8, same length); returns ``out``."""
    if pcm.dtype is not _INT16 and pcm.dtype != _INT16:
        raise _bad_pcm(pcm)
    if out.dtype is not _UINT8 and out.dtype != _UINT8:
        raise _bad_out(out, "uint8")
    _ULAW_ENC_U16.take(pcm, None, out, "wrap")
    return out


def ulaw_decode(data: Buffer) -> Pcm:
    """µ-law codes -> a new int16 array."""
    return ULAW_DECODE_TABLE.take(np.frombuffer(data, _UINT8))


def ulaw_decode_into(data: Buffer, out: Pcm) -> Pcm:
    """µ-law codes -> int16 samples written into ``out`` (same length); returns ``out``."""
    if out.dtype is not _INT16 and out.dtype != _INT16:
        raise _bad_out(out, "int16")
    ULAW_DECODE_TABLE.take(np.frombuffer(data, _UINT8), out=out, mode="clip")
    return out


def ulaw_decode_octets_into(data: Octets, out: bytearray | memoryview) -> None:
    """µ-law codes -> int16 samples (native order) written into ``out``, a byte buffer
    of twice ``len(data)`` octets (e.g. ``memoryview(pcm).cast("B")``). No numpy: the
    media thread's decoder."""
    if _ulaw2lin is not None:
        out[:] = _ulaw2lin(data, 2)
        return
    first, second = _ULAW_OCTETS
    out[0::2] = data.translate(first)
    out[1::2] = data.translate(second)


def alaw_encode(pcm: Pcm) -> bytes:
    """int16 samples -> A-law codes."""
    if pcm.dtype is not _INT16 and pcm.dtype != _INT16:
        raise _bad_pcm(pcm)
    if _lin2alaw is not None:
        try:
            return _lin2alaw(pcm, 2)
        except (ValueError, BufferError):  # not C-contiguous
            pass
    return _ALAW_ENC_U16.take(pcm, mode="wrap").tobytes()


def alaw_encode_into(pcm: Pcm, out: Codes) -> Codes:
    """int16 samples -> A-law codes written into ``out`` (uint8, same length); returns ``out``."""
    if pcm.dtype is not _INT16 and pcm.dtype != _INT16:
        raise _bad_pcm(pcm)
    if out.dtype is not _UINT8 and out.dtype != _UINT8:
        raise _bad_out(out, "uint8")
    _ALAW_ENC_U16.take(pcm, None, out, "wrap")
    return out


def alaw_decode(data: Buffer) -> Pcm:
    """A-law codes -> a new int16 array."""
    return ALAW_DECODE_TABLE.take(np.frombuffer(data, _UINT8))


def alaw_decode_into(data: Buffer, out: Pcm) -> Pcm:
    """A-law codes -> int16 samples written into ``out`` (same length); returns ``out``."""
    if out.dtype is not _INT16 and out.dtype != _INT16:
        raise _bad_out(out, "int16")
    ALAW_DECODE_TABLE.take(np.frombuffer(data, _UINT8), out=out, mode="clip")
    return out


def alaw_decode_octets_into(data: Octets, out: bytearray | memoryview) -> None:
    """A-law codes -> int16 samples (native order) written into ``out``, a byte buffer
    of twice ``len(data)`` octets (e.g. ``memoryview(pcm).cast("B")``). No numpy: the
    media thread's decoder."""
    if _alaw2lin is not None:
        out[:] = _alaw2lin(data, 2)
        return
    first, second = _ALAW_OCTETS
    out[0::2] = data.translate(first)
    out[1::2] = data.translate(second)


@dataclass(frozen=True, slots=True)
class Codec:
    """One audio codec as the media engine sees it; picked by SDP encoding name."""

    name: str  # the SDP/RTP encoding name (RFC 3551 §6)
    payload_type: int  # static payload type (RFC 3551 table 4)
    clock_rate: int
    encode: Callable[[Pcm], bytes]
    decode: Callable[[Buffer], Pcm]
    encode_into: Callable[[Pcm, Codes], Codes]
    decode_into: Callable[[Buffer, Pcm], Pcm]
    silence: int  # the code for a zero sample, to fill a frame of silence
    decode_octets_into: Callable[[Octets, bytearray | memoryview], None]

    def __repr__(self) -> str:
        return f"Codec({self.name}/{self.clock_rate}, pt={self.payload_type})"


PCMU: Final = Codec("PCMU", 0, 8000, ulaw_encode, ulaw_decode,
                    ulaw_encode_into, ulaw_decode_into, ULAW_SILENCE, ulaw_decode_octets_into)
PCMA: Final = Codec("PCMA", 8, 8000, alaw_encode, alaw_decode,
                    alaw_encode_into, alaw_decode_into, ALAW_SILENCE, alaw_decode_octets_into)

# Keyed by the upper-case encoding name; SDP's are case-insensitive (RFC 4566 §6), so
# look up ``CODECS.get(name.upper())``.
CODECS: Final[Mapping[str, Codec]] = MappingProxyType({c.name: c for c in (PCMU, PCMA)})
