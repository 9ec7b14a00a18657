"""
A fake Matrix homeserver: a twisted.web server on 127.0.0.1 speaking the
client-server API's wire format (C{/_matrix/client/v3/...}, JSON bodies,
C{{"errcode", "error"}} errors, the access token in C{Authorization: Bearer}).

It keeps one bot user's view of the world: rooms with members, names and
encryption, a stream of events numbered by position (C{next_batch} is
C{"s<pos>"}), long-polled C{/sync} held until something happens or the
timeout passes, invites, C{m.direct}, transaction-id dedupe on sends (per
access token, as Synapse does), typing, joins, password login and
revocable tokens. Faults are scripted per endpoint: any status with its
errcode (and C{retry_after_ms}), a stall (no answer), a body that is not
JSON, or C{commit} (do the request, then drop the connection unanswered).
"""

from __future__ import annotations

import json
import re
import secrets
import time
from typing import Any
from urllib.parse import unquote

import attrs
from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

SERVER = "fake.test"
BOT = f"@claw:{SERVER}"


@attrs.define
class Fault:
    status: int = 500
    errcode: str = "M_UNKNOWN"
    error: str = "Internal server error"
    retry_after_ms: int | None = None
    stall: bool = False
    garbage: bool = False
    commit: bool = False  # perform the request, then drop the connection without an answer


@attrs.define
class Room:
    id: str
    name: str | None = None
    members: dict[str, str] = attrs.field(factory=dict)  # user → membership
    names: dict[str, str] = attrs.field(factory=dict)  # user → display name
    encrypted: bool = False
    alias: str | None = None


ROUTES = [
    ("GET", r"/_matrix/client/versions", "versions"),
    ("POST", r"/_matrix/client/v3/login", "login"),
    ("POST", r"/_matrix/client/v3/logout", "logout"),
    ("GET", r"/_matrix/client/v3/account/whoami", "whoami"),
    ("GET", r"/_matrix/client/v3/sync", "sync"),
    ("PUT", r"/_matrix/client/v3/rooms/([^/]+)/send/([^/]+)/([^/]+)", "send"),
    ("PUT", r"/_matrix/client/v3/rooms/([^/]+)/typing/([^/]+)", "typing"),
    ("POST", r"/_matrix/client/v3/join/([^/]+)", "join"),
    ("POST", r"/_matrix/client/v3/rooms/([^/]+)/join", "join"),
    ("GET", r"/_matrix/client/v3/rooms/([^/]+)/joined_members", "joined_members"),
    ("GET", r"/_matrix/client/v3/rooms/([^/]+)/state/([^/]+)/?", "state"),
    ("GET", r"/_matrix/client/v3/user/([^/]+)/account_data/([^/]+)", "account_data"),
    ("PUT", r"/_matrix/client/v3/user/([^/]+)/account_data/([^/]+)", "set_account_data"),
    ("GET", r"/_matrix/client/v3/profile/([^/]+)/displayname", "profile"),
    ("POST", r"/_matrix/client/v3/createRoom", "createRoom"),
    ("GET", r"/_matrix/client/v3/directory/room/([^/]+)", "directory"),
    ("POST", r"/_matrix/media/v3/upload", "upload"),
]


