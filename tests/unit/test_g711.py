"""G.711: bit-exact with the audioop reference vectors on every input, plus properties."""

from __future__ import annotations

import hashlib
import os
from dataclasses import FrozenInstanceError
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from deskphone.media import g711
from deskphone.media.g711 import (
    ALAW_DECODE_TABLE,
    ALAW_ENCODE_TABLE,
    CODECS,
    ULAW_DECODE_TABLE,
    ULAW_ENCODE_TABLE,
    Codec,
    alaw_decode,
    alaw_decode_into,
    alaw_decode_octets_into,
    alaw_encode,
    alaw_encode_into,
    ulaw_decode,
    ulaw_decode_into,
    ulaw_decode_octets_into,
    ulaw_encode,
    ulaw_encode_into,
)

REPO = Path(__file__).resolve().parents[2]
VECTORS = Path(os.environ.get("SHARED_DIR") or REPO.parent / "shared") / "vectors" / "g711"
needs_vectors = pytest.mark.skipif(not (VECTORS / "SHA256SUMS").exists(),
                                   reason=f"no G.711 vectors at {VECTORS} (set SHARED_DIR)")

ALL_SAMPLES = (np.arange(65536, dtype=np.int32) - 32768).astype(np.int16)
ALL_CODES = bytes(range(256))
LAWS = {
    "ulaw": (ulaw_encode, ulaw_decode, ulaw_encode_into, ulaw_decode_into),
    "alaw": (alaw_encode, alaw_decode, alaw_encode_into, alaw_decode_into),
}
frames = hnp.arrays(np.int16, st.integers(0, 480))
OCTETS = {"ulaw": ulaw_decode_octets_into, "alaw": alaw_decode_octets_into}
# the C paths the media thread takes when the interpreter has audioop, and which the tables
# stand in for when it has not
C_PATHS = {"ulaw": ("_lin2ulaw", "_ulaw2lin"), "alaw": ("_lin2alaw", "_alaw2lin")}


# -- the reference vectors --------------------------------------------------------------------

