"""
Load benchmark: N concurrent clients each do connect (token auth) + health,
against a gateway started as a subprocess on a free loopback port.

Prints throughput, latency p50/p99 and the gateway's RSS before and after.
Figures only: nothing here passes or fails.

    .venv/bin/python bench/connect_health.py [--clients 200] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import txaio

txaio.use_twisted()

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol  # noqa: E402
from twisted.internet import defer, task  # noqa: E402
from twisted.internet.endpoints import TCP4ClientEndpoint  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
TOKEN = "bench-token-0123456789"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Client(WebSocketClientProtocol):
    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        frame = json.loads(payload)
        if frame.get("event") == "connect.challenge":
            params = {
                "minProtocol": 3,
                "maxProtocol": 4,
                "client": {"id": "cli", "version": "bench", "platform": "linux", "mode": "cli"},
                "role": "operator",
                "scopes": ["operator.read"],
                "auth": {"token": TOKEN},
            }
            self.sendMessage(json.dumps({"type": "req", "id": "c", "method": "connect", "params": params}).encode())
        elif frame.get("id") == "c":
            self.sendMessage(b'{"type":"req","id":"h","method":"health"}')
        elif frame.get("id") == "h":
            self.factory.done.callback(frame.get("ok"))
            self.sendClose(1000)

    def onClose(self, wasClean, code, reason):
        if not self.factory.done.called:
            self.factory.done.errback(ConnectionError(f"closed {code} {reason}"))


async def one(reactor, port: int) -> float:
    started = time.perf_counter()
    factory = WebSocketClientFactory(f"ws://127.0.0.1:{port}/")
    factory.protocol = Client
    factory.done = defer.Deferred()
    await TCP4ClientEndpoint(reactor, "127.0.0.1", port).connect(factory)
    ok = await factory.done
    if not ok:
        raise RuntimeError("health failed")
    return time.perf_counter() - started


async def main(reactor, clients: int, rounds: int) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    home = tempfile.mkdtemp(prefix="oc-bench-")
    config = Path(home) / ".openclaw" / "openclaw.json"
    config.parent.mkdir(parents=True)
    config.write_text(json.dumps({"gateway": {"mode": "local", "maxConnections": 10000, "auth": {"token": TOKEN}}, "logging": {"level": "warn"}}))
    proc = subprocess.Popen(
        [sys.executable, "-m", "openclaw", "gateway", "--port", str(port)],
        env={**os.environ, "HOME": home, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).read()
                break
            except OSError:
                await task.deferLater(reactor, 0.1, lambda: None)
        rss_before = rss_kib(proc.pid)
        latencies: list[float] = []
        failures = 0
        reasons: dict[str, int] = {}
        started = time.perf_counter()
        for _ in range(rounds):
            results = await defer.DeferredList([defer.Deferred.fromCoroutine(one(reactor, port)) for _ in range(clients)], consumeErrors=True)
            for ok, value in results:
                if ok:
                    latencies.append(value)
                else:
                    failures += 1
                    reasons[str(value.value)[:80]] = reasons.get(str(value.value)[:80], 0) + 1
        elapsed = time.perf_counter() - started
        rss_after = rss_kib(proc.pid)
    finally:
        proc.terminate()
        proc.wait(10)
    latencies.sort()
    done = len(latencies)
    p = lambda q: latencies[min(done - 1, int(q * done))] * 1000 if done else float("nan")  # noqa: E731
    print(f"clients={clients} rounds={rounds} ok={done} failed={failures} {reasons or ''}")
    print(f"throughput: {done / elapsed:.1f} connect+health/s over {elapsed:.2f} s")
    print(f"latency ms: p50={p(0.50):.1f} p99={p(0.99):.1f} mean={statistics.mean(latencies) * 1000 if latencies else float('nan'):.1f}")
    print(f"gateway RSS: {rss_before / 1024:.1f} MiB idle -> {rss_after / 1024:.1f} MiB after load (ratio {rss_after / max(rss_before, 1):.2f})")


if __name__ == "__main__":
    args = argparse.ArgumentParser(description=__doc__)
    args.add_argument("--clients", type=int, default=100)
    args.add_argument("--rounds", type=int, default=5)
    ns = args.parse_args()
    task.react(lambda reactor: defer.Deferred.fromCoroutine(main(reactor, ns.clients, ns.rounds)))
