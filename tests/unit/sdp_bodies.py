"""SDP bodies real peers send, shared by the SDP and offer/answer tests."""

from __future__ import annotations


def crlf(text: str) -> bytes:
    """Test bodies are written one line per line; the wire has CRLF ends."""
    return "".join(line + "\r\n" for line in text.strip().split("\n")).encode()


# Asterisk 20 INVITE offer (from the SIP corpus, 04_invite_sdp.sip).
ASTERISK_OFFER = crlf("""
v=0
o=- 1234567890 1234567890 IN IP4 192.168.1.20
s=Asterisk
c=IN IP4 192.168.1.20
t=0 0
m=audio 16384 RTP/AVP 0 8 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=maxptime:150
a=sendrecv
""")

# SIPp uac-call-auth.xml, as sent with -mi 127.0.0.1 -mp 6000.
SIPP_OFFER = crlf("""
v=0
o=sipp-uac 53655765 2353687637 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 6000 RTP/AVP 0 8 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=sendrecv
""")

# baresip 1.0.0 (Debian bookworm), captured from its INVITE on 127.0.0.1.
BARESIP_OFFER = crlf("""
v=0
o=- 3398269311 76189488 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
a=tool:baresip 1.0.0
m=audio 12068 RTP/AVP 0 8 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=sendrecv
a=label:1
a=rtcp-rsize
a=ssrc:3016373859 cname:sip:2390@127.0.0.1:5390
a=minptime:20
a=ptime:20
""")

# baresip 1.0.0's 200 OK to an offer of PCMA, PCMU, telephone-event and H.264
# video (captured); it refuses the video with port 0.
BARESIP_ANSWER = crlf("""
v=0
o=- 1715521352 1231751698 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
a=tool:baresip 1.0.0
m=audio 11996 RTP/AVP 8 0 101
a=rtpmap:8 PCMA/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=sendrecv
a=label:1
a=ssrc:3194512587 cname:sip:2390@127.0.0.1:5390
a=minptime:20
a=ptime:20
m=video 0 RTP/AVP 0
""")
