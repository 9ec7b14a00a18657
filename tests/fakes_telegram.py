"""
A fake Telegram Bot API: a twisted.web server on 127.0.0.1 speaking the real
wire format (C{POST /bot<token>/<method>}, JSON or multipart bodies,
C{{"ok": ..., "result" | "error_code", "description", "parameters"}}).

It keeps per-bot state like Telegram does: updates confirmed by the
C{getUpdates} offset, long polls held until an update arrives or the
timeout passes, a second poller ending the first with 409, a set webhook
making C{getUpdates} fail with 409, HTML checked as Telegram checks it, the
4096-character limit, blocked users (403) and migrated groups (400 with
C{migrate_to_chat_id}). Faults are scripted per method: any status with its
description and parameters, a stall (no answer), or a body that is not JSON.
"""

from __future__ import annotations

import json
import time
from html.parser import HTMLParser
from typing import Any, Callable

import attrs
from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.task import deferLater
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

MAX_TEXT = 4096
ALLOWED_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre", "tg-spoiler", "span", "blockquote", "tg-emoji"}
WEBHOOK_CONFLICT = "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first"
POLL_CONFLICT = "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"


@attrs.define
class Fault:
    status: int = 500
    description: str = "Internal Server Error"
    parameters: dict[str, Any] | None = None
    stall: bool = False
    garbage: bool = False


