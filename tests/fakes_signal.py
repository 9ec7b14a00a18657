"""
A fake signal-cli daemon (`signal-cli -a +NUM daemon --http`): a twisted.web
server on 127.0.0.1 speaking its wire format.

* POST /api/v1/rpc: JSON-RPC 2.0 (415 without a JSON content type); `send`
  answers {timestamp, results: [...]}, or error -1 "Failed to send message"
  with data.response.results when no recipient got it (UNREGISTERED_FAILURE,
  RATE_LIMIT_FAILURE with retryAfterSeconds, ...), -4 for an untrusted
  identity; `sendTyping`, `version`, `listGroups`; -32602 "Specified account
  does not exist" for another account.
* GET /api/v1/events: SSE, `id:<start>-<seq>` / `event:receive` /
  `data:{"envelope":...,"account":...}`, a keepalive comment every
  `keepalive` seconds, the last 1000 events kept and replayed after a
  Last-Event-ID (all of them when the id is unknown), 400 for another
  account.
* GET /api/v1/check: 200.

Faults: HTTP statuses (5xx, 429) or JSON-RPC errors per method, stalls,
dropping every open stream, refusing the next stream, keepalives stopping.
"""

from __future__ import annotations

import json
import time
from typing import Any

import attrs
from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.task import LoopingCall
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

ACCOUNT = "+15550009999"
MAX_EVENTS = 1000


@attrs.define
class Fault:
    status: int = 200  # an HTTP status other than 200 answers with it (and no JSON-RPC body)
    code: int = -32603
    message: str = "An internal server error has occurred."
    data: Any = None
    stall: bool = False
    retry_after: str | None = None


