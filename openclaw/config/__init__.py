"""Configuration: C{openclaw.json} (JSON5), its environment, and validation."""

from openclaw.config.errors import EX_CONFIG, ConfigError, Issue
from openclaw.config.loader import LoadedConfig, load_config
from openclaw.config.settings import (
    Flags,
    GatewayRefused,
    GatewaySettings,
    SandboxSettings,
    load_for,
    load_valid,
    resolve_settings,
)

__all__ = [
    "EX_CONFIG",
    "ConfigError",
    "Flags",
    "GatewayRefused",
    "GatewaySettings",
    "Issue",
    "LoadedConfig",
    "SandboxSettings",
    "load_config",
    "load_for",
    "load_valid",
    "resolve_settings",
]
