"""
The bench's model provider, as its own process: OpenAI Chat Completions
streaming (SSE) on 127.0.0.1, every request answered with C{chunks} text
chunks ("w0 ", "w1 ", ...) C{delay_ms} apart.

It keeps, per request, when it arrived, when each chunk was written and when
the answer finished (C{time.monotonic()}, comparable with the load clients'
times), under the run id the bench put in the user's message as
C{[bench:<runId>]}. C{GET /timings} returns them. It prints C{{"port": N}}
once listening and stops at EOF on stdin.

    .venv/bin/python bench/provider.py '{"chunks": 9, "delay_ms": 20}'
"""

from __future__ import annotations

import json
import re
import sys
import time
from typing import Any

from twisted.internet import reactor, stdio
from twisted.internet.protocol import Protocol
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

TOKEN = re.compile(rb"\[bench:([A-Za-z0-9_.-]+)\]")


class Completions(Resource):
    isLeaf = True

    def __init__(self, chunks: int, delay: float) -> None:
        super().__init__()
        self.chunks = chunks
        self.delay = delay
        self.timings: dict[str, dict[str, Any]] = {}

    def render_GET(self, request: Any) -> bytes:
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(self.timings).encode()

    def render_POST(self, request: Any) -> Any:
        arrived = time.monotonic()
        body = request.content.read()
        found = TOKEN.findall(body)
        record: dict[str, Any] = {"in": arrived, "chunks": [], "done": None}
        if found:
            self.timings[found[-1].decode()] = record
        request.setHeader(b"content-type", b"text/event-stream")
        head = b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\n'
        tail = (
            b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
            b'data: {"choices":[],"usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18}}\n\n'
            b"data: [DONE]\n\n"
        )
        gone: list[bool] = []
        request.notifyFinish().addBoth(lambda _: gone.append(True))
        request.write(head)

        def chunk(i: int) -> None:
            request.write(b'data: {"choices":[{"index":0,"delta":{"content":"w%d "},"finish_reason":null}]}\n\n' % i)
            record["chunks"].append(time.monotonic())

        def finish() -> None:
            request.write(tail)
            record["done"] = time.monotonic()
            request.finish()

        def step(i: int) -> None:
            if gone:
                return
            chunk(i)
            if i + 1 < self.chunks:
                reactor.callLater(self.delay, step, i + 1)
            else:
                finish()

        if self.delay:
            reactor.callLater(self.delay, step, 0)
        else:
            for i in range(self.chunks):
                chunk(i)
            finish()
        return NOT_DONE_YET


class Stop(Protocol):
    def connectionLost(self, reason: Any = None) -> None:
        if reactor.running:
            reactor.stop()


def main() -> None:
    args = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    completions = Completions(int(args.get("chunks", 9)), float(args.get("delay_ms", 20)) / 1000)
    root = Resource()
    v1 = Resource()
    root.putChild(b"v1", v1)
    v1.putChild(b"chat", Resource())
    v1.children[b"chat"].putChild(b"completions", completions)
    v1.putChild(b"timings", completions)
    site = Site(root)
    site.noisy = False
    port = reactor.listenTCP(0, site, interface="127.0.0.1")
    print(json.dumps({"port": port.getHost().port}), flush=True)
    stdio.StandardIO(Stop())
    reactor.run()


if __name__ == "__main__":
    main()
