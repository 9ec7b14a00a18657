# -*- test-case-name: tests.test_channels_gateway -*-
"""
The channel methods: C{channels.status|start|stop|logout},
C{channels.pairing.list|approve|dismiss}, C{send} and C{poll}, served with
the L{ChannelsService} as their deps (bound by L{openclaw.channels.wiring}).

Params are checked against closed shapes (as upstream's schemas); a caller's
mistake (unknown channel, bad target, unknown request) is C{INVALID_REQUEST},
a channel that cannot deliver is C{UNAVAILABLE}.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Awaitable, Callable, TypeVar

from openclaw.channels.account import AccountService
from openclaw.channels.interfaces import ChannelError, Media, Unsupported
from openclaw.channels.service import ChannelsService, NotFound
from openclaw.protocol.dispatch import JSON, Caller, Ignored, MethodTable, Params
from openclaw.protocol.errors import INVALID_REQUEST, UNAVAILABLE, GatewayError
from openclaw.shape import Bool, Int, List, Obj, Str

CHANNEL_METHODS: MethodTable[ChannelsService] = MethodTable()
method = CHANNEL_METHODS.method
MAX_MEDIA_BYTES = 20 * 1024 * 1024
MAX_MEDIA_ITEMS = 10

T = TypeVar("T")

_ID = Str(nonempty=True)


def _gateway_error(e: Exception) -> GatewayError:
    if isinstance(e, (NotFound, Unsupported, ValueError)):
        return GatewayError(INVALID_REQUEST, str(e))
    return GatewayError(UNAVAILABLE, str(e))


async def _call(work: Callable[[], Awaitable[T]]) -> T:
    try:
        return await work()
    except (ChannelError, ValueError) as e:
        raise _gateway_error(e) from None


def _now(work: Callable[[], T]) -> T:
    try:
        return work()
    except (ChannelError, ValueError) as e:
        raise _gateway_error(e) from None


# -- status and accounts


@method("channels.status", Obj({"probe": Bool(), "timeoutMs": Int(0), "channel": Str(nonempty=True)}, closed=True))
async def channels_status(channels: ChannelsService, caller: Caller, params: Params) -> JSON:
    timeout = max(1.0, (params.get("timeoutMs") or 10_000) / 1000)
    return await channels.status(bool(params.get("probe")), min(timeout, 60.0), params.get("channel"))


_ACCOUNT = Obj({"channel": _ID, "accountId": Str()}, required=("channel",), closed=True)


def _account_row(account: AccountService) -> dict[str, Any]:
    return {"channel": account.channel_id, "accountId": account.account_id, "status": account.snapshot()}


@method("channels.start", _ACCOUNT)
async def channels_start(channels: ChannelsService, caller: Caller, params: Params) -> JSON:
    account = await _call(lambda: channels.start_account(params["channel"], params.get("accountId") or None))
    return {"ok": True, **_account_row(account)}


@method("channels.stop", _ACCOUNT)
async def channels_stop(channels: ChannelsService, caller: Caller, params: Params) -> JSON:
    account = await _call(lambda: channels.stop_account(params["channel"], params.get("accountId") or None))
    return {"ok": True, **_account_row(account)}


@method("channels.logout", _ACCOUNT)
async def channels_logout(channels: ChannelsService, caller: Caller, params: Params) -> JSON:
    result = await _call(lambda: channels.logout(params["channel"], params.get("accountId") or None))
    return {"ok": True, **result}


# -- DM pairing


@method("channels.pairing.list", Obj({"channel": _ID, "accountId": _ID}, closed=True))
def pairing_list(channels: ChannelsService, caller: Caller, params: Params) -> JSON:
    return _now(lambda: channels.pairing_list(params.get("channel"), params.get("accountId")))


_PAIRING_APPROVE = Obj(
    {"channel": _ID, "accountId": _ID, "requestId": _ID, "notify": Bool(), "bootstrapCommandOwner": Bool()},
    required=("channel", "accountId", "requestId"),
    closed=True,
)


@method("channels.pairing.approve", _PAIRING_APPROVE)
async def pairing_approve(channels: ChannelsService, caller: Caller, params: Params) -> JSON:
    result = await _call(lambda: channels.pairing_approve(params["channel"], params["accountId"], params["requestId"], notify=bool(params.get("notify"))))
    if params.get("bootstrapCommandOwner"):
        result["commandOwnerBootstrap"] = "unavailable"  # this gateway has no command owners
    return {k: result[k] for k in ("requestId", "senderId", "notification", "commandOwnerBootstrap")}


@method("channels.pairing.dismiss", Obj({"channel": _ID, "accountId": _ID, "requestId": _ID}, required=("channel", "accountId", "requestId"), closed=True))
def pairing_dismiss(channels: ChannelsService, caller: Caller, params: Params) -> JSON:
    return _now(lambda: channels.pairing_dismiss(params["channel"], params["accountId"], params["requestId"]))


# -- sending


_SEND = Obj(
    {
        "to": _ID,
        "idempotencyKey": _ID,
        "message": Str(),
        "mediaUrl": Str(),
        "mediaUrls": List(Str()),
        "buffer": Str(),
        "filename": Str(),
        "contentType": Str(),
        "asVoice": Bool(),
        "channel": Str(),
        "accountId": Str(),
        "agentId": Str(),
        "replyToId": Str(),
        "threadId": Str(),
        "silent": Bool(),
        "sessionKey": Str(),
    },
    required=("to", "idempotencyKey"),
    closed=True,
)
_SEND_IGNORED = (
    Ignored(
        "each platform sends media by their type and formats text its own way: no GIF playback, forced documents or parse mode to choose",
        {"gifPlayback": Bool(), "forceDocument": Bool(), "parseMode": Str(("HTML",))},
    ),
)


def media_of(params: dict[str, Any]) -> list[Media]:
    """The attachments a C{send} names: http(s) URLs, or one base64 C{buffer}."""
    urls = ([params["mediaUrl"]] if params.get("mediaUrl") else []) + list(params.get("mediaUrls") or [])
    items = []
    for url in urls[:MAX_MEDIA_ITEMS]:
        if not url.lower().startswith(("http://", "https://")):
            raise GatewayError(INVALID_REQUEST, "invalid send params: media URLs must be http(s)")
        items.append(Media(url=url, as_voice=bool(params.get("asVoice"))))
    if params.get("buffer"):
        try:
            data = base64.b64decode(params["buffer"], validate=True)
        except (binascii.Error, ValueError):
            raise GatewayError(INVALID_REQUEST, "invalid send params: buffer is not base64") from None
        if len(data) > MAX_MEDIA_BYTES:
            raise GatewayError(INVALID_REQUEST, f"invalid send params: buffer is over {MAX_MEDIA_BYTES // (1024 * 1024)} MB")
        items.append(Media(data=data, filename=params.get("filename") or "file", content_type=params.get("contentType"), as_voice=bool(params.get("asVoice"))))
    return items


@method("send", _SEND, ignored=_SEND_IGNORED)
async def send(channels: ChannelsService, caller: Caller, params: Params) -> JSON:
    media = media_of(params)
    text = params.get("message") or ""
    if not text.strip() and not media:
        raise GatewayError(INVALID_REQUEST, "invalid send params: give message or media")
    session = params.get("sessionKey") or f"agent:{params.get('agentId') or 'main'}:main"
    account, target = _now(lambda: channels.resolve(params.get("channel") or None, params.get("accountId") or None, params["to"], params.get("threadId"), params.get("replyToId"), session))
    result = await _call(lambda: channels.send(f"send:{params['idempotencyKey']}", account, target, text, media, bool(params.get("silent"))))
    return {"runId": params["idempotencyKey"], **result}


_POLL = Obj(
    {
        "to": _ID,
        "question": _ID,
        "options": List(_ID),
        "maxSelections": Int(1, 12),
        "durationSeconds": Int(1, 604800),
        "durationHours": Int(1),
        "threadId": Str(),
        "channel": Str(),
        "accountId": Str(),
        "idempotencyKey": _ID,
    },
    required=("to", "question", "options", "idempotencyKey"),
    closed=True,
)
_POLL_IGNORED = (Ignored("polls go out with the platform's defaults: no silent delivery or anonymity to choose", {"silent": Bool(), "isAnonymous": Bool()}),)


@method("poll", _POLL, ignored=_POLL_IGNORED)
async def poll(channels: ChannelsService, caller: Caller, params: Params) -> JSON:
    options = params["options"]
    if not 2 <= len(options) <= 12:
        raise GatewayError(INVALID_REQUEST, "invalid poll params: options must hold 2 to 12 choices")
    duration = params.get("durationSeconds") or (params["durationHours"] * 3600 if params.get("durationHours") else None)
    account, target = _now(lambda: channels.resolve(params.get("channel") or None, params.get("accountId") or None, params["to"], params.get("threadId")))
    result = await _call(lambda: channels.poll(account, target, params["question"], options, (params.get("maxSelections") or 1) > 1, duration))
    return {"runId": params["idempotencyKey"], **result}
