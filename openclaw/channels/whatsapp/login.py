# -*- test-case-name: tests.test_whatsapp -*-
"""
C{web.login.start} and C{web.login.wait}: linking a WhatsApp account by QR,
as upstream's WhatsApp plugin offers them (scope operator.admin).

C{web.login.start {accountId?, force?, timeoutMs?}} starts the account if it
is stopped, asks for a login and answers with the first QR code
(C{qrDataUrl}, a PNG for the Control UI, and C{qr}, the code itself, which
the CLI draws in the terminal) and a C{message}; or C{connected: true} when
the account is linked already (C{force} links it anew).
Served with the L{ChannelsService} as deps (bound by L{openclaw.channels.wiring}).
C{web.login.wait {accountId?, timeoutMs?, currentQrDataUrl?}} answers when
the account is linked (C{connected: true}), when the login failed (the QR
expired), when the QR changed from C{currentQrDataUrl}, or after
C{timeoutMs} (default 120 s) with C{connected: false}.
"""

from __future__ import annotations

from typing import Any

from openclaw.channels.interfaces import ChannelError, Unsupported
from openclaw.channels.service import ChannelsService, NotFound
from openclaw.channels.whatsapp.channel import WhatsAppChannel
from openclaw.protocol.dispatch import JSON, Caller, Ignored, MethodTable, Params
from openclaw.protocol.errors import INVALID_REQUEST, UNAVAILABLE, GatewayError
from openclaw.shape import Bool, Int, Obj, Str

LOGIN_METHODS: MethodTable[ChannelsService] = MethodTable()
HALTED = ("auth-failed", "misconfigured", "error", "logged-out", "stopped", "not-configured")
START_TIMEOUT = 30.0
WAIT_TIMEOUT = 120.0
MAX_TIMEOUT = 300.0

_START = Obj({"force": Bool(), "timeoutMs": Int(0), "accountId": Str()}, closed=True)
_START_IGNORED = (Ignored("the login's progress goes to the gateway log at its configured level: no verbose switch per call", {"verbose": Bool()}),)
_WAIT = Obj({"timeoutMs": Int(0), "accountId": Str(), "currentQrDataUrl": Str()}, closed=True)


def _timeout(params: dict[str, Any], default: float) -> float:
    ms = params.get("timeoutMs")
    return min(MAX_TIMEOUT, max(1.0, ms / 1000)) if ms else default


async def _channel(channels: ChannelsService, account_id: str | None, start: bool) -> WhatsAppChannel:
    try:
        account = channels.find("whatsapp", account_id or None)
    except NotFound as e:
        raise GatewayError(INVALID_REQUEST, str(e)) from None
    if start and (not account.running or account.channel is None or account.state in HALTED):
        account = await channels.start_account("whatsapp", account.account_id)
    channel = account.channel
    if not isinstance(channel, WhatsAppChannel):
        reason = account.last_error or account.state
        raise GatewayError(UNAVAILABLE, f"WhatsApp account {account.account_id} is not running ({reason})")
    if not channel.transport.needs_link:
        raise GatewayError(INVALID_REQUEST, f"WhatsApp account {account.account_id} uses the Cloud API (channels.whatsapp.transport: cloud); it is not linked by QR")
    return channel


@LOGIN_METHODS.method("web.login.start", _START, ignored=_START_IGNORED)
async def web_login_start(channels: ChannelsService, caller: Caller, params: Params) -> JSON:
    channel = await _channel(channels, params.get("accountId"), start=True)
    try:
        return await channel.login_start(bool(params.get("force")), _timeout(params, START_TIMEOUT))
    except Unsupported as e:
        raise GatewayError(INVALID_REQUEST, str(e)) from None
    except ChannelError as e:
        raise GatewayError(UNAVAILABLE, str(e)) from None


@LOGIN_METHODS.method("web.login.wait", _WAIT)
async def web_login_wait(channels: ChannelsService, caller: Caller, params: Params) -> JSON:
    channel = await _channel(channels, params.get("accountId"), start=False)
    try:
        return await channel.login_wait(_timeout(params, WAIT_TIMEOUT), params.get("currentQrDataUrl"))
    except Unsupported as e:
        raise GatewayError(INVALID_REQUEST, str(e)) from None
    except ChannelError as e:
        raise GatewayError(UNAVAILABLE, str(e)) from None
