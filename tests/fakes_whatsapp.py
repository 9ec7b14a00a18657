"""
Fakes for WhatsApp, both transports, on 127.0.0.1.

L{FakeWhatsApp} is WhatsApp Web as the gateway's helper process sees it:
the gateway spawns C{tests/fake_wa_bridge.py} (speaking the real JSON-lines
helper protocol on stdio), which relays to this object over a loopback
socket. Here the test plays the phone and WhatsApp's servers: QR codes,
scanning, incoming DMs and group messages, the replies the gateway sends,
and the faults (error replies with codes, stalls, crashes, garbage, the
link closing with a code, the phone logging the device out). WhatsApp
Web's own wire (Noise handshake, Signal sessions, protobuf frames) cannot
reasonably be faked, so the fake stands where the library would.

L{FakeGraph} is the Cloud API: a twisted.web server speaking the Graph
API's JSON (bearer token checked, the 4096-character limit, the 24-hour
window error 131047, scripted faults such as 429 with Retry-After and 190),
and L{post_delivery}/L{verify} are Meta's side of the webhook: deliveries
signed with C{X-Hub-Signature-256} over the exact raw body.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
from pathlib import Path
from typing import Any, Callable

import treq
from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.protocol import Factory
from twisted.protocols.basic import LineReceiver
from twisted.web.client import HTTPConnectionPool
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from tests.fakes_telegram import wait_for  # noqa: F401  (re-exported for the WhatsApp tests)

RELAY = Path(__file__).with_name("fake_wa_bridge.py")
ME = {"jid": "15550001111@s.whatsapp.net", "lid": "777000111@lid", "name": "Claw Bot"}
SESSION = "session.json"


class Link(LineReceiver):
    """One helper process (the relay), as the fake sees it."""

    delimiter = b"\n"
    MAX_LENGTH = 64 * 1024 * 1024

    def __init__(self, fake: FakeWhatsApp) -> None:
        self.fake = fake
        self.hello: dict[str, Any] = {}
        self.eof = False
        self.gone = False
        self.commands: list[dict[str, Any]] = []

    @property
    def auth_dir(self) -> Path:
        return Path(self.hello["authDir"])

    def lineReceived(self, line: bytes) -> None:
        order = json.loads(line)
        if "hello" in order:
            self.hello = order["hello"]
            self.fake.attached(self)
        elif "cmd" in order:
            self.commands.append(order["cmd"])
            self.fake.command(self, order["cmd"])
        elif "bad" in order:
            self.fake.bad.append(order["bad"])
        elif order.get("eof"):
            self.eof = True

    def connectionLost(self, reason: Any = None) -> None:
        self.gone = True

    def _order(self, value: dict[str, Any]) -> None:
        if not self.gone:
            self.sendLine(json.dumps(value).encode())

    def emit(self, event: dict[str, Any]) -> None:
        self._order({"emit": event})

    def raw(self, text: str) -> None:
        self._order({"raw": text})

    def stderr(self, text: str) -> None:
        self._order({"stderr": text})

    def exit(self, code: int = 0) -> None:
        self._order({"exit": code})


class FakeWhatsApp(Factory):
    def __init__(self) -> None:
        self.me = dict(ME)
        self.links: list[Link] = []
        self.sent: list[dict[str, Any]] = []
        self.typing: list[str] = []
        self.reads: list[dict[str, Any]] = []
        self.bad: list[str] = []
        self.faults: dict[str, list[dict[str, Any]]] = {}
        self.qr_codes = ["2@FIRSTref0123456789,NoiseKeyAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=,IdentityKeyBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB=,AdvSecretCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC="]
        self.on_attach: Callable[[Link], None] | None = None
        self.restart_after_scan = False  # Baileys: the link closes with 515 right after pairing
        self.logouts = 0
        self._next = 0

    def buildProtocol(self, addr: Any) -> Link:
        return Link(self)

    # -- the helper's life

    @property
    def live(self) -> Link | None:
        alive = [link for link in self.links if not link.gone and link.hello]
        return alive[-1] if alive else None

    def linked(self, auth_dir: Path) -> bool:
        return (auth_dir / SESSION).exists()

    def attached(self, link: Link) -> None:
        self.links.append(link)
        if self.on_attach is not None:
            self.on_attach(link)
            return
        link.emit({"type": "status", "state": "connecting"})
        if self.linked(link.auth_dir):
            link.emit({"type": "connected", **self.me})
        else:
            link.emit({"type": "qr", "qr": self.qr_codes[0]})

    def write_session(self, link: Link) -> None:
        """As a real helper does: the helper process writes its session file (under the umask it was given)."""
        link._order({"write": {"name": SESSION, "data": json.dumps({"me": self.me})}})

    def scan(self) -> None:
        """The phone scans the QR shown now."""
        link = self.live
        assert link is not None, "no helper is running"
        self.write_session(link)
        if self.restart_after_scan:
            link.emit({"type": "status", "state": "closed", "code": 515, "reason": "restart required"})
            link.exit(0)
            return
        link.emit({"type": "connected", **self.me})

    def new_qr(self, code: str) -> None:
        link = self.live
        assert link is not None
        self.qr_codes.insert(0, code)
        link.emit({"type": "qr", "qr": code})

    def phone_logout(self, reason: str = "removed from the phone") -> None:
        """The owner removes the linked device on the phone."""
        link = self.live
        assert link is not None
        link.emit({"type": "logged_out", "reason": reason})
        link.exit(0)

    def close(self, code: int | None = None, reason: str = "connection lost") -> None:
        link = self.live
        assert link is not None
        event: dict[str, Any] = {"type": "status", "state": "closed", "reason": reason}
        if code is not None:
            event["code"] = code
        link.emit(event)
        link.exit(0)

    def fault(self, kind: str, *faults: dict[str, Any]) -> None:
        self.faults.setdefault(kind, []).extend(faults)

    def command(self, link: Link, cmd: dict[str, Any]) -> None:
        kind = cmd.get("type")
        queued = self.faults.get(str(kind)) or []
        if queued:
            fault = queued.pop(0)
            if fault.get("stall"):
                return
            if "exit" in fault:
                link.stderr(fault.get("stderr", "helper crashed"))
                link.exit(fault["exit"])
                return
            link.emit({"type": "error", "id": cmd.get("id"), **fault})
            return
        if kind == "ping":
            link.emit({"type": "pong", "id": cmd["id"]})
        elif kind in ("send", "send_media"):
            self._next += 1
            ident = f"3EB0SENT{self._next:04d}"
            self.sent.append({**cmd, "id": ident, "command": cmd.get("id")})
            link.emit({"type": "sent", "id": cmd["id"], "messageId": ident})
        elif kind == "typing":
            self.typing.append(cmd["to"])
            link.emit({"type": "ok", "id": cmd["id"]})
        elif kind == "read":
            self.reads.append(cmd)
            link.emit({"type": "ok", "id": cmd["id"]})
        elif kind == "logout":
            self.logouts += 1
            (link.auth_dir / SESSION).unlink(missing_ok=True)
            link.emit({"type": "ok", "id": cmd["id"]})
            link.emit({"type": "logged_out", "reason": "logged out"})
            link.exit(0)
        else:
            link.emit({"type": "error", "id": cmd.get("id"), "code": "unsupported", "message": "unknown command"})

    # -- people writing

    def _message(self, **fields: Any) -> str:
        link = self.live
        assert link is not None, "no helper is running"
        self._next += 1
        ident = fields.pop("id", None) or f"ABCD{self._next:06d}"
        link.emit({"type": "message", "id": ident, "timestamp": 1_760_000_000, **fields})
        return ident

    def dm(self, phone: str, text: str, name: str = "Alice", **extra: Any) -> str:
        """A DM from C{phone} (E.164); returns the message id."""
        jid = f"{phone.lstrip('+')}@s.whatsapp.net"
        return self._message(chat=jid, sender=jid, fromMe=False, pushName=name, text=text, **extra)

    def group(self, group: str, phone: str, text: str, name: str = "Bob", **extra: Any) -> str:
        jid = f"{phone.lstrip('+')}@s.whatsapp.net"
        return self._message(chat=group, sender=jid, fromMe=False, pushName=name, text=text, chatName="Team", **extra)

    def from_me(self, chat: str, text: str, **extra: Any) -> str:
        """Something the owner wrote from the phone (to C{chat}; the self chat is the own JID)."""
        return self._message(chat=chat, sender=self.me["jid"], fromMe=True, pushName=self.me["name"], text=text, **extra)

    def texts(self, phone_or_jid: str) -> list[str]:
        jid = phone_or_jid if "@" in phone_or_jid else f"{phone_or_jid.lstrip('+')}@s.whatsapp.net"
        return [s.get("text") or s.get("caption") or "" for s in self.sent if s["to"] == jid]


async def start_whatsapp(testcase: Any) -> tuple[FakeWhatsApp, list[str]]:
    """Listen on 127.0.0.1:0; returns the fake and the C{bridgeCommand} that reaches it."""
    fake = FakeWhatsApp()
    port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(fake)

    async def stop() -> None:
        for link in fake.links:
            if not link.gone and link.transport is not None:
                link.transport.abortConnection()
        await port.stopListening()

    testcase.addCleanup(stop)
    return fake, [sys.executable, str(RELAY), "--control", str(port.getHost().port)]


# -- the Cloud API


GRAPH_TOKEN = "EAAGtestTOKENabcdefghijklmnopqrstuvwxyz0123456789"
APP_SECRET = "app-secret-0123456789abcdef"
VERIFY_TOKEN = "verify-me-please"
PHONE_ID = "109876543210"


def graph_error(code: int, message: str, details: str | None = None, status: int = 400) -> tuple[int, dict[str, Any], dict[str, str]]:
    error: dict[str, Any] = {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "AbCdEf"}
    if details:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    return status, {"error": error}, {}


WINDOW_CLOSED = graph_error(131047, "Re-engagement message", "Message failed to send because more than 24 hours have passed since the customer last replied to this number.")


class FakeGraph(Resource):
    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.token = GRAPH_TOKEN
        self.phone_id = PHONE_ID
        self.requests: list[dict[str, Any]] = []
        self.messages: list[dict[str, Any]] = []
        self.uploads: list[dict[str, Any]] = []
        self.reads: list[str] = []
        self.open_windows: set[str] = set()  # wa_ids that wrote within 24 h
        self.faults: dict[str, list[tuple[int, dict[str, Any], dict[str, str]]]] = {}
        self.next = 0

    def fault(self, endpoint: str, *faults: tuple[int, dict[str, Any], dict[str, str]]) -> None:
        self.faults.setdefault(endpoint, []).extend(faults)

    def _answer(self, request: Request, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> bytes:
        request.setResponseCode(status)
        request.setHeader(b"Content-Type", b"application/json")
        for k, v in (headers or {}).items():
            request.setHeader(k.encode(), v.encode())
        return json.dumps(body).encode()

    def render(self, request: Request) -> bytes:
        path = request.path.decode()
        auth = (request.getHeader(b"authorization") or b"").decode()
        body = request.content.read() if request.content is not None else b""
        self.requests.append({"method": request.method.decode(), "path": path, "auth": auth, "query": request.uri.decode().partition("?")[2]})
        parts = path.strip("/").split("/")
        if auth != f"Bearer {self.token}":
            return self._answer(request, 401, graph_error(190, "Invalid OAuth access token - Cannot parse access token", status=401)[1])
        if len(parts) < 2 or not parts[0].startswith("v") or parts[1] != self.phone_id:
            return self._answer(request, 400, graph_error(100, "Unsupported request - method type or object id")[1])
        endpoint = parts[2] if len(parts) > 2 else "number"
        queued = self.faults.get(endpoint) or []
        if queued:
            status, error, headers = queued.pop(0)
            return self._answer(request, status, error, headers)
        if endpoint == "number" and request.method == b"GET":
            return self._answer(request, 200, {"display_phone_number": "+1 555-000-2222", "verified_name": "Claw Biz", "quality_rating": "GREEN", "id": self.phone_id})
        if endpoint == "media" and request.method == b"POST":
            self.next += 1
            self.uploads.append({"content_type": request.getHeader(b"content-type").decode(), "size": len(body)})
            return self._answer(request, 200, {"id": f"MEDIA{self.next}"})
        if endpoint == "messages" and request.method == b"POST":
            message = json.loads(body)
            if message.get("status") == "read":
                self.reads.append(message.get("message_id"))
                return self._answer(request, 200, {"success": True})
            if message.get("messaging_product") != "whatsapp" or not str(message.get("to") or "").isdigit():
                return self._answer(request, 400, graph_error(100, "(#100) Invalid parameter")[1])
            if message.get("type") == "text" and len(message["text"]["body"]) > 4096:
                return self._answer(request, 400, graph_error(100, "(#100) Param text['body'] must be at most 4096 characters long.")[1])
            if message["to"] not in self.open_windows:
                return self._answer(request, 400, WINDOW_CLOSED[1])
            self.next += 1
            ident = f"wamid.HBgL{self.next:06d}"
            self.messages.append({"id": ident, **message})
            return self._answer(request, 200, {"messaging_product": "whatsapp", "contacts": [{"input": message["to"], "wa_id": message["to"]}], "messages": [{"id": ident}]})
        return self._answer(request, 400, graph_error(100, "Unsupported request")[1])

    def texts(self, wa_id: str) -> list[str]:
        return [m["text"]["body"] for m in self.messages if m["to"] == wa_id and m["type"] == "text"]


async def start_graph(testcase: Any) -> tuple[FakeGraph, str]:
    fake = FakeGraph()
    site = Site(fake)
    site.log = lambda request: None  # type: ignore[method-assign]
    port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(site)
    testcase.addCleanup(port.stopListening)
    return fake, f"http://127.0.0.1:{port.getHost().port}"


def text_delivery(wa_id: str, text: str, msg_id: str, name: str = "Alice", phone_id: str = PHONE_ID, context: dict[str, Any] | None = None) -> dict[str, Any]:
    """A webhook body as Meta sends it for one inbound text message."""
    message: dict[str, Any] = {"from": wa_id, "id": msg_id, "timestamp": "1760000000", "type": "text", "text": {"body": text}}
    if context:
        message["context"] = context
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "WABA_ID",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {"display_phone_number": "15550002222", "phone_number_id": phone_id},
                            "contacts": [{"profile": {"name": name}, "wa_id": wa_id}],
                            "messages": [message],
                        },
                    }
                ],
            }
        ],
    }


def sign(body: bytes, secret: str = APP_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def post_delivery(port: int, payload: Any, secret: str | None = APP_SECRET, path: str = "/whatsapp-webhook", signature: str | None = None) -> tuple[int, bytes]:
    """POST a delivery as Meta does: the signature covers these exact bytes."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload, separators=(",", ":")).encode()
    headers = {"Content-Type": ["application/json"]}
    if signature is not None:
        headers["X-Hub-Signature-256"] = [signature]
    elif secret is not None:
        headers["X-Hub-Signature-256"] = [sign(body, secret)]
    response = await treq.post(f"http://127.0.0.1:{port}{path}", body, headers=headers, pool=HTTPConnectionPool(reactor, persistent=False))
    return response.code, await treq.content(response)


async def verify(port: int, token: str, challenge: str = "1158201444", mode: str = "subscribe", path: str = "/whatsapp-webhook") -> tuple[int, bytes]:
    """Meta's GET verification of the callback URL."""
    response = await treq.get(
        f"http://127.0.0.1:{port}{path}",
        params={"hub.mode": mode, "hub.verify_token": token, "hub.challenge": challenge},
        pool=HTTPConnectionPool(reactor, persistent=False),
    )
    return response.code, await treq.content(response)
