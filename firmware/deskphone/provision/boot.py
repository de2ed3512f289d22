"""The config a phone boots with: the local file, or the last good provisioned one over it.

A phone fresh out of the box may have nothing but ``[provisioning] url`` (or not even
that: DHCP tells it). Its local file then has no ``[account]``, and it boots as an
unprovisioned phone — no registrar, SIP on the loopback only — until the first sync
brings the account. Once provisioned, it boots from the last good provisioned set kept
in the state directory, so a server that is down at boot leaves it working.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from ..config import PhoneConfig, config_from_document
from ..config.load import parse_document, read_config_text
from .state import state_path

log = logging.getLogger("deskphone.provision")

# Until the first sync: nobody to register with. The domain is no address (RFC 6761
# .invalid), so SIP listens on the interface of the default route, where a plug-and-play
# answer can reach it; it takes requests from nobody (app.endpoint_config).
UNPROVISIONED_ACCOUNT = {"user": "unprovisioned", "password": "",
                         "domain": "unprovisioned.invalid"}


def unprovisioned(config: PhoneConfig) -> bool:
    """Whether ``config`` is the placeholder of a phone never provisioned."""
    acc = config.account
    return (acc.user, acc.domain, acc.registrar) == (
        UNPROVISIONED_ACCOUNT["user"], UNPROVISIONED_ACCOUNT["domain"], "")


def local_document(text: str, source: str) -> dict[str, Any]:
    """The local config's TOML document as written (the base provisioned files overlay);
    ConfigError (naming ``source``) if it is not a valid config."""
    document = parse_document(text, source)
    local_config(document, source)
    return document


def local_config(document: dict[str, Any], source: str) -> PhoneConfig:
    """The config of the local file alone: without an ``[account]``, the unprovisioned
    placeholder's. The placeholder is never a base for provisioned files: an account
    comes whole from the server, or the sync fails naming what is missing."""
    if "account" not in document:
        document = {**document, "account": dict(UNPROVISIONED_ACCOUNT)}
    return config_from_document(document, source)


def read_local(path: str | os.PathLike[str]) -> tuple[dict[str, Any], PhoneConfig]:
    """Read the local config file: (its document, its config)."""
    source = os.fspath(path)
    document = local_document(read_config_text(source), source)
    return document, local_config(document, source)


def boot_config(local: dict[str, Any], config: PhoneConfig, state_dir: Path) -> PhoneConfig:
    """The provisioned config saved in ``state_dir`` over ``local``, or ``config`` (the
    local one) when none is saved or it no longer validates (said in the log)."""
    from .client import ProvisioningClient

    provisioned, why = ProvisioningClient.boot_config(local, state_path(state_dir))
    if provisioned is None:
        log.info("booting from the local config (%s)", why)
        return config
    log.info("booting from the last good provisioned config in %s", state_dir)
    return provisioned
