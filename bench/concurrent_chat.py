"""
Concurrent chat benchmark: C clients, each in its own session, each sending T
turns (`chat.send`, then waiting for that run's `chat` final), against a
gateway subprocess on a free loopback port whose model is a streaming fake
provider (tests/fakes.py) in this process, one chunk every --chunk-ms.

Clients finish and close at different times while the others' runs are still
streaming, and --churn connect+health+close cycles run alongside: the
conditions under which a closing socket used to crash other clients' runs.

Prints one JSON line, then a table: turns/s, p50/p99 turn latency, errors
(failed or timed-out turns, failed churn cycles, error records in the gateway
log). Figures only, no timing assertions; the exit status is 1 when there
were errors.

    .venv/bin/python bench/concurrent_chat.py [--clients 10] [--turns 5] [--chunk-ms 20] [--churn 50]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import txaio

txaio.use_twisted()

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol  # noqa: E402
from twisted.internet import defer, task  # noqa: E402
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint  # noqa: E402
from twisted.web.resource import Resource  # noqa: E402
from twisted.web.server import Site  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.fakes import FakeProvider, openai_text  # noqa: E402

TOKEN = "bench-token-0123456789"
WORDS = ["The ", "quick ", "brown ", "fox ", "jumps ", "over ", "the ", "lazy ", "dog."]
TURN_TIMEOUT = 20.0


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class EndlessProvider(FakeProvider):
    """The test fake, never out of replies: every request streams WORDS, one chunk per delay."""

    delay = 0.02

    def render_POST(self, request: Any) -> Any:
        reply = openai_text(*WORDS)
        reply.delay = self.delay
        self.replies.append(reply)
        return super().render_POST(request)


class Client(WebSocketClientProtocol):
    """Frames in, to a queue; the bench logic awaits them."""

    def onOpen(self) -> None:
        self.factory.opened.callback(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.factory.frames.put(json.loads(payload))

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        if not self.factory.opened.called:
            self.factory.opened.errback(ConnectionError(f"closed before open: {code} {reason}"))
        self.factory.frames.put(None)
        if not self.factory.closed.called:
            self.factory.closed.callback((code, reason))


class Session:
    def __init__(self, reactor: Any, port: int) -> None:
        self.reactor = reactor
        self.port = port
        self.ids = 0

    async def open(self, client_id: str, mode: str, instance: str | None) -> None:
        factory = WebSocketClientFactory(f"ws://127.0.0.1:{self.port}/")
        factory.protocol = Client
        factory.opened = defer.Deferred()
        factory.closed = defer.Deferred()
        factory.frames = defer.DeferredQueue()
        self.factory = factory
        self.proto = await TCP4ClientEndpoint(self.reactor, "127.0.0.1", self.port).connect(factory)
        await factory.opened
        await self.frame(lambda f: f.get("event") == "connect.challenge")
        client = {"id": client_id, "version": "bench", "platform": "linux", "mode": mode}
        if instance:
            client["instanceId"] = instance
        params = {"minProtocol": 3, "maxProtocol": 4, "client": client, "role": "operator", "scopes": ["operator.admin"], "auth": {"token": TOKEN}}
        hello = await self.request("connect", params)
        if not hello.get("ok"):
            raise RuntimeError(f"connect refused: {hello.get('error')}")

    async def frame(self, wanted: Any, timeout: float = TURN_TIMEOUT) -> dict[str, Any]:
        """The next frame C{wanted} accepts, others skipped; TimeoutError after C{timeout} in all."""
        deadline = self.reactor.seconds() + timeout
        while True:
            left = deadline - self.reactor.seconds()
            if left <= 0:
                raise TimeoutError(f"nothing after {timeout:.0f} s")
            d = self.factory.frames.get()
            timer = self.reactor.callLater(left, d.cancel)
            try:
                frame = await d
            except defer.CancelledError:
                raise TimeoutError(f"nothing after {timeout:.0f} s") from None
            finally:
                if timer.active():
                    timer.cancel()
            if frame is None:
                raise ConnectionError("closed by the gateway")
            if wanted(frame):
                return frame

    async def request(self, method: str, params: Any = None) -> dict[str, Any]:
        self.ids += 1
        id = f"r{self.ids}"
        frame = {"type": "req", "id": id, "method": method}
        if params is not None:
            frame["params"] = params
        self.proto.sendMessage(json.dumps(frame).encode())
        return await self.frame(lambda f: f.get("type") == "res" and f.get("id") == id)

    async def close(self) -> None:
        self.proto.sendClose(1000)
        await self.factory.closed


async def chatter(reactor: Any, port: int, index: int, turns: int, latencies: list[float], errors: list[str]) -> None:
    session = Session(reactor, port)
    try:
        # a non-CLI client has a presence entry: its leaving is broadcast to everyone still running
        await session.open("gateway-client", "backend", f"bench-{index}")
        for turn in range(turns):
            run_id = f"bench-{index}-{turn}-{uuid.uuid4().hex[:8]}"
            started = time.perf_counter()
            res = await session.request("chat.send", {"sessionKey": f"bench-{index}", "message": f"turn {turn}", "idempotencyKey": run_id})
            if not res.get("ok"):
                errors.append(f"client {index} turn {turn}: chat.send {res.get('error')}")
                continue
            final = await session.frame(lambda f: f.get("event") == "chat" and f["payload"].get("runId") == run_id and f["payload"].get("state") in ("final", "error", "aborted"))
            if final["payload"]["state"] != "final":
                errors.append(f"client {index} turn {turn}: {final['payload']['state']} {final['payload'].get('errorMessage', '')}")
                continue
            latencies.append(time.perf_counter() - started)
        await session.close()
    except Exception as e:
        errors.append(f"client {index}: {type(e).__name__}: {e}")


async def churner(reactor: Any, port: int, cycles: int, errors: list[str]) -> None:
    for _ in range(cycles):
        session = Session(reactor, port)
        try:
            await session.open("gateway-client", "backend", f"churn-{uuid.uuid4().hex[:8]}")
            if not (await session.request("health")).get("ok"):
                errors.append("churn: health failed")
            await session.close()
        except Exception as e:
            errors.append(f"churn: {type(e).__name__}: {e}")


def gateway_log_errors(path: Path) -> list[str]:
    found = []
    try:
        lines = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return found
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("level") in ("error", "fatal") or "Unhandled" in str(record.get("msg", "")):
            found.append(str(record.get("msg", ""))[:200])
    return found


async def main(reactor: Any, clients: int, turns: int, chunk_ms: int, churn: int) -> int:
    fake = EndlessProvider()
    fake.delay = chunk_ms / 1000
    root = Resource()
    root.putChild(b"v1", fake)
    site = Site(root)
    site.noisy = False
    listening = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(site)
    url = f"http://127.0.0.1:{listening.getHost().port}/v1"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    home = Path(tempfile.mkdtemp(prefix="oc-bench-chat-"))
    log_file = home / "gateway.log"
    config = home / ".openclaw" / "openclaw.json"
    config.parent.mkdir(parents=True)
    config.write_text(
        json.dumps(
            {
                "gateway": {"mode": "local", "maxConnections": 10000, "auth": {"token": TOKEN}},
                "logging": {"level": "warn", "file": str(log_file)},
                "models": {"providers": {"fake": {"baseUrl": url, "apiKey": "sk-bench-0123456789", "api": "openai-completions", "models": [{"id": "m1"}]}}},
                "agents": {"defaults": {"model": {"primary": "fake/m1"}}},
            }
        )
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "openclaw", "gateway", "--port", str(port)],
        env={**os.environ, "HOME": str(home), "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
    )
    latencies: list[float] = []
    errors: list[str] = []
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).read()
                break
            except OSError:
                await task.deferLater(reactor, 0.1, lambda: None)
        rss_before = rss_kib(proc.pid)
        started = time.perf_counter()
        work = [defer.Deferred.fromCoroutine(chatter(reactor, port, i, turns, latencies, errors)) for i in range(clients)]
        loops = min(5, churn)
        for i in range(loops):
            work.append(defer.Deferred.fromCoroutine(churner(reactor, port, churn // loops + (1 if i < churn % loops else 0), errors)))
        await defer.DeferredList(work)
        elapsed = time.perf_counter() - started
        await task.deferLater(reactor, 0.3, lambda: None)  # let the gateway log the last closes
        rss_after = rss_kib(proc.pid)
    finally:
        proc.terminate()
        proc.wait(10)
        for request in fake.open:
            if not request.finished and request.channel is not None:
                request.channel.transport.abortConnection()
        await listening.stopListening()
    logged = gateway_log_errors(log_file)
    shutil.rmtree(home, ignore_errors=True)
    latencies.sort()
    done = len(latencies)
    pick = lambda q: round(latencies[min(done - 1, int(q * done))] * 1000, 1) if done else None  # noqa: E731
    figures = {
        "bench": "concurrent_chat",
        "clients": clients,
        "turns_per_client": turns,
        "chunk_ms": chunk_ms,
        "churn_cycles": churn,
        "turns_ok": done,
        "errors": len(errors) + len(logged),
        "turns_per_s": round(done / elapsed, 2) if elapsed else None,
        "p50_ms": pick(0.50),
        "p99_ms": pick(0.99),
        "mean_ms": round(statistics.mean(latencies) * 1000, 1) if latencies else None,
        "elapsed_s": round(elapsed, 2),
        "gateway_rss_mib": [round(rss_before / 1024, 1), round(rss_after / 1024, 1)],
    }
    print(json.dumps(figures))
    rows = [
        ("turns ok", f"{done} / {clients * turns}"),
        ("turns/s", f"{figures['turns_per_s']}"),
        ("turn latency p50", "n/a" if figures["p50_ms"] is None else f"{figures['p50_ms']} ms"),
        ("turn latency p99", "n/a" if figures["p99_ms"] is None else f"{figures['p99_ms']} ms"),
        ("errors", f"{figures['errors']} ({len(errors)} client, {len(logged)} in the gateway log)"),
        ("gateway RSS", f"{figures['gateway_rss_mib'][0]} -> {figures['gateway_rss_mib'][1]} MiB"),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")
    for problem in (errors + logged)[:10]:
        print(f"  ! {problem}")
    return 1 if figures["errors"] else 0


if __name__ == "__main__":
    args = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    args.add_argument("--clients", type=int, default=10)
    args.add_argument("--turns", type=int, default=5)
    args.add_argument("--chunk-ms", type=int, default=20)
    args.add_argument("--churn", type=int, default=50, help="connect+health+close cycles alongside the chats")
    ns = args.parse_args()

    async def run(reactor: Any) -> None:
        if await main(reactor, ns.clients, ns.turns, ns.chunk_ms, max(0, ns.churn)):
            raise SystemExit(1)

    task.react(lambda reactor: defer.Deferred.fromCoroutine(run(reactor)))
