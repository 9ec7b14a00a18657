"""
A fake Slack on 127.0.0.1, speaking the real wire formats:

* the Web API (twisted.web): C{POST /api/<method>}, the token in the
  C{Authorization: Bearer} header, answers HTTP 200 C{{"ok": true, ...}} or
  C{{"ok": false, "error": "<code>"}}, rate limits as HTTP 429 with
  C{Retry-After}; C{auth.test}, C{apps.connections.open} (a one-time
  ticket URL for the socket server) and C{chat.postMessage} (conversation
  state: unknown, not a member, archived; C{no_text}, C{msg_too_long}; a
  user id posts into that user's DM; the bot's own message comes back as
  an event with C{bot_id}, as Slack does);
* Socket Mode (autobahn): refuses unknown or reused tickets, sends
  C{hello}, delivers C{events_api} / C{slash_commands} envelopes to the
  newest connection (queued while none is open), redelivers an envelope
  not acknowledged within C{ack_timeout} with C{retry_attempt} +1 and
  C{retry_reason: "timeout"} (at most three times), and records each ack.

Faults: per Web API method any C{ok:false} error, a 429 with
C{Retry-After}, an HTTP error with a body that is not JSON, or a stall;
on the socket C{disconnect} frames (C{warning}, C{refresh_requested} then
a close, C{link_disabled}), an explicit redelivery of an envelope with a
given C{retry_attempt}, and a zombie mode that stops answering pings.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import attrs
import txaio

txaio.use_twisted()

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol  # noqa: E402
from autobahn.websocket.types import ConnectionDeny  # noqa: E402
from twisted.internet import reactor  # noqa: E402
from twisted.internet.endpoints import TCP4ServerEndpoint  # noqa: E402
from twisted.web.resource import Resource  # noqa: E402
from twisted.web.server import NOT_DONE_YET, Request, Site  # noqa: E402

from tests.fakes_telegram import wait_for  # noqa: E402,F401  (re-exported for the Slack tests)

MAX_TEXT = 40_000
BOT_TOKEN = "xoxb-1111-2222-FAKEbotTOKENvalue"
APP_TOKEN = "xapp-1-A0001-3333-FAKEappTOKENvalue"
BOT_USER = "UBOT0001"
BOT_ID = "BBOT0001"
TEAM = "T0001"
APP = "A0001"


@attrs.define
class Fault:
    error: str | None = None  # {"ok": false, "error": error} with HTTP 200
    status: int = 200
    retry_after: int | None = None  # with status 429
    stall: bool = False
    garbage: bool = False


class _Silent:
    """The fake's autobahn log: its debug lines would print the tickets the gateway is tested not to log."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


class SocketServer(WebSocketServerProtocol):
    log = _Silent()

    def onConnect(self, request: Any) -> None:
        fake: FakeSlack = self.factory.fake
        ticket = (request.params.get("ticket") or [None])[0]
        if ticket not in fake.tickets or fake.tickets[ticket]:
            fake.refused += 1
            raise ConnectionDeny(401, "invalid or used ticket")
        fake.tickets[ticket] = True

    def onOpen(self) -> None:
        fake: FakeSlack = self.factory.fake
        fake.sockets.append(self)
        fake.connections += 1
        self.number = fake.connections
        self.send_json({"type": "hello", "num_connections": len(fake.sockets), "debug_info": {"host": "fake-slack", "approximate_connection_time": 18060}, "connection_info": {"app_id": APP}})
        fake.flush()

    def onPing(self, payload: bytes) -> None:
        if not self.factory.fake.zombie:
            self.sendPong(payload)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        fake: FakeSlack = self.factory.fake
        frame = json.loads(payload)
        envelope_id = frame.get("envelope_id")
        fake.acks.append({"envelope_id": envelope_id, "at": reactor.seconds(), "socket": self.number, "payload": frame.get("payload")})
        waiting = fake.unacked.pop(envelope_id, None)
        if waiting is not None and waiting[1].active():
            waiting[1].cancel()
        for hook in list(fake.on_ack):
            hook(frame)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        fake: FakeSlack = self.factory.fake
        if self in fake.sockets:
            fake.sockets.remove(self)

    def send_json(self, value: dict[str, Any]) -> None:
        self.sendMessage(json.dumps(value).encode())


