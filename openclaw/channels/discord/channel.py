# -*- test-case-name: tests.test_discord -*-
"""
L{DiscordChannel}: one bot account.

Start: C{GET /gateway/bot} (401 stops the account: bad token) for the
gateway URL and the identify budget, then one WebSocket connection after
another: RESUME when a session is known (kept in the journal's cursor, so a
restarted gateway resumes too and Discord replays what it missed), else
IDENTIFY. Connections that end after READY (op 7, op 9, zombie, drops)
are replaced at once; when three in a row fail before READY or soon after
it, the receive loop ends and the framework backs off. Close codes that need a fix
(4004, 4010-4014) stop the account with the fix in status.

Events are handled one after the other in sequence order; the sequence
number of the last handled one goes with each message into the journal.
Sends go to C{POST /channels/{id}/messages} (a thread is a channel), with
C{message_reference} for replies and no pings (C{allowed_mentions}).
"""

from __future__ import annotations

import platform
import random
import re
import time
from collections import OrderedDict, deque
from typing import Any, cast

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import ITCPTransport
from twisted.internet.task import deferLater
from twisted.logger import Logger
from zope.interface import implementer

from openclaw.channels.discord.connection import CONNECT_TIMEOUT, GatewayFactory, GatewayProtocol, endpoint_for, gateway_url
from openclaw.channels.discord.events import Directory, normalize, snowflake
from openclaw.channels.discord.gateway import AGAIN, CONTENT_FIX, STOP, Ending, GatewaySession, SessionState, intents_for
from openclaw.channels.discord.rest import API_BASE, Rest, describe
from openclaw.channels.interfaces import (
    AccountConfig,
    ChannelError,
    ChannelHost,
    IChannel,
    IInbound,
    Limits,
    Outbound,
    Receipt,
    Rejected,
    RetryAfter,
    Target,
    Unreachable,
)

log = Logger(namespace="openclaw.channels.discord")

# Discord: 2000 characters a message; about 5 messages per 5 s per channel, 50 requests/s per bot.
LIMITS = Limits(chunk=2000, max_text=2000, typing_every=8.0, chat_rate=1.0, chat_burst=5, account_rate=40.0, account_burst=40)
DEFAULT_TIMEOUT = 30.0
QUICK_FAILURES = 3  # connections in a row that end before READY (or soon after): then the framework backs off
SETTLED = 10.0  # a connection up this long after READY was healthy
IDENTIFY_GAP = 5.5  # Discord allows one identify per 5 s (max_concurrency 1); a margin for the handshake
MAX_IDENTIFY_WAIT = 24 * 3600.0
GATEWAY_BOT_ATTEMPTS = 5
LOOKUP_TIMEOUT = 10.0
EVENT_QUEUE_LIMIT = 5000
CURSOR_EVERY = 30.0  # persist the position at most this often when no message carries it
DM_CACHE = 1000
QUIET_LIMIT = 1000
TYPING_QUIET = 300.0  # no typing for this long where typing was refused
CLOSE_WAIT = 3.0
MAX_UPLOAD = 10 * 1024 * 1024  # Discord's default attachment limit
SUPPRESS_NOTIFICATIONS = 1 << 12
POLL_QUESTION = 300
POLL_ANSWER = 55
POLL_ANSWERS = 10
POLL_HOURS = (1, 768)
_MENTION = re.compile(r"^<@!?(\d{1,20})>$")