class FakeHomeserver(Resource):
    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.password = "correct horse battery staple"
        self.display_name = "Claw"
        self.tokens: dict[str, str] = {}  # token → device id
        self.rooms: dict[str, Room] = {}
        self.stream: list[tuple[int, str, str, dict[str, Any]]] = []  # (pos, kind, room, event)
        self.pos = 0
        self.polls: list[tuple[Request, Any]] = []
        self.sent: list[dict[str, Any]] = []
        self.txns: dict[tuple[str, str], str] = {}
        self.typing: list[dict[str, Any]] = []
        self.joins: list[str] = []
        self.calls: list[tuple[str, str]] = []
        self.syncs: list[dict[str, str]] = []
        self.faults: dict[str, list[Fault]] = {}
        self.direct: dict[str, list[str]] = {}
        self.logins = 0
        self.next_id = 0
        self.uploads: list[bytes] = []
        self.site: Site | None = None

    # -- scripting

    def token(self) -> str:
        token = "syt_" + secrets.token_hex(12)
        self.tokens[token] = "DEV" + secrets.token_hex(3).upper()
        return token

    def fault(self, endpoint: str, *faults: Fault) -> None:
        self.faults.setdefault(endpoint, []).extend(faults)

    def _id(self, sigil: str) -> str:
        self.next_id += 1
        return f"{sigil}{self.next_id}x{secrets.token_hex(3)}" + (f":{SERVER}" if sigil != "$" else "")

    def _push(self, kind: str, room: str, event: dict[str, Any]) -> int:
        self.pos += 1
        self.stream.append((self.pos, kind, room, event))
        self._wake()
        return self.pos

    def _event(self, room: str, sender: str, kind: str, content: dict[str, Any], state_key: str | None = None) -> dict[str, Any]:
        event: dict[str, Any] = {"type": kind, "sender": sender, "content": content, "event_id": self._id("$"), "origin_server_ts": int(time.time() * 1000), "room_id": room}
        if state_key is not None:
            event["state_key"] = state_key
        return event

    def room(self, *users: str, name: str | None = None, encrypted: bool = False, direct: bool = False, alias: str | None = None, joined: bool = True) -> str:
        """A room with the bot (joined, unless invited later) and C{users}; C{direct} lists it in the bot's m.direct."""
        room = Room(self._id("!"), name, {u: "join" for u in users}, {u: u[1:].split(":")[0].title() for u in users}, encrypted, alias)
        if joined:
            room.members[BOT] = "join"
        self.rooms[room.id] = room
        if direct and users:
            self.direct.setdefault(users[0], []).append(room.id)
        return room.id

    def say(self, room_id: str, sender: str, body: str, msgtype: str = "m.text", **content: Any) -> str:
        """A message in a room; returns its event id."""
        event = self._event(room_id, sender, "m.room.message", {"msgtype": msgtype, "body": body, **content})
        self._push("timeline", room_id, event)
        return event["event_id"]

    def encrypted_message(self, room_id: str, sender: str) -> str:
        event = self._event(room_id, sender, "m.room.encrypted", {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AwgAEnA..."})
        self._push("timeline", room_id, event)
        return event["event_id"]

    def join_user(self, room_id: str, user: str) -> None:
        self.rooms[room_id].members[user] = "join"
        self._push("timeline", room_id, self._event(room_id, user, "m.room.member", {"membership": "join", "displayname": user[1:].split(":")[0].title()}, user))

    def invite(self, room_id: str, inviter: str, is_direct: bool = False) -> None:
        room = self.rooms[room_id]
        room.members[BOT] = "invite"
        state = [self._event(room_id, inviter, "m.room.member", {"membership": "invite", "is_direct": is_direct}, BOT)]
        if room.alias:
            state.append(self._event(room_id, inviter, "m.room.canonical_alias", {"alias": room.alias}, ""))
        self._push("invite", room_id, {"events": state})

    def dm(self, user: str, body: str) -> tuple[str, str]:
        """A message in the user's DM room with the bot (made on first use); (room, event id)."""
        room = next((r for r in self.direct.get(user, []) if r in self.rooms), None)
        if room is None:
            room = self.room(user, direct=True)
        return room, self.say(room, user, body)

    def texts(self, room_id: str | None = None) -> list[str]:
        return [m["content"]["body"] for m in self.sent if room_id in (None, m["room"])]

    def revoke(self) -> None:
        self.tokens.clear()

    # -- sync

    def _since(self, token: str | None) -> int | None:
        if token and token.startswith("s") and token[1:].isdigit():
            return int(token[1:])
        return None

    def _changes(self, since: int | None, limit: int) -> tuple[dict[str, Any], bool]:
        """The sync body after position C{since} (None: a first sync) and whether it holds anything."""
        joined: dict[str, Any] = {}
        invited: dict[str, Any] = {}
        account_data: list[dict[str, Any]] = []
        any_news = False
        if since is None:
            for room in self.rooms.values():
                if room.members.get(BOT) == "join":
                    timeline = [e for _, kind, r, e in self.stream if kind == "timeline" and r == room.id][-limit:] if limit else []
                    joined[room.id] = {"timeline": {"events": timeline, "limited": False}, "state": {"events": self._state(room)}}
                elif room.members.get(BOT) == "invite":
                    events = [e for _, kind, r, e in self.stream if kind == "invite" and r == room.id]
                    invited[room.id] = {"invite_state": events[-1] if events else {"events": []}}
            account_data.append({"type": "m.direct", "content": self.direct})
            return {"next_batch": f"s{self.pos}", "rooms": {"join": joined, "invite": invited, "leave": {}}, "account_data": {"events": account_data}}, True
        for pos, kind, room_id, event in self.stream:
            if pos <= since:
                continue
            any_news = True
            if kind == "timeline":
                entry = joined.setdefault(room_id, {"timeline": {"events": [], "limited": False}, "state": {"events": []}})
                entry["timeline"]["events"].append(event)
            elif kind == "invite":
                invited[room_id] = {"invite_state": event}
            elif kind == "account_data":
                account_data.append(event)
        for room_id, entry in joined.items():
            room = self.rooms.get(room_id)
            senders = {e["sender"] for e in entry["timeline"]["events"]}
            if room is not None:  # lazy-loaded members: the senders' member events
                entry["state"]["events"] = [self._event(room_id, u, "m.room.member", {"membership": room.members[u], "displayname": room.names.get(u, u)}, u) for u in sorted(senders) if u in room.members]
            events = entry["timeline"]["events"]
            if len(events) > limit:
                entry["timeline"]["events"], entry["timeline"]["limited"] = events[-limit:], True
        body = {"next_batch": f"s{self.pos}", "rooms": {"join": joined, "invite": invited, "leave": {}}, "account_data": {"events": account_data}}
        return body, any_news

    def _state(self, room: Room) -> list[dict[str, Any]]:
        state = [self._event(room.id, u, "m.room.member", {"membership": m, "displayname": room.names.get(u, u)}, u) for u, m in room.members.items()]
        if room.name:
            state.append(self._event(room.id, BOT, "m.room.name", {"name": room.name}, ""))
        if room.encrypted:
            state.append(self._event(room.id, BOT, "m.room.encryption", {"algorithm": "m.megolm.v1.aes-sha2"}, ""))
        return state

    def _wake(self) -> None:
        polls, self.polls = self.polls, []
        for request, params in polls:
            body, news = self._changes(self._since(params.get("since")), params["limit"])
            if news:
                if params["timer"].active():
                    params["timer"].cancel()
                _finish(request, 200, body)
            else:
                self.polls.append((request, params))

    def sync(self, request: Request, query: dict[str, str]) -> Any:
        self.syncs.append(query)
        limit = 10
        try:
            limit = int(json.loads(query.get("filter") or "{}").get("room", {}).get("timeline", {}).get("limit", 10))
        except (ValueError, AttributeError):
            pass
        since = self._since(query.get("since"))
        if query.get("since") and since is None:
            return _error(request, 400, "M_INVALID_PARAM", "bad since token")
        body, news = self._changes(since, limit)
        timeout = int(query.get("timeout") or 0) / 1000
        if news or not timeout:
            return _json(request, 200, body)
        params = {"since": query.get("since"), "limit": limit}

        def expire() -> None:
            for i, (r, _) in enumerate(self.polls):
                if r is request:
                    del self.polls[i]
                    _finish(request, 200, self._changes(since, limit)[0])
                    return

        params["timer"] = reactor.callLater(timeout, expire)
        self.polls.append((request, params))
        request.notifyFinish().addErrback(lambda _: self._drop(request))
        return NOT_DONE_YET

    def _drop(self, request: Request) -> None:
        for i, (r, params) in enumerate(self.polls):
            if r is request:
                if params["timer"].active():
                    params["timer"].cancel()
                del self.polls[i]
                return

    # -- endpoints

    def render(self, request: Request) -> Any:
        method = request.method.decode()
        raw_path = request.path.decode("utf-8", "replace")
        for verb, pattern, name in ROUTES:
            m = re.fullmatch(pattern, raw_path)
            if m and verb == method:
                break
        else:
            return _error(request, 404, "M_UNRECOGNIZED", "Unrecognized request")
        args = [unquote(a) for a in m.groups()]
        self.calls.append((name, raw_path))
        query = {k.decode(): v[0].decode() for k, v in (request.args or {}).items()}
        content = request.content.read() if request.content is not None else b""
        if name == "upload":
            body: Any = content
        else:
            try:
                body = json.loads(content) if content else {}
            except ValueError:
                return _error(request, 400, "M_NOT_JSON", "Content not JSON.")
        queued = self.faults.get(name)
        fault = queued.pop(0) if queued else None
        if fault is not None and not fault.commit:
            if fault.stall:
                return NOT_DONE_YET
            if fault.garbage:
                request.setResponseCode(fault.status)
                return b"<html>bad gateway</html>"
            extra = {"retry_after_ms": fault.retry_after_ms} if fault.retry_after_ms is not None else {}
            return _error(request, fault.status, fault.errcode, fault.error, **extra)
        if name not in ("versions", "login"):
            auth = (request.getHeader(b"authorization") or b"").decode()
            if not auth.startswith("Bearer "):
                return _error(request, 401, "M_MISSING_TOKEN", "Missing access token")
            if auth[7:] not in self.tokens:
                return _error(request, 401, "M_UNKNOWN_TOKEN", "Invalid access token passed.", soft_logout=False)
            token = auth[7:]
        else:
            token = ""
        result = getattr(self, "do_" + name)(request, token, args, query, body)
        if fault is not None and fault.commit:
            request.channel.transport.abortConnection()  # done, but the client never hears of it
            return NOT_DONE_YET
        return result

    def do_versions(self, request: Request, token: str, args: list[str], query: dict[str, str], body: Any) -> Any:
        return _json(request, 200, {"versions": ["v1.9", "v1.10", "v1.11"]})

    def do_login(self, request: Request, token: str, args: list[str], query: dict[str, str], body: Any) -> Any:
        ident = body.get("identifier") or {}
        if body.get("type") != "m.login.password" or ident.get("user") not in (BOT, "claw") or body.get("password") != self.password:
            return _error(request, 403, "M_FORBIDDEN", "Invalid username or password")
        self.logins += 1
        token = self.token()
        return _json(request, 200, {"user_id": BOT, "access_token": token, "device_id": self.tokens[token], "home_server": SERVER})

    def do_logout(self, request: Request, token: str, args: list[str], query: dict[str, str], body: Any) -> Any:
        self.tokens.pop(token, None)
        return _json(request, 200, {})

    def do_whoami(self, request: Request, token: str, args: list[str], query: dict[str, str], body: Any) -> Any:
        return _json(request, 200, {"user_id": BOT, "device_id": self.tokens[token], "is_guest": False})

    def do_sync(self, request: Request, token: str, args: list[str], query: dict[str, str], body: Any) -> Any:
        return self.sync(request, query)

    def do_send(self, request: Request, token: str, args: list[str], query: dict[str, str], body: Any) -> Any:
        room_id, kind, txn = args
        room = self.rooms.get(room_id)
        if room is None or room.members.get(BOT) != "join":
            return _error(request, 403, "M_FORBIDDEN", f"User {BOT} not in room {room_id}")
        known = self.txns.get((token, txn))
        if known is not None:
            return _json(request, 200, {"event_id": known})
        if len(json.dumps(body)) > 65536:
            return _error(request, 413, "M_TOO_LARGE", "event too large")
        event = self._event(room_id, BOT, kind, body)
        self.txns[(token, txn)] = event["event_id"]
        self.sent.append({"room": room_id, "content": body, "txn": txn, "event_id": event["event_id"]})
        self._push("timeline", room_id, event)  # our own events come back in the sync stream
        return _json(request, 200, {"event_id": event["event_id"]})

    def do_typing(self, request: Request, token: str, args: list[str], query: dict[str, str], body: Any) -> Any:
        self.typing.append({"room": args[0], "user": args[1], **body})
        return _json(request, 200, {})

    def do_join(self, request: Request, token: str, args: list[str], query: dict[str, str], body: Any) -> Any:
        target = args[0]
        room = self.rooms.get(target) or next((r for r in self.rooms.values() if r.alias == target), None)
        if room is None or room.members.get(BOT) not in ("invite", "join"):
            return _error(request, 403, "M_FORBIDDEN", "You are not invited to this room.")
        room.members[BOT] = "join"
        self.joins.append(room.id)
        self._push("timeline", room.id, self._event(room.id, BOT, "m.room.member", {"membership": "join", "displayname": self.display_name}, BOT))
        return _json(request, 200, {"room_id": room.id})

    def do_joined_members(self, request: Request, token: str, args: list[str], query: dict[str, str], body: Any) -> Any:
        room = self.rooms.get(args[0])
        if room is None or room.members.get(BOT) != "join":
            return _error(request, 403, "M_FORBIDDEN", "not in room")
        return _json(request, 200, {"joined": {u: {"display_name": room.names.get(u)} for u, m in room.members.items() if m == "join"}})

    def do_state(self, request: Request, token: str, args: list[str], query: dict[str, str], body: Any) -> Any:
        room = self.rooms.get(args[0])
        if room is None or room.members.get(BOT) != "join":
            return _error(request, 403, "M_FORBIDDEN", "not in room")
        if args[1] == "m.room.encryption" and room.encrypted:
            return _json(request, 200, {"algorithm": "m.megolm.v1.aes-sha2"})
        if args[1] == "m.room.name" and room.name:
            return _json(request, 200, {"name": room.name})
        return _error(request, 404, "M_NOT_FOUND", "Event not found.")

    def do_account_data(self, request: Request, token: str, args: list[str], query: dict[str, str], body: Any) -> Any:
        if args[1] != "m.direct" or not self.direct:
            return _error(request, 404, "M_NOT_FOUND", "Account data not found")
        return _json(request, 200, self.direct)

    def do_set_account_data(self, request: Request, token: str, args: list[str], query: dict[str, str], body: Any) -> Any:
        if args[1] == "m.direct":
            self.direct = body
            self._push("account_data", "", {"type": "m.direct", "content": body})
        return _json(request, 200, {})

    def do_profile(self, request: Request, token: str, args: list[str], query: dict[str, str], body: Any) -> Any:
        return _json(request, 200, {"displayname": self.display_name})

    def do_createRoom(self, request: Request, token: str, args: list[str], query: dict[str, str], body: Any) -> Any:
        room = self.room(*[u for u in body.get("invite") or []])
        return _json(request, 200, {"room_id": room})

    def do_directory(self, request: Request, token: str, args: list[str], query: dict[str, str], body: Any) -> Any:
        room = next((r for r in self.rooms.values() if r.alias == args[0]), None)
        if room is None:
            return _error(request, 404, "M_NOT_FOUND", "Room alias not found")
        return _json(request, 200, {"room_id": room.id, "servers": [SERVER]})

    def do_upload(self, request: Request, token: str, args: list[str], query: dict[str, str], body: Any) -> Any:
        self.uploads.append(body)
        return _json(request, 200, {"content_uri": f"mxc://{SERVER}/{secrets.token_hex(8)}"})


def _json(request: Request, status: int, body: Any) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", b"application/json")
    return json.dumps(body).encode()


def _error(request: Request, status: int, errcode: str, error: str, **extra: Any) -> bytes:
    return _json(request, status, {"errcode": errcode, "error": error, **extra})


def _finish(request: Request, status: int, body: Any) -> None:
    if request.finished or request.channel is None:
        return
    request.write(_json(request, status, body))
    request.finish()


async def start_matrix(testcase: Any) -> tuple[FakeHomeserver, str]:
    """Listen on 127.0.0.1:0; returns the fake and its homeserver URL."""
    fake = FakeHomeserver()
    site = Site(fake)
    site.log = lambda request: None  # type: ignore[method-assign]
    protocols: list[Any] = []
    original = site.buildProtocol

    def track(addr: Any) -> Any:
        protocol = original(addr)
        protocols.append(protocol)
        return protocol

    site.buildProtocol = track  # type: ignore[method-assign]
    port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(site)
    fake.site = site

    async def stop() -> None:
        for _, params in fake.polls:
            if params["timer"].active():
                params["timer"].cancel()
        fake.polls.clear()
        for protocol in protocols:
            transport = getattr(protocol, "transport", None)
            if transport is not None:
                transport.abortConnection()
        await port.stopListening()

    testcase.addCleanup(stop)
    return fake, f"http://127.0.0.1:{port.getHost().port}"
