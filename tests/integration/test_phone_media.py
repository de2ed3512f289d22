"""Audio through real peers: what the phone plays is what they sent, and they get ours.

The phone runs with the file backend (a WAV tone as microphone, a WAV recording the
speaker) or the ALSA backend on file-backed PCMs (../shared/hwlibs/asound-phone-test.conf).
SIPp plays a captured PCMA stream (uac-call-auth.xml) or echoes our RTP (uas.xml -rtp_echo);
baresip sends a 440 Hz sine and dumps what it decodes (BARESIP_RECORD=1, rec/*-dec.wav).
The phone's microphone is a 1 kHz tone, so each direction has its own frequency.

baresip 1.0.0 quirk: a re-INVITE that is not sendrecv makes it flush its decoder filter
chain without setting it up again (audio_decoder_set), so its -dec.wav dump stops at the
first hold. The hold test therefore reads the phone's counters, not baresip's dump.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from media_check import (
    PcapRecord,
    Pcm,
    active,
    align,
    blockwise_snr,
    read_pcap,
    read_pcap_rtp,
    read_raw,
    read_wav,
    rms,
    rtp_audio,
    sound_runs,
    spectrum_peak,
    tone,
    write_pcap,
    write_raw,
    write_wav,
)
from peers import Baresip, Kamailio, Sipp, in_ci, shared_dir
from phone import (
    AudioSettings,
    PhoneProcess,
    scenario,
    sipp_callee,
    sipp_caller,
    sipp_received,
)

from deskphone.media.g711 import alaw_decode

Factory = Callable[..., Any]
G711A_PCAP = Path("/usr/share/sip-tester/g711a.pcap")  # what uac-call-auth.xml plays
ALSA_TEST_CONF = shared_dir() / "hwlibs" / "asound-phone-test.conf"
BYE_RECEIVED = "Connection reset by peer"  # baresip's close reason for the far end's BYE
MIC_HZ = 1000.0  # the phone's microphone
SINE_HZ = 440.0  # baresip's (BARESIP_AUDIO=sine:440)
AUDIO_PACKETS = 50  # one second of 20 ms packets each way before hanging up


@pytest.fixture
def peers_run(tmp_path: Path) -> Iterator[Path]:
    """The peers' run directory (overrides conftest's), short enough for baresip's dumps.

    baresip 1.0.0's sndfile module builds the dump's path in a 128-byte buffer and cuts it
    there silently (".../rec/dump-2026-11-25-11-02-13-de"): under pytest-xdist tmp_path is
    long enough for that. Then the peers run in a short temporary directory, copied to
    tmp_path/peers afterwards like any other test's.
    """
    run = tmp_path / "peers"
    if len(f"{run}/baresip-1003/rec/dump-2026-11-25-11-02-13-dec.wav") <= 127:
        run.mkdir()
        yield run
        return
    short = Path(tempfile.mkdtemp(prefix="peers-"))
    try:
        yield short
    finally:
        shutil.copytree(short, run, symlinks=True, ignore=_sockets_and_fifos)
        shutil.rmtree(short, ignore_errors=True)


def _sockets_and_fifos(directory: str, names: list[str]) -> list[str]:
    """What copytree cannot copy (Kamailio's control socket)."""
    return [n for n in names
            if not (os.path.isfile(os.path.join(directory, n))
                    or os.path.isdir(os.path.join(directory, n)))]


def mic_wav(tmp_path: Path, seconds: float = 30.0) -> Path:
    """A 1 kHz tone, longer than any call here (the file backend is silent past its end)."""
    return write_wav(tmp_path / "mic.wav", tone(MIC_HZ, seconds))


def assert_tone(samples: Pcm, hz: float, what: str, *, seconds: float = 0.8) -> None:
    """`samples` hold at least `seconds` of sound, nearly all of it at `hz`.

    The last `seconds` of sound are measured: the call's start (a ringback tone while it
    rang, the jitter buffer filling) stays out of it.
    """
    sound = active(samples)
    assert len(sound) >= seconds * 8000, \
        f"{what}: {len(sound) / 8000:.2f} s of sound (RMS {rms(samples):.0f}), " \
        f"want {seconds} s"
    tail = sound[-int(seconds * 8000):]
    peak, share = spectrum_peak(tail)
    assert abs(peak - hz) <= 10 and share > 0.9, \
        f"{what}: strongest {peak:.0f} Hz with {share:.0%} of the energy, want {hz:.0f} Hz"
    assert rms(tail) > 1000, f"{what}: RMS {rms(tail):.0f}: nearly silent"


def baresip_dump(ua: Baresip, kind: str = "dec") -> Pcm:
    """What baresip decoded (`dec`) or encoded (`enc`) in its one call, at 8 kHz."""
    files = sorted((ua.dir / "rec").glob(f"*-{kind}.wav"))
    assert len(files) == 1, f"baresip {ua.user}: {kind} dumps {files}\n{ua.log_tail()}"
    samples, rate = read_wav(files[0])
    assert rate == 8000, f"{files[0]}: {rate} Hz"
    return samples


def hang_up(p: PhoneProcess, ua: Baresip, call_id: str) -> None:
    p.console.command("hangup")
    assert p.console.wait_event("ended", call_id=call_id)["reason"] == "local hangup"
    assert ua.wait_event("CALL_CLOSED", timeout=5)["param"] == BYE_RECEIVED


# ---------------------------------------------------------------------------------------------
# SIPp


def test_sipp_pcap_audio_reaches_the_speaker(
    kamailio: Kamailio, sipp: Sipp, phone: Factory, tmp_path: Path
) -> None:
    """SIPp plays a PCMA capture (30 ms packets) into a call the phone answered with PCMU;
    the phone takes PCMA too (it offered both), so what it plays, re-encoded to µ-law on
    the way, matches the capture's audio sample for sample."""
    speaker = tmp_path / "speaker.wav"
    p: PhoneProcess = phone("1001", audio=AudioSettings("file", output=speaker))
    uac = sipp_caller(sipp, "uac-call-auth.xml", "-d", "3000")
    incoming = p.console.wait_event("incoming")
    p.console.command("answer")
    assert p.console.wait_event("connected", call_id=incoming["call_id"])["codec"] == "PCMU"
    stats = p.console.wait_stats(rx_packets=20)
    assert stats["rx_invalid"] == 0
    assert stats["rx_filtered"] == 0
    assert p.console.wait_event("ended", call_id=incoming["call_id"])["reason"] == \
        "remote hangup"
    uac.wait(10, check=True)

    packets = read_pcap_rtp(G711A_PCAP)
    assert {pk.payload_type for pk in packets} == {8}
    reference = rtp_audio(packets, alaw_decode)  # 7 s; SIPp hangs up after 3
    recorded, rate = read_wav(speaker)
    assert rate == 8000
    match = align(reference, recorded)
    assert 0 <= match.lag < 8000, match  # the capture starts within a second of the answer
    # one lag for the whole call gives ~0.9999; a frame the jitter buffer inserts or drops
    # (a loaded machine) shifts the rest of the recording, so judge it block by block
    # (0.2 s), each block at its own lag: µ-law's re-encode alone leaves ~35 dB
    assert match.correlation > 0.5, match
    snrs = blockwise_snr(reference, recorded, match.lag)
    assert len(snrs) >= 10, snrs  # 2 s of the capture's speech, at least
    good = [s for s in snrs if s > 20]
    assert len(good) >= 0.9 * len(snrs), np.round(snrs, 1)
    assert float(np.median(snrs)) > 30, np.round(snrs, 1)


def test_phone_measures_the_jitter_of_a_regular_stream(
    kamailio: Kamailio, sipp: Sipp, phone: Factory
) -> None:
    """The capture's own interarrival jitter (from its pcap times) is 0.4 ms; SIPp replays
    it on the capture's timing over loopback, so the phone should measure about that."""
    p: PhoneProcess = phone("1001")
    uac = sipp_caller(sipp, "uac-call-auth.xml", "-d", "1500")
    incoming = p.console.wait_event("incoming")
    p.console.command("answer")
    p.console.wait_event("connected", call_id=incoming["call_id"])
    # the capture is 1.5 s (51 packets) and the snapshot is taken twice a second: 30
    # packets bring J (gain 1/16) to 86 % of its value, where 20 ms of the loop's
    # quantisation would read as ~9 ms
    stats = p.console.wait_stats(rx_packets=30)
    p.console.wait_event("ended", call_id=incoming["call_id"])
    uac.wait(10, check=True)
    assert stats["jitter_ms"] < 3.0, stats


def test_sipp_pcap_with_loss_and_jitter(
    kamailio: Kamailio, sipp: Sipp, phone: Factory, tmp_path: Path
) -> None:
    """The same capture, impaired: every 20th packet dropped and every 7th held back 45 ms
    (1.5 packets: it arrives after its successor). The phone counts the losses, conceals
    them, and the rest of the audio still matches."""
    records = read_pcap(G711A_PCAP)
    impaired = [PcapRecord(r.time + (0.045 if i % 7 == 3 else 0.0), r.frame)
                for i, r in enumerate(records) if i % 20 != 19]
    impaired.sort(key=lambda r: r.time)  # SIPp sends in file order, at the capture times
    pcap = write_pcap(tmp_path / "impaired.pcap", impaired)
    xml = (sipp.scenario("uac-call-auth.xml").read_text(encoding="iso-8859-1")
           .replace(str(G711A_PCAP), str(pcap)))
    scenario_path = tmp_path / "uac-call-auth-impaired.xml"
    scenario_path.write_text(xml, encoding="iso-8859-1")

    speaker = tmp_path / "speaker.wav"
    p: PhoneProcess = phone("1001", audio=AudioSettings("file", output=speaker))
    # the capture lasts 3 s; 1.5 s of silence after it leaves the stats polled below
    # time to see packet 80 on a loaded machine before the BYE ends the call (a CI run
    # beside a CPU-bound benchmark once missed a 0.5 s window)
    uac = sipp_caller(sipp, str(scenario_path), "-d", "4500")
    incoming = p.console.wait_event("incoming")
    p.console.command("answer")
    p.console.wait_event("connected", call_id=incoming["call_id"])
    # packet 80 (2.4 s in) is past four of the dropped ones (19, 39, 59, 79)
    stats = p.console.wait_stats(rx_packets=80)
    p.console.wait_event("ended", call_id=incoming["call_id"])
    uac.wait(10, check=True)
    assert stats["rx_invalid"] == 0
    # 4 dropped below packet 80 (+1 while a held-back one is still on its way)
    assert 4 <= stats["rx_lost"] <= 5, stats
    assert stats["concealed_frames"] >= stats["rx_lost"], stats

    reference = rtp_audio(read_pcap_rtp(G711A_PCAP), alaw_decode)
    recorded, _ = read_wav(speaker)
    match = align(reference, recorded)
    assert match.correlation > 0.5, match
    # in 50 ms blocks: a lost 30 ms packet and its concealment spoil two; the held-back
    # ones none, if the jitter buffer grew to take them (here: 8 of 47 blocks spoiled)
    snrs = blockwise_snr(reference, recorded, match.lag, block=400, slack=160)
    assert len(snrs) >= 40, snrs
    good = [s for s in snrs if s > 20]
    assert len(good) >= 0.75 * len(snrs), np.round(snrs, 1)


def test_sipp_plays_rfc2833_captures_the_phone_reports_the_digits(
    kamailio: Kamailio, sipp: Sipp, phone: Factory, tmp_path: Path
) -> None:
    """SIPp's own DTMF captures (telephone-event PT 101, one digit each, its three end
    packets all with one sequence number), played one after another: the phone's console
    reports each digit once, in order, with the captured duration (2240 units: 280 ms)."""
    xml = sipp.scenario("uac-call-auth.xml").read_text(encoding="iso-8859-1")
    start, end = xml.index("  <nop>"), xml.index("  <pause/>")
    plays = "".join(
        f'  <nop><action><exec play_pcap_audio="{G711A_PCAP.parent}/dtmf_2833_{name}.pcap"/>'
        f'</action></nop>\n  <pause milliseconds="400"/>\n'
        for name in ("1", "5", "9", "pound"))
    scenario_path = tmp_path / "uac-call-auth-dtmf.xml"
    scenario_path.write_text(xml[:start] + plays + xml[end:], encoding="iso-8859-1")

    p: PhoneProcess = phone("1001")
    uac = sipp_caller(sipp, str(scenario_path), "-d", "200")
    incoming = p.console.wait_event("incoming")
    p.console.command("answer")
    p.console.wait_event("connected", call_id=incoming["call_id"])
    p.console.wait_event("ended", call_id=incoming["call_id"])
    uac.wait(10, check=True)
    digits = [e for e in p.console.events if e["event"] == "dtmf"]
    assert [(d["digit"], d["duration_ms"]) for d in digits] == [
        ("1", 280), ("5", 280), ("9", 280), ("#", 280)], digits


def test_phone_rtp_reaches_sipp_and_comes_back(
    kamailio: Kamailio, sipp: Sipp, phone: Factory, tmp_path: Path
) -> None:
    """The phone calls a SIPp UAS that echoes RTP: the 1 kHz microphone comes back."""
    speaker = tmp_path / "speaker.wav"
    p: PhoneProcess = phone("1001", audio=AudioSettings("file", input=mic_wav(tmp_path),
                                                        output=speaker))
    uas = sipp_callee(sipp, "uas.xml", "-rtp_echo")
    call_id = p.console.command("dial 1002")["call_id"]
    p.console.wait_event("connected", call_id=call_id)
    stats = p.console.wait_stats(rx_packets=AUDIO_PACKETS, tx_packets=AUDIO_PACKETS)
    assert stats["rx_invalid"] == 0
    sipp_received(uas, "ACK")
    p.console.command("hangup")
    p.console.wait_event("ended", call_id=call_id)
    recorded, _ = read_wav(speaker)
    assert_tone(recorded, MIC_HZ, "the phone's speaker")
    uas.wait(10, check=True)


def test_early_media_plays_before_the_answer(
    kamailio: Kamailio, sipp: Sipp, phone: Factory, tmp_path: Path
) -> None:
    """The callee answers 183 with SDP and plays a capture for 2.5 s before its 200 OK
    (a PBX's announcement or its own ringback): the phone plays it, instead of a local
    ringback tone, and sends only silence until the call is answered."""
    speaker = tmp_path / "speaker.wav"
    p: PhoneProcess = phone("1001", audio=AudioSettings("file", input=mic_wav(tmp_path),
                                                        output=speaker))
    uas = sipp_callee(sipp, scenario("uas-early-media.xml"))
    call_id = p.console.command("dial 1002")["call_id"]
    ringing = p.console.wait_event("ringing", call_id=call_id)
    assert ringing["status"] == 183 and ringing["early_media"] is True, ringing
    assert ringing["codec"] == "PCMA"
    early = p.console.wait_stats(rx_packets=30)  # 0.9 s of the capture, not answered yet
    assert early["muted"] is True and early["tx_packets"] > 0, early
    assert p.console.command("status")["call"]["state"] != "connected"
    # the user mutes before the answer: the phone stays silent after it too
    assert p.console.command("mute")["muted"] is True
    p.console.wait_event("connected", call_id=call_id)
    # the snapshot is taken twice a second: one 0.6 s (20 packets) after the answer
    at_answer = p.console.command("stats")["rx_packets"]
    answered = p.console.wait_stats(rx_packets=at_answer + 20)
    assert answered["muted"] is True, answered
    assert p.console.command("unmute")["muted"] is False
    unmuted = p.console.wait_stats(rx_packets=answered["rx_packets"] + 20)
    assert unmuted["muted"] is False, unmuted
    assert answered["rx_lost"] == 0 and answered["rx_invalid"] == 0, answered
    p.console.command("hangup")
    p.console.wait_event("ended", call_id=call_id)
    uas.wait(10, check=True)

    # what was played from the start is the capture (no ringback tone before or over it)
    reference = rtp_audio(read_pcap_rtp(G711A_PCAP), alaw_decode)
    recorded, _ = read_wav(speaker)
    match = align(reference, recorded)
    assert 0 <= match.lag < 4000, match  # the capture began within 0.5 s of the dial
    snrs = blockwise_snr(reference, recorded, match.lag)
    assert len(snrs) >= 10, snrs  # 2 s, most of it before the answer
    assert float(np.median(snrs)) > 30, np.round(snrs, 1)


# ---------------------------------------------------------------------------------------------
# baresip


def test_baresip_calls_phone_audio_both_ways(
    kamailio: Kamailio, baresip: Callable[..., Baresip], phone: Factory, tmp_path: Path
) -> None:
    speaker = tmp_path / "speaker.wav"
    p: PhoneProcess = phone("1001", audio=AudioSettings("file", input=mic_wav(tmp_path),
                                                        output=speaker))
    ua = baresip("1003", audio=f"sine:{SINE_HZ:g}", record=1)
    ua.command("dial", f"sip:1001@{kamailio.domain}")
    call_id = p.console.wait_event("incoming")["call_id"]
    p.console.command("answer")
    ua.wait_event("CALL_ESTABLISHED", timeout=5)
    p.console.wait_event("connected", call_id=call_id)
    stats = p.console.wait_stats(rx_packets=AUDIO_PACKETS, tx_packets=AUDIO_PACKETS)
    assert stats["rx_invalid"] == 0
    hang_up(p, ua, call_id)

    assert_tone(read_wav(speaker)[0], SINE_HZ, "the phone's speaker")
    assert_tone(baresip_dump(ua, "dec"), MIC_HZ, "what baresip received")


@pytest.mark.parametrize("codec", ["PCMU", "PCMA"])
def test_phone_calls_baresip_audio_both_ways(
    kamailio: Kamailio, baresip: Callable[..., Baresip], phone: Factory, tmp_path: Path,
    codec: str
) -> None:
    """baresip answers (auto) with the one codec it has: either law works both ways."""
    speaker = tmp_path / "speaker.wav"
    p: PhoneProcess = phone("1001", audio=AudioSettings("file", input=mic_wav(tmp_path),
                                                        output=speaker))
    ua = baresip("1003", audio=f"sine:{SINE_HZ:g}", record=1, codecs=codec.lower())
    call_id = p.console.command("dial 1003")["call_id"]
    assert p.console.wait_event("connected", call_id=call_id)["codec"] == codec
    ua.wait_event("CALL_ESTABLISHED", timeout=5)
    stats = p.console.wait_stats(rx_packets=AUDIO_PACKETS, tx_packets=AUDIO_PACKETS)
    assert stats["rx_invalid"] == 0
    hang_up(p, ua, call_id)

    assert_tone(read_wav(speaker)[0], SINE_HZ, "the phone's speaker")
    assert_tone(baresip_dump(ua, "dec"), MIC_HZ, "what baresip received")


def test_phone_sends_dtmf_to_baresip(
    kamailio: Kamailio, baresip: Callable[..., Baresip], phone: Factory
) -> None:
    """RFC 4733 events (baresip offers telephone-event): baresip reports each digit."""
    p: PhoneProcess = phone("1001")
    ua = baresip("1003")
    call_id = p.console.command("dial 1003")["call_id"]
    p.console.wait_event("connected", call_id=call_id)
    ua.wait_event("CALL_ESTABLISHED", timeout=5)

    reply = p.console.command("dtmf 159#")
    assert (reply["digits"], reply["method"]) == ("159#", "rfc4733")
    digits = [ua.wait_event("CALL_DTMF_START", timeout=5)["param"] for _ in range(4)]
    assert digits == ["1", "5", "9", "#"]
    ua.wait_event("CALL_DTMF_END", timeout=5)  # the last digit's end packets came too
    hang_up(p, ua, call_id)


def test_phone_holds_and_resumes_a_call_with_baresip(
    kamailio: Kamailio, baresip: Callable[..., Baresip], phone: Factory, tmp_path: Path
) -> None:
    """Hold is a re-INVITE with a=sendonly through Kamailio's Record-Route; while held the
    phone sends nothing (not the microphone) and baresip, answering recvonly, sends
    nothing either; resume brings both directions back."""
    speaker = tmp_path / "speaker.wav"
    p: PhoneProcess = phone("1001", audio=AudioSettings("file", input=mic_wav(tmp_path),
                                                        output=speaker))
    ua = baresip("1003", audio=f"sine:{SINE_HZ:g}")
    call_id = p.console.command("dial 1003")["call_id"]
    p.console.wait_event("connected", call_id=call_id)
    ua.wait_event("CALL_ESTABLISHED", timeout=5)
    p.console.wait_stats(rx_packets=25, tx_packets=25)

    assert p.console.command("hold")["hold"] is True
    held = p.console.wait_event("updated", call_id=call_id)
    assert (held["codec"], held["direction"]) == ("PCMU", "sendonly")
    # the media thread's snapshot (5 a second) that first says held counts what went before;
    # half a second later nothing more went either way (absence: only a wait shows it)
    before = p.console.wait_stats(held=True)
    time.sleep(0.5)
    after = p.console.command("stats")
    assert after["held"] is True
    assert after["tx_packets"] == before["tx_packets"], (before, after)
    assert after["rx_packets"] - before["rx_packets"] <= 2, (before, after)  # in flight

    assert p.console.command("resume")["hold"] is False
    resumed = p.console.wait_event("updated", call_id=call_id)
    assert resumed["direction"] == "sendrecv"
    p.console.wait_stats(tx_packets=after["tx_packets"] + 25,
                         rx_packets=after["rx_packets"] + 25)
    assert p.console.status()["call"]["state"] == "connected"
    hang_up(p, ua, call_id)

    # both re-INVITEs went to Kamailio with its Record-Route as Route (RFC 3261 §12.2.1.1)
    invites = [i for i in p.sent("INVITE") if "route" in i.headers]
    assert len(invites) == 2, [(i.start_line, i.dest) for i in p.sent("INVITE")]
    for invite in invites:
        assert invite.dest == f"udp:{kamailio.domain}"
        assert kamailio.domain in invite.headers["route"]
    # the speaker: baresip's sine, a quiet spell while held, the sine again
    runs = sound_runs(read_wav(speaker)[0])
    assert len(runs) == 2, [len(r) / 8000 for r in runs]
    assert_tone(runs[0], SINE_HZ, "the phone's speaker before hold", seconds=0.3)
    assert_tone(runs[1], SINE_HZ, "the phone's speaker after resume", seconds=0.4)


# ---------------------------------------------------------------------------------------------
# phone to phone


def test_phone_calls_phone_audio_and_dtmf(
    kamailio: Kamailio, phone: Factory, tmp_path: Path
) -> None:
    """Two phones through Kamailio: each hears the other's tone, and the callee's console
    reports the caller's RFC 4733 digits in order (our DTMF sender against our receiver)."""
    alice_speaker, bob_speaker = tmp_path / "alice.wav", tmp_path / "bob.wav"
    alice: PhoneProcess = phone("1001", audio=AudioSettings(
        "file", input=mic_wav(tmp_path), output=alice_speaker))
    bob: PhoneProcess = phone("1002", audio=AudioSettings(
        "file", input=write_wav(tmp_path / "bob-mic.wav", tone(SINE_HZ, 30.0)),
        output=bob_speaker))
    call_id = alice.console.command("dial 1002")["call_id"]
    bob.console.wait_event("incoming", call_id=call_id)
    bob.console.command("answer")
    alice.console.wait_event("connected", call_id=call_id)
    bob.console.wait_event("connected", call_id=call_id)
    alice.console.wait_stats(rx_packets=AUDIO_PACKETS, tx_packets=AUDIO_PACKETS)
    bob.console.wait_stats(rx_packets=AUDIO_PACKETS, tx_packets=AUDIO_PACKETS)

    assert alice.console.command("dtmf 159#")["method"] == "rfc4733"
    digits = [bob.console.wait_event("dtmf", call_id=call_id) for _ in range(4)]
    assert [d["digit"] for d in digits] == ["1", "5", "9", "#"]
    assert all(d["duration_ms"] >= 80 for d in digits), digits  # sent as 100 ms each

    alice.console.command("hangup")
    alice.console.wait_event("ended", call_id=call_id)
    assert bob.console.wait_event("ended", call_id=call_id)["reason"] == "remote hangup"
    assert_tone(read_wav(alice_speaker)[0], SINE_HZ, "alice's speaker")
    # bob heard alice's tone until the digits (RFC 4733 §2.5.1.5: events replace audio)
    assert_tone(sound_runs(read_wav(bob_speaker)[0])[0], MIC_HZ, "bob's speaker")


# ---------------------------------------------------------------------------------------------
# ALSA without a sound card


def test_alsa_backend_on_file_pcms_carries_a_call(
    kamailio: Kamailio, baresip: Callable[..., Baresip], phone: Factory, tmp_path: Path
) -> None:
    """The ALSA backend on the test config's `phone` PCM: capture from a raw file, playback
    to one. Those PCMs have no clock; the backend's Pacer keeps the call in real time."""
    missing = [what for what, ok in ((str(ALSA_TEST_CONF), ALSA_TEST_CONF.is_file()),
                                     ("pyalsaaudio", _importable("alsaaudio"))) if not ok]
    if missing:
        msg = f"ALSA test needs {', '.join(missing)} (make venv; SHARED_DIR)"
        if in_ci():
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)
    mic = write_raw(tmp_path / "mic.raw", tone(MIC_HZ, 30.0))  # past its end: undefined data
    out = tmp_path / "speaker.raw"
    env = {"ALSA_CONFIG_PATH": str(ALSA_TEST_CONF), "PHONE_ALSA_IN": str(mic),
           "PHONE_ALSA_OUT": str(out)}
    p: PhoneProcess = phone("1001", audio=AudioSettings("alsa", device="phone"), env=env)
    ua = baresip("1003", audio=f"sine:{SINE_HZ:g}", record=1)  # auto-answers
    started = time.monotonic()
    call_id = p.console.command("dial 1003")["call_id"]
    p.console.wait_event("connected", call_id=call_id)
    ua.wait_event("CALL_ESTABLISHED", timeout=5)
    stats = p.console.wait_stats(rx_packets=AUDIO_PACKETS, tx_packets=AUDIO_PACKETS)
    assert stats["rx_invalid"] == 0
    hang_up(p, ua, call_id)
    took = time.monotonic() - started
    assert p.stop() == 0  # closes the PCMs: alsa-lib's file plugin flushes what it holds
    assert "ALSA capture phone, playback phone at 8000 Hz" in p.log_text()

    played = read_raw(out)
    # paced: no more audio than the call's wall-clock time (unpaced, the media loop would
    # spin on the file PCMs and write seconds of it per second)
    assert 0.9 <= len(played) / 8000 <= took + 0.2, (len(played) / 8000, took)
    assert_tone(played, SINE_HZ, "the ALSA playback file")
    assert_tone(baresip_dump(ua, "dec"), MIC_HZ, "what baresip received")


def _importable(module: str) -> bool:
    return importlib.util.find_spec(module) is not None
