# -*- test-case-name: tests.test_telegram -*-
"""
L{TelegramChannel}: one bot account.

Start: C{getMe} (401 stops the account: bad token), then either
C{deleteWebhook} (with C{deleteWebhookOnStart}) and C{getUpdates} long
polling from the journaled offset, or C{setWebhook} and updates POSTed to
the gateway port (webhook mode). A 409 puts the fix in status and ends the
loop (the framework backs off and reconnects on a fresh transport); 429
waits C{retry_after}; a poll that never answers is cut after the poll
timeout plus C{timeoutSeconds}.

Sends render Markdown to Telegram HTML and fall back to plain text when
Telegram cannot parse it; forum replies keep their topic (the General
topic is addressed without C{message_thread_id}, as Telegram wants).
"""

from __future__ import annotations

import hmac
import json
import re
import time
from typing import Any

from twisted.internet.defer import Deferred
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
    Media,
    Outbound,
    Receipt,
    RetryAfter,
    Target,
)
from openclaw.channels.telegram.api import BotApi, Conflict, ParseError
from openclaw.channels.telegram.format import to_html, visible_length
from openclaw.channels.telegram.updates import ALLOWED_UPDATES, GENERAL_TOPIC, Bot, normalize

log = Logger(namespace="openclaw.channels.telegram")

LIMITS = Limits(chunk=4000, max_text=4096, typing_every=4.0, chat_rate=1.0, chat_burst=3, account_rate=30.0, account_burst=30)
CAPTION_MAX = 1024
DEFAULT_POLL_TIMEOUT = 30
DEFAULT_TIMEOUT = 30.0
WEBHOOK_PATH = "/telegram-webhook"
WEBHOOK_MAX_BODY = 1024 * 1024
_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_USERNAME = re.compile(r"^@[A-Za-z][A-Za-z0-9_]{3,31}$")
_CHAT_ID = re.compile(r"^-?\d{1,20}$")
_MEDIA_METHODS = {"photo": "sendPhoto", "video": "sendVideo", "audio": "sendAudio", "voice": "sendVoice", "animation": "sendAnimation", "document": "sendDocument"}
_EXTENSIONS = {
    "photo": (".jpg", ".jpeg", ".png", ".webp"),
    "video": (".mp4", ".mov", ".webm"),
    "audio": (".mp3", ".m4a", ".flac", ".wav"),
    "voice": (".ogg", ".oga", ".opus"),
    "animation": (".gif",),
}


def media_kind(media: Media) -> str:
    """Which send method an attachment takes (by content type, then file extension)."""
    ctype = (media.content_type or "").lower()
    name = (media.filename or media.url or "").lower().split("?", 1)[0]
    if media.as_voice and (ctype.startswith("audio/") or name.endswith(_EXTENSIONS["voice"] + _EXTENSIONS["audio"])):
        return "voice"
    if ctype == "image/gif" or name.endswith(".gif"):
        return "animation"
    for prefix, kind in (("image/", "photo"), ("video/", "video"), ("audio/", "audio")):
        if ctype.startswith(prefix):
            return kind
    for kind in ("photo", "video", "audio"):
        if name.endswith(_EXTENSIONS[kind]):
            return kind
    return "document"


