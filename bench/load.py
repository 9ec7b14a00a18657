"""
The bench's load client, one process of several (bench/run.py starts them):

    .venv/bin/python bench/load.py ROLE '{"port": P, ...}'

ROLE is C{connect} (sessions: connect + handshake + C{health} + close),
C{cycles} (connect + handshake + close), C{idle} (hold authenticated
connections), C{chat} (clients × turns of C{chat.send} → C{final}),
C{subscribe} (operators that note when each streamed chunk arrives),
C{drive} (one client starting runs for the subscribers), C{sessions} (one
turn in each of many new sessions) or C{bridge} (a JSONL
node: pipelined frames, then C{node.invoke} round trips from an operator).

It prints JSON lines: C{{"ready": ...}} once its connections are up (the
roles that hold them), then C{{"result": ...}}; holders let go at EOF on
stdin. Times are C{time.monotonic()}.

The WebSocket client here is deliberately lean (a fixed upgrade request, an
all-zero mask, no UTF-8 check): the load client shares the machine's two
cores with the gateway, and what it does not spend is left to the gateway.
"""

from __future__ import annotations

import json
import os
import struct
import sys
import time
from collections import deque
from typing import Any, Callable

from twisted.internet import defer, reactor, stdio, task
from twisted.internet.protocol import ClientFactory, Protocol

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import TOKEN  # noqa: E402

now = time.monotonic


class Closed(Exception):
    """The gateway closed the connection."""


class LeanWS(Protocol):
    """A WebSocket client: text frames in to C{on_frame(bytes)}, out with C{send}."""

    def __init__(self, port: int, on_frame: Callable[[bytes], None]) -> None:
        self.port = port
        self.on_frame = on_frame
        self.opened: defer.Deferred[LeanWS] = defer.Deferred()
        self.lost: defer.Deferred[None] = defer.Deferred()
        self.buf = bytearray()
        self.upgraded = False
        self.close_code: int | None = None

    def connectionMade(self) -> None:
        self.transport.setTcpNoDelay(True)
        self.transport.write(
            b"GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: YmVuY2gtYmVuY2gtYmVuYw==\r\nSec-WebSocket-Version: 13\r\n\r\n" % self.port
        )

    def dataReceived(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                self.transport.loseConnection()
                return
            del buf[: end + 4]
            self.upgraded = True
            self.opened.callback(self)
        pos = 0
        size = len(buf)
        while size - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            length = b1 & 0x7F
            head = 2
            if length == 126:
                if size - pos < 4:
                    break
                length = struct.unpack_from("!H", buf, pos + 2)[0]
                head = 4
            elif length == 127:
                if size - pos < 10:
                    break
                length = struct.unpack_from("!Q", buf, pos + 2)[0]
                head = 10
            if size - pos < head + length:
                break
            payload = bytes(buf[pos + head : pos + head + length])
            pos += head + length
            opcode = b0 & 0x0F
            if opcode == 1:
                self.on_frame(payload)
            elif opcode == 8:
                self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                self._frame(8, payload[:2])
            elif opcode == 9:
                self._frame(10, payload)
        del buf[:pos]

    def _frame(self, opcode: int, payload: bytes) -> None:
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x80 | opcode, 0xFE, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0xFF, n)
        self.transport.write(head + b"\0\0\0\0" + payload)  # all-zero mask: the payload goes as is

    def send(self, payload: bytes) -> None:
        self._frame(1, payload)

    def close(self) -> None:
        self._frame(8, b"\x03\xe8")

    def connectionLost(self, reason: Any = None) -> None:
        if not self.opened.called:
            self.opened.errback(Closed("closed before the upgrade"))
        self.lost.callback(None)


