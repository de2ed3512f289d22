"""The provisioning client: fetch, validate, keep, apply (issue 10).

Theory of operation
-------------------
One task on the phone's asyncio loop owns every sync; requests for one (start, the
resync timer, the console's ``provision``, a check-sync NOTIFY from the registrar, a URL
offered by SIP plug-and-play) queue up and run one at a time. A sync:

1. finds the server: the console's URL, else ``[provisioning] url`` of the config in
   force, else the URL of the last good sync, else the DHCP lease (option 160, then 66),
   else a URL offered by SIP plug-and-play; ``{mac}`` is expanded;
2. fetches ``<url>/<mac>.toml`` and ``<url>/deskphone.toml`` (blocking HTTP(S) in a
   worker thread), each with the ETag of the last good copy: a 304 costs nothing;
3. if both are byte for byte what is in force, stops there ("unchanged");
4. parses both, overlays them on the local config key by key (common, then per-MAC) and
   validates the result with the one schema: any problem, and nothing changes;
5. saves the new set as ONE file (``provisioning.json``, atomically, 0600) and only then
   hands the new config to the phone, which applies it live or restarts what must be.

A server that is down is retried with exponential back-off (30 s doubling to an hour,
with jitter); the resync interval gets up to 10% jitter, so a fleet that booted together
does not fetch together. Events (``provisioning``, ``provisioned``, ``provision_failed``)
carry URLs without credentials and changes without secret values.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..config import ConfigError, PhoneConfig
from . import discovery
from .boot import unprovisioned
from .fetch import Fetched, FetchError, FetchOptions, fetch, origin
from .fetch import strip_userinfo as redact
from .merge import MAX_FILE_BYTES, Change, config_changes, parse_remote, provisioned_config
from .state import ProvisionedFile, ProvisionState, load_state, save_state

log = logging.getLogger("deskphone.provision")

COMMON_FILE = "deskphone.toml"
BACKOFF_FIRST = 30.0
BACKOFF_MAX = 3600.0
RESYNC_JITTER = 0.10
START_JITTER = 5.0  # seconds: phones powered up together do not fetch in the same instant


def resync_delay(interval: float, rng: random.Random) -> float:
    """The next periodic check: ``interval`` plus up to 10% (a fleet spreads out)."""
    return interval * (1.0 + rng.uniform(0.0, RESYNC_JITTER))


class Backoff:
    """Delays between tries while the server is down: 30 s doubling to an hour, each
    drawn from [d/2, d] ("equal jitter"), so phones that lost the server together do not
    come back together."""

    def __init__(self, rng: random.Random, first: float = BACKOFF_FIRST,
                 cap: float = BACKOFF_MAX) -> None:
        self._rng = rng
        self._first = first
        self._cap = cap
        self.failures = 0

    def next(self) -> float:
        delay = min(self._cap, self._first * 2 ** min(self.failures, 16))
        self.failures += 1
        return delay / 2 + self._rng.uniform(0.0, delay / 2)

    def reset(self) -> None:
        self.failures = 0


@dataclass(frozen=True, slots=True)
class SyncOutcome:
    ok: bool
    url: str = ""  # redacted
    changed: bool = False
    changes: tuple[Change, ...] = ()
    error: str = ""
    transient: bool = False  # worth trying again soon (server down)


@dataclass(frozen=True, slots=True)
class _Request:
    reason: str
    url: str | None = None
    reboot: bool | None = None


Fetcher = Callable[[str, FetchOptions, str | None], Fetched]
Applier = Callable[[PhoneConfig, list[Change], bool | None], Awaitable[None]]


class ProvisioningClient:
    """Keeps the phone's config in step with its provisioning server.

    ``local`` is the local config file's TOML document (the base every sync overlays);
    ``current`` returns the config in force; ``apply`` installs a new one (the phone
    decides live apply or restart from the changes); ``mac``/``lease_url`` ask the
    machine (``host``); ``fetcher`` does one HTTP(S) GET (``fetch.fetch``).
    """

    def __init__(self, *, local: Mapping[str, Any], state_path: Path,
                 current: Callable[[], PhoneConfig], apply: Applier,
                 broadcast: Callable[[dict[str, Any]], None] = lambda e: None,
                 mac: Callable[[], str | None] = lambda: None,
                 lease_url: Callable[[], str | None] = lambda: None,
                 plug_and_play: Callable[[str], None] = lambda mac: None,
                 fetcher: Fetcher = fetch, rng: random.Random | None = None,
                 time_scale: float = 1.0, max_bytes: int = MAX_FILE_BYTES,
                 state_in_force: bool = True) -> None:
        self._local = local
        self._state_path = state_path
        self._current = current
        self._apply = apply
        self._broadcast = broadcast
        self._mac = mac
        self._lease_url = lease_url
        self._plug_and_play = plug_and_play
        self._fetcher = fetcher
        self._rng = rng or random.SystemRandom()
        self._scale = time_scale
        self._max_bytes = max_bytes
        # the saved set counts as "what is in force" only if the phone booted from it: a
        # set that no longer validated at boot must be fetched and applied again
        saved = load_state(state_path)
        self._state: ProvisionState | None = saved if state_in_force else None
        # a set the phone could not start (or, not in force at boot, would not): fetched
        # again unchanged, it is not tried again
        self._rejected: tuple[ProvisionState, str] | None = None
        if saved is not None and not state_in_force:
            self._rejected = (saved, "it did not start when the phone booted")
        self._unsaved = False  # the set in force could not be written: try again
        self._basic_origins: set[tuple[str, str, int]] = set()  # took Basic before
        self._pending: _Request | None = None  # requests coalesce: a flood is one sync
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._backoff = Backoff(self._rng)
        self.offered_url: str | None = None  # from SIP plug-and-play
        self.last: SyncOutcome | None = None
        self.syncs = 0  # finished syncs (tests and status)

    @property
    def state(self) -> ProvisionState | None:
        return self._state

    def status(self) -> dict[str, object]:
        """For the console's ``status``: where the config in force came from and how the
        last sync went (no credentials, no secrets)."""
        state = self._state
        last = self.last
        return {
            "url": redact(state.base_url) if state is not None else None,
            "applied_at": state.applied_at if state is not None else None,
            "last_sync": None if last is None else ("ok" if last.ok else "failed"),
            "error": last.error if last is not None and not last.ok else None,
        }

    # ------------------------------------------------------------------ boot

    @staticmethod
    def boot_config(local: Mapping[str, Any], state_path: Path) -> tuple[
            PhoneConfig | None, str]:
        """The config to boot with from the last good provisioned set: (config, "") or
        (None, why not) — none saved yet, or it no longer validates over the local file."""
        state = load_state(state_path)
        if state is None:
            return None, "no provisioned config saved"
        try:
            config = _config_of(local, state.files, MAX_FILE_BYTES * 4)
        except ConfigError as e:
            return None, f"the saved provisioned config does not validate: {e}"
        return config, ""

    # ------------------------------------------------------------- requests

    def start(self) -> None:
        """Sync now (after a little jitter), then every resync_interval."""
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run())

    def request(self, reason: str, *, url: str | None = None,
                reboot: bool | None = None) -> None:
        """Ask for a sync now (console, check-sync, plug-and-play). Requests not yet begun
        merge into one: the latest reason and URL, a reboot if any asked for one — a
        flood of check-syncs costs one fetch."""
        if self._wake is None:
            return
        before = self._pending
        if before is not None:
            url = url or before.url
            reboot = True if (reboot or before.reboot) else (
                reboot if reboot is not None else before.reboot)
        self._pending = _Request(reason, url, reboot)
        self._wake.set()

    def offer_url(self, url: str) -> None:
        """SIP plug-and-play found a server: use it if nothing better is known."""
        if self.offered_url is None and discovery.valid_url(url):
            self.offered_url = url
            self.request("plug-and-play")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        assert self._wake is not None
        delay: float | None = self._rng.uniform(0.0, START_JITTER)
        timer = _Request("start")
        while True:
            if self._pending is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), None if delay is None
                                           else delay / self._scale)
            self._wake.clear()
            request, self._pending = self._pending or timer, None
            try:
                outcome = await self.sync(request.reason, url=request.url,
                                          reboot=request.reboot)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # a bug here must not end provisioning for good
                log.exception("provisioning sync failed")
                outcome = self._fail("", f"internal error: {type(e).__name__}",
                                     transient=True)
                self.last = outcome
            interval = float(self._current().provisioning.resync_interval)
            if not outcome.ok and outcome.transient:
                delay = self._backoff.next()
                # what was asked (the console's URL, a reboot) is asked again
                timer = _Request("retry", request.url, request.reboot)
                log.info("provisioning: trying again in %.0f s", delay)
            else:
                self._backoff.reset()
                delay = resync_delay(interval, self._rng) if interval > 0 else None
                timer = _Request("resync")

    # ------------------------------------------------------------------ sync

    def _base_url(self, asked: str | None) -> tuple[str | None, str]:
        """Where to fetch from, and why there: the console's URL, ``[provisioning] url``,
        the DHCP lease, the server of the last good sync, SIP plug-and-play."""
        cfg = self._current()
        if asked:
            return asked, "console"
        if cfg.provisioning.url:
            return cfg.provisioning.url, "config"
        lease = self._lease_url()
        if lease:
            return lease, "DHCP"
        if self._state is not None and self._state.base_url:
            return self._state.base_url, "last sync"
        if self.offered_url:
            return self.offered_url, "plug-and-play"
        return None, ""

    def _options(self, base: str, mac: str) -> FetchOptions:
        """The fetch options for ``base``: the configured credentials and client
        certificate only for the server the local file names (its scheme, host and port),
        so a URL from the console, a DHCP server, a plug-and-play answer or a provisioned
        file gets none of them."""
        p = self._current().provisioning
        options = FetchOptions(ca_file=p.ca_file, max_bytes=self._max_bytes)
        # the local file's URL: a provisioned one is the server's word, and a server must
        # not be able to send the phone's credentials somewhere else
        section = self._local.get("provisioning")
        local_url = section.get("url", "") if isinstance(section, Mapping) else ""
        if local_url and origin(discovery.expand_url(local_url, mac)) == origin(base):
            options = FetchOptions(ca_file=p.ca_file, client_cert=p.client_cert,
                                   client_key=p.client_key, username=p.username,
                                   password=p.password, max_bytes=self._max_bytes,
                                   basic_up_front=origin(base) in self._basic_origins)
        return options

    def _fail(self, url: str, error: str, *, transient: bool = False) -> SyncOutcome:
        log.warning("provisioning failed: %s", error)
        self._broadcast({"event": "provision_failed", "url": url, "reason": error,
                         "retry": transient})
        return SyncOutcome(False, url, error=error, transient=transient)

    async def sync(self, reason: str = "console", *, url: str | None = None,
                   reboot: bool | None = None) -> SyncOutcome:
        """One sync; returns what happened (and says it in events)."""
        try:
            outcome = await self._sync(reason, url, reboot)
        finally:
            self.syncs += 1
        self.last = outcome
        return outcome

    async def _sync(self, reason: str, asked: str | None,
                    reboot: bool | None) -> SyncOutcome:
        cfg = self._current()
        template, source = self._base_url(asked)
        if template is None:
            why = ("no provisioning server: set [provisioning] url, or DHCP option 160/66, "
                   "or SIP plug-and-play")
            if reason in ("start", "resync", "retry"):  # nobody asked: quiet
                log.debug("provisioning: %s", why)
                if not unprovisioned(cfg):  # a phone set up by hand: nothing to find
                    return SyncOutcome(False, error=why)
                mac = cfg.provisioning.mac or self._mac()
                if mac:  # the last resort: ask the LAN (RFC 6080); a NOTIFY may answer
                    self._plug_and_play(discovery.normalise_mac(mac))
                # DHCP may bring a URL later: look again, backing off to an hour
                return SyncOutcome(False, error=why, transient=True)
            return self._fail("", why)
        mac_text = cfg.provisioning.mac or self._mac() or ""
        try:
            mac = discovery.normalise_mac(mac_text)
        except ValueError:
            return self._fail(redact(template), "no MAC address to ask for (set "
                                                "[provisioning] mac)")
        base = discovery.expand_url(template, mac).rstrip("/")
        shown = redact(base)
        if not discovery.valid_url(base) or urlsplit(base).scheme not in ("http", "https"):
            return self._fail(shown, "the provisioning URL must be http:// or https:// "
                                     "(tftp is not supported)")
        self._broadcast({"event": "provisioning", "url": shown, "reason": reason,
                         "source": source})
        log.info("provisioning from %s (%s, %s)", shown, source, reason)
        options = self._options(base, mac)
        same_set = (self._state is not None and self._state.base_url == base
                    and self._state.mac == mac)
        previous = {f.name: f for f in self._state.files} if same_set and self._state else {}
        rejected = self._rejected
        if rejected is not None and (rejected[0].base_url, rejected[0].mac) == (base, mac):
            previous = {f.name: f for f in rejected[0].files}  # its ETags: a 304 is enough
        names = (COMMON_FILE, f"{mac}.toml")
        try:
            # the fetch's own deadline cuts a slow server off; this one is the backstop for
            # what it cannot cut (a name lookup): the sync goes on, the thread ends later
            files = tuple(await asyncio.wait_for(asyncio.gather(*(
                asyncio.to_thread(self._fetch_one, name, _join(base, name), options,
                                  previous.get(name))
                for name in names)), options.deadline + options.timeout))  # real seconds
        except FetchError as e:
            return self._fail(shown, str(e), transient=e.transient)
        except TimeoutError:
            return self._fail(shown, f"no answer in {options.deadline:g} s", transient=True)
        if all(f.text is None for f in files):
            return self._fail(shown, f"neither {names[1]} nor {COMMON_FILE} is on the "
                                     "server (404)")
        if rejected is not None and _same_files(rejected[0].files, files):
            return self._fail(shown, f"the config on the server is the one that did not "
                                     f"start ({rejected[1]}); waiting for a new one")
        if same_set and self._state is not None and _same_files(self._state.files, files):
            self._state = ProvisionState(base, mac, files, self._state.applied_at)
            if self._unsaved:
                await self._save(self._state)
            if reboot:  # check-sync asked for a restart: it gets one, changed or not
                await self._apply(cfg, [], True)
            self._broadcast({"event": "provisioned", "url": shown, "changed": False,
                             "changes": [], "reboot": bool(reboot)})
            return SyncOutcome(True, shown)
        try:
            new_cfg = _config_of(self._local, files, self._max_bytes)
        except ConfigError as e:
            return self._fail(shown, str(e))
        changes = config_changes(cfg, new_cfg)
        try:
            await self._apply(new_cfg, changes, reboot)
        except ApplyError as e:  # the phone went back to the config it had
            self._rejected = (ProvisionState(base, mac, files, _now()), str(e))
            return self._fail(shown, f"the new config did not start: {e}")
        self._rejected = None
        state = ProvisionState(base, mac, files, _now())
        self._state = state  # in force now, saved or not
        await self._save(state)
        described = [c.describe() for c in changes]
        log.info("provisioned from %s: %s", shown, "; ".join(described) or "no change")
        self._broadcast({"event": "provisioned", "url": shown, "changed": bool(changes),
                         "changes": described, "reboot": bool(reboot)})
        return SyncOutcome(True, shown, changed=bool(changes), changes=tuple(changes))

    async def _save(self, state: ProvisionState) -> None:
        try:
            await asyncio.to_thread(save_state, self._state_path, state)
        except OSError as e:  # in force until a restart, which boots the last saved set
            log.error("provisioning: cannot save the new config: %s", e.strerror or e)
            self._unsaved = True
        else:
            self._unsaved = False

    def _fetch_one(self, name: str, url: str, options: FetchOptions,
                   previous: ProvisionedFile | None) -> ProvisionedFile:
        """One file of the set as fetched (or the saved copy on a 304); runs in a worker
        thread."""
        shown = redact(url)
        etag = previous.etag if previous is not None and previous.text is not None else None
        got = self._fetcher(url, options, etag)
        if got.auth == "basic":  # next time, with the first request
            self._basic_origins.add(origin(url))
        if got.status == 304 and previous is not None and previous.text is not None:
            return previous
        if got.status == 304:  # a 304 for a copy we do not hold: ask again, plainly
            got = self._fetcher(url, options, None)
        if got.status == 404 or got.body is None:
            return ProvisionedFile.missing(name, shown)
        try:
            return ProvisionedFile.fetched(name, shown, got.etag, got.body)
        except UnicodeDecodeError as e:
            line = got.body.count(b"\n", 0, e.start) + 1
            raise FetchError(f"{name}: line {line}: not UTF-8 text") from None


class ApplyError(Exception):
    """The phone could not start with a new config and went back to the one it had."""


def _same_files(a: tuple[ProvisionedFile, ...], b: tuple[ProvisionedFile, ...]) -> bool:
    """The same names with the same bytes (a 404 is the empty hash)."""
    return {f.name: f.sha256 for f in a} == {f.name: f.sha256 for f in b}


def _join(base: str, name: str) -> str:
    """``name`` at the end of ``base``'s path (a query string stays a query string)."""
    parts = urlsplit(base)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/" + name))


def _config_of(local: Mapping[str, Any], files: tuple[ProvisionedFile, ...],
               max_bytes: int) -> PhoneConfig:
    """The config a set of files makes over ``local``: the common file first, the per-MAC
    file over it, a 404 left out. ConfigError naming the file behind each problem."""
    ordered = sorted(files, key=lambda f: 0 if f.name == COMMON_FILE else 1)
    docs = [(f.name, parse_remote(f.name, f.body, max_bytes=max_bytes))
            for f in ordered if f.body is not None]
    return provisioned_config(local, docs)[0]


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
