# -*- test-case-name: tests.test_channel_adapter -*-
"""
The methods an out-of-process channel adapter calls (role C{channel} only):
C{channel.register}, C{channel.inbound}, C{channel.sent}, with the
L{Adapters} as their deps (bound by L{openclaw.channels.wiring}). The frames
are in docs/protocol.md ("Channel adapters").
"""

from __future__ import annotations

from openclaw.channels.adapter import frames
from openclaw.channels.adapter.channel import AdapterLink
from openclaw.channels.adapter.registry import Adapters
from openclaw.protocol.dispatch import JSON, Caller, MethodTable, Params
from openclaw.protocol.errors import INVALID_REQUEST, GatewayError

ADAPTER_METHODS: MethodTable[Adapters] = MethodTable()


def _link(caller: Caller) -> AdapterLink:
    if not isinstance(caller, AdapterLink):
        raise GatewayError(INVALID_REQUEST, "channel adapters connect over the WebSocket with role channel")
    return caller


@ADAPTER_METHODS.method("channel.register", frames.REGISTER)
def register(adapters: Adapters, caller: Caller, params: Params) -> JSON:
    return adapters.register(_link(caller), caller.version, caller.scopes, params)


@ADAPTER_METHODS.method("channel.inbound", frames.INBOUND)
def inbound(adapters: Adapters, caller: Caller, params: Params) -> JSON:
    return adapters.inbound(_link(caller), params)


@ADAPTER_METHODS.method("channel.sent", frames.SENT)
def sent(adapters: Adapters, caller: Caller, params: Params) -> JSON:
    return adapters.sent(_link(caller), params)
