# -*- test-case-name: tests.test_settings -*-
"""
The seed's config keys and values, mapped onto the current ones.

The project's seed wrote C{gateway.mode: "cloud"}, C{gateway.sandbox.enabled}
and C{gateway.sandbox.allowFileSystem: "workspace"}. The schema accepts them;
L{canonical} rewrites a validated config so that everything after it (the
gateway, the agent runtime, the sandbox) sees only current values. The table
is in docs/configuration.md.
"""

from __future__ import annotations

import copy
from typing import Any, Mapping

from openclaw.config.errors import Issue

# gateway.mode: "cloud" is a gateway that runs on this (server) host.
MODE_ALIASES = {"cloud": "local"}
# allowFileSystem: "workspace" is the session workspace and nothing more of the
# host: what the sandbox does when allowFileSystem is false.
FILE_SYSTEM_ALIASES = {"workspace": False}
# sandbox.enabled without a mode: sandbox the sessions other than main, or none.
ENABLED_MODE = {True: "non-main", False: "off"}


def canonical(config: Mapping[str, Any]) -> tuple[dict[str, Any], list[Issue]]:
    """
    Return a copy of a validated C{config} with seed aliases replaced, and
    the errors for seed keys that contradict current ones.
    """
    out = copy.deepcopy(dict(config))
    errors: list[Issue] = []
    gateway = out.get("gateway")
    if not isinstance(gateway, dict):
        return out, errors
    if gateway.get("mode") in MODE_ALIASES:
        gateway["mode"] = MODE_ALIASES[gateway["mode"]]
    sandbox = gateway.get("sandbox")
    if isinstance(sandbox, dict):
        errors += _sandbox(sandbox)
    return out, errors


def _sandbox(sandbox: dict[str, Any]) -> list[Issue]:
    errors: list[Issue] = []
    files = sandbox.get("allowFileSystem")
    if isinstance(files, str) and files in FILE_SYSTEM_ALIASES:
        sandbox["allowFileSystem"] = FILE_SYSTEM_ALIASES[files]
    if "enabled" in sandbox:
        enabled = sandbox.pop("enabled")
        mode = sandbox.get("mode")
        if mode is None:
            sandbox["mode"] = ENABLED_MODE[bool(enabled)]
        elif (mode == "off") == bool(enabled):
            errors.append(
                Issue(
                    "gateway.sandbox.enabled",
                    f"{'true' if enabled else 'false'} contradicts gateway.sandbox.mode {mode!r}; "
                    "remove enabled (mode says it all)",
                )
            )
    return errors
