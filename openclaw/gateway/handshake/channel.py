# -*- test-case-name: tests.test_channel_adapter -*-
"""
Handshake step for role C{channel} (an out-of-process channel adapter):
which credential lets it in and which channels it may serve.

It authenticates with the gateway's shared secret (token or password;
then it may serve every adapter channel: scope C{channel:*}) or with one
channel's C{adapterToken} (then only the channels that token belongs to:
C{channel:<id>}). Device tokens never make a channel adapter. The scopes it
asks for must be C{channel:<id>} of those channels; with none asked it gets
all it may have. Anything else is refused with the reason, and the socket
closed 1008, as an invalid role is.

The channels plug in what they know with L{ChannelAdmission.use}; until
then (or while no channel is configured with C{adapter: true}) the role
is refused.
"""

from __future__ import annotations

from typing import Any

from openclaw.interfaces import ChannelAccess
from openclaw.protocol.errors import INVALID_REQUEST, HandshakeFailed

CHANNEL_TOKEN = "channel-token"
SCOPE_PREFIX = "channel:"
ANY = "channel:*"


class ChannelAdmission:
    def __init__(self) -> None:
        self._access: ChannelAccess | None = None

    def use(self, access: ChannelAccess) -> None:
        self._access = access

    def token_method(self, given: dict[str, Any]) -> str | None:
        """C{channel-token} when the connect's C{auth.token} is an adapter channel's token."""
        token = given.get("token")
        if self._access is not None and isinstance(token, str) and self._access.token_grants(token):
            return CHANNEL_TOKEN
        return None

    def scopes(self, method: str, given: dict[str, Any], requested: list[str]) -> list[str]:
        """
        The connection's scopes (C{channel:<id>}, or C{channel:*}).

        @raise HandshakeFailed: the role or a scope is not allowed.
        """
        ids = self._access.adapter_channels() if self._access is not None else frozenset()
        if not ids:
            raise HandshakeFailed(INVALID_REQUEST, "role channel is not enabled: no channel is configured with adapter: true", details={"code": "CHANNEL_ROLE_NOT_ALLOWED"})
        if method == CHANNEL_TOKEN:
            assert self._access is not None
            allowed = {SCOPE_PREFIX + c for c in self._access.token_grants(str(given.get("token") or ""))}
        elif method in ("token", "password", "none"):
            allowed = {ANY, *(SCOPE_PREFIX + c for c in ids)}
        else:
            raise HandshakeFailed(INVALID_REQUEST, f"role channel needs the gateway token or a channel's adapterToken (not {method})", details={"code": "CHANNEL_ROLE_NOT_ALLOWED"})
        for scope in requested:
            if scope not in allowed:
                raise HandshakeFailed(INVALID_REQUEST, f"scope not allowed for role channel: {scope}", details={"code": "CHANNEL_SCOPE_NOT_ALLOWED", "scope": scope})
        if requested:
            return list(dict.fromkeys(requested))
        return [ANY] if ANY in allowed else sorted(allowed)