class _Entities(HTMLParser):
    """Telegram's HTML rules: known tags only, properly nested, all closed."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.error: str | None = None
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs_: Any) -> None:
        if tag not in ALLOWED_TAGS:
            self.error = self.error or f'Unsupported start tag "{tag}"'
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.error = self.error or f'Can\'t find end tag corresponding to start tag "{self.stack[-1] if self.stack else tag}"'
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def check_html(text: str) -> tuple[str | None, str]:
    """(error or None, visible text)."""
    parser = _Entities()
    parser.feed(text)
    parser.close()
    if parser.stack and parser.error is None:
        parser.error = f'Can\'t find end tag corresponding to start tag "{parser.stack[-1]}"'
    if "<" in "".join(parser.text) and parser.error is None:
        parser.error = "Unsupported start tag"
    return parser.error, "".join(parser.text)


class FakeBot:
    def __init__(self, token: str, bot_id: int, username: str) -> None:
        self.token = token
        self.id = bot_id
        self.username = username
        self.updates: list[dict[str, Any]] = []
        self.next_update = 1000
        self.offset = 0  # everything below is confirmed
        self.webhook_url: str | None = None
        self.webhook_secret: str | None = None
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.sent: list[dict[str, Any]] = []
        self.actions: list[dict[str, Any]] = []
        self.faults: dict[str, list[Fault]] = {}
        self.blocked: set[int] = set()
        self.migrated: dict[int, int] = {}
        self.poll: Request | None = None
        self.poll_timer: Any = None
        self.next_message = 1
        self.polls_started = 0

    # -- scripting

    def fault(self, method: str, *faults: Fault) -> None:
        self.faults.setdefault(method, []).extend(faults)

    def add(self, update: dict[str, Any]) -> int:
        self.next_update += 1
        update = {"update_id": self.next_update, **update}
        self.updates.append(update)
        self._wake()
        return self.next_update

    def message(self, chat: dict[str, Any], sender: dict[str, Any] | None, text: str, **extra: Any) -> int:
        """Queue a message update; returns the message id."""
        self.next_message += 1
        message = {"message_id": self.next_message, "date": int(time.time()), "chat": chat, "text": text, **extra}
        if sender is not None:
            message["from"] = sender
        key = "channel_post" if chat.get("type") == "channel" else "message"
        self.add({key: message})
        return self.next_message

    def dm(self, user_id: int, text: str, name: str = "Alice", username: str | None = None, **extra: Any) -> int:
        user = {"id": user_id, "is_bot": False, "first_name": name, **({"username": username} if username else {})}
        return self.message({"id": user_id, "type": "private", "first_name": name}, user, text, **extra)

    def group(self, chat_id: int, user_id: int, text: str, title: str = "The Group", mention: bool = False, forum: bool = False, thread: int | None = None, reply_to_bot: bool = False, name: str = "Bob") -> int:
        extra: dict[str, Any] = {}
        if mention:
            handle = f"@{self.username}"
            text = f"{handle} {text}"
            extra["entities"] = [{"type": "mention", "offset": 0, "length": len(handle.encode("utf-16-le")) // 2}]
        if thread is not None:
            extra["message_thread_id"] = thread
            extra["is_topic_message"] = True
        if reply_to_bot:
            extra["reply_to_message"] = {"message_id": 1, "date": 0, "chat": {"id": chat_id, "type": "supergroup"}, "from": {"id": self.id, "is_bot": True, "first_name": "Bot", "username": self.username}, "text": "earlier answer"}
        chat = {"id": chat_id, "type": "supergroup", "title": title, **({"is_forum": True} if forum else {})}
        return self.message(chat, {"id": user_id, "is_bot": False, "first_name": name}, text, **extra)

    def pending(self) -> list[dict[str, Any]]:
        return [u for u in self.updates if u["update_id"] >= self.offset]

    def texts(self, chat_id: int | None = None) -> list[str]:
        return [m["text"] for m in self.sent if "text" in m and (chat_id is None or str(m["chat_id"]) == str(chat_id))]

    # -- long polling

    def _wake(self) -> None:
        if self.poll is not None and self.pending():
            request, self.poll = self.poll, None
            if self.poll_timer is not None and self.poll_timer.active():
                self.poll_timer.cancel()
            _finish(request, _ok(self.pending()[:100]))

    def get_updates(self, request: Request, params: dict[str, Any]) -> Any:
        if self.webhook_url:
            return _error(request, 409, WEBHOOK_CONFLICT)
        if self.poll is not None:
            old, self.poll = self.poll, None
            if self.poll_timer is not None and self.poll_timer.active():
                self.poll_timer.cancel()
            _finish(old, _error(old, 409, POLL_CONFLICT))
        offset = params.get("offset")
        if isinstance(offset, int) and offset > self.offset:
            self.offset = offset
            self.updates = [u for u in self.updates if u["update_id"] >= offset]
        self.polls_started += 1
        limit = params.get("limit") if isinstance(params.get("limit"), int) else 100
        if self.pending():
            return _ok(self.pending()[:limit])
        timeout = params.get("timeout") if isinstance(params.get("timeout"), (int, float)) else 0
        if not timeout:
            return _ok([])
        self.poll = request

        def expire() -> None:
            if self.poll is request:
                self.poll = None
                _finish(request, _ok([]))

        self.poll_timer = reactor.callLater(timeout, expire)
        request.notifyFinish().addErrback(lambda _: setattr(self, "poll", None) if self.poll is request else None)
        return NOT_DONE_YET

    # -- methods

    def _chat(self, request: Request, params: dict[str, Any]) -> tuple[Any, int | None]:
        chat = params.get("chat_id")
        try:
            chat_id = int(chat)
        except (TypeError, ValueError):
            if isinstance(chat, str) and chat.startswith("@"):
                return None, -1
            return _error(request, 400, "Bad Request: chat not found"), None
        if chat_id in self.blocked:
            return _error(request, 403, "Forbidden: bot was blocked by the user"), None
        if chat_id in self.migrated:
            return _error(request, 400, "Bad Request: group chat was upgraded to a supergroup chat", {"migrate_to_chat_id": self.migrated[chat_id]}), None
        if params.get("message_thread_id") == 1:
            return _error(request, 400, "Bad Request: message thread not found"), None
        return None, chat_id

    def _message(self, chat_id: int, **fields: Any) -> dict[str, Any]:
        self.next_message += 1
        return {"message_id": self.next_message, "date": int(time.time()), "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup"}, **fields}

    def send_message(self, request: Request, params: dict[str, Any]) -> Any:
        error, chat_id = self._chat(request, params)
        if error is not None:
            return error
        text = params.get("text")
        if not isinstance(text, str) or not text:
            return _error(request, 400, "Bad Request: message text is empty")
        visible = text
        if params.get("parse_mode") == "HTML":
            problem, visible = check_html(text)
            if problem:
                return _error(request, 400, f"Bad Request: can't parse entities: {problem}")
        elif params.get("parse_mode"):
            return _error(request, 400, f"Bad Request: unsupported parse_mode {params['parse_mode']}")
        if len(visible) > MAX_TEXT:
            return _error(request, 400, "Bad Request: message is too long")
        record = {"method": "sendMessage", "chat_id": chat_id, "text": visible, "raw": text, "parse_mode": params.get("parse_mode"), "thread": params.get("message_thread_id"), "reply_to": (params.get("reply_parameters") or {}).get("message_id")}
        self.sent.append(record)
        return _ok(self._message(chat_id, text=visible))

    def send_media(self, request: Request, method: str, params: dict[str, Any]) -> Any:
        error, chat_id = self._chat(request, params)
        if error is not None:
            return error
        caption = params.get("caption") or ""
        if params.get("parse_mode") == "HTML":
            problem, caption = check_html(caption)
            if problem:
                return _error(request, 400, f"Bad Request: can't parse entities: {problem}")
        if len(caption) > 1024:
            return _error(request, 400, "Bad Request: message caption is too long")
        kind = {"sendPhoto": "photo", "sendDocument": "document", "sendVideo": "video", "sendAudio": "audio", "sendVoice": "voice", "sendAnimation": "animation"}[method]
        self.sent.append({"method": method, "chat_id": chat_id, "caption": caption, "media": params.get(kind), "thread": params.get("message_thread_id")})
        return _ok(self._message(chat_id, caption=caption))

    def handle(self, request: Request, method: str, params: dict[str, Any]) -> Any:
        self.calls.append((method, params))
        queued = self.faults.get(method)
        if queued:
            fault = queued.pop(0)
            if fault.stall:
                return NOT_DONE_YET
            if fault.garbage:
                request.setResponseCode(fault.status)
                return b"<html>bad gateway</html>"
            return _error(request, fault.status, fault.description, fault.parameters)
        if method == "getMe":
            return _ok({"id": self.id, "is_bot": True, "first_name": "Test Bot", "username": self.username})
        if method == "getUpdates":
            return self.get_updates(request, params)
        if method == "deleteWebhook":
            self.webhook_url = None
            return _ok(True)
        if method == "setWebhook":
            self.webhook_url, self.webhook_secret = params.get("url"), params.get("secret_token")
            return _ok(True)
        if method == "getWebhookInfo":
            return _ok({"url": self.webhook_url or "", "has_custom_certificate": False, "pending_update_count": len(self.pending())})
        if method == "sendMessage":
            return self.send_message(request, params)
        if method in ("sendPhoto", "sendDocument", "sendVideo", "sendAudio", "sendVoice", "sendAnimation"):
            return self.send_media(request, method, params)
        if method == "sendChatAction":
            error, chat_id = self._chat(request, {**params, "message_thread_id": None})
            if error is not None:
                return error
            self.actions.append({"chat_id": chat_id, "action": params.get("action"), "thread": params.get("message_thread_id")})
            return _ok(True)
        if method == "sendPoll":
            error, chat_id = self._chat(request, params)
            if error is not None:
                return error
            self.sent.append({"method": "sendPoll", "chat_id": chat_id, "question": params.get("question"), "options": params.get("options")})
            return _ok(self._message(chat_id, poll={"question": params.get("question")}))
        return _error(request, 404, "Not Found")


def _ok(result: Any) -> bytes:
    return json.dumps({"ok": True, "result": result}).encode()


def _error(request: Request, status: int, description: str, parameters: dict[str, Any] | None = None) -> bytes:
    request.setResponseCode(status)
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return json.dumps(body).encode()


def _finish(request: Request, body: bytes) -> None:
    if request.finished or request.channel is None:
        return
    request.setHeader(b"Content-Type", b"application/json")
    request.write(body)
    request.finish()


def _params(request: Request) -> dict[str, Any]:
    ctype = (request.getHeader(b"content-type") or b"").split(b";")[0].strip().lower()
    if ctype == b"application/json":
        content = request.content.read() if request.content is not None else b""
        value = json.loads(content or b"{}")
        return value if isinstance(value, dict) else {}
    out: dict[str, Any] = {}
    for key, values in (request.args or {}).items():
        raw = values[0]
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        name = key.decode()
        try:
            out[name] = json.loads(text) if name not in ("caption", "text", "question") else text
        except ValueError:
            out[name] = text if len(raw) < 4096 else raw
    return out


class FakeTelegram(Resource):
    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.bots: dict[str, FakeBot] = {}
        self.requests = 0
        self.paths: list[str] = []

    def connections(self) -> list[Any]:
        """Every connection the gateway opened to this fake."""
        return list(getattr(self, "site", None).__dict__.get("_openclaw_protocols", [])) if getattr(self, "site", None) else []

    def bot(self, token: str = "123456:TEST-token-abcdefghijklmnopqrstuvwxyz", bot_id: int = 777, username: str = "claw_test_bot") -> FakeBot:
        bot = self.bots[token] = FakeBot(token, bot_id, username)
        return bot

    def render(self, request: Request) -> Any:
        self.requests += 1
        path = request.path.decode("utf-8", "replace")
        self.paths.append(path)
        parts = path.strip("/").split("/")
        request.setHeader(b"Content-Type", b"application/json")
        if len(parts) != 2 or not parts[0].startswith("bot"):
            return _error(request, 404, "Not Found")
        bot = self.bots.get(parts[0][3:])
        if bot is None:
            return _error(request, 401, "Unauthorized")
        try:
            params = _params(request)
        except ValueError:
            return _error(request, 400, "Bad Request: invalid JSON")
        return bot.handle(request, parts[1], params)


async def start_telegram(testcase: Any) -> tuple[FakeTelegram, str]:
    """Listen on 127.0.0.1:0; returns the fake and its apiRoot."""
    fake = FakeTelegram()
    site = Site(fake)
    site.log = lambda request: None  # type: ignore[method-assign]  # access lines would be noise
    port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(site)

    async def stop() -> None:
        for bot in fake.bots.values():
            if bot.poll_timer is not None and bot.poll_timer.active():
                bot.poll_timer.cancel()
        for protocol in list(getattr(site, "_openclaw_protocols", [])):
            transport = getattr(protocol, "transport", None) or getattr(getattr(protocol, "_channel", None), "transport", None)
            if transport is not None:
                transport.abortConnection()
        await port.stopListening()

    original = site.buildProtocol

    def track(addr: Any) -> Any:
        protocol = original(addr)
        site.__dict__.setdefault("_openclaw_protocols", []).append(protocol)
        return protocol

    site.buildProtocol = track  # type: ignore[method-assign]
    fake.site = site
    testcase.addCleanup(stop)
    return fake, f"http://127.0.0.1:{port.getHost().port}"


async def wait_for(check: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll C{check} until it is truthy (its value is returned), or fail after C{timeout}."""
    waited = 0.0
    while True:
        value = check()
        if value:
            return value
        if waited >= timeout:
            raise AssertionError(f"timed out waiting for {what}")
        await deferLater(reactor, 0.02, lambda: None)
        waited += 0.02

