"""Phone configuration: one TOML file, checked against one schema (shared with provisioning)."""

from deskphone.config.load import atomic_write_config, load_config, parse_config
from deskphone.config.schema import (
    REQUIRED,
    SCHEMA,
    AccountConfig,
    AudioConfig,
    ConfigError,
    ConsoleConfig,
    HardwareConfig,
    Key,
    LogConfig,
    PhoneBehaviour,
    PhoneConfig,
    Problem,
    Section,
    SipConfig,
    config_from_document,
    validate,
)

__all__ = [
    "REQUIRED",
    "SCHEMA",
    "AccountConfig",
    "AudioConfig",
    "ConfigError",
    "ConsoleConfig",
    "HardwareConfig",
    "Key",
    "LogConfig",
    "PhoneBehaviour",
    "PhoneConfig",
    "Problem",
    "Section",
    "SipConfig",
    "atomic_write_config",
    "config_from_document",
    "load_config",
    "parse_config",
    "validate",
]