@implementer(IChannel)
class DiscordChannel:
    limits = LIMITS

    def __init__(
        self,
        account: AccountConfig,
        host: ChannelHost,
        token: str,
        token_source: str,
        api_base: str,
        message_content: bool = True,
        allow_bots: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
        rng: random.Random | None = None,
    ) -> None:
        self.account = account
        self.host = host
        self.reactor = host.reactor
        self.token = token
        self.token_source = token_source
        self.api_base = api_base
        self.message_content = message_content
        self.intents = intents_for(message_content)
        self.allow_bots = allow_bots
        self.rng = rng or random.Random()
        self.rest = Rest(host.reactor, api_base, token, timeout)
        self.directory = Directory()
        self.state: SessionState | None = None
        self.me: dict[str, Any] | None = None
        self.self_ids: frozenset[str] = frozenset()
        self.session: GatewaySession | None = None
        self.factory: GatewayFactory | None = None
        self.protocol: GatewayProtocol | None = None
        self.gateway: str | None = None
        self.identifies = 0
        self.resumes = 0
        self.connections = 0
        self._inbound: IInbound | None = None
        self._events: deque[tuple[str, Any, int | None]] = deque()
        self._draining = False
        self._cursor_at = 0.0
        self._identified_at: float | None = None
        self._dm: OrderedDict[str, str] = OrderedDict()  # user id → DM channel id
        self._quiet: OrderedDict[str, float] = OrderedDict()  # channel id → no typing until

    # -- receiving

    def run(self, inbound: IInbound) -> Deferred[None]:
        return Deferred.fromCoroutine(self._run(inbound))

    async def _sleep(self, seconds: float) -> None:
        await deferLater(self.reactor, seconds, lambda: None)

    async def _gateway_bot(self) -> dict[str, Any]:
        for attempt in range(GATEWAY_BOT_ATTEMPTS):
            try:
                info = await self.rest.call("GET", "/gateway/bot", "GET /gateway/bot")
            except RetryAfter as e:
                if attempt + 1 == GATEWAY_BOT_ATTEMPTS:
                    raise
                log.info("discord {account}: /gateway/bot rate limited; waiting {s:g} s", account=self.account.account_id, s=e.seconds)
                await self._sleep(min(e.seconds, 300.0))
                continue
            if not isinstance(info, dict) or not isinstance(info.get("url"), str):
                raise ChannelError("GET /gateway/bot: Discord answered without a gateway URL")
            return info
        raise ChannelError("GET /gateway/bot: no answer")

    async def _run(self, inbound: IInbound) -> None:
        self._inbound = inbound
        if self.state is None:
            self.state = SessionState.from_cursor(inbound.cursor())
        state = self.state
        info = await self._gateway_bot()
        try:
            url = gateway_url(info["url"])
        except ValueError as e:
            raise ChannelError(f"GET /gateway/bot: {e}") from None
        limit = info["session_start_limit"] if isinstance(info.get("session_start_limit"), dict) else {}
        assert isinstance(limit, dict)
        if self.me is None and state.resumable:
            await self._whoami()  # a RESUME brings no READY: learn our own id (to drop our echoes) first
        quick = 0
        while True:
            if not state.resumable:
                await self._identify_slot(limit, inbound)
            target = url
            if state.resumable and state.resume_url:
                try:
                    target = gateway_url(state.resume_url)
                except ValueError:
                    pass
            started = self.reactor.seconds()
            ending, was_ready = await self._connect(target)
            if ending.action == STOP:
                inbound.problem(str(ending.error))
                raise ending.error
            log.info("discord {account}: {reason}", account=self.account.account_id, reason=str(ending.error))
            quick = 0 if was_ready and self.reactor.seconds() - started >= SETTLED else quick + 1
            if quick >= QUICK_FAILURES:
                raise ending.error
            if quick == QUICK_FAILURES - 1 and state.resumable:
                log.info("discord {account}: resuming keeps failing; identifying afresh", account=self.account.account_id)
                state.forget()
            if ending.delay:
                await self._sleep(ending.delay)

    async def _whoami(self) -> None:
        user = await self.rest.call("GET", "/users/@me", "GET /users/@me")
        uid = snowflake(user.get("id")) if isinstance(user, dict) else None
        if uid is None:
            raise ChannelError("GET /users/@me: Discord answered without the bot's id")
        assert isinstance(user, dict)
        self.me = {"id": uid, "username": str(user.get("username") or "")}
        self.self_ids = frozenset({uid})

    async def _identify_slot(self, limit: dict[str, Any], inbound: IInbound) -> None:
        """Wait for Discord's identify budget: the daily count, and one identify per 5 s."""
        remaining = limit.get("remaining")
        if isinstance(remaining, int) and remaining <= 0:
            reset = limit.get("reset_after")
            wait = min(float(reset) / 1000.0 if isinstance(reset, (int, float)) else 60.0, MAX_IDENTIFY_WAIT)
            inbound.problem(f"Discord's daily limit of new gateway sessions is used up; identifying again in {wait:.0f} s")
            await self._sleep(wait)
            limit["remaining"] = int(limit.get("total") or 1)
        if self._identified_at is not None:
            wait = self._identified_at + IDENTIFY_GAP - self.reactor.seconds()
            if wait > 0:
                await self._sleep(wait)
        if isinstance(limit.get("remaining"), int):
            limit["remaining"] -= 1
        self._identified_at = self.reactor.seconds()

    def _session(self, protocol: GatewayProtocol) -> GatewaySession:
        assert self.state is not None
        self.session = GatewaySession(
            self.reactor,
            self.token,
            self.intents,
            self.state,
            protocol.write,
            protocol.shut,
            self._enqueue,
            self.rng,
            {"os": platform.system().lower() or "unknown", "browser": "openclaw", "device": "openclaw"},
        )
        if self.state.resumable:
            self.resumes += 1
        else:
            self.identifies += 1
        return self.session

    async def _connect(self, url: str) -> tuple[Ending, bool]:
        """One connection, until it ends: (how it ended, whether it got READY)."""
        factory = self.factory = GatewayFactory(url, self._session)
        self.session = self.protocol = None
        self.gateway = url.split("?", 1)[0]
        self.connections += 1
        try:
            self.protocol = cast(GatewayProtocol, await endpoint_for(self.reactor, url).connect(factory).addTimeout(CONNECT_TIMEOUT + 1, self.reactor))
        except CancelledError:
            raise
        except Exception as e:
            return Ending(AGAIN, ChannelError(f"cannot reach the Discord gateway: {describe(e)}")), False
        try:
            ending = await factory.ended
        except CancelledError:
            if self.session is not None:
                self.session.end(Ending(AGAIN, ChannelError("the account is stopping")))  # non-1000: resumable after a restart
            raise
        return ending, self.session is not None and self.session.reached_ready

    # -- events, in order

    def _enqueue(self, name: str, data: Any, seq: int | None) -> None:
        if len(self._events) >= EVENT_QUEUE_LIMIT:
            log.error("discord {account}: event queue full; {name} dropped", account=self.account.account_id, name=name)
            return
        self._events.append((name, data, seq))
        if not self._draining:
            self._draining = True
            Deferred.fromCoroutine(self._drain()).addErrback(lambda f: log.failure("discord: event handling crashed", f))

    async def _drain(self) -> None:
        try:
            while self._events:
                name, data, seq = self._events.popleft()
                try:
                    await self._handle(name, data, seq)
                except CancelledError:
                    raise
                except ChannelError as e:
                    log.warn("discord {account}: {name} not handled: {error}", account=self.account.account_id, name=name, error=str(e))
                except Exception:
                    log.failure("discord {account}: handling {name} failed", account=self.account.account_id, name=name)
        finally:
            self._draining = False

    async def _handle(self, name: str, data: Any, seq: int | None) -> None:
        state, inbound = self.state, self._inbound
        assert state is not None and inbound is not None
        self.directory.event(name, data)
        if name == "READY":
            user = data.get("user") if isinstance(data, dict) else None
            uid = snowflake(user.get("id")) if isinstance(user, dict) else None
            if uid is None:
                raise ChannelError("READY without the bot's user id")
            assert isinstance(user, dict)
            self.me = {"id": uid, "username": str(user.get("username") or "")}
            self.self_ids = frozenset({uid})
            state.done = seq if seq is not None else 0
            inbound.problem(None)
            inbound.connected()
            inbound.advance(state.cursor())
            self._cursor_at = self.reactor.seconds()
            return
        if name == "RESUMED":
            if seq is not None:
                state.done = seq
            inbound.problem(None)
            inbound.connected()
            return
        if name == "MESSAGE_CREATE":
            if self.me is None:
                raise ChannelError("a message arrived before the bot's own id was known")
            await self._learn_channel(data)
            message = normalize(data, self.me["id"], self.directory, self.account.account_id, self.allow_bots)
            if message is not None:
                cursor = {"sessionId": state.session_id, "seq": seq, "resumeUrl": state.resume_url} if state.session_id and seq is not None else None
                inbound.received(message, cursor)  # journaled with the position after it
                if cursor is not None:
                    self._cursor_at = self.reactor.seconds()
        if seq is not None:
            state.done = seq
            if self.reactor.seconds() - self._cursor_at >= CURSOR_EVERY:
                self._cursor_at = self.reactor.seconds()
                inbound.advance(state.cursor())

    async def _learn_channel(self, data: Any) -> None:
        """A guild message from a channel we know nothing of: ask Discord whether it is a thread."""
        if not isinstance(data, dict) or not snowflake(data.get("guild_id")):
            return
        cid = snowflake(data.get("channel_id"))
        if cid is None or self.directory.get(cid) is not None:
            return
        try:
            info = await self.rest.call("GET", f"/channels/{cid}", "GET /channels/{id}", cid, timeout=LOOKUP_TIMEOUT)
        except (Unreachable, Rejected):
            info = None
        except ChannelError as e:
            log.info("discord: channel {cid} lookup failed: {error}", cid=cid, error=str(e))
            return
        if self.directory.channel(info, snowflake(data.get("guild_id"))) is None:
            self.directory.channel({"id": cid, "type": 0, "guild_id": data.get("guild_id")})

    # -- sending

    def parse_target(self, to: str, thread_id: str | None = None, reply_to: str | None = None) -> Target:
        raw = to.strip()
        if raw.lower().startswith("discord:"):
            raw = raw[len("discord:") :]
        if ":thread:" in raw:
            raw, _, thread = raw.partition(":thread:")
            thread_id = thread_id or thread
        mention = _MENTION.match(raw)
        kind, _, rest = raw.partition(":")
        if mention:
            chat = f"user:{mention.group(1)}"
        elif kind.lower() == "user" and snowflake(rest):
            chat = f"user:{rest}"
        elif kind.lower() == "channel" and snowflake(rest):
            chat = rest
        elif snowflake(raw):
            raise ValueError(f"{to!r} is ambiguous: write channel:{raw} for a channel or user:{raw} for a direct message")
        else:
            raise ValueError(f"{to!r} is not a Discord target: use channel:<id>, user:<id> or <@id>")
        if thread_id is not None and not snowflake(thread_id):
            raise ValueError(f"thread id {thread_id!r} is not a Discord id")
        if reply_to is not None and not snowflake(reply_to):
            raise ValueError(f"reply-to {reply_to!r} is not a Discord message id")
        if thread_id and chat.startswith("user:"):
            raise ValueError("direct messages have no threads")
        return Target(chat, str(thread_id) if thread_id else None, str(reply_to) if reply_to else None)

    async def _channel_for(self, target: Target) -> str:
        """The channel id a target posts to: its thread, its channel, or a user's DM channel."""
        if target.thread_id:
            return target.thread_id
        if not target.chat_id.startswith("user:"):
            return target.chat_id
        user = target.chat_id[len("user:") :]
        known = self._dm.get(user)
        if known is not None:
            self._dm.move_to_end(user)
            return known
        channel = await self.rest.call("POST", "/users/@me/channels", "POST /users/@me/channels", "", {"recipient_id": user})
        cid = snowflake(channel.get("id")) if isinstance(channel, dict) else None
        if cid is None:
            raise ChannelError("POST /users/@me/channels: Discord answered without a channel")
        self._dm[user] = cid
        while len(self._dm) > DM_CACHE:
            self._dm.popitem(last=False)
        return cid

    def send(self, target: Target, message: Outbound) -> Deferred[Receipt]:
        return Deferred.fromCoroutine(self._send(target, message))

    async def _send(self, target: Target, message: Outbound) -> Receipt:
        cid = await self._channel_for(target)
        body: dict[str, Any] = {"allowed_mentions": {"parse": []}}
        if target.reply_to:
            body["message_reference"] = {"message_id": target.reply_to, "fail_if_not_exists": False}
        if message.silent:
            body["flags"] = SUPPRESS_NOTIFICATIONS
        text = message.text
        files = None
        media = message.media
        if media is not None and media.data is not None:
            if len(media.data) > MAX_UPLOAD:
                raise Rejected(f"the attachment is larger than Discord's {MAX_UPLOAD // (1024 * 1024)} MiB limit")
            name = media.filename or "file"
            files = [(name, media.content_type or "application/octet-stream", media.data)]
            body["attachments"] = [{"id": 0, "filename": name}]
        elif media is not None and media.url:
            text = f"{text}\n{media.url}".strip()  # Discord shows a link's preview
        if len(text) > LIMITS.max_text:
            raise Rejected(f"the message is longer than Discord's {LIMITS.max_text} characters")
        if not text.strip() and files is None:
            raise Rejected("the message is empty")
        if text:
            body["content"] = text
        result = await self.rest.call("POST", f"/channels/{cid}/messages", "POST /channels/{id}/messages", cid, body, files, timeout=120.0 if files else None)
        return self._receipt(result, target, cid)

    @staticmethod
    def _receipt(result: Any, target: Target, cid: str) -> Receipt:
        mid = snowflake(result.get("id")) if isinstance(result, dict) else None
        if mid is None:
            raise ChannelError("Discord answered a send without the message id")
        return Receipt(mid, cid if target.chat_id.startswith("user:") else target.chat_id)

    def typing(self, target: Target) -> Deferred[None]:
        return Deferred.fromCoroutine(self._typing(target))

    async def _typing(self, target: Target) -> None:
        cid = await self._channel_for(target)
        now = self.reactor.seconds()
        if self._quiet.get(cid, 0.0) > now:
            return  # refused there a moment ago: do not count more invalid requests
        try:
            await self.rest.call("POST", f"/channels/{cid}/typing", "POST /channels/{id}/typing", cid)
        except Unreachable:
            self._quiet[cid] = now + TYPING_QUIET
            while len(self._quiet) > QUIET_LIMIT:
                self._quiet.popitem(last=False)
            raise
        except RetryAfter:
            pass  # typing is best effort

    def poll(self, target: Target, question: str, options: list[str], multi: bool, duration_s: int | None) -> Deferred[Receipt]:
        return Deferred.fromCoroutine(self._poll(target, question, options, multi, duration_s))

    async def _poll(self, target: Target, question: str, options: list[str], multi: bool, duration_s: int | None) -> Receipt:
        if not 1 <= len(options) <= POLL_ANSWERS:
            raise Rejected(f"a Discord poll has 1 to {POLL_ANSWERS} options")
        hours = 24 if not duration_s else max(POLL_HOURS[0], min(POLL_HOURS[1], -(-int(duration_s) // 3600)))
        cid = await self._channel_for(target)
        body = {
            "poll": {
                "question": {"text": question[:POLL_QUESTION]},
                "answers": [{"poll_media": {"text": o[:POLL_ANSWER]}} for o in options],
                "duration": hours,
                "allow_multiselect": bool(multi),
            },
            "allowed_mentions": {"parse": []},
        }
        result = await self.rest.call("POST", f"/channels/{cid}/messages", "POST /channels/{id}/messages", cid, body)
        return self._receipt(result, target, cid)

    # -- status

    def probe(self, timeout: float) -> Deferred[dict[str, Any]]:
        return Deferred.fromCoroutine(self._probe(timeout))

    async def _probe(self, timeout: float) -> dict[str, Any]:
        started = time.monotonic()
        try:
            me = await self.rest.call("GET", "/users/@me", "GET /users/@me", timeout=timeout)
            app = await self.rest.call("GET", "/applications/@me", "GET /applications/@me", timeout=timeout)
            gateway = await self.rest.call("GET", "/gateway/bot", "GET /gateway/bot", timeout=timeout)
        except ChannelError as e:
            return {"ok": False, "error": str(e), "elapsedMs": int((time.monotonic() - started) * 1000)}
        me = me if isinstance(me, dict) else {}
        flags = app["flags"] if isinstance(app, dict) and isinstance(app.get("flags"), int) else 0
        content = "enabled" if flags & (1 << 18) else "limited" if flags & (1 << 19) else "disabled"
        limit = gateway.get("session_start_limit") if isinstance(gateway, dict) else None
        result: dict[str, Any] = {
            "ok": True,
            "bot": {"id": str(me.get("id", "")), "username": str(me.get("username", ""))},
            "messageContentIntent": content,
            "elapsedMs": int((time.monotonic() - started) * 1000),
        }
        if isinstance(limit, dict):
            result["sessionStartLimit"] = {k: limit[k] for k in ("total", "remaining", "reset_after") if isinstance(limit.get(k), int)}
        if self.message_content and content == "disabled":
            result["ok"] = False
            result["error"] = f"the Message Content Intent is off for this bot, so Discord will refuse the gateway connection (4014): {CONTENT_FIX}"
        return result

    def logout(self) -> Deferred[dict[str, Any]]:
        # A bot token has no session to end: logging out means this gateway stops using it.
        d: Deferred[dict[str, Any]] = Deferred()
        d.callback({"cleared": False})
        return d

    def snapshot(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mode": "gateway", "tokenSource": self.token_source, "intents": {"messageContent": self.message_content}}
        if self.me is not None:
            out["bot"] = dict(self.me)
        if self.api_base.rstrip("/") != API_BASE:
            out["baseUrl"] = self.api_base
        session = self.session
        gateway: dict[str, Any] = {"connections": self.connections, "identifies": self.identifies, "resumes": self.resumes}
        if self.gateway is not None:
            gateway["url"] = self.gateway
        if self.state is not None:
            gateway["resumable"] = self.state.resumable
        if session is not None and session.latency is not None:
            gateway["heartbeatLatencyMs"] = int(session.latency * 1000)
        if session is not None and session.interval is not None:
            gateway["heartbeatIntervalMs"] = int(session.interval * 1000)
        out["gateway"] = gateway
        groups = self.account.config.get("groups")
        if isinstance(groups, dict) and any(isinstance(g, dict) and g.get("requireMention") is False for g in groups.values()):
            out["allowUnmentionedGroups"] = True
        return out

    def secrets(self) -> tuple[str, ...]:
        return (self.token,)

    def close(self) -> Deferred[None]:
        return Deferred.fromCoroutine(self._close())

    async def _close(self) -> None:
        factory, session = self.factory, self.session
        if session is not None:
            session.end(Ending(AGAIN, ChannelError("the account is stopping")))
            session.stop()
        if factory is not None and not factory.is_gone:
            gone = factory.when_gone()
            timer = self.reactor.callLater(CLOSE_WAIT, gone.cancel)
            try:
                await gone
            except CancelledError:
                if self.protocol is not None and self.protocol.transport is not None:
                    cast(ITCPTransport, self.protocol.transport).abortConnection()
            finally:
                if timer.active():
                    timer.cancel()
        await self.rest.close()

