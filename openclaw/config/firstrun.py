# -*- test-case-name: tests.test_firstrun -*-
"""
The first run of C{openclaw gateway}: with no token or password anywhere
(flag, config, environment), make a strong token and store it in the
config, so the local CLI and the browser can use the gateway at once.

The file keeps what it had: the token is added to the parsed text (JSON5
comments are lost, C{${VAR}} references stay as written), and the write is
crash-safe (0600 file, 0700 folder). A config whose C{gateway} section
comes from an C{$include} is not rewritten: the user is told what to set.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from openclaw.config.errors import ConfigError, Issue
from openclaw.config.loader import LoadedConfig, parse_json5, read_text
from openclaw.config.settings import AuthSettings
from openclaw.store import atomic_write

TOKEN_BYTES = 32


class CannotStoreToken(Exception):
    """The config can't take a generated token; the message says what to set instead."""


def needs_token(auth: AuthSettings) -> bool:
    """Token mode with no token, and no password either: every client would be refused."""
    return auth.mode == "token" and not auth.token and not auth.password


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def store_token(loaded: LoadedConfig, token: str) -> None:
    """
    Write C{token} as C{gateway.auth.token} into the config file (created,
    with C{gateway.mode: "local"}, when there is none).

    @raise CannotStoreToken: the file's C{gateway} or C{gateway.auth} is not
        a plain object in that file (an include, another type).
    """
    if not loaded.exists:
        config: dict[str, Any] = {"gateway": {"mode": "local", "auth": {"mode": "token", "token": token}}}
    else:
        raw = parse_json5(read_text(loaded.path), loaded.path)
        if not isinstance(raw, dict) or "$include" in raw:
            raise CannotStoreToken(f"{loaded.path} is assembled from includes; set gateway.auth.token yourself")
        config = raw
        gateway = config.setdefault("gateway", {})
        if not isinstance(gateway, dict) or "$include" in gateway:
            raise CannotStoreToken(f"gateway in {loaded.path} is not a plain object; set gateway.auth.token yourself")
        auth = gateway.setdefault("auth", {})
        if not isinstance(auth, dict) or "$include" in auth:
            raise CannotStoreToken(f"gateway.auth in {loaded.path} is not a plain object; set gateway.auth.token yourself")
        auth["token"] = token
        auth.setdefault("mode", "token")
    atomic_write(loaded.path, (json.dumps(config, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


def store_or_explain(loaded: LoadedConfig, token: str) -> None:
    """L{store_token}, with a refusal turned into a config error naming the key."""
    try:
        store_token(loaded, token)
    except CannotStoreToken as e:
        raise ConfigError([Issue("gateway.auth.token", str(e))], path=loaded.path) from None