class FakeSlack(Resource):
    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.bot_token = BOT_TOKEN
        self.app_token = APP_TOKEN
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.headers: list[dict[str, str]] = []
        self.paths: list[str] = []
        self.faults: dict[str, list[Fault]] = {}
        self.sent: list[dict[str, Any]] = []
        self.conversations: dict[str, dict[str, Any]] = {}
        self.tickets: dict[str, bool] = {}  # issued ticket → used
        self.urls: list[str] = []
        self.refused = 0
        self.sockets: list[SocketServer] = []
        self.connections = 0
        self.acks: list[dict[str, Any]] = []
        self.on_ack: list[Any] = []
        self.delivered: list[dict[str, Any]] = []
        self.unacked: dict[str, tuple[dict[str, Any], Any]] = {}
        self.queue: list[dict[str, Any]] = []
        self.ack_timeout = 3.0
        self.max_retries = 3
        self.echo = True
        self.zombie = False
        self.ws_port = 0
        self._ts = int(time.time())
        self._seq = 0
        self._events = 0
        self.timers: list[Any] = []

    # -- scripting

    def fault(self, method: str, *faults: Fault) -> None:
        self.faults.setdefault(method, []).extend(faults)

    def conversation(self, cid: str, kind: str = "channel", member: bool = True, archived: bool = False) -> None:
        self.conversations[cid] = {"type": kind, "member": member, "archived": archived}

    def ts(self) -> str:
        self._seq += 1
        return f"{self._ts}.{self._seq:06d}"

    def envelope(self, event: dict[str, Any]) -> dict[str, Any]:
        self._events += 1
        payload = {
            "token": "verification-token",
            "team_id": TEAM,
            "api_app_id": APP,
            "event": event,
            "type": "event_callback",
            "event_id": f"Ev{self._events:08d}",
            "event_time": int(time.time()),
        }
        return {"envelope_id": str(uuid.uuid4()), "type": "events_api", "accepts_response_payload": False, "retry_attempt": 0, "retry_reason": "", "payload": payload}

    def dm(self, user: str, text: str, thread_ts: str | None = None, **extra: Any) -> str:
        """A DM from C{user}; returns its ts."""
        cid = "D" + user[1:]
        self.conversations.setdefault(cid, {"type": "im", "member": True, "archived": False})
        ts = self.ts()
        event = {"type": "message", "channel": cid, "user": user, "text": text, "ts": ts, "event_ts": ts, "channel_type": "im", "team": TEAM, **extra}
        if thread_ts:
            event["thread_ts"] = thread_ts
        self.deliver(self.envelope(event))
        return ts

    def message(self, channel: str, user: str, text: str, mention: bool = False, thread_ts: str | None = None, channel_type: str = "channel", app_mention_only: bool = False, **extra: Any) -> str:
        """A message in a channel; with C{mention}, Slack's C{message} and C{app_mention} events for it. Returns its ts."""
        self.conversations.setdefault(channel, {"type": channel_type, "member": True, "archived": False})
        ts = self.ts()
        if mention:
            text = f"<@{BOT_USER}> {text}"
        event = {"type": "message", "channel": channel, "user": user, "text": text, "ts": ts, "event_ts": ts, "channel_type": channel_type, "team": TEAM, **extra}
        if thread_ts:
            event["thread_ts"] = thread_ts
        if not app_mention_only:
            self.deliver(self.envelope(event))
        if mention:
            mention_event = {k: v for k, v in event.items() if k != "channel_type"}
            mention_event["type"] = "app_mention"
            self.deliver(self.envelope(mention_event))
        return ts

    def slash(self, command: str, text: str, user: str, channel: str) -> dict[str, Any]:
        envelope = {
            "envelope_id": str(uuid.uuid4()),
            "type": "slash_commands",
            "accepts_response_payload": True,
            "payload": {"command": command, "text": text, "user_id": user, "channel_id": channel, "team_id": TEAM, "response_url": "https://hooks.example/x", "trigger_id": "1.2.3"},
        }
        self.deliver(envelope)
        return envelope

    def texts(self, channel: str | None = None) -> list[str]:
        return [m["text"] for m in self.sent if channel is None or m["channel"] == channel]

    # -- the socket side

    def live(self) -> list[SocketServer]:
        return [s for s in self.sockets if s.state == s.STATE_OPEN]

    def deliver(self, envelope: dict[str, Any]) -> None:
        """Send an envelope to the newest connection (queued while there is none); resend it until acknowledged."""
        sockets = self.live()
        if not sockets:
            self.queue.append(envelope)
            return
        self.delivered.append(envelope)
        sockets[-1].send_json(envelope)
        if envelope.get("envelope_id") in self.unacked:
            old = self.unacked[envelope["envelope_id"]][1]
            if old.active():
                old.cancel()
        timer = reactor.callLater(self.ack_timeout, self._unacknowledged, envelope)
        self.timers.append(timer)
        self.unacked[envelope["envelope_id"]] = (envelope, timer)

    def _unacknowledged(self, envelope: dict[str, Any]) -> None:
        if envelope["envelope_id"] not in self.unacked:
            return
        attempt = envelope.get("retry_attempt", 0) + 1
        if attempt > self.max_retries:
            self.unacked.pop(envelope["envelope_id"], None)
            return
        self.deliver({**envelope, "retry_attempt": attempt, "retry_reason": "timeout"})

    def redeliver(self, envelope: dict[str, Any], attempt: int = 1, reason: str = "timeout") -> None:
        self.deliver({**envelope, "retry_attempt": attempt, "retry_reason": reason})

    def flush(self) -> None:
        queued, self.queue = self.queue, []
        for envelope in queued:
            self.deliver(envelope)

    def disconnect(self, reason: str, close_after: float | None = None) -> None:
        """A C{disconnect} frame on the newest connection; with C{close_after}, Slack closes it that much later."""
        sockets = self.live()
        if not sockets:
            return
        socket = sockets[-1]
        socket.send_json({"type": "disconnect", "reason": reason, "debug_info": {"host": "fake-slack"}})
        if close_after is not None:
            self.timers.append(reactor.callLater(close_after, lambda: socket.state == socket.STATE_OPEN and socket.sendClose(1000)))

    def drop_all(self) -> None:
        for socket in list(self.sockets):
            if socket.transport is not None:
                socket.transport.abortConnection()

    # -- the Web API

    def _bearer(self, request: Request) -> str | None:
        value = (request.getHeader(b"authorization") or b"").decode("utf-8", "replace")
        return value[len("Bearer ") :] if value.startswith("Bearer ") else None

    def render_POST(self, request: Request) -> Any:
        path = request.path.decode("utf-8", "replace")
        self.paths.append(path + ("?" + request.uri.decode().split("?", 1)[1] if b"?" in request.uri else ""))
        request.setHeader(b"Content-Type", b"application/json")
        parts = path.strip("/").split("/")
        if len(parts) != 2 or parts[0] != "api":
            request.setResponseCode(404)
            return b"not found"
        method = parts[1]
        raw = request.content.read() if request.content is not None else b""
        ctype = (request.getHeader(b"content-type") or b"").split(b";")[0].strip().lower()
        try:
            params = json.loads(raw) if ctype == b"application/json" and raw else {k.decode(): v[0].decode() for k, v in (request.args or {}).items()}
        except ValueError:
            return _error("invalid_json")
        self.calls.append((method, params))
        self.headers.append({k.decode().lower(): v[0].decode() for k, v in request.requestHeaders.getAllRawHeaders()})
        queued = self.faults.get(method)
        if queued:
            fault = queued.pop(0)
            if fault.stall:
                return NOT_DONE_YET
            if fault.garbage:
                request.setResponseCode(fault.status)
                request.setHeader(b"Content-Type", b"text/html")
                return b"<html>bad gateway</html>"
            if fault.status == 429:
                request.setResponseCode(429)
                request.setHeader(b"Retry-After", str(fault.retry_after if fault.retry_after is not None else 1).encode())
                return _error("ratelimited")
            request.setResponseCode(fault.status)
            return _error(fault.error or "internal_error")
        token = self._bearer(request)
        if method == "auth.test":
            return self._auth(token, self.bot_token) or _ok({"url": "https://fake.slack.com/", "team": "Fake Team", "user": "clawbot", "team_id": TEAM, "user_id": BOT_USER, "bot_id": BOT_ID})
        if method == "apps.connections.open":
            if token == self.bot_token:
                return _error("not_allowed_token_type")
            refused = self._auth(token, self.app_token)
            if refused:
                return refused
            ticket = uuid.uuid4().hex
            self.tickets[ticket] = False
            url = f"ws://127.0.0.1:{self.ws_port}/link/?ticket={ticket}&app_id={APP}"
            self.urls.append(url)
            return _ok({"url": url})
        if method == "chat.postMessage":
            return self._auth(token, self.bot_token) or self.post_message(params)
        return _error("unknown_method")

    def _auth(self, token: str | None, wanted: str) -> bytes | None:
        if token is None:
            return _error("not_authed")
        if token != wanted:
            return _error("invalid_auth")
        return None

    def post_message(self, params: dict[str, Any]) -> bytes:
        cid = params.get("channel")
        if not isinstance(cid, str) or not cid:
            return _error("channel_not_found")
        if cid.startswith("U"):
            cid = "D" + cid[1:]
            self.conversations.setdefault(cid, {"type": "im", "member": True, "archived": False})
        conversation = self.conversations.get(cid)
        if conversation is None:
            return _error("channel_not_found")
        if conversation["archived"]:
            return _error("is_archived")
        if not conversation["member"]:
            return _error("not_in_channel")
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            return _error("no_text")
        if len(text) > MAX_TEXT:
            return _error("msg_too_long")
        ts = self.ts()
        record = {"channel": cid, "text": text, "thread_ts": params.get("thread_ts"), "ts": ts, "mrkdwn": params.get("mrkdwn")}
        self.sent.append(record)
        message = {"type": "message", "text": text, "user": BOT_USER, "bot_id": BOT_ID, "app_id": APP, "ts": ts, "team": TEAM}
        if self.echo:
            echo = {**message, "channel": cid, "event_ts": ts, "channel_type": conversation["type"]}
            if params.get("thread_ts"):
                echo["thread_ts"] = params["thread_ts"]
            self.deliver(self.envelope(echo))
        return _ok({"channel": cid, "ts": ts, "message": message})


