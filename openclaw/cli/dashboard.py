# -*- test-case-name: tests.test_dashboard -*-
"""
C{openclaw dashboard}: the Control UI's address with the gateway token in its
fragment (C{#token=...}: browsers never send a fragment to a server, and the
page strips it from the address bar on load). Printed; C{--open} also opens it.

Target and token as the other client commands find them (C{--url}/C{--token},
C{OPENCLAW_GATEWAY_URL}/C{_TOKEN}, the config, C{gateway.remote.*}).
"""

from __future__ import annotations

import json
import webbrowser
from typing import IO, Any, Mapping
from urllib.parse import quote, urlsplit, urlunsplit

from openclaw.cli.remote import RemoteOptions
from openclaw.config import ConfigError, load_config
from openclaw.config.settings import control_ui_base_path

SCHEMES = {"ws": "http", "wss": "https", "http": "http", "https": "https"}


def page_url(gateway_url: str, base_path: str, token: str | None) -> str:
    """The Control UI's http(s) address for a gateway URL, with the token in the fragment."""
    parts = urlsplit(gateway_url)
    scheme = SCHEMES.get(parts.scheme.lower())
    if scheme is None or not parts.netloc:
        raise ValueError(f"not a gateway URL: {gateway_url!r} (expected ws://, wss://, http:// or https://)")
    fragment = f"token={quote(token, safe='')}" if token else ""
    return urlunsplit((scheme, parts.netloc, base_path, "", fragment))


class DashboardOptions(RemoteOptions):
    synopsis = "[--open] [--url URL] [--token TOKEN] [--json]"
    longdesc = "Print the Control UI's address, signed in with this gateway's token (--open: open it in the browser)."
    optFlags = [["open", None, "Open it in the default browser."], ["no-open", None, "Only print it (the default)."]]

    def run(self, env: Mapping[str, str], out: IO[str], err: IO[str]) -> int:
        config: dict[str, Any] = {}
        try:
            config = load_config(self.layout(env).config_path, env).config
        except ConfigError:
            pass  # a broken config still has a default address
        ui = (config.get("gateway") or {}).get("controlUi") or {}
        if ui.get("enabled") is False:
            err.write("The Control UI is switched off (gateway.controlUi.enabled: false).\n")
            return 1
        url, token, password = self.target(env)
        try:
            address = page_url(url, control_ui_base_path(config), token)
        except ValueError as e:
            err.write(f"{e}\n")
            return 1
        opened = bool(self["open"]) and not self["no-open"] and webbrowser.open(address)
        if self["json"]:
            out.write(json.dumps({"url": address, "opened": opened}) + "\n")
        else:
            out.write(address + "\n")
        if not token:
            hint = "the page asks for the gateway password" if password else "no gateway token is configured: the page asks for one"
            err.write(f"Note: {hint}.\n")
        if self["open"] and not opened:
            port = urlsplit(address).port or 18789
            err.write(f"No browser could be opened here. From your computer: ssh -N -L {port}:127.0.0.1:{port} <user>@<gateway-host>, then open the address above.\n")
        return 0
