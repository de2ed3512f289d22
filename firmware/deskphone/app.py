"""Composition root: builds the phone from its config and runs it on asyncio.

Wiring only. The SIP endpoint (sip/), the phone's behaviour (phone/) and the runtime that
carries out its actions (runtime/) are built here and joined to their edges: the SIP
transport, the media plant (sound device, RTP ports), the consoles (TCP, serial), the
hardware (gpiozero devices on an injected pin factory, the OLED on an injected luma
device) and the call history in the state directory. Threads cross into the loop only
through ``loop.call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import random
import signal
import socket
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .config import PhoneConfig
from .console import (
    BUILTIN_COMMANDS,
    CALL_COMMANDS,
    PHONE_COMMANDS,
    PROVISION_COMMANDS,
    ConsoleCommands,
    ConsoleServer,
)
from .media.audio import open_backend
from .media.engine import MediaOptions
from .media.tones import get_tone
from .phone import events as pe
from .phone.controller import PhoneController, PhoneSettings
from .provision.boot import unprovisioned
from .provision.client import ApplyError, ProvisioningClient
from .provision.host import lease_url, primary_mac
from .provision.merge import Change, Scope, apply_scope
from .provision.state import state_path
from .runtime.control import RuntimeControl
from .runtime.devices import Devices, HardwareBuilder
from .runtime.history import CallHistory
from .runtime.media import MediaPlant
from .runtime.phone import PhoneRuntime
from .runtime.sdnotify import SdNotifier
from .sip import events as ev
from .sip.endpoint import Endpoint, EndpointConfig
from .sip.errors import LocalProtocolError
from .sip.transaction import Addr
from .sip.uri import SipUri
from .transport.rtp import RtpPortPool
from .transport.sip import SipTransport, local_address_towards

log = logging.getLogger("deskphone")

RESOLVE_RETRY = 10.0  # seconds between attempts to resolve a registrar that did not resolve
NOTICE_SECONDS = 10.0  # a provisioning failure or update on the idle screen


def resolve(host: str, port: int, transport: str) -> str:
    """The registrar's address, resolved once at start (no SRV/NAPTR yet)."""
    host = host.strip("[]")
    kind = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
    infos = socket.getaddrinfo(host, port, type=kind)
    return str(infos[0][4][0])


def interface_toward(proxy: Addr | None, domain_host: str) -> str:
    """Our address on the interface toward the registrar; without one, toward the
    account's domain when it is an IP (the peer of a lab bench or the demo), else toward
    the default route (TEST-NET: no packet is sent)."""
    if proxy is not None:
        return local_address_towards(proxy.host, proxy.port)
    try:
        towards = str(ipaddress.ip_address(domain_host.strip("[]")))
    except ValueError:
        towards = "192.0.2.1"
    return local_address_towards(towards, 5060)


def endpoint_config(cfg: PhoneConfig, local_host: str, local_port: int,
                    proxy: Addr | None) -> EndpointConfig:
    acc = cfg.account
    return EndpointConfig(
        user=acc.user,
        domain=acc.domain,
        password=acc.password,
        registrar=SipUri.parse(acc.registrar) if acc.registrar else None,
        proxy=proxy,
        local=Addr(acc.transport, local_host, local_port),
        display_name=acc.display_name,
        auth_user=acc.auth_user or acc.user,
        expires=acc.register_expires,
        user_agent=cfg.sip.user_agent or "deskphone",
        rtp_ports=(cfg.sip.rtp_port_min, cfg.sip.rtp_port_max),
        # an unprovisioned phone takes requests from nobody (a plug-and-play answer
        # matches its SUBSCRIBE, whoever sends it)
        accept_from=cfg.sip.accept_from or ("proxy" if acc.registrar or unprovisioned(cfg)
                                            else "any"),
        realm=acc.realm or None,
        allow_rfc2069=acc.allow_rfc2069,
    )


def state_dir(cfg: PhoneConfig) -> Path:
    """``[phone] state_dir``, else /var/lib/deskphone for a service (systemd's
    StateDirectory= sets STATE_DIRECTORY), else $XDG_STATE_HOME/deskphone."""
    if cfg.phone.state_dir:
        return Path(cfg.phone.state_dir)
    if os.environ.get("STATE_DIRECTORY"):
        return Path(os.environ["STATE_DIRECTORY"].split(":")[0])
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "deskphone"