class FakeSignal(Resource):
    isLeaf = True

    def __init__(self, account: str = ACCOUNT, keepalive: float = 15.0) -> None:
        super().__init__()
        self.account = account
        self.started = int(time.time() * 1000)
        self.seq = 0
        self.events: list[tuple[str, str]] = []  # (id, data)
        self.streams: list[Request] = []
        self.stream_ids: list[str | None] = []  # Last-Event-ID of each stream opened
        self.stream_requests = 0
        self.requests: list[dict[str, Any]] = []
        self.sent: list[dict[str, Any]] = []
        self.typing: list[dict[str, Any]] = []
        self.faults: dict[str, list[Fault]] = {}
        self.refuse_streams: list[int] = []
        self.unregistered: set[str] = set()
        self.untrusted: set[str] = set()
        self.rate_limited: list[float] = []  # per coming send: retryAfterSeconds
        self.groups: dict[str, dict[str, Any]] = {}
        self.keepalives = True
        self.next_ts = int(time.time() * 1000)
        self.beat = LoopingCall(self._keepalive)
        self.beat.clock = reactor
        self.beat.start(keepalive, now=False)
        self.hung: list[Request] = []

    # -- scripting

    def fault(self, method: str, *faults: Fault) -> None:
        self.faults.setdefault(method, []).extend(faults)

    def stamp(self) -> int:
        self.next_ts = max(self.next_ts + 1, int(time.time() * 1000))
        return self.next_ts

    def push(self, value: dict[str, Any]) -> str:
        """A receive event for every open stream (and the buffer)."""
        self.seq += 1
        eid = f"{self.started}-{self.seq}"
        data = json.dumps(value)
        self.events.append((eid, data))
        del self.events[:-MAX_EVENTS]
        for request in list(self.streams):
            self._write(request, eid, data)
        return eid

    def envelope(self, number: str | None, uuid: str | None, name: str | None, **body: Any) -> dict[str, Any]:
        stamp = self.stamp()
        env: dict[str, Any] = {"source": number or uuid, "sourceNumber": number, "sourceUuid": uuid or f"uuid-{(number or '')[-4:]}-0000-4000-8000-000000000000", "sourceName": name, "sourceDevice": 1, "timestamp": stamp, "serverReceivedTimestamp": stamp, "serverDeliveredTimestamp": stamp}
        for key, value in body.items():
            if isinstance(value, dict) and "timestamp" in value and value["timestamp"] is None:
                value["timestamp"] = stamp
            env[key] = value
        return {"envelope": env, "account": self.account}

    def dm(self, number: str | None, text: str, name: str | None = "Alice", uuid: str | None = None, **data: Any) -> int:
        """A direct message to the bot; returns its timestamp."""
        value = self.envelope(number, uuid, name, dataMessage={"timestamp": None, "message": text, "expiresInSeconds": 0, "viewOnce": False, **data})
        self.push(value)
        return value["envelope"]["timestamp"]

    def group(self, group_id: str, number: str, text: str, name: str = "Bob", mention: bool = False, quote_bot: int | None = None, group_name: str = "The Group") -> int:
        data: dict[str, Any] = {"timestamp": None, "message": text, "expiresInSeconds": 0, "viewOnce": False, "groupInfo": {"groupId": group_id, "groupName": group_name, "revision": 3, "type": "DELIVER"}}
        if mention:
            data["message"] = "\ufffc " + text
            data["mentions"] = [{"name": "Claw Bot", "number": self.account, "uuid": "bot-uuid", "start": 0, "length": 1}]
        if quote_bot is not None:
            data["quote"] = {"id": quote_bot, "author": self.account, "authorNumber": self.account, "authorUuid": "bot-uuid", "text": "earlier answer", "attachments": []}
        value = self.envelope(number, None, name, dataMessage=data)
        self.push(value)
        return value["envelope"]["timestamp"]

    def drop_streams(self, abort: bool = True) -> None:
        """End every open event stream: cut the connection (abort) or end the response cleanly."""
        for request in list(self.streams):
            self.streams.remove(request)
            if abort and request.channel is not None:
                request.channel.transport.abortConnection()
            elif not request.finished:
                request.finish()

    def texts(self, chat: str | None = None) -> list[str]:
        return [s["message"] for s in self.sent if chat is None or s["chat"] == chat]

    # -- HTTP

    def _keepalive(self) -> None:
        if not self.keepalives:
            return
        for request in list(self.streams):
            if not request.finished and request.channel is not None:
                request.write(b":\n")

    def _write(self, request: Request, eid: str, data: str) -> None:
        if not request.finished and request.channel is not None:
            request.write(f"id:{eid}\nevent:receive\ndata:{data}\n\n".encode())

    def render_GET(self, request: Request) -> Any:
        path = request.path.decode()
        if path == "/api/v1/check":
            request.setResponseCode(200)
            return b""
        if path != "/api/v1/events":
            request.setResponseCode(404)
            return b""
        self.stream_requests += 1
        account = (request.args or {}).get(b"account", [b""])[0].decode()
        if account and account != self.account:
            request.setResponseCode(400)
            return b""
        if self.refuse_streams:
            request.setResponseCode(self.refuse_streams.pop(0))
            return b""
        last = request.getHeader(b"last-event-id")
        last_id = last.decode() if last else None
        self.stream_ids.append(last_id)
        request.setHeader(b"Content-Type", b"text/event-stream")
        request.setResponseCode(200)
        request.write(b"")
        if last_id is not None:
            known = [i for i, (eid, _) in enumerate(self.events) if eid == last_id]
            start = known[0] + 1 if known else 0
            for eid, data in self.events[start:]:
                self._write(request, eid, data)
        self.streams.append(request)
        request.notifyFinish().addBoth(lambda _: self.streams.remove(request) if request in self.streams else None)
        return NOT_DONE_YET

    def render_POST(self, request: Request) -> Any:
        if request.path != b"/api/v1/rpc":
            request.setResponseCode(404)
            return b""
        if not (request.getHeader(b"content-type") or b"").startswith(b"application/json"):
            request.setResponseCode(415)
            return b""
        try:
            call = json.loads(request.content.read())
        except ValueError:
            return self._json({"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error", "data": None}, "id": None})
        self.requests.append(call)
        method, rid = call.get("method"), call.get("id")
        params = dict(call.get("params") or {})
        if params.pop("account", self.account) != self.account:
            return self._error(rid, -32602, "Specified account does not exist")
        queued = self.faults.get(method)
        if queued:
            fault = queued.pop(0)
            if fault.stall:
                self.hung.append(request)
                return NOT_DONE_YET
            if fault.status != 200:
                request.setResponseCode(fault.status)
                if fault.retry_after is not None:
                    request.setHeader(b"Retry-After", fault.retry_after.encode())
                return b"<html>error</html>"
            return self._error(rid, fault.code, fault.message, fault.data)
        if method == "send":
            return self._send(rid, params)
        if method == "sendTyping":
            self.typing.append(params)
            return self._json({"jsonrpc": "2.0", "result": {}, "id": rid})
        if method == "version":
            return self._json({"jsonrpc": "2.0", "result": {"version": "0.13.99-fake"}, "id": rid})
        if method == "listGroups":
            return self._json({"jsonrpc": "2.0", "result": list(self.groups.values()), "id": rid})
        return self._error(rid, -32601, "Method not implemented")

    def _send(self, rid: Any, params: dict[str, Any]) -> bytes:
        stamp = self.stamp()
        recipients = params.get("recipient") or params.get("username") or []
        recipients = recipients if isinstance(recipients, list) else [recipients]
        group = params.get("groupId")
        if not params.get("message") and not params.get("attachments"):
            return self._error(rid, -1, "No message given")
        if not group and not recipients:
            return self._error(rid, -1, "No recipients given")
        targets = [group] if group else recipients
        results = []
        for target in targets:
            address = {"number": target, "uuid": None} if str(target).startswith("+") else {"uuid": target, "number": None}
            if self.rate_limited:
                results.append({"recipientAddress": address, "type": "RATE_LIMIT_FAILURE", "retryAfterSeconds": self.rate_limited.pop(0)})
            elif target in self.unregistered:
                results.append({"recipientAddress": address, "type": "UNREGISTERED_FAILURE"})
            elif target in self.untrusted:
                results.append({"recipientAddress": address, "type": "IDENTITY_FAILURE"})
            else:
                results.append({"recipientAddress": address, "type": "SUCCESS", **({"groupId": group} if group else {})})
        if not any(r["type"] == "SUCCESS" for r in results):
            response = {"timestamp": stamp, "results": results}
            if all(r["type"] == "IDENTITY_FAILURE" for r in results):
                return self._error(rid, -4, "Failed to send message due to untrusted identities", {"response": response})
            return self._error(rid, -1, "Failed to send message", {"response": response})
        chat = group or (recipients[0] if recipients[0].startswith("+") else f"uuid:{recipients[0]}")
        self.sent.append({"chat": chat, "message": params.get("message") or "", "params": params, "timestamp": stamp})
        return self._json({"jsonrpc": "2.0", "result": {"timestamp": stamp, "results": results}, "id": rid})

    def _error(self, rid: Any, code: int, message: str, data: Any = None) -> bytes:
        return self._json({"jsonrpc": "2.0", "error": {"code": code, "message": message, "data": data}, "id": rid})

    @staticmethod
    def _json(value: Any) -> bytes:
        return json.dumps(value).encode()


async def start_signal(testcase: Any, keepalive: float = 15.0) -> tuple[FakeSignal, str]:
    """Listen on 127.0.0.1:0; returns the fake and its httpUrl."""
    fake = FakeSignal(keepalive=keepalive)
    site = Site(fake)
    site.log = lambda request: None  # type: ignore[method-assign]
    port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(site)
    protocols: list[Any] = []
    original = site.buildProtocol

    def track(addr: Any) -> Any:
        protocol = original(addr)
        protocols.append(protocol)
        return protocol

    site.buildProtocol = track  # type: ignore[method-assign]
    fake.connections = protocols  # type: ignore[attr-defined]

    async def stop() -> None:
        if fake.beat.running:
            fake.beat.stop()
        for protocol in protocols:
            transport = getattr(protocol, "transport", None)
            if transport is not None:
                transport.abortConnection()
        await port.stopListening()

    testcase.addCleanup(stop)
    return fake, f"http://127.0.0.1:{port.getHost().port}"
