# -*- test-case-name: tests.test_config -*-
"""
The shape of C{openclaw.json}, and a validator whose every message names the
key path, what is wrong, and what is allowed.

Sections this gateway does not interpret yet are accepted as they are (they
belong to other subsystems); unknown keys are warnings, never refusals, so a
config written by a newer or older OpenClaw still starts.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from typing import Any, Mapping

import attrs

from openclaw.config.errors import Issue

_DURATION = re.compile(r"^\d+(?:\.\d+)?(ms|s|m|h|d)$")


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else repr(value[:37] + "...")
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return str(value)


class Kind(ABC):
    """One node of the schema; C{check} appends problems to C{errors}."""

    description = "a value"

    @abstractmethod
    def check(self, value: Any, path: str, errors: list[Issue], warnings: list[Issue]) -> None:
        """Append what is wrong with C{value} (at C{path}) to C{errors}."""


@attrs.frozen
class Any_(Kind):
    description = "any value"

    def check(self, value, path, errors, warnings):
        return None


@attrs.frozen
class Bool(Kind):
    description = "true or false"

    def check(self, value, path, errors, warnings):
        if not isinstance(value, bool):
            errors.append(Issue(path, f"expected true or false, got {_show(value)}"))


@attrs.frozen
class Int(Kind):
    low: int | None = None
    high: int | None = None

    @property
    def description(self) -> str:
        if self.low is not None and self.high is not None:
            return f"an integer from {self.low} to {self.high}"
        if self.low is not None:
            return f"an integer of at least {self.low}"
        return "an integer"

    def check(self, value, path, errors, warnings):
        ok = isinstance(value, int) and not isinstance(value, bool)
        if ok and self.low is not None and value < self.low:
            ok = False
        if ok and self.high is not None and value > self.high:
            ok = False
        if not ok:
            errors.append(Issue(path, f"expected {self.description}, got {_show(value)}"))


@attrs.frozen
class Str(Kind):
    choices: tuple[str, ...] = ()
    nonempty: bool = False

    @property
    def description(self) -> str:
        if self.choices:
            return "one of " + ", ".join(self.choices)
        return "a non-empty string" if self.nonempty else "a string"

    def check(self, value, path, errors, warnings):
        if not isinstance(value, str):
            errors.append(Issue(path, f"expected {self.description}, got {_show(value)}"))
        elif self.choices and value not in self.choices:
            errors.append(Issue(path, f"invalid value {_show(value)}; allowed: {', '.join(self.choices)}"))
        elif self.nonempty and not value.strip():
            errors.append(Issue(path, "must not be empty"))


@attrs.frozen
class Duration(Kind):
    """Milliseconds as an integer, or a string such as C{"5m"} or C{"1h"}."""

    description = 'milliseconds, or a duration such as "90s", "5m", "1h"'

    def check(self, value, path, errors, warnings):
        if isinstance(value, bool) or not (
            (isinstance(value, int) and value >= 0) or (isinstance(value, str) and _DURATION.match(value))
        ):
            errors.append(Issue(path, f"expected {self.description}, got {_show(value)}"))


@attrs.frozen
class List(Kind):
    item: Kind

    @property
    def description(self) -> str:
        return f"a list of {self.item.description}"

    def check(self, value, path, errors, warnings):
        if not isinstance(value, list):
            errors.append(Issue(path, f"expected {self.description}, got {_show(value)}"))
            return
        for i, v in enumerate(value):
            self.item.check(v, f"{path}[{i}]", errors, warnings)


@attrs.frozen
class Either(Kind):
    options: tuple[Kind, ...]

    @property
    def description(self) -> str:
        return " or ".join(o.description for o in self.options)

    def check(self, value, path, errors, warnings):
        for option in self.options:
            trial: list[Issue] = []
            option.check(value, path, trial, [])
            if not trial:
                option.check(value, path, [], warnings)
                return
        errors.append(Issue(path, f"expected {self.description}, got {_show(value)}"))


@attrs.frozen
class Obj(Kind):
    """An object with known fields; C{rest} checks keys not listed (or warns)."""

    fields: Mapping[str, Kind] = attrs.field(factory=dict)
    rest: Kind | None = None

    description = "an object"

    def check(self, value, path, errors, warnings):
        if not isinstance(value, dict):
            errors.append(Issue(path, f"expected an object, got {_show(value)}"))
            return
        for key, v in value.items():
            sub = f"{path}.{key}" if path else key
            kind = self.fields.get(key, self.rest)
            if kind is None:
                known = ", ".join(sorted(self.fields))
                warnings.append(Issue(sub, f"unknown key (known keys here: {known})"))
            else:
                kind.check(v, sub, errors, warnings)


FREE = Obj(rest=Any_())
PORT = Int(1, 65535)
STRINGS = List(Str())
LOG_LEVELS = ("silent", "fatal", "error", "warn", "info", "debug", "trace")
BIND_MODES = ("loopback", "lan", "tailnet", "auto", "custom")
AUTH_MODES = ("none", "token", "password", "trusted-proxy")

GATEWAY = Obj(
    {
        "mode": Str(("local", "remote")),
        "port": PORT,
        "bind": Str(BIND_MODES),
        "customBindHost": Str(nonempty=True),
        "maxConnections": Int(1, 100_000),
        "allowInsecureAuth": Bool(),
        "trustedProxies": STRINGS,
        "allowRealIpFallback": Bool(),
        "auth": Obj(
            {
                "mode": Str(AUTH_MODES),
                "token": Str(),
                "password": Str(),
                "allowTailscale": Bool(),
                "rateLimit": Obj(
                    {
                        "maxAttempts": Int(1),
                        "windowMs": Int(1),
                        "lockoutMs": Int(0),
                        "exemptLoopback": Bool(),
                    }
                ),
                "trustedProxy": FREE,
            }
        ),
        "controlUi": Obj(
            {
                "enabled": Bool(),
                "basePath": Str(),
                "root": Str(),
                "allowedOrigins": STRINGS,
                "allowInsecureAuth": Bool(),
                "dangerouslyDisableDeviceAuth": Bool(),
            }
        ),
        "remote": Obj(
            {
                "url": Str(),
                "transport": Str(("ssh", "direct")),
                "token": Str(),
                "password": Str(),
                "tlsFingerprint": Str(),
                "sshTarget": Str(),
                "sshIdentity": Str(),
                "remotePort": PORT,
            }
        ),
        "tailscale": Obj({"mode": Str(("off", "serve", "funnel")), "resetOnExit": Bool()}),
        "tls": Obj(
            {
                "enabled": Bool(),
                "autoGenerate": Bool(),
                "certPath": Str(),
                "keyPath": Str(),
                "caPath": Str(),
            }
        ),
        "http": FREE,
        "tools": Obj({"deny": STRINGS, "allow": STRINGS}),
        "nodes": FREE,
        "reload": Obj({"mode": Str(("hybrid", "hot", "restart", "off")), "debounceMs": Int(0)}),
        "sandbox": Obj(
            {
                "mode": Str(("off", "non-main", "all")),
                "backend": Str(("bubblewrap", "docker")),
                "allowNetwork": Bool(),
                "allowFileSystem": Either((Bool(), STRINGS)),
                "image": Str(),
            }
        ),
    }
)

LOGGING = Obj(
    {
        "level": Str(LOG_LEVELS),
        "consoleLevel": Str(LOG_LEVELS),
        "file": Str(nonempty=True),
        "format": Str(("pretty", "compact", "json")),
        "consoleStyle": Str(("pretty", "compact", "json")),
        "maxFileBytes": Int(1024),
        "maxFiles": Int(1, 100),
        "redactSensitive": Str(("off", "tools")),
        "redactPatterns": STRINGS,
    }
)

PAIRING = Obj({"enabled": Bool(), "codeExpiry": Duration(), "maxPending": Int(1, 1000)})

CANVAS_HOST = Obj({"enabled": Bool(), "root": Str(), "port": PORT, "liveReload": Bool()})

DISCOVERY = Obj(
    {
        "mdns": Obj({"enabled": Bool(), "mode": Str(("off", "minimal", "full"))}),
        "wideArea": FREE,
    }
)

# Sections that later subsystems interpret; accepted as they are for now.
_OTHER_SECTIONS = (
    "meta wizard auth agents channels tools messages commands web talk models session skills "
    "plugins browser ui hooks bridge cron broadcast diagnostics update audio approvals routing "
    "identity whatsapp telegram discord slack signal imessage memory secrets"
).split()

ROOT = Obj(
    {
        "$schema": Str(),
        "env": Obj({"vars": Obj(rest=Str()), "shellEnv": FREE}, rest=Str()),
        "gateway": GATEWAY,
        "logging": LOGGING,
        "pairing": PAIRING,
        "canvasHost": CANVAS_HOST,
        "discovery": DISCOVERY,
        **{name: Any_() for name in _OTHER_SECTIONS},
    }
)


def validate(config: Mapping[str, Any]) -> tuple[list[Issue], list[Issue]]:
    """Return C{(errors, warnings)} for a parsed config."""
    errors: list[Issue] = []
    warnings: list[Issue] = []
    ROOT.check(config, "", errors, warnings)
    return errors, warnings