class Client:
    """One operator connection: requests matched to responses, events to a callback."""

    def __init__(self, port: int, on_event: Callable[[dict[str, Any], float], None] | None = None) -> None:
        self.port = port
        self.on_event = on_event
        self.waiting: dict[str, defer.Deferred[dict[str, Any]]] = {}
        self.challenge: defer.Deferred[None] = defer.Deferred()
        self.ids = 0
        self.ws: LeanWS | None = None

    def _frame(self, payload: bytes) -> None:
        at = now()
        frame = json.loads(payload)
        kind = frame.get("type")
        if kind == "res":
            d = self.waiting.pop(frame.get("id"), None)
            if d is not None:
                d.callback(frame)
        elif frame.get("event") == "connect.challenge":
            self.challenge.callback(None)
        elif self.on_event is not None:
            self.on_event(frame, at)

    async def open(self, client_id: str = "cli", mode: str = "cli", scopes: tuple[str, ...] = ("operator.read",), instance: str | None = None) -> None:
        factory = ClientFactory()
        factory.protocol = lambda: LeanWS(self.port, self._frame)  # type: ignore[assignment]
        from twisted.internet.endpoints import TCP4ClientEndpoint

        ws = await TCP4ClientEndpoint(reactor, "127.0.0.1", self.port, timeout=30).connect(factory)
        self.ws = ws
        ws.lost.addCallback(self._lost)
        await ws.opened
        await self.challenge
        client = {"id": client_id, "version": "bench", "platform": "linux", "mode": mode}
        if instance:
            client["instanceId"] = instance
        params = {"minProtocol": 3, "maxProtocol": 4, "client": client, "role": "operator", "scopes": list(scopes), "auth": {"token": TOKEN}}
        hello = await self.request("connect", params)
        if not hello.get("ok"):
            raise RuntimeError(f"connect refused: {hello.get('error')}")

    def _lost(self, _: Any) -> None:
        for d in self.waiting.values():
            d.errback(Closed(f"closed {self.ws.close_code if self.ws else None}"))
        self.waiting.clear()
        if not self.challenge.called:
            self.challenge.errback(Closed("closed before the challenge"))

    def request(self, method: str, params: Any = None) -> defer.Deferred[dict[str, Any]]:
        assert self.ws is not None
        self.ids += 1
        rid = f"r{self.ids}"
        frame: dict[str, Any] = {"type": "req", "id": rid, "method": method}
        if params is not None:
            frame["params"] = params
        d: defer.Deferred[dict[str, Any]] = defer.Deferred()
        self.waiting[rid] = d
        self.ws.send(json.dumps(frame, separators=(",", ":")).encode())
        return d

    async def close(self) -> None:
        assert self.ws is not None
        self.ws.close()
        timer = reactor.callLater(10, self.ws.transport.abortConnection)
        await self.ws.lost
        if timer.active():
            timer.cancel()


async def bounded(count: int, concurrency: int, one: Callable[[int], Any]) -> None:
    """Run C{one(i)} for i in range(count), at most C{concurrency} at a time."""
    it = iter(range(count))

    async def lane() -> None:
        for i in it:
            await one(i)

    await defer.gatherResults([defer.Deferred.fromCoroutine(lane()) for _ in range(min(concurrency, count))])


def release() -> defer.Deferred[None]:
    """Fires at EOF on stdin."""
    done: defer.Deferred[None] = defer.Deferred()

    class Eof(Protocol):
        def connectionLost(self, reason: Any = None) -> None:
            done.callback(None)

    stdio.StandardIO(Eof())
    return done


def emit(**frame: Any) -> None:
    sys.stdout.write(json.dumps(frame) + "\n")
    sys.stdout.flush()


# -- roles


async def role_connect(a: dict[str, Any], with_health: bool = True) -> dict[str, Any]:
    latencies: list[float] = []
    errors: list[str] = []

    async def one(i: int) -> None:
        started = now()
        c = Client(a["port"])
        try:
            await c.open()
            if with_health and not (await c.request("health")).get("ok"):
                errors.append("health failed")
            await c.close()
            latencies.append(now() - started)
        except Exception as e:
            errors.append(f"{type(e).__name__}: {e}"[:120])

    started = now()
    await bounded(a["sessions"], a["concurrency"], one)
    return {"started": started, "ended": now(), "latencies": latencies, "errors": errors}


