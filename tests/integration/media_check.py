"""What the integration tests need to judge audio: a pcap reader, WAV/raw files, tones and
the few measurements the media tests make (dominant frequency, alignment, SNR).

Theory of operation: the phone's file backend records what it played as an 8 kHz WAV; SIPp
plays RTP from a pcap file; baresip dumps what it sent and received as WAVs. The tests
compare those signals, which differ by codec conversions, a start offset (the call set-up
and the jitter buffer) and a few frames the jitter buffer may insert or drop on the way. So
`align` finds the offset by FFT cross-correlation and measures the match on the overlap, and
`blockwise_snr` re-aligns each block locally for recordings that slip by a frame.

Only numpy and the standard library: nothing here needs the firmware except the G.711
decoder the pcap audio goes through (deskphone.media.g711, the code under test's own).
"""

from __future__ import annotations

import struct
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

RATE = 8000
Pcm = npt.NDArray[np.int16]

# -------------------------------------------------------------------------------------------
# pcap (libpcap's classic format; Ethernet / IPv4 / UDP / RTP)

_PCAP_MAGIC = {b"\xd4\xc3\xb2\xa1": ("<", 1e-6), b"\xa1\xb2\xc3\xd4": (">", 1e-6),
               b"\x4d\x3c\xb2\xa1": ("<", 1e-9), b"\xa1\xb2\x3c\x4d": (">", 1e-9)}
_LINKTYPE_ETHERNET = 1
_ETHERTYPE_IPV4 = 0x0800
_ETHERTYPE_VLAN = 0x8100
_IPPROTO_UDP = 17


@dataclass(frozen=True, slots=True)
class PcapRtp:
    """One RTP packet of a capture."""

    time: float  # capture time, seconds since the epoch
    src: tuple[str, int]
    dst: tuple[str, int]
    payload_type: int
    marker: bool
    sequence_number: int
    timestamp: int
    ssrc: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class PcapRecord:
    """One captured frame: when, and its bytes (from the link layer on)."""

    time: float
    frame: bytes


def read_pcap(path: str | Path) -> list[PcapRecord]:
    """The frames of a classic pcap file of Ethernet frames (ValueError for anything else)."""
    data = Path(path).read_bytes()
    if len(data) < 24 or data[:4] not in _PCAP_MAGIC:
        raise ValueError(f"{path}: not a pcap file (magic {data[:4].hex()})")
    order, tick = _PCAP_MAGIC[data[:4]]
    record = struct.Struct(order + "IIII")
    linktype = struct.unpack_from(order + "I", data, 20)[0] & 0x0FFFFFFF
    if linktype != _LINKTYPE_ETHERNET:
        raise ValueError(f"{path}: link type {linktype}, only Ethernet (1) is read")
    out: list[PcapRecord] = []
    offset = 24
    while offset + record.size <= len(data):
        sec, frac, caplen, _ = record.unpack_from(data, offset)
        offset += record.size
        out.append(PcapRecord(sec + frac * tick, data[offset:offset + caplen]))
        offset += caplen
    return out


def write_pcap(path: str | Path, records: list[PcapRecord]) -> Path:
    """A classic (microsecond, little-endian) pcap file of Ethernet frames, in list order."""
    chunks = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, _LINKTYPE_ETHERNET)]
    for r in records:
        usec = round(r.time * 1e6)
        chunks.append(struct.pack("<IIII", usec // 1_000_000, usec % 1_000_000,
                                  len(r.frame), len(r.frame)))
        chunks.append(r.frame)
    Path(path).write_bytes(b"".join(chunks))
    return Path(path)


def read_pcap_rtp(path: str | Path) -> list[PcapRtp]:
    """The RTP packets (version 2, over UDP/IPv4 on Ethernet) of a classic pcap file.

    Other frames (ARP, IPv6, TCP, IP fragments after the first) are skipped.
    """
    packets = (_rtp_of(r.frame, r.time) for r in read_pcap(path))
    return [p for p in packets if p is not None]