class WebhookResource(Resource):
    """C{POST <webhookPath>}: Telegram's deliveries, checked against the secret token."""

    isLeaf = True

    def __init__(self, secret: str, bot: Bot, inbound: IInbound, account_id: str) -> None:
        super().__init__()
        self._secret = secret.encode()
        self._bot = bot
        self._inbound = inbound
        self._account_id = account_id
        self.open = True

    def _answer(self, request: Request, code: int, body: dict[str, Any]) -> bytes:
        request.setResponseCode(code)
        request.setHeader(b"Content-Type", b"application/json")
        return json.dumps(body).encode()

    def render_POST(self, request: Request) -> bytes:
        given = request.getHeader(b"x-telegram-bot-api-secret-token") or b""
        if not self._secret or not hmac.compare_digest(given, self._secret):
            return self._answer(request, 401, {"ok": False, "error": "bad secret token"})
        request.authenticated = True  # type: ignore[attr-defined]
        if not self.open:
            return self._answer(request, 503, {"ok": False, "error": "the channel is stopped"})
        content = request.content
        data = content.read(WEBHOOK_MAX_BODY + 1) if content is not None else b""
        if len(data) > WEBHOOK_MAX_BODY:
            return self._answer(request, 413, {"ok": False, "error": "too large"})
        try:
            update = json.loads(data)
        except ValueError:
            return self._answer(request, 400, {"ok": False, "error": "not JSON"})
        message = normalize(update, self._bot, account_id=self._account_id)
        if message is not None:
            try:
                self._inbound.received(message)
            except Exception:
                log.failure("telegram webhook: could not keep the update; Telegram will deliver it again")
                return self._answer(request, 500, {"ok": False, "error": "try again"})
        return self._answer(request, 200, {"ok": True})

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"Allow", b"POST")
        return self._answer(request, 405, {"ok": False, "error": "POST only"})


