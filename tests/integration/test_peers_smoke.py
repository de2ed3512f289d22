"""The peer harness itself: Kamailio registers SIPp and baresip, SIPp calls baresip."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from peers import Baresip, Kamailio, Sipp


def test_sipp_registers_over_udp_and_tcp_and_unregisters(kamailio: Kamailio, sipp: Sipp) -> None:
    udp = sipp.register("1002", expires=3600)
    tcp = sipp.register("1002", expires=600, transport="tcp")

    contacts = {c["uri"]: c for c in kamailio.locations()["1002"]}
    assert set(contacts) == {
        f"sip:1002@127.0.0.1:{udp.port};transport=UDP",
        f"sip:1002@127.0.0.1:{tcp.port};transport=TCP",
    }
    assert 3590 <= contacts[f"sip:1002@127.0.0.1:{udp.port};transport=UDP"]["expires"] <= 3600
    assert contacts[f"sip:1002@127.0.0.1:{tcp.port};transport=TCP"]["socket"] == (
        f"tcp:{kamailio.domain}"
    )

    sipp.register("1002", port=udp.port, expires=0)
    assert [c["uri"] for c in kamailio.locations()["1002"]] == [
        f"sip:1002@127.0.0.1:{tcp.port};transport=TCP"
    ]
    sipp.register("1002", port=tcp.port, expires=0, transport="tcp")
    assert "1002" not in kamailio.locations()


def test_sipp_calls_baresip_through_kamailio(
    kamailio: Kamailio, sipp: Sipp, baresip: Callable[..., Baresip], tmp_path: Path
) -> None:
    phone = baresip("1003")
    (contact,) = kamailio.locations()["1003"]
    assert contact["uri"].startswith("sip:1003-0x")
    assert contact["uri"].endswith(f"@127.0.0.1:{phone.sip_port}")

    # baresip answers at once, and Kamailio's UDP workers may pass its 180 on after its
    # 200: SIPp would abort on that late 180 ("unexpected message"), so this copy takes
    # the provisional responses at any point of the call (optional="global")
    xml = sipp.scenario("uac-call-auth.xml").read_text(encoding="iso-8859-1")
    for code in ("180", "183"):
        xml = xml.replace(f'<recv response="{code}" optional="true"/>',
                          f'<recv response="{code}" optional="global"/>')
    assert xml.count('optional="global"') == 2, "uac-call-auth.xml changed shape"
    scenario = tmp_path / "uac-call-auth-late-180.xml"
    scenario.write_text(xml, encoding="iso-8859-1")
    sipp.run(
        str(scenario),
        "-s", "1003", "-au", "1001", "-ap", "secret1001", "-key", "caller", "1001",
        "-d", "1000",
    )  # fmt: skip

    established = phone.wait_event("CALL_ESTABLISHED", timeout=5)
    assert established["direction"] == "incoming"
    phone.wait_event("CALL_CLOSED", timeout=5)


def test_baresip_dials_sipp_without_registrar(sipp: Sipp, baresip: Callable[..., Baresip]) -> None:
    uas = sipp.start("uas.xml", "-s", "2000", "-rtp_echo")
    phone = baresip("2001")

    phone.command("dial", f"sip:2000@127.0.0.1:{uas.port}")
    phone.wait_event("CALL_ESTABLISHED", timeout=5)
    phone.command("hangup")
    phone.wait_event("CALL_CLOSED", timeout=5)
    uas.wait(10, check=True)