async def role_cycles(a: dict[str, Any]) -> dict[str, Any]:
    return await role_connect(a, with_health=False)


async def role_idle(a: dict[str, Any]) -> dict[str, Any]:
    clients: list[Client] = []
    errors: list[str] = []

    async def one(i: int) -> None:
        c = Client(a["port"])
        try:
            await c.open()
            clients.append(c)
        except Exception as e:
            errors.append(f"{type(e).__name__}: {e}"[:120])

    started = now()
    await bounded(a["connections"], a["concurrency"], one)
    emit(ready={"open": len(clients), "errors": len(errors), "elapsed": now() - started})
    await release()
    still = sum(1 for c in clients if c.ws is not None and not c.ws.lost.called)
    await defer.DeferredList([defer.Deferred.fromCoroutine(c.close()) for c in clients if not c.ws.lost.called])  # type: ignore[union-attr]
    return {"held": still, "errors": errors}


async def role_chat(a: dict[str, Any]) -> dict[str, Any]:
    turns: list[dict[str, Any]] = []
    errors: list[str] = []

    async def chatter(index: int) -> None:
        finals: dict[str, defer.Deferred[tuple[dict[str, Any], float]]] = {}

        def on_event(frame: dict[str, Any], at: float) -> None:
            if frame.get("event") != "chat":
                return
            p = frame.get("payload") or {}
            d = finals.get(p.get("runId"))
            if d is not None and p.get("state") in ("final", "error", "aborted") and not d.called:
                d.callback((p, at))

        c = Client(a["port"], on_event)
        name = f"{a['name']}-{index}"
        try:
            await c.open("gateway-client", "backend", ("operator.read", "operator.write"), instance=name)
            for turn in range(a["turns"]):
                run_id = f"{name}-{turn}"
                d: defer.Deferred[tuple[dict[str, Any], float]] = defer.Deferred()
                finals[run_id] = d
                timer = reactor.callLater(a.get("timeout", 30), d.cancel)
                sent = now()
                res = await c.request("chat.send", {"sessionKey": name, "message": f"turn {turn} [bench:{run_id}]", "idempotencyKey": run_id})
                acked = now()
                if not res.get("ok"):
                    errors.append(f"{run_id}: chat.send {res.get('error')}"[:160])
                    timer.cancel()
                    continue
                try:
                    payload, at = await d
                except defer.CancelledError:
                    errors.append(f"{run_id}: no final")
                    continue
                if timer.active():
                    timer.cancel()
                if payload.get("state") != "final":
                    errors.append(f"{run_id}: {payload.get('state')} {payload.get('errorMessage', '')}"[:160])
                    continue
                turns.append({"runId": run_id, "sent": sent, "acked": acked, "final": at})
            await c.close()
        except Exception as e:
            errors.append(f"{name}: {type(e).__name__}: {e}"[:160])

    started = now()
    await defer.DeferredList([defer.Deferred.fromCoroutine(chatter(i)) for i in range(a["clients"])])
    return {"started": started, "ended": now(), "turns": turns, "errors": errors}


async def role_subscribe(a: dict[str, Any]) -> dict[str, Any]:
    """Operators that note the last arrival of each (runId, chunk) across this process's clients."""
    last: dict[str, float] = {}
    seen: dict[str, int] = {}
    errors: list[str] = []
    clients: list[Client] = []

    def on_event(frame: dict[str, Any], at: float) -> None:
        if frame.get("event") != "agent":
            return
        p = frame.get("payload") or {}
        if p.get("stream") != "assistant":
            return
        key = f"{p.get('runId')}|{(p.get('data') or {}).get('delta', '').strip()}"
        if at > last.get(key, 0.0):
            last[key] = at
        seen[key] = seen.get(key, 0) + 1

    async def one(i: int) -> None:
        c = Client(a["port"], on_event)
        try:
            await c.open("gateway-client", "backend", ("operator.read",), instance=f"{a['name']}-{i}")
            clients.append(c)
        except Exception as e:
            errors.append(f"{type(e).__name__}: {e}"[:120])

    await bounded(a["clients"], 10, one)
    emit(ready={"open": len(clients), "errors": len(errors)})
    await release()
    closed_early = sum(1 for c in clients if c.ws is not None and c.ws.lost.called)
    for c in clients:
        if c.ws is not None and not c.ws.lost.called:
            c.ws.transport.abortConnection()
    return {"last": last, "seen": seen, "clients": len(clients), "closed_early": closed_early, "errors": errors}