def _rtp_of(frame: bytes, when: float) -> PcapRtp | None:
    pos = 12
    if len(frame) < pos + 2:
        return None
    ethertype = int.from_bytes(frame[pos:pos + 2], "big")
    pos += 2
    while ethertype == _ETHERTYPE_VLAN and len(frame) >= pos + 4:
        ethertype = int.from_bytes(frame[pos + 2:pos + 4], "big")
        pos += 4
    if ethertype != _ETHERTYPE_IPV4 or len(frame) < pos + 20:
        return None
    ip = frame[pos:]
    ihl = (ip[0] & 0x0F) * 4
    total = int.from_bytes(ip[2:4], "big")
    fragment_offset = int.from_bytes(ip[6:8], "big") & 0x1FFF
    if ip[0] >> 4 != 4 or ip[9] != _IPPROTO_UDP or fragment_offset or len(ip) < ihl + 8:
        return None
    src_ip, dst_ip = ".".join(map(str, ip[12:16])), ".".join(map(str, ip[16:20]))
    udp = ip[ihl:min(len(ip), total) if total else len(ip)]
    sport, dport, length = struct.unpack_from("!HHH", udp)
    rtp = udp[8:length] if 8 <= length <= len(udp) else udp[8:]
    if len(rtp) < 12 or rtp[0] >> 6 != 2:
        return None
    start = 12 + 4 * (rtp[0] & 0x0F)
    if rtp[0] & 0x10:  # header extension: 4 bytes, then its length in words
        if len(rtp) < start + 4:
            return None
        start += 4 + 4 * int.from_bytes(rtp[start + 2:start + 4], "big")
    end = len(rtp)
    if rtp[0] & 0x20 and end > start:  # padding: the last octet counts it
        end -= rtp[-1]
    if end < start:
        return None
    _, mpt, seq, ts, ssrc = struct.unpack_from("!BBHII", rtp)
    return PcapRtp(when, (src_ip, sport), (dst_ip, dport), mpt & 0x7F, bool(mpt & 0x80), seq,
                   ts, ssrc, bytes(rtp[start:end]))


def rtp_audio(packets: list[PcapRtp], decode: Callable[[bytes], Pcm],
              payload_type: int | None = None) -> Pcm:
    """One stream's audio laid out on its RTP timestamps (one octet per sample, as G.711):
    gaps are silence. `payload_type` picks the packets (default: the first packet's)."""
    if not packets:
        return np.zeros(0, np.int16)
    pt = packets[0].payload_type if payload_type is None else payload_type
    chosen = [p for p in packets if p.payload_type == pt]
    first = chosen[0].timestamp
    starts = [(p.timestamp - first) & 0xFFFFFFFF for p in chosen]
    out = np.zeros(max(s + len(p.payload) for s, p in zip(starts, chosen, strict=True)),
                   np.int16)
    for start, p in zip(starts, chosen, strict=True):
        out[start:start + len(p.payload)] = decode(p.payload)
    return out


# -------------------------------------------------------------------------------------------
# WAV and raw files


def read_wav(path: str | Path) -> tuple[Pcm, int]:
    """A 16-bit PCM WAV as (mono int16 samples, rate); channels are averaged.

    The sizes in the header are not trusted: a WAV still being written (or whose writer was
    killed) may say 0, so the data chunk runs to the end of the file.
    """
    raw = Path(path).read_bytes()
    if raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        raise ValueError(f"{path}: not a WAV file")
    pos, channels, rate, bits = 12, 0, 0, 0
    while pos + 8 <= len(raw):
        cid, size = raw[pos:pos + 4], int.from_bytes(raw[pos + 4:pos + 8], "little")
        body = pos + 8
        if cid == b"fmt ":
            fmt, channels, rate = struct.unpack_from("<HHI", raw, body)
            bits = struct.unpack_from("<H", raw, body + 14)[0]
            if fmt not in (1, 0xFFFE) or bits != 16:
                raise ValueError(f"{path}: format {fmt}, {bits} bits: only 16-bit PCM is read")
        elif cid == b"data":
            if not channels:
                raise ValueError(f"{path}: data chunk before fmt chunk")
            end = len(raw) if size in (0, 0xFFFFFFFF) or body + size > len(raw) else body + size
            end -= (end - body) % (2 * channels)
            x = np.frombuffer(raw[body:end], "<i2")
            if channels > 1:
                x = x.reshape(-1, channels).mean(axis=1).astype(np.int16)
            return x.astype(np.int16), rate
        pos = body + size + (size & 1)
    raise ValueError(f"{path}: no data chunk")


