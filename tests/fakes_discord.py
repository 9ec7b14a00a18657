"""
A fake Discord on 127.0.0.1: the REST API (twisted.web, C{/api/v10/...},
C{Authorization: Bot <token>}, Discord's JSON errors and rate-limit headers)
and the gateway (an autobahn WebSocket server speaking v10 opcodes).

Gateway: HELLO with a chosen heartbeat interval; heartbeats ACKed (or not:
C{zombie}); IDENTIFY checked (token, intents: the Message Content intent
needs the application flag, else close 4014) and answered with READY and
GUILD_CREATE; RESUME replays the session's events after the given sequence
then sends RESUMED (op 9 C{false} for an unknown session); sessions keep
their events while no connection is attached, as Discord does; more than
120 frames a minute close with 4008. Faults: op 7, op 9 true/false, op 1,
any close code.

REST: C{/gateway/bot}, C{/users/@me}, C{/applications/@me},
C{/channels/{id}}, messages (2000 characters, else 50035; per-channel
buckets of C{bucket_limit} per C{bucket_window} s with C{X-RateLimit-*}
headers and 429 C{retry_after} floats), typing, DM channels; forbidden
channels (50001/50013), unknown ones (10003), and scripted faults per route.
Each message the bot posts comes back over the gateway as MESSAGE_CREATE by
the bot, as Discord echoes them.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any, Callable

import attrs
import txaio

txaio.use_twisted()

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol  # noqa: E402
from twisted.internet import reactor  # noqa: E402
from twisted.internet.endpoints import TCP4ServerEndpoint  # noqa: E402
from twisted.internet.task import deferLater  # noqa: E402
from twisted.web.resource import Resource  # noqa: E402
from twisted.web.server import NOT_DONE_YET, Request, Site  # noqa: E402

EPOCH_MS = 1420070400000
MESSAGE_CONTENT = 1 << 15
FLAG_CONTENT = 1 << 18
FLAG_CONTENT_LIMITED = 1 << 19
MAX_CONTENT = 2000


@attrs.define
class RestFault:
    status: int = 500
    body: dict[str, Any] = attrs.field(factory=lambda: {"message": "Internal Server Error", "code": 0})
    headers: dict[str, str] = attrs.field(factory=dict)
    stall: bool = False


def too_many(retry_after: float, is_global: bool = False, scope: str = "user") -> RestFault:
    """A 429 as Discord sends it."""
    headers = {"Retry-After": str(math.ceil(retry_after)), "X-RateLimit-Scope": scope}
    if is_global:
        headers["X-RateLimit-Global"] = "true"
    return RestFault(429, {"message": "You are being rate limited.", "retry_after": retry_after, "global": is_global}, headers)


@attrs.define
class Session:
    id: str
    user_id: str
    events: list[tuple[int, str, Any]] = attrs.field(factory=list)
    seq: int = 0
    conn: Any = None
    valid: bool = True


class GatewayConn(WebSocketServerProtocol):
    fake: FakeDiscord

    def onConnect(self, request: Any) -> None:
        self.path = request.path
        self.params = request.params
        self.session: Session | None = None
        self.received: list[float] = []
        self.identified = False

    def onOpen(self) -> None:
        self.fake.conns.append(self)
        self.send({"op": 10, "d": {"heartbeat_interval": self.fake.heartbeat_ms}})

    def send(self, frame: dict[str, Any]) -> None:
        if self.state == WebSocketServerProtocol.STATE_OPEN:
            self.sendMessage(json.dumps(frame).encode())

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        now = time.monotonic()
        self.received = [t for t in self.received if now - t < 60.0] + [now]
        if len(self.received) > 120:
            self.sendClose(4008, "Rate limited.")
            return
        try:
            frame = json.loads(payload)
        except ValueError:
            self.sendClose(4002, "Error while decoding payload.")
            return
        op, d = frame.get("op"), frame.get("d")
        self.fake.frames.append((self.fake.conns.index(self) if self in self.fake.conns else -1, frame))
        if op == 1:
            self.fake.heartbeats.append((now, d))
            if not self.fake.zombie:
                self.send({"op": 11})
        elif op == 2:
            self.fake.identify(self, d)
        elif op == 6:
            self.fake.resume(self, d)
        else:
            self.sendClose(4001, "Unknown opcode.")

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.close_code = code
        self.fake.client_closes.append(code)
        if self.session is not None and self.session.conn is self:
            self.session.conn = None


class FakeDiscord(Resource):
    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.token = "MTAwMDAwMDAwMDAwMDAwMDAx.fake.bot-token-abcdefghijklmnopqrstu"
        self.bot_id = "900000000000000001"
        self.username = "claw_test_bot"
        self.app_flags = FLAG_CONTENT
        self.heartbeat_ms = 41250
        self.zombie = False
        self.storm: int | None = None  # close every connection with this code right after READY/RESUMED
        self.gateway_port = 0
        self.sessions: dict[str, Session] = {}
        self.session: Session | None = None  # the latest identified
        self.conns: list[GatewayConn] = []
        self.frames: list[tuple[int, dict[str, Any]]] = []
        self.heartbeats: list[tuple[float, Any]] = []
        self.client_closes: list[int | None] = []
        self.identifies: list[dict[str, Any]] = []
        self.identified_at: list[float] = []
        self.resumes: list[dict[str, Any]] = []
        self.remaining = 1000
        self.reset_after_ms = 3_600_000
        self.guilds: dict[str, dict[str, Any]] = {}
        self.channels: dict[str, dict[str, Any]] = {}
        self.dm_channels: dict[str, str] = {}
        self.forbidden: dict[str, int] = {}
        self.sent: list[dict[str, Any]] = []
        self.typing: list[str] = []
        self.calls: list[tuple[str, str]] = []
        self.user_agents: set[str] = set()
        self.faults: dict[str, list[RestFault]] = {}
        self.bucket_limit = 5
        self.bucket_window = 5.0
        self.buckets: dict[str, tuple[int, float]] = {}
        self.served_429 = 0
        self.hidden: set[str] = set()
        self._ids = 0

    # -- ids and scripting

    def snowflake(self) -> str:
        self._ids += 1
        return str(((int(time.time() * 1000) - EPOCH_MS) << 22) + self._ids)

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.gateway_port}/"

    @property
    def resume_url(self) -> str:
        return f"ws://127.0.0.1:{self.gateway_port}/resume"

    def live(self) -> GatewayConn | None:
        return self.session.conn if self.session is not None else None

    def add_guild(self, guild_id: str = "800000000000000001", name: str = "Test Server", channels: dict[str, str] | None = None) -> str:
        """A guild with text channels (id → name); returns its id."""
        self.guilds[guild_id] = {"id": guild_id, "name": name}
        for cid, cname in (channels or {"700000000000000001": "general"}).items():
            self.channels[cid] = {"id": cid, "type": 0, "guild_id": guild_id, "name": cname}
        return guild_id

    def add_thread(self, thread_id: str, parent_id: str, name: str = "a thread", announce: bool = False, hidden: bool = False) -> None:
        """
        A thread: listed in GUILD_CREATE, or sent as THREAD_CREATE now
        (C{announce}), or neither (C{hidden}: only C{GET /channels/{id}} tells).
        """
        parent = self.channels[parent_id]
        thread = {"id": thread_id, "type": 11, "guild_id": parent["guild_id"], "parent_id": parent_id, "name": name}
        self.channels[thread_id] = thread
        if hidden or announce:
            self.hidden.add(thread_id)
        if announce:
            self.dispatch("THREAD_CREATE", {**thread, "newly_created": True})

    def dm_channel(self, user_id: str) -> str:
        cid = self.dm_channels.get(user_id)
        if cid is None:
            cid = self.dm_channels[user_id] = self.snowflake()
            self.channels[cid] = {"id": cid, "type": 1, "recipients": [{"id": user_id}]}
        return cid

    def dispatch(self, name: str, data: Any, session: Session | None = None) -> int:
        """Send an event in the session (kept for RESUME if no connection is attached); its sequence number."""
        session = session or self.session
        assert session is not None, "no gateway session yet"
        session.seq += 1
        session.events.append((session.seq, name, data))
        if session.conn is not None and session.conn.identified:
            session.conn.send({"op": 0, "t": name, "s": session.seq, "d": data})
        return session.seq

    def user(self, user_id: str, username: str, bot: bool = False) -> dict[str, Any]:
        return {"id": user_id, "username": username, "global_name": username.title(), "discriminator": "0", **({"bot": True} if bot else {})}

    def message(self, channel_id: str, author: dict[str, Any], content: str, guild_id: str | None = None, mentions: list[dict[str, Any]] | None = None, **extra: Any) -> str:
        """A MESSAGE_CREATE; returns the message id."""
        mid = self.snowflake()
        data = {
            "id": mid,
            "channel_id": channel_id,
            "author": author,
            "content": content,
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
            "type": extra.pop("type", 0),
            "mentions": mentions or [],
            "attachments": [],
            "embeds": [],
            **extra,
        }
        if guild_id is not None:
            data["guild_id"] = guild_id
        self.dispatch("MESSAGE_CREATE", data)
        return mid

    def dm(self, user_id: str, text: str, username: str = "alice") -> str:
        return self.message(self.dm_channel(user_id), self.user(user_id, username), text)

    def post(self, channel_id: str, user_id: str, text: str, mention: bool = False, username: str = "bob", **extra: Any) -> str:
        """A guild message (in a channel or a thread); C{mention} puts C{<@bot>} in front and the bot in C{mentions}."""
        channel = self.channels[channel_id]
        mentions = [self.user(self.bot_id, self.username, bot=True)] if mention else []
        content = f"<@{self.bot_id}> {text}" if mention else text
        return self.message(channel_id, self.user(user_id, username), content, guild_id=channel["guild_id"], mentions=mentions, **extra)

    def sent_to(self, channel_id: str) -> list[str]:
        return [m.get("content", "") for m in self.sent if m["channel_id"] == channel_id]

    def fault(self, route: str, *faults: RestFault) -> None:
        self.faults.setdefault(route, []).extend(faults)

    # -- gateway faults

    def reconnect(self) -> None:
        conn = self.live()
        assert conn is not None
        conn.send({"op": 7, "d": None})

    def invalid_session(self, resumable: bool) -> None:
        conn = self.live()
        assert conn is not None
        if not resumable and self.session is not None:
            self.session.valid = False
        conn.send({"op": 9, "d": resumable})

    def ask_heartbeat(self) -> None:
        conn = self.live()
        assert conn is not None
        conn.send({"op": 1, "d": None})

    def close(self, code: int, reason: str = "") -> None:
        conn = self.live()
        assert conn is not None
        if code in (4007, 4009, 4004) and self.session is not None:
            self.session.valid = False
        conn.sendClose(code, reason or None)

    def drop(self) -> None:
        """The TCP connection just breaks (no close frame); events from now on wait for a RESUME."""
        conn = self.live()
        assert conn is not None and self.session is not None
        self.session.conn = None
        conn.transport.abortConnection()

    # -- gateway opcodes

    def identify(self, conn: GatewayConn, d: Any) -> None:
        self.identifies.append(d)
        self.identified_at.append(time.monotonic())
        if not isinstance(d, dict) or d.get("token") != self.token:
            conn.sendClose(4004, "Authentication failed.")
            return
        if conn.identified:
            conn.sendClose(4005, "Already authenticated.")
            return
        intents = d.get("intents")
        if not isinstance(intents, int):
            conn.sendClose(4013, "Invalid intent(s).")
            return
        if intents & MESSAGE_CONTENT and not self.app_flags & (FLAG_CONTENT | FLAG_CONTENT_LIMITED):
            conn.sendClose(4014, "Disallowed intent(s).")
            return
        self.remaining -= 1
        if self.session is not None and self.session.conn is conn:
            self.session.conn = None
        session = Session(self.snowflake(), self.bot_id, conn=conn)
        self.sessions[session.id] = session
        self.session = session
        conn.session = session
        conn.identified = True
        self.dispatch(
            "READY",
            {
                "v": 10,
                "user": self.user(self.bot_id, self.username, bot=True),
                "guilds": [{"id": g, "unavailable": True} for g in self.guilds],
                "session_id": session.id,
                "resume_gateway_url": self.resume_url,
                "application": {"id": self.bot_id, "flags": self.app_flags},
            },
        )
        for gid, guild in self.guilds.items():
            channels = [c for c in self.channels.values() if c.get("guild_id") == gid and c["type"] in (0, 5)]
            threads = [c for c in self.channels.values() if c.get("guild_id") == gid and c["type"] in (10, 11, 12) and c["id"] not in self.hidden]
            self.dispatch("GUILD_CREATE", {**guild, "channels": channels, "threads": threads})
        if self.storm:
            conn.sendClose(self.storm, "Unknown error.")

    def resume(self, conn: GatewayConn, d: Any) -> None:
        self.resumes.append(d)
        if not isinstance(d, dict) or d.get("token") != self.token:
            conn.sendClose(4004, "Authentication failed.")
            return
        session = self.sessions.get(d.get("session_id"))
        seq = d.get("seq")
        if session is None or not session.valid or not isinstance(seq, int):
            conn.send({"op": 9, "d": False})
            return
        if session.conn is not None and session.conn is not conn:
            session.conn.transport.abortConnection()
        session.conn = conn
        conn.session = session
        conn.identified = True
        self.session = session
        for s, name, data in session.events:
            if s > seq:
                conn.send({"op": 0, "t": name, "s": s, "d": data})
        self.dispatch("RESUMED", None, session)
        if self.storm:
            conn.sendClose(self.storm, "Unknown error.")

    # -- REST

    def render(self, request: Request) -> Any:
        method = request.method.decode()
        path = request.path.decode("utf-8", "replace")
        request.setHeader(b"Content-Type", b"application/json")
        if not path.startswith("/api/v10/"):
            return self._error(request, 404, "404: Not Found", 0)
        path = path[len("/api/v10") :]
        parts = path.strip("/").split("/")
        route = method + " /" + "/".join("{id}" if p.isdigit() else p for p in parts)
        self.calls.append((method, path))
        self.user_agents.add((request.getHeader(b"user-agent") or b"").decode())
        if (request.getHeader(b"authorization") or b"").decode() != f"Bot {self.token}":
            return self._error(request, 401, "401: Unauthorized", 0)
        queued = self.faults.get(route)
        if queued:
            fault = queued.pop(0)
            if fault.stall:
                return NOT_DONE_YET
            for k, v in fault.headers.items():
                request.setHeader(k.encode(), v.encode())
            if fault.status == 429:
                self.served_429 += 1
            request.setResponseCode(fault.status)
            return json.dumps(fault.body).encode()
        try:
            body = self._body(request)
        except ValueError:
            return self._error(request, 400, "400: Bad Request", 50109)
        if route == "GET /gateway/bot":
            return self._ok({"url": self.gateway_url, "shards": 1, "session_start_limit": {"total": 1000, "remaining": self.remaining, "reset_after": self.reset_after_ms, "max_concurrency": 1}})
        if route == "GET /users/@me":
            return self._ok(self.user(self.bot_id, self.username, bot=True))
        if route == "GET /applications/@me":
            return self._ok({"id": self.bot_id, "name": "Claw", "flags": self.app_flags})
        if route == "POST /users/@me/channels":  # open (or get) the DM channel
            user = str(body.get("recipient_id") or "")
            if not user.isdigit():
                return self._error(request, 400, "Invalid Form Body", 50035)
            return self._ok(self.channels[self.dm_channel(user)])
        if len(parts) >= 2 and parts[0] == "channels":
            cid = parts[1]
            channel = self.channels.get(cid)
            if channel is None:
                return self._error(request, 404, "Unknown Channel", 10003)
            if cid in self.forbidden:
                code = self.forbidden[cid]
                return self._error(request, 403, {50001: "Missing Access", 50013: "Missing Permissions"}.get(code, "Forbidden"), code)
            if route == "GET /channels/{id}":
                return self._ok(channel)
            if route == "POST /channels/{id}/typing":
                self.typing.append(cid)
                request.setResponseCode(204)
                return b""
            if route == "POST /channels/{id}/messages":
                return self._create(request, cid, body)
        return self._error(request, 404, "404: Not Found", 0)

    def _create(self, request: Request, cid: str, body: dict[str, Any]) -> bytes:
        now = time.monotonic()
        count, reset_at = self.buckets.get(cid, (0, now + self.bucket_window))
        if now >= reset_at:
            count, reset_at = 0, now + self.bucket_window
        headers = {"X-RateLimit-Limit": str(self.bucket_limit), "X-RateLimit-Bucket": "f3a1c0de", "X-RateLimit-Reset-After": f"{reset_at - now:.3f}", "X-RateLimit-Reset": f"{time.time() + reset_at - now:.3f}"}
        if count >= self.bucket_limit:
            self.served_429 += 1
            for k, v in {**headers, "X-RateLimit-Remaining": "0", "X-RateLimit-Scope": "user", "Retry-After": str(math.ceil(reset_at - now))}.items():
                request.setHeader(k.encode(), v.encode())
            request.setResponseCode(429)
            return json.dumps({"message": "You are being rate limited.", "retry_after": round(reset_at - now, 3), "global": False}).encode()
        content = body.get("content") or ""
        if len(content) > MAX_CONTENT:
            request.setResponseCode(400)
            return json.dumps({"message": "Invalid Form Body", "code": 50035, "errors": {"content": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 2000 or fewer in length."}]}}}).encode()
        if not content and not body.get("poll") and not body.get("_files"):
            return self._error(request, 400, "Cannot send an empty message", 50006)
        self.buckets[cid] = (count + 1, reset_at)
        for k, v in {**headers, "X-RateLimit-Remaining": str(self.bucket_limit - count - 1)}.items():
            request.setHeader(k.encode(), v.encode())
        mid = self.snowflake()
        record = {"channel_id": cid, "id": mid, **{k: v for k, v in body.items()}}
        self.sent.append(record)
        message = {"id": mid, "channel_id": cid, "author": self.user(self.bot_id, self.username, bot=True), "content": content, "type": 19 if body.get("message_reference") else 0, "mentions": [], "attachments": []}
        channel = self.channels[cid]
        if channel.get("guild_id"):
            message["guild_id"] = channel["guild_id"]
        if self.session is not None:
            self.dispatch("MESSAGE_CREATE", message)
        return self._ok(message)

    @staticmethod
    def _body(request: Request) -> dict[str, Any]:
        ctype = (request.getHeader(b"content-type") or b"").split(b";")[0].strip().lower()
        if ctype == b"application/json":
            value = json.loads((request.content.read() if request.content is not None else b"") or b"{}")
            return value if isinstance(value, dict) else {}
        if ctype == b"multipart/form-data":
            args = request.args or {}
            payload = json.loads(args.get(b"payload_json", [b"{}"])[0])
            payload["_files"] = [k.decode() for k in args if k.startswith(b"files[")]
            payload["_sizes"] = [len(args[k][0]) for k in args if k.startswith(b"files[")]
            return payload
        return {}

    @staticmethod
    def _ok(value: Any) -> bytes:
        return json.dumps(value).encode()

    @staticmethod
    def _error(request: Request, status: int, message: str, code: int) -> bytes:
        request.setResponseCode(status)
        return json.dumps({"message": message, "code": code}).encode()


async def start_discord(testcase: Any, heartbeat_ms: int = 41250) -> tuple[FakeDiscord, str]:
    """REST and gateway on 127.0.0.1 port 0; returns the fake and its apiBase."""
    fake = FakeDiscord()
    fake.heartbeat_ms = heartbeat_ms
    site = Site(fake)
    site.log = lambda request: None  # type: ignore[method-assign]
    rest = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(site)
    factory = WebSocketServerFactory()
    factory.setProtocolOptions(allowNullOrigin=True, autoPingInterval=0, openHandshakeTimeout=5, closeHandshakeTimeout=1)

    class Conn(GatewayConn):
        pass

    Conn.fake = fake
    factory.protocol = Conn
    gateway = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)
    fake.gateway_port = gateway.getHost().port

    async def stop() -> None:
        for conn in fake.conns:
            if conn.transport is not None and conn.state != WebSocketServerProtocol.STATE_CLOSED:
                conn.transport.abortConnection()
        await gateway.stopListening()
        await rest.stopListening()
        for _ in range(50):
            if all(c.state == WebSocketServerProtocol.STATE_CLOSED for c in fake.conns):
                break
            await deferLater(reactor, 0.02, lambda: None)

    testcase.addCleanup(stop)
    return fake, f"http://127.0.0.1:{rest.getHost().port}/api/v10"


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