async def role_drive(a: dict[str, Any]) -> dict[str, Any]:
    finals: dict[str, defer.Deferred[None]] = {}

    def on_event(frame: dict[str, Any], at: float) -> None:
        p = frame.get("payload") or {}
        if frame.get("event") == "chat" and p.get("state") in ("final", "error", "aborted"):
            d = finals.pop(p.get("runId"), None)
            if d is not None:
                d.callback(p.get("state"))

    c = Client(a["port"], on_event)
    await c.open("gateway-client", "backend", ("operator.read", "operator.write"), instance="driver")
    runs, errors = [], []
    for i in range(a["runs"]):
        run_id = f"{a.get('prefix', 'fan')}-{i}"
        d: defer.Deferred[None] = defer.Deferred()
        finals[run_id] = d
        res = await c.request("chat.send", {"sessionKey": "fanout", "message": f"run {i} [bench:{run_id}]", "idempotencyKey": run_id})
        if not res.get("ok"):
            errors.append(str(res.get("error"))[:160])
            continue
        state = await d
        if state != "final":
            errors.append(f"{run_id}: {state}")
        runs.append(run_id)
    await c.close()
    return {"runs": runs, "errors": errors}


async def role_sessions(a: dict[str, Any]) -> dict[str, Any]:
    """One operator starting one turn in each of C{sessions} new sessions, C{inflight} at a time."""
    finals: dict[str, defer.Deferred[str]] = {}

    def on_event(frame: dict[str, Any], at: float) -> None:
        p = frame.get("payload") or {}
        if frame.get("event") == "chat" and p.get("state") in ("final", "error", "aborted"):
            d = finals.pop(p.get("runId"), None)
            if d is not None:
                d.callback(p.get("state"))

    c = Client(a["port"], on_event)
    await c.open("gateway-client", "backend", ("operator.read", "operator.write"), instance=a["prefix"])
    done, errors = [], []

    async def one(i: int) -> None:
        run_id = f"{a['prefix']}-{i}"
        d: defer.Deferred[str] = defer.Deferred()
        finals[run_id] = d
        res = await c.request("chat.send", {"sessionKey": run_id, "message": f"hello [bench:{run_id}]", "idempotencyKey": run_id})
        if not res.get("ok"):
            finals.pop(run_id, None)
            errors.append(f"{run_id}: chat.send {res.get('error')}"[:160])
            return
        state = await d
        if state != "final":
            errors.append(f"{run_id}: {state}")
        else:
            done.append(run_id)

    started = now()
    await bounded(a["sessions"], a.get("inflight", 10), one)
    ended = now()
    await c.close()
    return {"sessions": len(done), "started": started, "ended": ended, "errors": errors}