def write_wav(path: str | Path, samples: Pcm, rate: int = RATE) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.asarray(samples, "<i2").tobytes())
    return Path(path)


def read_raw(path: str | Path) -> Pcm:
    """Raw S16_LE mono (what the test ALSA PCMs write)."""
    raw = Path(path).read_bytes()
    return np.frombuffer(raw[: len(raw) // 2 * 2], "<i2").astype(np.int16)


def write_raw(path: str | Path, samples: Pcm) -> Path:
    Path(path).write_bytes(np.asarray(samples, "<i2").tobytes())
    return Path(path)


# -------------------------------------------------------------------------------------------
# signals and measurements


def tone(freq: float, seconds: float, rate: int = RATE, amplitude: float = 8000.0) -> Pcm:
    t = np.arange(round(seconds * rate)) / rate
    return np.rint(amplitude * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def rms(x: Pcm) -> float:
    return float(np.sqrt(np.mean(np.square(x.astype(np.float64))))) if len(x) else 0.0


def spectrum_peak(x: Pcm, rate: int = RATE) -> tuple[float, float]:
    """(frequency of the strongest FFT bin, share of the signal's energy within ±25 Hz of it).

    A Hann window keeps one tone's leakage inside the ±25 Hz band.
    """
    if len(x) < 64:
        return 0.0, 0.0
    y = x.astype(np.float64) - float(np.mean(x))
    power = np.abs(np.fft.rfft(y * np.hanning(len(y)))) ** 2
    freqs = np.fft.rfftfreq(len(y), 1.0 / rate)
    total = float(power.sum())
    if total <= 0:
        return 0.0, 0.0
    peak = int(np.argmax(power))
    band = np.abs(freqs - freqs[peak]) <= 25.0
    return float(freqs[peak]), float(power[band].sum()) / total


def active(x: Pcm, threshold: float = 200.0, frame: int = 160) -> Pcm:
    """The samples from the first to the last 20 ms frame whose RMS exceeds `threshold`."""
    n = len(x) // frame
    if n == 0:
        return x[:0]
    levels = np.sqrt(np.mean(np.square(x[: n * frame].astype(np.float64)).reshape(n, frame),
                             axis=1))
    loud = np.flatnonzero(levels > threshold)
    if len(loud) == 0:
        return x[:0]
    return x[loud[0] * frame:(loud[-1] + 1) * frame]


def sound_runs(x: Pcm, threshold: float = 200.0, frame: int = 160,
               min_gap: int = 10) -> list[Pcm]:
    """The stretches of sound in `x`, split at quiet spells of `min_gap` 20 ms frames or
    more (a hold, a silent far end); each runs from its first to its last loud frame."""
    n = len(x) // frame
    levels = np.sqrt(np.mean(np.square(x[: n * frame].astype(np.float64)).reshape(n, frame),
                             axis=1)) if n else np.zeros(0)
    loud = np.flatnonzero(levels > threshold)
    runs: list[Pcm] = []
    if len(loud) == 0:
        return runs
    start = prev = int(loud[0])
    for i in loud[1:]:
        if i - prev > min_gap:
            runs.append(x[start * frame:(prev + 1) * frame])
            start = int(i)
        prev = int(i)
    runs.append(x[start * frame:(prev + 1) * frame])
    return runs


@dataclass(frozen=True, slots=True)
class Alignment:
    """Where `reference` sits in `recorded` (recorded[lag + i] ~ reference[i]) and how well
    it matches there: normalised correlation and SNR (reference / difference) on the overlap."""

    lag: int
    overlap: int
    correlation: float
    snr_db: float


def align(reference: Pcm, recorded: Pcm, *, inside: bool = False) -> Alignment:
    """Best lag of `reference` in `recorded` by FFT cross-correlation, then the match there.

    The lag may be negative (the recording starts inside the reference) unless `inside`,
    which keeps the reference wholly inside the recording. The peak is the raw
    cross-correlation's; the match is measured on the overlap at that lag.
    """
    a = reference.astype(np.float64)
    b = recorded.astype(np.float64)
    if len(a) == 0 or len(b) == 0:
        return Alignment(0, 0, 0.0, float("-inf"))
    n = len(a) + len(b) - 1
    size = 1 << (n - 1).bit_length()
    xc = np.fft.irfft(np.fft.rfft(b, size) * np.conj(np.fft.rfft(a, size)), size)
    # xc[k] = sum_i b[i + k] a[i]: lags 0..len(b)-1 at the front, negative ones at the end
    if inside:
        lags = np.arange(0, max(1, len(b) - len(a) + 1))
        values = xc[: len(lags)]
    else:
        lags = np.concatenate((np.arange(0, len(b)), np.arange(-(len(a) - 1), 0)))
        values = np.concatenate((xc[: len(b)], xc[size - (len(a) - 1):size]))
    lag = int(lags[int(np.argmax(values))])
    return match_at(reference, recorded, lag)


def match_at(reference: Pcm, recorded: Pcm, lag: int) -> Alignment:
    start_ref = max(0, -lag)
    start_rec = max(0, lag)
    count = min(len(reference) - start_ref, len(recorded) - start_rec)
    if count <= 0:
        return Alignment(lag, 0, 0.0, float("-inf"))
    a = reference[start_ref:start_ref + count].astype(np.float64)
    b = recorded[start_rec:start_rec + count].astype(np.float64)
    energy = float(np.dot(a, a) * np.dot(b, b))
    corr = float(np.dot(a, b) / np.sqrt(energy)) if energy > 0 else 0.0
    noise = float(np.sum(np.square(a - b)))
    signal = float(np.dot(a, a))
    if noise == 0:
        snr = float("inf")
    else:
        snr = float(10 * np.log10(signal / noise)) if signal > 0 else float("-inf")
    return Alignment(lag, count, corr, snr)


def blockwise_snr(reference: Pcm, recorded: Pcm, lag: int, *, block: int = 1600,
                  slack: int = 480) -> list[float]:
    """SNR (dB) of each `block` of the reference (from the start of the overlap at `lag`),
    each block at its own best lag within ±`slack` samples of where the previous one
    matched: a jitter buffer that inserts or drops a frame shifts the rest of the recording.

    "Best" is the least squared difference, not the largest correlation (which favours
    louder stretches of the recording). Blocks of near silence in the reference (RMS < 100)
    are left out.
    """
    out: list[float] = []
    start = max(0, -lag)
    current = lag
    rec = recorded.astype(np.float64)
    while start + block <= len(reference):
        ref = reference[start:start + block].astype(np.float64)
        signal = float(np.dot(ref, ref))
        if signal < block * 100.0**2:
            start += block
            continue
        lo = max(0, start + current - slack)
        hi = min(len(rec), start + current + block + slack)
        if hi - lo < block:
            break
        windows = np.lib.stride_tricks.sliding_window_view(rec[lo:hi], block)
        errors = np.sum(np.square(windows - ref), axis=1)
        best = int(np.argmin(errors))
        current = lo + best - start
        noise = float(errors[best])
        out.append(float("inf") if noise == 0 else float(10 * np.log10(signal / noise)))
        start += block
    return out
