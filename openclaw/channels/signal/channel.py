# -*- test-case-name: tests.test_signal -*-
"""
L{SignalChannel}: one Signal account on a signal-cli daemon's HTTP API.

Start: C{GET /api/v1/check}, then the event stream C{GET /api/v1/events}
with C{Last-Event-ID} set to the journaled event id, so events the daemon
still holds (its last 1000) that arrived while the gateway was away are
delivered; the framework drops the ones already seen by (chat, timestamp).
A stream that ends, drops, or goes silent past C{idleTimeoutSeconds}
(signal-cli sends a keepalive every 15 s) ends the loop, and the framework
reconnects with backoff. A daemon that does not have the account stops it
with the reason in status.

Sends: C{send} with C{recipient: [...]}, C{username: [...]} or C{groupId};
a reply quotes the question (C{quoteTimestamp}/C{quoteAuthor}).
Attachments go as data URIs. Typing: C{sendTyping}, stopped with
C{stop: true}.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections import OrderedDict
from typing import Any

from treq.client import HTTPClient
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.web.client import Agent, HTTPConnectionPool
from zope.interface import implementer

from openclaw.agent.sse import Event
from openclaw.channels.interfaces import (
    AccountConfig,
    ChannelError,
    ChannelHost,
    IChannel,
    IInbound,
    ITypingStop,
    Limits,
    Media,
    Outbound,
    Receipt,
    Rejected,
    Target,
    Unsupported,
)
from openclaw.channels.signal.api import Conflict, SignalApi, Discard, describe, read_bounded
from openclaw.channels.signal.events import UUID, normalize

log = Logger(namespace="openclaw.channels.signal")

LIMITS = Limits(chunk=4000, max_text=16000, typing_every=10.0, chat_rate=1.0, chat_burst=3, account_rate=5.0, account_burst=10)
DEFAULT_TIMEOUT = 30.0
DEFAULT_IDLE = 60.0
DEFAULT_MEDIA_MB = 8
AUTHORS_KEPT = 2000
_E164 = re.compile(r"^\+[1-9][0-9]{4,17}$")
_GROUP_ID = re.compile(r"^[A-Za-z0-9+/_-]{8,200}={0,2}$")
_USERNAME = re.compile(r"^[A-Za-z0-9_]{3,40}(\.[0-9]{2,10})?$")


def kind_of(chat_id: str) -> str:
    """C{number}, C{uuid}, C{username} or C{group}: how a chat id is addressed."""
    if chat_id.startswith("+"):
        return "number"
    if chat_id.startswith("uuid:"):
        return "uuid"
    if chat_id.startswith("username:"):
        return "username"
    return "group"


@implementer(IChannel, ITypingStop)
class SignalChannel:
    limits = LIMITS

    def __init__(self, account: AccountConfig, host: ChannelHost, base_url: str, number: str | None) -> None:
        self.account = account
        self.reactor = host.reactor
        self.base_url = base_url
        self.number = number
        config = account.config
        self.timeout = float(_number(config.get("timeoutSeconds"), DEFAULT_TIMEOUT, 1, 600))
        self.idle = float(_number(config.get("idleTimeoutSeconds"), DEFAULT_IDLE, 1, 3600))
        self.media_max = int(_number(config.get("mediaMaxMb"), DEFAULT_MEDIA_MB, 1, 100)) * 1024 * 1024
        self.api = SignalApi(host.reactor, base_url, number)
        self.self_ids: frozenset[str] = frozenset({number} if number else ())
        self._authors: OrderedDict[tuple[str, str], str] = OrderedDict()  # (chat, timestamp) → author, for quotes
        self._sink: IInbound | None = None
        self.last_event_id: str | None = None
        self.events = 0

    # -- receiving

    def run(self, inbound: IInbound) -> Deferred[None]:
        return Deferred.fromCoroutine(self._run(inbound))

    async def _run(self, inbound: IInbound) -> None:
        self._sink = inbound
        try:
            await self.api.check(self.timeout)
            last = inbound.cursor()
            stream = await self.api.events(last if isinstance(last, str) else None, lambda e: self._event(e, inbound), self.timeout, self.idle)
        except Conflict as e:
            inbound.problem(str(e))
            raise
        except ChannelError as e:
            if "cannot reach" in str(e):
                inbound.problem(f"{e} — is `signal-cli -a {self.number or '+NUMBER'} daemon --http HOST:PORT` running there?")
            raise
        inbound.problem(None)
        inbound.connected()
        await stream

    def _event(self, event: Event, inbound: IInbound) -> None:
        self.events += 1
        cursor = event.id or None
        if event.event not in ("receive", "message"):
            if cursor:
                inbound.advance(cursor)
            return
        try:
            value = json.loads(event.data)
        except ValueError:
            log.warn("signal {account}: skipped an event that is not JSON", account=self.account.account_id)
            value = None
        if isinstance(value, dict) and "envelope" not in value and isinstance(value.get("params"), dict):
            value = value["params"]  # a JSON-RPC notification body, as signal-cli writes on sockets
        theirs = value.get("account") if isinstance(value, dict) else None
        message = None
        if not (isinstance(theirs, str) and self.number and theirs != self.number):
            message = normalize(value, self.number, account_id=self.account.account_id)
        if message is not None:
            self._remember(message.chat_id, message.message_id, message.sender_id)
            inbound.received(message, cursor)
        elif cursor:
            inbound.advance(cursor)
        if cursor:
            self.last_event_id = cursor

    def _remember(self, chat: str, stamp: str, author: str) -> None:
        self._authors[(chat, stamp)] = author
        while len(self._authors) > AUTHORS_KEPT:
            self._authors.popitem(last=False)

    # -- sending

    def parse_target(self, to: str, thread_id: str | None = None, reply_to: str | None = None) -> Target:
        raw = to.strip()
        if raw.lower().startswith("signal:"):
            raw = raw[7:].strip()
        lowered = raw.lower()
        if reply_to is not None and not str(reply_to).isdigit():
            raise ValueError(f"reply-to {reply_to!r} is not a Signal message timestamp")
        reply = str(reply_to) if reply_to else None
        if lowered.startswith("group:"):
            group = raw[6:].strip()
            if not _GROUP_ID.match(group):
                raise ValueError(f"{to!r}: not a Signal group id")
            return Target(group, None, reply)
        if lowered.startswith("uuid:"):
            raw = raw[5:].strip()
            if not UUID.match(raw):
                raise ValueError(f"{to!r}: not a UUID")
            return Target(f"uuid:{raw.lower()}", None, reply)
        if UUID.match(raw):
            return Target(f"uuid:{raw.lower()}", None, reply)
        if lowered.startswith("username:"):
            name = raw[9:].strip().lstrip("@")
            if not _USERNAME.match(name):
                raise ValueError(f"{to!r}: not a Signal username")
            return Target(f"username:{name}", None, reply)
        number = re.sub(r"[\s().-]", "", raw)
        if _E164.match(number):
            return Target(number, None, reply)
        raise ValueError(f"{to!r} is not a Signal number (+E.164), uuid:<id>, username:<name> or group:<id>")

    def _address(self, chat_id: str) -> dict[str, Any]:
        kind = kind_of(chat_id)
        if kind == "number":
            return {"recipient": [chat_id]}
        if kind == "uuid":
            return {"recipient": [chat_id[5:]]}
        if kind == "username":
            return {"username": [chat_id[9:]]}
        return {"groupId": chat_id}

    def send(self, target: Target, message: Outbound) -> Deferred[Receipt]:
        return Deferred.fromCoroutine(self._send(target, message))

    async def _send(self, target: Target, message: Outbound) -> Receipt:
        params = self._address(target.chat_id)
        if message.text:
            params["message"] = message.text
        if message.media is not None:
            params["attachments"] = [await self._data_uri(message.media)]
        elif not message.text.strip():
            raise Rejected("empty message")
        if target.reply_to and target.reply_to.isdigit():
            author = self._authors.get((target.chat_id, target.reply_to))
            if author is None and kind_of(target.chat_id) in ("number", "uuid"):
                author = target.chat_id  # in a DM the question came from the chat itself
            if author is not None:
                params["quoteTimestamp"] = int(target.reply_to)
                params["quoteAuthor"] = author[5:] if author.startswith("uuid:") else author
        result = await self.api.rpc("send", params, timeout=max(self.timeout, 60.0) if message.media else self.timeout)
        stamp = result.get("timestamp") if isinstance(result, dict) else None
        if not isinstance(stamp, int):
            raise ChannelError("send: signal-cli did not say when the message went out")
        self._remember(target.chat_id, str(stamp), self.number or "")
        return Receipt(str(stamp), target.chat_id)

    async def _data_uri(self, media: Media) -> str:
        data, ctype, name = media.data, media.content_type, media.filename
        if data is None:
            if not media.url or not media.url.lower().startswith(("http://", "https://")):
                raise Rejected("Signal attachments need bytes or an http(s) URL")
            data, fetched_type = await self._download(media.url)
            ctype = ctype or fetched_type
            name = name or media.url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] or None
        if len(data) > self.media_max:
            raise Rejected(f"the attachment is larger than channels.signal.mediaMaxMb ({self.media_max // (1024 * 1024)} MB)")
        head = f"data:{ctype or 'application/octet-stream'}"
        if name:
            head += ";filename=" + re.sub(r"[;,\s]", "_", name)[:100]
        return f"{head};base64,{base64.b64encode(data).decode()}"

    async def _download(self, url: str) -> tuple[bytes, str | None]:
        pool = HTTPConnectionPool(self.reactor, persistent=False)
        client = HTTPClient(Agent(self.reactor, pool=pool))

        async def fetch() -> tuple[bytes, str | None]:
            try:
                response = await client.get(url)
                if response.code != 200:
                    response.deliverBody(Discard())
                    raise Rejected(f"fetching the attachment failed: HTTP {response.code}")
                body = await read_bounded(response, self.media_max, "the attachment (channels.signal.mediaMaxMb)")
            except (Rejected, ChannelError):
                raise
            except Exception as e:
                raise ChannelError(f"fetching the attachment failed: {describe(e)}") from None
            ctype = (response.headers.getRawHeaders(b"content-type") or [b""])[0].decode("latin-1").split(";")[0].strip() or None
            return body, ctype

        return await self.api._timed("attachment download", fetch(), max(self.timeout, 60.0))

    def typing(self, target: Target) -> Deferred[None]:
        return Deferred.fromCoroutine(self._typing(target, False))

    def typing_stop(self, target: Target) -> Deferred[None]:
        return Deferred.fromCoroutine(self._typing(target, True))

    async def _typing(self, target: Target, stop: bool) -> None:
        if kind_of(target.chat_id) == "username":
            return  # sendTyping takes recipients and groups only
        params = self._address(target.chat_id)
        if stop:
            params["stop"] = True
        await self.api.rpc("sendTyping", params, timeout=min(self.timeout, 10.0))

    def poll(self, target: Target, question: str, options: list[str], multi: bool, duration_s: int | None) -> Deferred[Receipt]:
        d: Deferred[Receipt] = Deferred()
        d.errback(Unsupported("Signal polls are not supported here"))
        return d

    # -- status

    def probe(self, timeout: float) -> Deferred[dict[str, Any]]:
        return Deferred.fromCoroutine(self._probe(timeout))

    async def _probe(self, timeout: float) -> dict[str, Any]:
        started = time.monotonic()
        try:
            await self.api.check(timeout)
            version = await self.api.rpc("version", {}, timeout=timeout)
        except ChannelError as e:
            return {"ok": False, "error": str(e), "elapsedMs": int((time.monotonic() - started) * 1000)}
        out: dict[str, Any] = {"ok": True, "elapsedMs": int((time.monotonic() - started) * 1000)}
        if isinstance(version, dict) and isinstance(version.get("version"), str):
            out["version"] = version["version"][:50]
        return out

    def logout(self) -> Deferred[dict[str, Any]]:
        d: Deferred[dict[str, Any]] = Deferred()
        d.callback({"cleared": False})  # the linked device stays linked; the gateway stops using it
        return d

    def snapshot(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mode": "http", "baseUrl": self.base_url}
        if self.number:
            out["account"] = self.number
        if self.last_event_id:
            out["lastEventId"] = self.last_event_id
        return out

    def secrets(self) -> tuple[str, ...]:
        return ()

    def close(self) -> Deferred[None]:
        return self.api.close()


def _number(value: Any, default: float, low: float, high: float) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= high:
        return value
    return default