class Node(Protocol):
    """A JSONL bridge node that answers every invoke at once and counts pongs."""

    def __init__(self, node_id: str, token: str) -> None:
        self.node_id = node_id
        self.token = token
        self.ready: defer.Deferred[None] = defer.Deferred()
        self.pongs = 0
        self.want = 0
        self.all_pongs: defer.Deferred[None] | None = None
        self.buf = b""
        self.errors: list[str] = []

    def connectionMade(self) -> None:
        self.transport.setTcpNoDelay(True)
        hello = {"type": "hello", "nodeId": self.node_id, "token": self.token, "platform": "linux", "version": "bench", "commands": ["system.which"]}
        self.transport.write(json.dumps(hello).encode() + b"\n")

    def dataReceived(self, data: bytes) -> None:
        lines = (self.buf + data).split(b"\n")
        self.buf = lines.pop()
        for line in lines:
            if line.startswith(b'{"type":"pong"'):
                self.pongs += 1
                if self.pongs >= self.want and self.all_pongs is not None and not self.all_pongs.called:
                    self.all_pongs.callback(None)
                continue
            frame = json.loads(line)
            kind = frame.get("type")
            if kind == "invoke":
                self.transport.write(b'{"type":"invoke-res","id":"%s","ok":true,"payloadJSON":"{\\"found\\":true}"}\n' % frame["id"].encode())
            elif kind == "hello-ok":
                self.ready.callback(None)
            elif kind == "error":
                self.errors.append(f"{frame.get('code')}: {frame.get('message')}")
                if not self.ready.called:
                    self.ready.errback(RuntimeError(self.errors[-1]))

    def connectionLost(self, reason: Any = None) -> None:
        if not self.ready.called:
            self.ready.errback(Closed("bridge closed before hello-ok"))
        if self.all_pongs is not None and not self.all_pongs.called:
            self.all_pongs.errback(Closed(f"bridge closed after {self.pongs} pongs"))


async def role_bridge(a: dict[str, Any]) -> dict[str, Any]:
    from twisted.internet.endpoints import TCP4ClientEndpoint

    factory = ClientFactory()
    node = Node(a["nodeId"], a["token"])
    factory.protocol = lambda: node  # type: ignore[assignment]
    await TCP4ClientEndpoint(reactor, "127.0.0.1", a["bridge_port"]).connect(factory)
    await node.ready
    out: dict[str, Any] = {"errors": node.errors}
    if a["phase"] == "frames":
        out["frames"] = await pings(node, a["frames"], a.get("window", 2000))
    else:
        out["invokes"] = await invokes(a, a["invokes"], a.get("inflight", 16))
    node.transport.loseConnection()
    return out


async def pings(node: Node, total: int, window: int) -> dict[str, Any]:
    """Pings pipelined in windows of C{window} (each answered by a pong)."""
    node.want = 0
    started = now()
    sent = 0
    while sent < total:
        batch = min(window, total - sent)
        node.want = sent + batch
        node.all_pongs = defer.Deferred()
        node.transport.write(b"".join(b'{"type":"ping","id":"p%d"}\n' % (sent + i) for i in range(batch)))
        sent += batch
        await node.all_pongs
    return {"count": total, "started": started, "ended": now()}


async def invokes(a: dict[str, Any], count: int, inflight: int) -> dict[str, Any]:
    """C{node.invoke} round trips from an operator, C{inflight} at a time; the node answers each at once."""
    op = Client(a["port"])
    await op.open("cli", "cli", ("operator.admin",))
    latencies: list[float] = []
    errors: list[str] = []

    async def invoke(i: int) -> None:
        t = now()
        res = await op.request("node.invoke", {"nodeId": a["nodeId"], "command": "system.which", "params": {"bins": ["sh"]}, "idempotencyKey": f"{a.get('prefix', 'inv')}-{i}"})
        if res.get("ok"):
            latencies.append(now() - t)
        else:
            errors.append(str(res.get("error"))[:160])

    started = now()
    await bounded(count, inflight, invoke)
    ended = now()
    await op.close()
    return {"count": len(latencies), "started": started, "ended": ended, "latencies": latencies, "errors": errors}


ROLES = {
    "connect": role_connect,
    "cycles": role_cycles,
    "idle": role_idle,
    "chat": role_chat,
    "subscribe": role_subscribe,
    "drive": role_drive,
    "sessions": role_sessions,
    "bridge": role_bridge,
}


def main() -> None:
    role, args = sys.argv[1], json.loads(sys.argv[2])

    async def go(_: Any) -> None:
        result = await ROLES[role](args)
        emit(result=result)

    task.react(lambda r: defer.Deferred.fromCoroutine(go(r)))


if __name__ == "__main__":
    main()
