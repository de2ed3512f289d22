"""Tell systemd how the phone is doing: READY, STATUS, STOPPING and watchdog pings.

sd_notify(3) on the standard library, no dependency: a message is one AF_UNIX SOCK_DGRAM
datagram of newline-separated ``KEY=value`` lines sent to ``$NOTIFY_SOCKET``, a path or an
abstract ``@name`` (systemd man/sd_notify.xml). ``WATCHDOG_USEC`` is set with
``WatchdogSec=``; ping every half of it, unless ``WATCHDOG_PID`` names another process
(man/sd_watchdog_enabled.xml). Without ``NOTIFY_SOCKET`` (a terminal, the simulator, a
test) every call does nothing. A failed send is logged once and never raised: the phone
keeps working; at worst systemd restarts it.

The pings come from the phone's event loop itself (``Watchdog``), not from a thread: a loop
that hangs stops pinging, systemd kills the phone after ``WatchdogSec=`` (SIGABRT) and
``Restart=on-failure`` starts it again. A pinging thread would keep a hung phone alive.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Mapping
from typing import Any

log = logging.getLogger("deskphone.sdnotify")

STATUS_MAX = 200  # characters of a STATUS= line (systemctl status shows one line)


def socket_address(value: str) -> str | None:
    """``$NOTIFY_SOCKET`` as an AF_UNIX address: ``/path`` as is, ``@name`` as the abstract
    ``\\0name``; None for anything else (unset, relative, ``vsock:``: not supported)."""
    if value.startswith("/"):
        return value
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    return None


def watchdog_interval(environ: Mapping[str, str], pid: int) -> float | None:
    """Seconds between pings: half of ``WATCHDOG_USEC``; None when there is no watchdog, its
    value is not a positive integer, or ``WATCHDOG_PID`` is set to another process (we were
    started by a process systemd watches, and inherited its environment)."""
    usec, for_pid = environ.get("WATCHDOG_USEC", ""), environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if for_pid and (not for_pid.isdigit() or int(for_pid) != pid):
        return None
    return int(usec) / 2e6


def one_line(text: str) -> str:
    """``text`` made safe for a STATUS= value: a newline would start another KEY=value line
    (a registrar's reason phrase must not be able to send READY=1 or WATCHDOG=trigger)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= STATUS_MAX else flat[:STATUS_MAX - 3] + "..."


def status_for(event: Mapping[str, Any]) -> str | None:
    """The STATUS= line for a console event, None for events systemd need not hear of.
    Only what ``systemctl status`` may show anyone: the AoR and the registrar's answer,
    never a password or a digest."""
    kind = event.get("event")
    if kind == "registered":
        return f"registered as {event.get('aor', '')}"
    if kind == "registration_failed":
        code = event.get("status")
        what = f"{code} {event.get('reason', '')}" if code else str(event.get("reason", ""))
        retry = event.get("retry_in")
        tail = f" (retry in {retry:.0f} s)" if isinstance(retry, int | float) else ""
        return f"registration failed: {what}{tail}"
    if kind == "unregistered":
        return f"unregistered: {event.get('reason', '')}"
    return None


class SdNotifier:
    """The service manager's side of the phone. ``environ`` defaults to ``os.environ`` and
    ``pid`` to ours; tests pass their own instead of patching the process."""

    def __init__(self, environ: Mapping[str, str] | None = None, *,
                 pid: int | None = None) -> None:
        env = os.environ if environ is None else environ
        raw = self.socket_name = env.get("NOTIFY_SOCKET", "")
        self.address = socket_address(raw)
        if raw and self.address is None:
            log.warning("NOTIFY_SOCKET=%r is not a path or @name: not notifying systemd", raw)
        self.watchdog_interval = (
            watchdog_interval(env, os.getpid() if pid is None else pid)
            if self.address is not None else None)
        self._warned = False
        self._watchdog: Watchdog | None = None

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *lines: str) -> bool:
        """Send ``lines`` as one datagram; False if not sent (no socket, or it failed)."""
        if self.address is None:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
                # never block the loop: if systemd's queue is full this message is dropped
                s.setblocking(False)
                s.sendto("\n".join(lines).encode(), self.address)
        except OSError as e:
            if not self._warned:  # once: a ping every 15 s must not fill the journal
                self._warned = True
                log.warning("cannot notify systemd at %s: %s", self.socket_name,
                            e.strerror or e)
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """Start-up is through: ``systemctl start`` returns, ``After=`` units start."""
        lines = ["READY=1"]
        if status:
            lines.append(f"STATUS={one_line(status)}")
        return self.notify(*lines)

    def status(self, text: str) -> bool:
        """The one line ``systemctl status`` shows under the unit."""
        return self.notify(f"STATUS={one_line(text)}")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def stopping(self, status: str | None = None) -> bool:
        """Shutting down (also stops our watchdog: systemd stops watching on STOPPING=1)."""
        self.stop_watchdog()
        lines = ["STOPPING=1"]
        if status:
            lines.append(f"STATUS={one_line(status)}")
        return self.notify(*lines)

    def phone_event(self, event: dict[str, Any]) -> None:
        """A console-event listener (``Phone.add_listener``): registration news as STATUS."""
        text = status_for(event)
        if text is not None:
            self.status(text)

    def start_watchdog(self, loop: asyncio.AbstractEventLoop) -> Watchdog | None:
        """Ping from ``loop`` every ``watchdog_interval`` s (None: systemd set no watchdog)."""
        if self.watchdog_interval is None:
            return None
        self.stop_watchdog()
        self._watchdog = Watchdog(self, loop, self.watchdog_interval)
        self._watchdog.start()
        return self._watchdog

    def stop_watchdog(self) -> None:
        if self._watchdog is not None:
            self._watchdog.stop()
            self._watchdog = None


class Watchdog:
    """WATCHDOG=1 now and then every ``interval`` seconds, from ``loop``'s own callbacks.

    A ``call_later`` chain: each ping schedules the next, so pings stop while the loop is
    blocked (a callback that never returns, a blocking call) and resume once it runs again.
    Call ``start``/``stop`` on the loop's thread.
    """

    def __init__(self, notifier: SdNotifier, loop: asyncio.AbstractEventLoop,
                 interval: float) -> None:
        if interval <= 0:
            raise ValueError(f"watchdog interval must be positive, got {interval}")
        self.notifier = notifier
        self.interval = interval
        self._loop = loop
        self._handle: asyncio.TimerHandle | None = None
        self._running = False

    @property
    def running(self) -> bool:
        return self._running

    def start(self) -> None:
        if not self._running:
            self._running = True
            self._ping()

    def stop(self) -> None:
        self._running = False
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _ping(self) -> None:
        if not self._running:
            return
        self.notifier.watchdog()
        self._handle = self._loop.call_later(self.interval, self._ping)