def _ok(value: dict[str, Any]) -> bytes:
    return json.dumps({"ok": True, **value}).encode()


def _error(code: str) -> bytes:
    return json.dumps({"ok": False, "error": code}).encode()


async def start_slack(testcase: Any) -> tuple[FakeSlack, str]:
    """Listen on 127.0.0.1:0 (Web API and socket server); returns the fake and its apiBase."""
    fake = FakeSlack()
    site = Site(fake)
    site.log = lambda request: None  # type: ignore[method-assign]
    api_port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(site)
    factory = WebSocketServerFactory()
    factory.log = _Silent()
    factory.protocol = SocketServer
    factory.fake = fake
    ws_port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)
    fake.ws_port = ws_port.getHost().port
    protocols: list[Any] = []
    original = site.buildProtocol

    def track(addr: Any) -> Any:
        protocol = original(addr)
        protocols.append(protocol)
        return protocol

    site.buildProtocol = track  # type: ignore[method-assign]

    async def stop() -> None:
        for timer in fake.timers:
            if timer.active():
                timer.cancel()
        fake.drop_all()
        for protocol in protocols:
            transport = getattr(protocol, "transport", None) or getattr(getattr(protocol, "_channel", None), "transport", None)
            if transport is not None:
                transport.abortConnection()
        await api_port.stopListening()
        await ws_port.stopListening()

    testcase.addCleanup(stop)
    return fake, f"http://127.0.0.1:{api_port.getHost().port}/api"