def phone_settings(cfg: PhoneConfig) -> PhoneSettings:
    digit_map = None
    if cfg.phone.digit_map:
        from .phone.dialplan import DigitMap

        digit_map = DigitMap.parse(cfg.phone.digit_map)
    return PhoneSettings(ring_timeout=float(cfg.sip.ring_timeout),
                         interdigit_timeout=float(cfg.phone.interdigit_timeout),
                         digit_map_timeout=float(cfg.phone.digit_map_timeout),
                         digit_map=digit_map)


class Phone:
    """The running phone: endpoint + controller + runtime + edges on one event loop."""

    def __init__(self, cfg: PhoneConfig, *, rng: random.Random | None = None,
                 time_scale: float = 1.0, hardware: HardwareBuilder | None = None,
                 local: Mapping[str, Any] | None = None, provisioned: bool = False) -> None:
        """``time_scale`` is a test hook: the phone's clock (``now``) runs that many times
        faster than the wall clock and loop delays shrink to match, so an integration test
        sees a 60 s registration refreshed after 30/time_scale s against a real registrar
        (which enforces a minimum expiry). Every SIP timer speeds up with it. 1.0 on a phone.
        ``hardware`` builds the devices (the simulator and the HIL tests pass their own);
        None: from ``[hardware]`` (hw.build_devices). ``local`` is the local config file's
        TOML document, the base provisioned files overlay: with it the phone provisions
        itself (``[provisioning]``); None (tests of other parts): no provisioning.
        ``provisioned``: ``cfg`` is the last good provisioned set saved in the state dir
        (else the saved set, if any, is fetched and applied again)."""
        if time_scale <= 0:
            raise ValueError(f"time_scale must be positive, got {time_scale}")
        self.cfg = cfg
        self._rng = rng or random.SystemRandom()
        self._time_scale = time_scale
        self._epoch = time.monotonic()
        self._hardware = hardware
        self.runtime: PhoneRuntime | None = None
        self.transport: SipTransport | None = None
        self.consoles: list[Any] = []
        self.devices: Devices | None = None
        self.media: MediaPlant | None = None
        self._stop = asyncio.Event()
        self.started = asyncio.Event()  # set once start() is through: consoles listen
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listeners: list[Callable[[dict[str, Any]], None]] = []
        self._resolver: asyncio.Task[None] | None = None
        self._local = local
        self._provisioned = provisioned
        self.failed = False  # a provisioned config and the old one both failed to start
        self._control: RuntimeControl | None = None
        self.provisioning: ProvisioningClient | None = None
        self.notifier = SdNotifier()  # systemd's NOTIFY_SOCKET; does nothing without one

    def now(self) -> float:
        """The phone's clock: monotonic seconds, ``time_scale`` times faster."""
        wall = time.monotonic()
        if self._time_scale == 1.0:
            return wall
        return self._epoch + (wall - self._epoch) * self._time_scale

    # ------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        cfg = self.cfg
        loop = self._loop = asyncio.get_running_loop()

        def from_thread(event: pe.HardwareEvent) -> None:  # gpiozero / timer threads
            loop.call_soon_threadsafe(self._on_hardware_event, event)

        build = self._hardware
        if build is None:
            from .hw.build import build_devices

            self.devices = build_devices(cfg, from_thread)
        else:
            self.devices = build(from_thread)
        unresolved = await self._start_sip()
        assert self.runtime is not None
        # the consoles listen before the first REGISTER goes out (a client that
        # connects at start-up sees the ``registered`` event)
        control = self._control = RuntimeControl(
            self.runtime, allow_direct_uris=cfg.console.allow_direct_uris,
            provision=self._provision_command if self._local is not None else None,
            provisioning_status=(lambda: self.provisioning.status() if self.provisioning
                                 else {}) if self._local is not None else None)
        commands = ConsoleCommands(control, {**BUILTIN_COMMANDS, **CALL_COMMANDS,
                                             **PHONE_COMMANDS, **PROVISION_COMMANDS})
        if cfg.console.kind == "tcp":
            server = ConsoleServer(commands, cfg.console.host, cfg.console.port,
                                   token=cfg.console.token or None,
                                   max_clients=cfg.console.max_clients,
                                   idle_timeout=cfg.console.idle_timeout)
            await server.start()
            self.consoles.append(server)
            log.info("console listening on tcp:%s:%d", cfg.console.host, server.port)
        if cfg.console.serial:
            from .console.serial import SerialConsole

            serial = SerialConsole(commands, cfg.console.serial,
                                   baudrate=cfg.console.serial_baudrate)
            await serial.start()
            self.consoles.append(serial)
            log.info("console on serial %s", cfg.console.serial)
        self._go(unresolved)
        if self._local is not None and self.provisioning is None:
            self.provisioning = ProvisioningClient(
                local=self._local, state_path=state_path(state_dir(cfg)),
                current=lambda: self.cfg, apply=self.apply_config,
                broadcast=self._provisioning_news, mac=primary_mac, lease_url=lease_url,
                rng=self._rng, time_scale=self._time_scale,
                state_in_force=self._provisioned)
            self.provisioning.start()
        self.started.set()
        # systemd: READY=1, registration news as STATUS=, WATCHDOG=1 from this loop
        if self.notifier.phone_event not in self._listeners:  # start() again: restarted
            self.add_listener(self.notifier.phone_event)
        self.notifier.ready(status="started")
        self.notifier.start_watchdog(loop)

    async def _start_sip(self) -> str | None:
        """The SIP side (transport, media plant, endpoint, controller, runtime), built from
        ``self.cfg`` on the devices already there; returns why the registrar did not
        resolve, or None. Rebuilt whole when a provisioned account or address changes."""
        cfg = self.cfg
        acc = cfg.account
        transport = acc.transport
        proxy: Addr | None = None
        unresolved: str | None = None
        if acc.registrar:
            registrar = SipUri.parse(acc.registrar)
            reg_port = registrar.port or 5060
            try:
                proxy = Addr(transport, resolve(registrar.host_bare, reg_port, transport),
                             reg_port)
            except OSError as e:  # booted before the network (or DNS) came up: retry
                unresolved = (f"no network: cannot resolve {registrar.host_bare} "
                              f"({e.strerror or e})")
        listen_host, listen_port = cfg.sip.listen_host, cfg.sip.listen_port
        if not listen_host:
            # no listen address given: the interface toward the registrar, not every
            # interface a scanner on another network could reach
            listen_host = interface_toward(proxy, acc.domain_host)
        self.transport = SipTransport(listen_host, listen_port, self._on_datagram,
                                      self._on_transport_error)
        await self.transport.start()
        local_host = listen_host
        if listen_host in ("0.0.0.0", "::"):
            local_host = interface_toward(proxy, acc.domain_host)
        a = cfg.audio
        audio = open_backend(a.backend, input=a.input, output=a.output, device=a.device,
                             capture_device=a.capture_device,
                             playback_device=a.playback_device)
        # RTP binds where SIP listens; SDP advertises local_host
        self.media = MediaPlant(
            audio, RtpPortPool(listen_host, cfg.sip.rtp_port_min, cfg.sip.rtp_port_max),
            tones_country=a.tones,
            options=MediaOptions(cname=f"{acc.user}@deskphone",
                                 symmetric_rtp=cfg.sip.symmetric_rtp,
                                 follow_source=cfg.sip.rtp_follow_source),
            on_event=self._media_event_from_thread)
        endpoint = Endpoint(endpoint_config(cfg, local_host, self.transport.port, proxy),
                            self._rng, self.now(), ports=self.media)
        history = CallHistory(state_dir(cfg) / "history.json")
        # who we are, on the screen: the AoR at the registrar, or without one where we
        # can be called (sip:100@192.0.2.10:5062)
        me = endpoint.aor if acc.registrar else str(endpoint.reg.contact)
        if unprovisioned(cfg):
            me = "Not provisioned"  # no account yet: the first sync brings it
        controller = PhoneController(phone_settings(cfg), aor=me,
                                     registrar=bool(acc.registrar),
                                     last_dialled=history.last_dialled(),
                                     missed=history.missed_since_last_answer())
        dev = self.devices
        assert dev is not None
        self.runtime = PhoneRuntime(
            endpoint, controller, send=self.transport.send, clock=self.now,
            time_scale=self._time_scale, media=self.media, ringer=dev.ringer,
            ring_cadence=get_tone(a.tones, "ringback").cadence, leds=dev.leds,
            display=dev.display, history=history, broadcast=self._broadcast,
            address=local_host, ringtone=a.ringtone,
            on_provisioning=self._on_provisioning_event)
        log.info("SIP on %s %s:%d as %s, registrar %s", transport, local_host,
                 self.transport.port, endpoint.aor, proxy or unresolved or "none")
        return unresolved

    def _go(self, unresolved: str | None) -> None:
        """Boot the runtime and send the first REGISTER (or wait for the network)."""
        assert self.runtime is not None and self._loop is not None
        self.runtime.start()
        if unresolved is not None:
            log.warning("%s; retrying every %.0f s", unresolved, RESOLVE_RETRY)
            self.runtime.registration_unavailable(unresolved, RESOLVE_RETRY)
            self._resolver = self._loop.create_task(self._resolve_later())

    async def _resolve_later(self) -> None:
        """Resolve the registrar until it works, then register (the screen says No network
        meanwhile): a phone that boots before DHCP or DNS is ready must not stay dead."""
        acc = self.cfg.account
        registrar = SipUri.parse(acc.registrar)
        port = registrar.port or 5060
        kind = socket.SOCK_DGRAM if acc.transport == "udp" else socket.SOCK_STREAM
        loop = asyncio.get_running_loop()
        while self.runtime is not None:
            await asyncio.sleep(RESOLVE_RETRY / self._time_scale)
            try:
                infos = await loop.getaddrinfo(registrar.host_bare.strip("[]"), port,
                                               type=kind)
            except OSError as e:
                self.runtime.registration_unavailable(
                    f"no network: cannot resolve {registrar.host_bare} ({e.strerror or e})",
                    RESOLVE_RETRY)
                continue
            proxy = Addr(acc.transport, str(infos[0][4][0]), port)
            log.info("registrar %s resolved: %s", registrar.host_bare, proxy)
            self.runtime.endpoint.set_proxy(proxy)
            self.runtime.start()
            return

    async def run(self) -> None:
        """Run until SIGINT/SIGTERM, then un-register and stop."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            # NotImplementedError: no signals here (Windows); RuntimeError: not the main
            # thread (a test runs the phone in one): request_stop() is the way out then
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self._stop.set)
        try:
            await self.start()
        except BaseException:
            await self.stop()  # what did start (pins, ports) is let go
            raise
        await self._stop.wait()
        log.info("stopping")
        await self.stop()

    def request_stop(self) -> None:
        self._stop.set()

    async def stop(self, unregister_timeout: float = 4.0) -> None:
        self.notifier.stopping()  # systemd: STOPPING=1; the watchdog pings end
        if self.provisioning is not None:
            await self.provisioning.close()
            self.provisioning = None
        await self._shutdown(unregister_timeout)

    async def _shutdown(self, unregister_timeout: float = 4.0) -> None:
        """Everything but the provisioning client down: un-register, devices, consoles."""
        await self._stop_sip(unregister_timeout)
        if self.devices is not None:
            self.devices.close()
            self.devices = None
        for console in self.consoles:
            await console.close()
        self.consoles = []

    async def _stop_sip(self, unregister_timeout: float = 4.0) -> None:
        """The SIP side down: calls hung up, un-registered (waited for), media and
        transport closed. The devices and consoles stay."""
        if self._resolver is not None:
            self._resolver.cancel()
            self._resolver = None
        rt = self.runtime
        if rt is not None:
            ep = rt.endpoint
            for call in ep.calls:
                with contextlib.suppress(LocalProtocolError):
                    ep.hangup(self.now(), call.call_id)
            ep.unregister(self.now())
            rt.flush()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(rt.unregistered.wait(), unregister_timeout)
            rt.close()
            self.runtime = None
        if self.media is not None:
            self.media.close()
            self.media = None
        if self.transport is not None:
            await self.transport.close()
            self.transport = None

    # ----------------------------------------------------------- provisioning

    async def apply_config(self, new: PhoneConfig, changes: list[Change],
                           reboot: bool | None = None) -> None:
        """Put a provisioned config in force: live where the phone can (digit map, tones,
        timeouts, log level), the SIP side rebuilt for a new account or address (the old
        account un-registered first), the whole phone restarted for hardware and console
        changes or when check-sync asked for ``reboot=true``. A rebuild waits until no
        call is up: provisioning never cuts a call."""
        scope = Scope.RESTART if reboot else apply_scope(changes)
        if scope is Scope.NONE:
            return
        if scope is not Scope.LIVE:
            await self._until_idle()
        old = self.cfg
        try:
            await self._put_in_force(new, scope)
        except Exception as e:
            # the new config does not start (a listen address not on this machine, a
            # console port in use, a sound card that is not there): back to the old one
            why = f"{type(e).__name__}: {e}" if not isinstance(e, OSError) else \
                f"{e.strerror or e}"
            log.error("provisioned config does not start (%s): back to the previous one",
                      why)
            try:
                await self._put_in_force(old, scope)
            except Exception:
                # not even the old config starts again: exit, and let systemd restart the
                # phone on its last saved config
                log.exception("the previous config does not start again either")
                self.failed = True
                self.request_stop()
            raise ApplyError(why) from None
        self._broadcast({"event": "config_applied", "scope": scope.value})

    async def _put_in_force(self, cfg: PhoneConfig, scope: Scope) -> None:
        self.cfg = cfg
        if scope is Scope.LIVE:
            self._apply_live(cfg)
            log.info("provisioned config applied live")
        elif scope is Scope.SIP:
            log.info("provisioned config: restarting the SIP side")
            await self._stop_sip()
            unresolved = await self._start_sip()
            assert self.runtime is not None
            if self._control is not None:
                self._control.rt = self.runtime
            self._go(unresolved)
        else:
            log.info("provisioned config: restarting the phone")
            await self._shutdown()
            self.started.clear()
            await self.start()

    def _apply_live(self, cfg: PhoneConfig) -> None:
        rt = self.runtime
        if rt is None:
            return
        rt.controller.settings = phone_settings(cfg)
        rt.ring_cadence = get_tone(cfg.audio.tones, "ringback").cadence
        rt.ringtone = cfg.audio.ringtone
        if self.media is not None:
            self.media.set_tones(cfg.audio.tones)
        logging.getLogger("deskphone").setLevel(cfg.log.level.upper())
        rt.refresh()

    async def _until_idle(self) -> None:
        """Wait while a call is up or the handset is in use."""
        told = False
        while self.runtime is not None and not self.runtime.idle():
            if not told:
                log.info("provisioned config: applying when the call ends")
                told = True
            await asyncio.sleep(1.0 / self._time_scale)

    def _provisioning_news(self, event: dict[str, Any]) -> None:
        """The client's events to the consoles; a failure or a new config on the screen
        too, for a moment (the person at the phone sees why it did what it did)."""
        self._broadcast(event)
        if self.runtime is None:
            return
        if event.get("event") == "provision_failed":
            self.runtime.notice("Provisioning failed", NOTICE_SECONDS)
        elif event.get("event") == "provisioned" and event.get("changed"):
            self.runtime.notice("Config updated", NOTICE_SECONDS)

    def _plug_and_play(self, mac: str) -> None:
        """No provisioning URL anywhere: SUBSCRIBE ua-profile to the SIP multicast group."""
        if self.runtime is not None:
            self.runtime.plug_and_play(mac)

    def _provision_command(self, url: str | None) -> dict[str, object]:
        if self.provisioning is None:
            return {"started": False}
        self.provisioning.request("console", url=url)
        return {"started": True}

    def _on_provisioning_event(self, event: object) -> None:
        """check-sync from the registrar, or a URL from SIP plug-and-play."""
        client = self.provisioning
        if client is None:
            log.info("no provisioning client: %s ignored", type(event).__name__)
            return
        if isinstance(event, ev.CheckSyncRequested):
            client.request("check-sync", reboot=event.reboot)
        elif isinstance(event, ev.ProvisioningUrlOffered):
            client.offer_url(event.url)

    # ---------------------------------------------------------- edges -> runtime

    def _on_datagram(self, data: bytes, source: Addr) -> None:
        if self.runtime is not None:
            self.runtime.sip_received(data, source)

    def _on_transport_error(self, addr: Addr) -> None:
        if self.runtime is not None:
            self.runtime.transport_error(addr)

    def _on_hardware_event(self, event: pe.HardwareEvent) -> None:
        if self.runtime is not None:
            self.runtime.hardware_event(event)

    def _media_event_from_thread(self, call_id: str, e: dict[str, Any]) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._on_media_event, call_id, e)

    def _on_media_event(self, call_id: str, e: dict[str, Any]) -> None:
        if self.runtime is not None:
            self.runtime.media_event(call_id, e)

    def add_listener(self, listener: Callable[[dict[str, Any]], None]) -> None:
        """Also hand every console event to ``listener`` (the simulator's event lines)."""
        self._listeners.append(listener)

    def _broadcast(self, event: dict[str, Any]) -> None:
        for console in self.consoles:
            console.broadcast(event)
        for listener in self._listeners:
            listener(event)
