# -*- test-case-name: tests.test_ws -*-
"""The C{hello-ok} answer: server, features, the state snapshot, policy, auth."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable

import attrs

from openclaw import __version__
from openclaw.gateway.boot import Boot
from openclaw.gateway.events import EVENTS, StateVersion
from openclaw.gateway.health import Health
from openclaw.gateway.presence import Presence
from openclaw.protocol.versions import CAPABILITIES, Version

SESSION_DEFAULTS = {"defaultAgentId": "main", "mainKey": "main", "mainSessionKey": "agent:main:main", "scope": "per-sender"}


def features(methods: Iterable[str], version: int) -> dict[str, list[str]]:
    """What C{hello-ok.features} advertises: every method served and every event emitted."""
    advertised = {"methods": sorted(methods), "events": list(EVENTS)}
    if version >= 4:
        advertised["capabilities"] = list(CAPABILITIES)  # v3's hello-ok has no such field
    return advertised


@attrs.frozen
class Hello:
    boot: Boot
    presence: Presence
    health: Health
    versions: StateVersion
    methods: Iterable[str]
    config_path: Path
    state_dir: Path
    canvas_url: Callable[[], str | None] = lambda: None

    def build(self, conn_id: str, version: Version, role: str, scopes: list[str], device_token: dict[str, Any] | None) -> dict[str, Any]:
        adapter = role == "channel"  # a channel adapter learns nothing about the gateway's clients or sessions
        snapshot: dict[str, Any] = {
            "presence": [] if adapter else self.presence.list(),
            "health": {} if adapter else self.health.snapshot(),
            "stateVersion": self.versions.snapshot(),
            "uptimeMs": self.boot.uptime_ms(),
            "sessionDefaults": dict(SESSION_DEFAULTS),
        }
        if "operator.admin" in scopes:
            snapshot["configPath"] = str(self.config_path)
            snapshot["stateDir"] = str(self.state_dir)
        hello: dict[str, Any] = {
            "type": "hello-ok",
            "protocol": version.number,
            "server": {"version": __version__, "host": self.boot.hostname, "connId": conn_id},
            "features": features(self.methods, version.number),
            "snapshot": snapshot,
            "policy": version.policy(),
        }
        canvas = self.canvas_url()
        if canvas and version.number == 3:
            hello["canvasHostUrl"] = canvas  # v4 moved canvas to plugin surface URLs
        if version.number >= 4:
            hello["server"] = {"version": __version__, "bootId": self.boot.boot_id, "connId": conn_id}
            hello["auth"] = {"role": role, "scopes": list(scopes)}
        if device_token is not None:
            auth = hello.setdefault("auth", {})
            auth.update(
                {
                    "deviceToken": device_token["token"],
                    "role": role,
                    "scopes": list(scopes),
                    "issuedAtMs": device_token.get("rotatedAtMs", device_token["createdAtMs"]),
                }
            )
        return hello