@needs_vectors
def test_vector_files_are_intact() -> None:
    for line in (VECTORS / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        assert hashlib.sha256((VECTORS / name.lstrip("*")).read_bytes()).hexdigest() == digest


@needs_vectors
@pytest.mark.parametrize(("name", "table"), [
    ("ulaw_encode_all_int16", ULAW_ENCODE_TABLE),
    ("alaw_encode_all_int16", ALAW_ENCODE_TABLE),
    ("ulaw_decode_all_codes", ULAW_DECODE_TABLE),
    ("alaw_decode_all_codes", ALAW_DECODE_TABLE),
])
def test_tables_match_the_npy_vectors(name: str, table: np.ndarray) -> None:
    reference = np.load(VECTORS / f"{name}.npy")
    assert table.dtype == reference.dtype
    assert table.shape == reference.shape
    np.testing.assert_array_equal(table, reference)


@needs_vectors
@pytest.mark.parametrize("law", LAWS)
def test_encode_every_int16_matches_the_bin_vector(law: str) -> None:
    encode, _, encode_into, _ = LAWS[law]
    reference = (VECTORS / f"{law}_encode_all_int16.bin").read_bytes()
    assert encode(ALL_SAMPLES) == reference
    out = np.empty(65536, np.uint8)
    assert encode_into(ALL_SAMPLES, out).tobytes() == reference


@needs_vectors
@pytest.mark.parametrize("law", LAWS)
def test_decode_every_code_matches_the_bin_vector(law: str) -> None:
    _, decode, _, decode_into = LAWS[law]
    reference = (VECTORS / f"{law}_decode_all_codes.bin").read_bytes()
    decoded = decode(ALL_CODES)
    assert decoded.dtype == np.int16
    assert decoded.astype("<i2").tobytes() == reference
    out = np.empty(256, np.int16)
    assert decode_into(ALL_CODES, out).astype("<i2").tobytes() == reference


# -- known values ----------------------------------------------------------------------------

def test_silence_codes() -> None:
    silence = np.zeros(160, np.int16)
    assert ulaw_encode(silence) == b"\xff" * 160
    assert alaw_encode(silence) == b"\xd5" * 160
    assert g711.ULAW_SILENCE == 0xFF and g711.ALAW_SILENCE == 0xD5
    assert ulaw_decode(b"\xff\x7f").tolist() == [0, 0]  # µ-law has two zeros
    assert alaw_decode(b"\xd5\x55").tolist() == [8, -8]  # A-law has none


def test_extremes() -> None:
    peaks = np.array([-32768, 32767], np.int16)
    assert ulaw_encode(peaks) == b"\x00\x80"
    assert alaw_encode(peaks) == b"\x2a\xaa"
    assert ulaw_decode(b"\x00\x80").tolist() == [-32124, 32124]
    assert alaw_decode(b"\x2a\xaa").tolist() == [-32256, 32256]


# -- properties --------------------------------------------------------------------------------

@pytest.mark.parametrize("law", LAWS)
def test_decode_then_encode_gives_the_code_back(law: str) -> None:
    encode, decode, _, _ = LAWS[law]
    again = encode(decode(ALL_CODES))
    differ = [code for code in range(256) if again[code] != code]
    # µ-law's negative zero (0x7F) decodes to 0, which encodes as the positive zero
    assert differ == ([0x7F] if law == "ulaw" else [])


@pytest.mark.parametrize("law", LAWS)
def test_quantising_is_monotonic_and_idempotent(law: str) -> None:
    encode, decode, _, _ = LAWS[law]
    once = decode(encode(ALL_SAMPLES))
    assert np.all(np.diff(once.astype(np.int32)) >= 0)
    np.testing.assert_array_equal(decode(encode(once)), once)


@pytest.mark.parametrize("law", LAWS)
@given(pcm=frames)
def test_into_variants_agree_with_the_allocating_ones(law: str, pcm: np.ndarray) -> None:
    encode, decode, encode_into, decode_into = LAWS[law]
    codes = np.empty(len(pcm), np.uint8)
    assert encode_into(pcm, codes) is codes
    assert codes.tobytes() == encode(pcm)
    samples = np.empty(len(pcm), np.int16)
    assert decode_into(codes.tobytes(), samples) is samples
    np.testing.assert_array_equal(samples, decode(encode(pcm)))


def test_encode_into_a_packet_buffer_in_place() -> None:
    """The real-time path: encode straight into the payload of a preallocated RTP buffer."""
    packet = bytearray(12 + 160)
    payload = np.frombuffer(packet, np.uint8, offset=12)
    pcm = np.linspace(-20000, 20000, 160).astype(np.int16)
    ulaw_encode_into(pcm, payload)
    assert bytes(packet[12:]) == ulaw_encode(pcm)
    assert packet[:12] == bytes(12)
    out = np.empty(160, np.int16)
    np.testing.assert_array_equal(ulaw_decode_into(memoryview(packet)[12:], out),
                                  ulaw_decode(bytes(packet[12:])))


def test_strided_input_is_fine() -> None:
    stereo = np.arange(-160, 160, dtype=np.int16) * 50
    assert ulaw_encode(stereo[::2]) == ulaw_encode(stereo[::2].copy())


def test_wrong_dtypes_are_refused() -> None:
    with pytest.raises(ValueError, match=r"^PCM is invalid: dtype is float64, not int16$"):
        ulaw_encode(np.zeros(160))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^output is invalid: dtype is int16, not uint8$"):
        alaw_encode_into(np.zeros(160, np.int16), np.empty(160, np.int16))
    with pytest.raises(ValueError, match=r"^output is invalid: dtype is int8, not int16$"):
        alaw_decode_into(bytes(160), np.empty(160, np.int8))
    with pytest.raises(ValueError, match=r"^PCM is invalid: dtype is >i2, not int16$"):
        alaw_encode(np.zeros(160, ">i2"))  # big-endian samples would be misread
    with pytest.raises(ValueError):
        ulaw_decode_into(bytes(160), np.empty(159, np.int16))


def test_tables_are_read_only() -> None:
    for table in (ULAW_ENCODE_TABLE, ALAW_ENCODE_TABLE, ULAW_DECODE_TABLE, ALAW_DECODE_TABLE):
        with pytest.raises(ValueError):
            table[0] = 1


# -- the codec table ---------------------------------------------------------------------------

def test_codec_table() -> None:
    assert list(CODECS) == ["PCMU", "PCMA"]
    pcmu, pcma = CODECS["PCMU"], CODECS["PCMA"]
    assert (pcmu.payload_type, pcmu.clock_rate, pcmu.silence) == (0, 8000, 0xFF)
    assert (pcma.payload_type, pcma.clock_rate, pcma.silence) == (8, 8000, 0xD5)
    assert pcmu.encode is ulaw_encode and pcma.decode is alaw_decode
    assert pcmu.encode_into is ulaw_encode_into and pcma.decode_into is alaw_decode_into
    assert repr(pcmu) == "Codec(PCMU/8000, pt=0)"
    tone = (np.sin(np.arange(160) / 3) * 8000).astype(np.int16)
    for codec in CODECS.values():
        assert codec.decode(codec.encode(tone)).dtype == np.int16


def test_codec_table_is_read_only() -> None:
    with pytest.raises(TypeError):
        CODECS["G722"] = CODECS["PCMU"]  # type: ignore[index]
    with pytest.raises(FrozenInstanceError):
        CODECS["PCMU"].payload_type = 8  # type: ignore[misc]
    assert isinstance(CODECS["PCMA"], Codec)


# -- the media thread's paths ------------------------------------------------------------------

@needs_vectors
@pytest.mark.parametrize("law", LAWS)
@pytest.mark.parametrize("with_audioop", [True, False])
def test_every_path_matches_the_bin_vectors(law: str, with_audioop: bool,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Encoding and octet decoding through audioop's C loop where the interpreter has it,
    and through the tables where it has not (Python 3.13+ without audioop-lts): the same."""
    if with_audioop and g711._audioop is None:
        pytest.skip("no audioop in this interpreter")
    if not with_audioop:
        for name in C_PATHS[law]:
            monkeypatch.setattr(g711, name, None)
    encode = LAWS[law][0]
    assert encode(ALL_SAMPLES) == (VECTORS / f"{law}_encode_all_int16.bin").read_bytes()
    assert encode(ALL_SAMPLES[::2]) == encode(ALL_SAMPLES[::2].copy())  # strided: tables
    reference = np.frombuffer((VECTORS / f"{law}_decode_all_codes.bin").read_bytes(), "<i2")
    pcm = np.full(256, 12345, np.int16)
    OCTETS[law](ALL_CODES, memoryview(pcm).cast("B"))
    np.testing.assert_array_equal(pcm, reference)
    out = bytearray(512)
    OCTETS[law](bytearray(ALL_CODES), out)
    np.testing.assert_array_equal(np.frombuffer(out, np.int16), reference)


def test_codec_table_has_the_octet_decoders() -> None:
    assert CODECS["PCMU"].decode_octets_into is ulaw_decode_octets_into
    assert CODECS["PCMA"].decode_octets_into is alaw_decode_octets_into