@implementer(IChannel)
class TelegramChannel:
    limits = LIMITS

    def __init__(self, account: AccountConfig, host: ChannelHost, token: str, token_source: str, api_root: str) -> None:
        self.account = account
        self.host = host
        self.reactor = host.reactor
        self.token = token
        self.token_source = token_source
        self.api_root = api_root
        self.api = BotApi(host.reactor, api_root, token)
        config = account.config
        self.poll_timeout = _number(config.get("pollTimeoutSeconds"), DEFAULT_POLL_TIMEOUT, 0, 50)
        self.timeout = float(_number(config.get("timeoutSeconds"), DEFAULT_TIMEOUT, 1, 600))
        self.webhook_url = config["webhookUrl"] if isinstance(config.get("webhookUrl"), str) and config.get("webhookUrl") else None
        self.webhook_secret = str(config.get("webhookSecret") or "").strip()
        default_path = WEBHOOK_PATH if account.account_id == "default" else f"{WEBHOOK_PATH}-{account.account_id}"
        self.webhook_path = str(config.get("webhookPath") or default_path)
        self.link_preview = config.get("linkPreview", True) is not False
        self.bot: Bot | None = None
        self.self_ids: frozenset[str] = frozenset()

    @property
    def mode(self) -> str:
        return "webhook" if self.webhook_url else "polling"

    # -- receiving

    def run(self, inbound: IInbound) -> Deferred[None]:
        return Deferred.fromCoroutine(self._run(inbound))

    async def _hello(self) -> Bot:
        bot = Bot.from_me(await self.api.call("getMe", timeout=self.timeout))
        self.bot = bot
        self.self_ids = frozenset({str(bot.id)})
        return bot

    async def _run(self, inbound: IInbound) -> None:
        bot = await self._hello()
        if self.webhook_url:
            await self._webhook(bot, inbound)
            return
        if self.account.config.get("deleteWebhookOnStart"):
            await self.api.call("deleteWebhook", {"drop_pending_updates": False}, timeout=self.timeout)
        offset = inbound.cursor()
        offset = offset if isinstance(offset, int) else None
        up = False
        while True:
            params: dict[str, Any] = {"timeout": self.poll_timeout, "allowed_updates": ALLOWED_UPDATES}
            if offset is not None:
                params["offset"] = offset
            try:
                updates = await self.api.call("getUpdates", params, timeout=self.poll_timeout + min(self.timeout, 15.0))
            except RetryAfter as e:
                log.info("telegram {account}: getUpdates rate limited; waiting {s:g} s", account=self.account.account_id, s=e.seconds)
                await deferLater(self.reactor, min(e.seconds, 300.0), lambda: None)
                continue
            except Conflict as e:
                inbound.problem(str(e))
                self.api.fresh()
                raise
            if not up:
                up = True
                inbound.problem(None)
                inbound.connected()
            if not isinstance(updates, list):
                raise ChannelError("getUpdates: Telegram answered with something that is not a list")
            for update in sorted((u for u in updates if isinstance(u, dict) and isinstance(u.get("update_id"), int)), key=lambda u: u["update_id"]):
                uid = update["update_id"]
                if offset is not None and uid < offset:
                    continue  # confirmed already (a server that ignored the offset)
                message = normalize(update, bot, account_id=self.account.account_id)
                if message is not None:
                    inbound.received(message, uid + 1)
                else:
                    inbound.advance(uid + 1)
                offset = uid + 1

    async def _webhook(self, bot: Bot, inbound: IInbound) -> None:
        if not _SECRET.match(self.webhook_secret):
            raise ConfigProblem(
                "webhook mode needs channels.telegram.webhookSecret (1-256 of A-Z a-z 0-9 _ -); without it the webhook would accept anyone's updates"
            )
        resource = WebhookResource(self.webhook_secret, bot, inbound, self.account.account_id)
        try:
            self.host.routes.route(self.webhook_path, resource)
        except ValueError as e:
            raise ConfigProblem(f"webhookPath: {e}") from None
        try:
            await self.api.call("setWebhook", {"url": self.webhook_url, "secret_token": self.webhook_secret, "allowed_updates": ALLOWED_UPDATES}, timeout=self.timeout)
            inbound.problem(None)
            inbound.connected()
            await Deferred()  # until cancelled: deliveries arrive on the route
        finally:
            resource.open = False
            self.host.routes.unroute(self.webhook_path)

    # -- sending

    def parse_target(self, to: str, thread_id: str | None = None, reply_to: str | None = None) -> Target:
        raw = to.strip()
        for prefix in ("telegram:", "tg:"):
            if raw.lower().startswith(prefix):
                raw = raw[len(prefix) :]
        if ":topic:" in raw:
            raw, _, topic = raw.partition(":topic:")
            thread_id = thread_id or topic
        if not (_CHAT_ID.match(raw) or _USERNAME.match(raw)):
            raise ValueError(f"{to!r} is not a Telegram chat id or @username")
        if thread_id is not None and not str(thread_id).isdigit():
            raise ValueError(f"thread id {thread_id!r} is not a number")
        if reply_to is not None and not str(reply_to).isdigit():
            raise ValueError(f"reply-to {reply_to!r} is not a message id")
        return Target(raw, str(thread_id) if thread_id else None, str(reply_to) if reply_to else None)

    def _address(self, target: Target, typing: bool = False) -> dict[str, Any]:
        chat: Any = int(target.chat_id) if _CHAT_ID.match(target.chat_id) else target.chat_id
        params: dict[str, Any] = {"chat_id": chat}
        if target.thread_id and (typing or target.thread_id != GENERAL_TOPIC):
            params["message_thread_id"] = int(target.thread_id)
        return params

    def _extras(self, target: Target, message: Outbound) -> dict[str, Any]:
        params = self._address(target)
        if target.reply_to:
            params["reply_parameters"] = {"message_id": int(target.reply_to), "allow_sending_without_reply": True}
        if message.silent:
            params["disable_notification"] = True
        return params

    @staticmethod
    def _receipt(result: Any, target: Target) -> Receipt:
        if not isinstance(result, dict):
            raise ChannelError("Telegram answered a send without the message")
        chat = result["chat"] if isinstance(result.get("chat"), dict) else {}
        return Receipt(str(result.get("message_id")), str(chat.get("id", target.chat_id)))

    def send(self, target: Target, message: Outbound) -> Deferred[Receipt]:
        return Deferred.fromCoroutine(self._send(target, message))

    async def _formatted(self, method: str, params: dict[str, Any], field: str, text: str, limit: int) -> Any:
        """Send C{text} as HTML; as plain text when Telegram cannot parse it (or it grew too long)."""
        rendered = to_html(text)
        if text and visible_length(rendered) <= limit:
            try:
                return await self.api.call(method, {**params, field: rendered, "parse_mode": "HTML"}, timeout=self.timeout)
            except ParseError:
                log.info("telegram {account}: HTML refused; sending as plain text", account=self.account.account_id)
        return await self.api.call(method, {**params, field: text} if text else params, timeout=self.timeout)

    async def _send(self, target: Target, message: Outbound) -> Receipt:
        params = self._extras(target, message)
        if message.media is None:
            if not message.text.strip():
                raise ChannelError("empty message")
            if not self.link_preview:
                params["link_preview_options"] = {"is_disabled": True}
            return self._receipt(await self._formatted("sendMessage", params, "text", message.text, LIMITS.max_text), target)
        media = message.media
        kind = media_kind(media)
        method = _MEDIA_METHODS[kind]
        caption = message.text[:CAPTION_MAX]
        if media.data is not None:
            fields = {**params}
            if caption:
                fields["caption"] = caption
            upload = {kind: (media.filename or "file", media.content_type or "application/octet-stream", media.data)}
            return self._receipt(await self.api.call(method, fields, timeout=max(self.timeout, 120.0), files=upload), target)
        params[kind] = media.url
        return self._receipt(await self._formatted(method, params, "caption", caption, CAPTION_MAX), target)

    def typing(self, target: Target) -> Deferred[None]:
        return Deferred.fromCoroutine(self._typing(target))

    async def _typing(self, target: Target) -> None:
        await self.api.call("sendChatAction", {**self._address(target, typing=True), "action": "typing"}, timeout=self.timeout)

    def poll(self, target: Target, question: str, options: list[str], multi: bool, duration_s: int | None) -> Deferred[Receipt]:
        params = {**self._address(target), "question": question[:300], "options": [{"text": o[:100]} for o in options], "allows_multiple_answers": multi}
        if duration_s:
            params["open_period"] = max(5, min(int(duration_s), 600))
        return Deferred.fromCoroutine(self.api.call("sendPoll", params, timeout=self.timeout)).addCallback(self._receipt, target)

    # -- status

    def probe(self, timeout: float) -> Deferred[dict[str, Any]]:
        return Deferred.fromCoroutine(self._probe(timeout))

    async def _probe(self, timeout: float) -> dict[str, Any]:
        started = time.monotonic()
        try:
            me = Bot.from_me(await self.api.call("getMe", timeout=timeout))
            info = await self.api.call("getWebhookInfo", timeout=timeout)
        except (ChannelError, ValueError) as e:
            return {"ok": False, "error": str(e), "elapsedMs": int((time.monotonic() - started) * 1000)}
        webhook = info if isinstance(info, dict) else {}
        result: dict[str, Any] = {
            "ok": True,
            "bot": {"id": me.id, "username": me.username},
            "webhook": {"set": bool(webhook.get("url")), "pendingUpdateCount": webhook.get("pending_update_count", 0)},
            "elapsedMs": int((time.monotonic() - started) * 1000),
        }
        if webhook.get("url") and not self.webhook_url:
            result["ok"] = False
            result["error"] = "a webhook is set while this account polls: getUpdates will fail with 409 (set deleteWebhookOnStart: true)"
        if isinstance(webhook.get("last_error_message"), str):
            result["webhook"]["lastError"] = webhook["last_error_message"][:200]
        return result

    def logout(self) -> Deferred[dict[str, Any]]:
        # Bot API logOut would lock the bot out of Telegram's servers for 10 minutes:
        # logging out here means this gateway stops using the token.
        d: Deferred[dict[str, Any]] = Deferred()
        d.callback({"cleared": False})
        return d

    def snapshot(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mode": self.mode, "tokenSource": self.token_source}
        if self.bot is not None:
            out["bot"] = {"id": self.bot.id, "username": self.bot.username}
        if self.webhook_url:
            out["webhookUrl"] = self.webhook_url
            out["webhookPath"] = self.webhook_path
        if self.api_root.rstrip("/") != "https://api.telegram.org":
            out["baseUrl"] = self.api_root
        groups = self.account.config.get("groups")
        if isinstance(groups, dict) and any(isinstance(g, dict) and g.get("requireMention") is False for g in groups.values()):
            out["allowUnmentionedGroups"] = True
        return out

    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.token, self.webhook_secret) if s)

    def close(self) -> Deferred[None]:
        return self.api.close()


def _number(value: Any, default: float, low: float, high: float) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= high:
        return value
    return default
