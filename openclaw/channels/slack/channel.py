# -*- test-case-name: tests.test_slack -*-
"""
L{SlackChannel}: one Slack app (workspace install).

Start: C{auth.test} with the bot token (a refused token stops the account)
for the bot's own user id, then either Socket Mode (L{Link}: a fresh
C{apps.connections.open} URL per connection, with the app token) or the
HTTP Events API on the gateway port (L{EventsResource}: Slack's request
signature checked, failing closed without a signing secret).

Each event is kept by the framework (journal on disk) before Slack is told
it arrived — the envelope's ack, or the HTTP 200 — and the agent's work is
only scheduled, so the ack is never late because of it. Redeliveries are
dropped: by C{event_id} here, and by the message's C{ts} in the journal
(across restarts too).

Replies go out with C{chat.postMessage} as mrkdwn, in the message's thread
when it had one (C{thread_ts}), or in a new thread under it with
C{replyToMode: first|all}. Slack bots cannot show a typing indicator: the
Web API has no method for it and Socket Mode only receives, so none is sent.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any, Callable
from urllib.parse import parse_qs

from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import Request
from zope.interface import implementer

from openclaw.channels.interfaces import (
    AccountConfig,
    ChannelError,
    ChannelHost,
    ConfigProblem,
    IChannel,
    IInbound,
    Limits,
    Outbound,
    Receipt,
    Rejected,
    RetryAfter,
    Target,
    Unsupported,
)
from openclaw.channels.slack.api import WebApi
from openclaw.channels.slack.events import BotUser, Recent, is_ts, normalize
from openclaw.channels.slack.format import to_mrkdwn
from openclaw.channels.slack.signing import check
from openclaw.channels.slack.socket import Link

log = Logger(namespace="openclaw.channels.slack")

# 4000: Slack's advice for one message; 8000 escaped is still within its 40,000 (see format.py).
LIMITS = Limits(chunk=4000, max_text=8000, typing_every=None, chat_rate=1.0, chat_burst=3, account_rate=5.0, account_burst=20, reply_mode="off")
API_BASE = "https://slack.com/api"
WEBHOOK_PATH = "/slack/events"
WEBHOOK_MAX_BODY = 1024 * 1024
DEFAULT_TIMEOUT = 30.0
OPEN_ATTEMPTS = 5  # apps.connections.open answered 429 this often in a row: let the framework back off
EVENT_MEMORY = 2000
SLASH_REPLY = "OpenClaw does not take slash commands yet: mention the bot in a channel or send it a direct message."
_ID = re.compile(r"^[CDGUW][A-Z0-9]{2,40}$")

Keep = Callable[[Any, int, str], None]  # (events_api payload, retry attempt, retry reason); raises when not kept


class EventsResource(Resource):
    """C{POST <webhookPath>}: the Events API, slash commands and interactivity, signed by Slack."""

    isLeaf = True

    def __init__(self, secret: str, clock: IReactorTime, keep: Keep) -> None:
        super().__init__()
        self._secret = secret
        self._clock = clock
        self._keep = keep
        self.open = True

    def _answer(self, request: Request, code: int, body: dict[str, Any] | None = None) -> bytes:
        request.setResponseCode(code)
        if body is None:
            return b""
        request.setHeader(b"Content-Type", b"application/json")
        return json.dumps(body).encode()

    def render_POST(self, request: Request) -> bytes:
        content = request.content
        body = content.read(WEBHOOK_MAX_BODY + 1) if content is not None else b""
        if len(body) > WEBHOOK_MAX_BODY:
            return self._answer(request, 413, {"ok": False, "error": "too large"})
        why = check(self._secret, request.getHeader(b"x-slack-request-timestamp"), request.getHeader(b"x-slack-signature"), body, self._clock.seconds())
        if why is not None:
            log.info("slack events: refused a request: {why}", why=why)
            return self._answer(request, 401, {"ok": False, "error": "bad signature"})
        request.authenticated = True  # type: ignore[attr-defined]
        if not self.open:
            return self._answer(request, 503, {"ok": False, "error": "the channel is stopped"})
        ctype = (request.getHeader(b"content-type") or b"").split(b";")[0].strip().lower()
        if ctype != b"application/json":
            form = parse_qs(body.decode("utf-8", "replace"))
            if "command" in form:  # a slash command: the answer is shown to its user only
                return self._answer(request, 200, {"response_type": "ephemeral", "text": SLASH_REPLY})
            return self._answer(request, 200)  # interactivity: acknowledged
        try:
            payload = json.loads(body)
        except ValueError:
            return self._answer(request, 400, {"ok": False, "error": "not JSON"})
        if not isinstance(payload, dict):
            return self._answer(request, 400, {"ok": False, "error": "not an object"})
        if payload.get("type") == "url_verification":
            return self._answer(request, 200, {"challenge": str(payload.get("challenge") or "")})
        if payload.get("type") == "event_callback":
            attempt = request.getHeader(b"x-slack-retry-num")
            reason = (request.getHeader(b"x-slack-retry-reason") or b"").decode("ascii", "replace")[:50]
            try:
                self._keep(payload, int(attempt) if attempt and attempt.isdigit() else 0, reason)
            except Exception:
                log.failure("slack events: could not keep the event; Slack will deliver it again")
                return self._answer(request, 500, {"ok": False, "error": "try again"})
        return self._answer(request, 200)

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"Allow", b"POST")
        return self._answer(request, 405, {"ok": False, "error": "POST only"})


@implementer(IChannel)
class SlackChannel:
    limits = LIMITS

    def __init__(self, account: AccountConfig, host: ChannelHost, tokens: dict[str, tuple[str | None, str]], api_base: str, mode: str) -> None:
        self.account = account
        self.host = host
        self.reactor = host.reactor
        self.bot_token, self.bot_token_source = tokens["botToken"]
        self.app_token, self.app_token_source = tokens.get("appToken", (None, "none"))
        self.api_base = api_base
        self.mode = mode
        self.api = WebApi(host.reactor, api_base)
        config = account.config
        timeout = config.get("timeoutSeconds")
        self.timeout = float(timeout) if isinstance(timeout, int) and not isinstance(timeout, bool) and 1 <= timeout <= 600 else DEFAULT_TIMEOUT
        self.signing_secret = str(config.get("signingSecret") or "").strip()
        default_path = WEBHOOK_PATH if account.account_id == "default" else f"{WEBHOOK_PATH}-{account.account_id}"
        self.webhook_path = str(config.get("webhookPath") or default_path)
        self.bot: BotUser | None = None
        self.self_ids: frozenset[str] = frozenset()
        self.link: Link | None = None
        self.app_id: str | None = None
        self._events: Recent[str, bool] = Recent(EVENT_MEMORY)
        self._types: Recent[str, str] = Recent(EVENT_MEMORY)

    # -- receiving

    def run(self, inbound: IInbound) -> Deferred[None]:
        return Deferred.fromCoroutine(self._run(inbound))

    async def _hello(self, timeout: float | None = None) -> BotUser:
        assert self.bot_token is not None
        value = await self.api.call("auth.test", self.bot_token, timeout=timeout or self.timeout)
        try:
            return BotUser.from_auth(value)
        except ValueError as e:
            raise ChannelError(f"auth.test: {e}") from None

    async def _run(self, inbound: IInbound) -> None:
        bot = await self._hello()
        self.bot = bot
        self.self_ids = frozenset({bot.user_id})
        if self.mode == "http":
            await self._http(inbound)
            return
        link = Link(self.reactor, lambda: Deferred.fromCoroutine(self._socket_url()), lambda envelope: self._envelope(inbound, envelope), lambda hello: self._up(inbound, hello))
        self.link = link
        await link.run()

    async def _socket_url(self) -> str:
        assert self.app_token is not None
        for attempt in range(1, OPEN_ATTEMPTS + 1):
            try:
                value = await self.api.call("apps.connections.open", self.app_token, timeout=self.timeout, token_name="appToken")
            except RetryAfter as e:
                if attempt == OPEN_ATTEMPTS:
                    raise
                log.info("slack {account}: apps.connections.open rate limited; waiting {s:g} s", account=self.account.account_id, s=e.seconds)
                await deferLater(self.reactor, min(e.seconds, 300.0), lambda: None)
                continue
            url = value.get("url")
            if not isinstance(url, str) or not url:
                raise ChannelError("apps.connections.open: Slack answered without a URL")
            return url
        raise ChannelError("apps.connections.open: rate limited")  # not reached

    def _up(self, inbound: IInbound, hello: dict[str, Any]) -> None:
        info = hello.get("connection_info")
        if isinstance(info, dict) and isinstance(info.get("app_id"), str):
            self.app_id = info["app_id"][:40]
        inbound.problem(None)
        inbound.connected()

    def _envelope(self, inbound: IInbound, envelope: dict[str, Any]) -> dict[str, Any] | None:
        """The ack for a Socket Mode envelope, once what it carries is kept; None leaves it for Slack to resend."""
        ack: dict[str, Any] = {"envelope_id": envelope["envelope_id"]}
        kind = envelope.get("type")
        if kind == "events_api":
            attempt = envelope.get("retry_attempt")
            try:
                self._keep(inbound, envelope.get("payload"), attempt if isinstance(attempt, int) else 0, str(envelope.get("retry_reason") or "")[:50])
            except ChannelError as e:
                log.warn("slack {account}: event not kept ({error}); Slack will deliver it again", account=self.account.account_id, error=str(e))
                return None
            except Exception:
                log.failure("slack {account}: could not keep an event; Slack will deliver it again", account=self.account.account_id)
                return None
        elif kind == "slash_commands" and envelope.get("accepts_response_payload"):
            ack["payload"] = {"response_type": "ephemeral", "text": SLASH_REPLY}
        return ack

    def _keep(self, inbound: IInbound, payload: Any, attempt: int, reason: str) -> None:
        """Hand an events_api payload's message to the framework (kept on disk when this returns)."""
        assert self.bot is not None
        event_id = payload.get("event_id") if isinstance(payload, dict) and isinstance(payload.get("event_id"), str) else None
        if attempt:
            log.info("slack {account}: Slack delivered event {event} again (attempt {attempt}, {reason})", account=self.account.account_id, event=event_id, attempt=attempt, reason=reason or "no reason")
        if event_id is not None and event_id in self._events:
            return
        message = normalize(payload, self.bot, self._types, account_id=self.account.account_id)
        if message is not None:
            inbound.received(message)
        if event_id is not None:
            self._events.put(event_id, True)

    async def _http(self, inbound: IInbound) -> None:
        if not self.signing_secret:
            raise ConfigProblem(
                "HTTP mode needs channels.slack.signingSecret (the app's Basic Information → Signing Secret); without it anyone could post events"
            )
        resource = EventsResource(self.signing_secret, self.reactor, lambda payload, attempt, reason: self._keep(inbound, payload, attempt, reason))
        try:
            self.host.routes.route(self.webhook_path, resource)
        except ValueError as e:
            raise ConfigProblem(f"channels.slack.webhookPath: {e}") from None
        try:
            inbound.problem(None)
            inbound.connected()
            await Deferred()  # until cancelled: events arrive on the route
        finally:
            resource.open = False
            self.host.routes.unroute(self.webhook_path)

    # -- sending

    def parse_target(self, to: str, thread_id: str | None = None, reply_to: str | None = None) -> Target:
        raw = to.strip()
        if raw.lower().startswith("slack:"):
            raw = raw[len("slack:") :]
        if ":thread:" in raw:
            raw, _, thread = raw.partition(":thread:")
            thread_id = thread_id or thread
        for prefix in ("user:", "channel:"):
            if raw.lower().startswith(prefix):
                raw = raw[len(prefix) :]
                break
        if not _ID.match(raw):
            raise ValueError(f"{to!r} is not a Slack conversation or user id: use channel:C0123ABC, user:U0123ABC or a D…/G… id")
        for name, value in (("thread id", thread_id), ("reply-to", reply_to)):
            if value is not None and not is_ts(str(value)):
                raise ValueError(f"{name} {value!r} is not a Slack message ts such as 1712345678.000100")
        return Target(raw, str(thread_id) if thread_id else None, str(reply_to) if reply_to else None)

    def send(self, target: Target, message: Outbound) -> Deferred[Receipt]:
        return Deferred.fromCoroutine(self._send(target, message))

    async def _send(self, target: Target, message: Outbound) -> Receipt:
        text = message.text
        if message.media is not None:
            if not message.media.url:
                raise Unsupported("uploading files to Slack is not supported yet: send a link (mediaUrl) instead")
            text = f"{text}\n{message.media.url}".strip()
        if not text.strip():
            raise Rejected("the message is empty")
        params: dict[str, Any] = {"channel": target.chat_id, "text": to_mrkdwn(text), "mrkdwn": True}
        thread = target.thread_id or target.reply_to
        if thread:
            params["thread_ts"] = thread
        assert self.bot_token is not None
        value = await self.api.call("chat.postMessage", self.bot_token, params, timeout=self.timeout)
        ts, channel = value.get("ts"), value.get("channel")
        if not is_ts(ts):
            raise ChannelError("chat.postMessage: Slack answered without the message's ts")
        return Receipt(str(ts), channel if isinstance(channel, str) and channel else target.chat_id)

    def typing(self, target: Target) -> Deferred[None]:
        return fail(Unsupported("Slack bots cannot show a typing indicator (no Web API method; Socket Mode only receives)"))

    def poll(self, target: Target, question: str, options: list[str], multi: bool, duration_s: int | None) -> Deferred[Receipt]:
        return fail(Unsupported("Slack has no native polls"))

    # -- status

    def probe(self, timeout: float) -> Deferred[dict[str, Any]]:
        return Deferred.fromCoroutine(self._probe(timeout))

    async def _probe(self, timeout: float) -> dict[str, Any]:
        started = time.monotonic()
        try:
            bot = await self._hello(timeout)
        except ChannelError as e:
            return {"ok": False, "error": str(e), "elapsedMs": int((time.monotonic() - started) * 1000)}
        result: dict[str, Any] = {"ok": True, "bot": {"id": bot.user_id, "name": bot.name}, "elapsedMs": int((time.monotonic() - started) * 1000)}
        if bot.team_id:
            result["team"] = {"id": bot.team_id, "name": bot.team}
        if self.mode == "socket":
            result["socketConnections"] = len(self.link.live) if self.link is not None else 0
        return result

    def logout(self) -> Deferred[dict[str, Any]]:
        # auth.revoke would destroy the token for good (a reinstall to get a new one):
        # logging out here means this gateway stops using it.
        d: Deferred[dict[str, Any]] = Deferred()
        d.callback({"cleared": False})
        return d

    def snapshot(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mode": self.mode, "botTokenSource": self.bot_token_source}
        if self.mode == "socket":
            out["appTokenSource"] = self.app_token_source
        if self.bot is not None:
            out["bot"] = {"id": self.bot.user_id, "name": self.bot.name}
            if self.bot.team_id:
                out["team"] = {"id": self.bot.team_id, "name": self.bot.team}
        if self.app_id:
            out["appId"] = self.app_id
        if self.link is not None:
            out["socketConnections"] = len(self.link.live)
            if self.link.last_disconnect:
                out["lastDisconnect"] = self.link.last_disconnect
        if self.mode == "http":
            out["webhookPath"] = self.webhook_path
        if self.api_base.rstrip("/") != API_BASE:
            out["baseUrl"] = self.api_base
        groups = self.account.config.get("groups")
        if isinstance(groups, dict) and any(isinstance(g, dict) and g.get("requireMention") is False for g in groups.values()):
            out["allowUnmentionedGroups"] = True
        return out

    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.bot_token, self.app_token, self.signing_secret) if s)

    def close(self) -> Deferred[None]:
        if self.link is not None:
            self.link.close()
        return self.api.close()
