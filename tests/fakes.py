"""
Fake model providers: a Twisted web server on 127.0.0.1 that answers like
OpenAI (SSE), Anthropic (SSE) and Ollama (NDJSON), from scripted replies.
"""

from __future__ import annotations

import json
from typing import Any

import attrs
from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site


@attrs.define
class Reply:
    """One scripted HTTP answer: status, headers, and body chunks sent `delay` apart."""

    chunks: list[bytes] = attrs.field(factory=list)
    status: int = 200
    headers: dict[str, str] = attrs.field(factory=dict)
    delay: float = 0.0
    hang: bool = False  # keep the connection open after the chunks


def openai_text(*parts: str, usage: bool = True) -> Reply:
    chunks = [b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\n']
    for part in parts:
        chunks.append(b"data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": part}, "finish_reason": None}]}).encode() + b"\n\n")
    chunks.append(b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n')
    if usage:
        chunks.append(b'data: {"choices":[],"usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18}}\n\n')
    chunks.append(b"data: [DONE]\n\n")
    return Reply(chunks, headers={"Content-Type": "text/event-stream"})


def openai_tool_call(name: str, arguments: dict[str, Any], call_id: str = "call_1", usage: dict[str, Any] | None = None) -> Reply:
    """A streamed tool call; C{usage} (OpenAI's object) goes in a last chunk, as with stream_options.include_usage."""
    text = json.dumps(arguments)
    half = len(text) // 2
    chunks = [
        b"data: " + json.dumps({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": call_id, "type": "function", "function": {"name": name, "arguments": text[:half]}}]}}]}).encode() + b"\n\n",
        b"data: " + json.dumps({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": text[half:]}}]}}]}).encode() + b"\n\n",
        b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}\n\n',
    ]
    if usage is not None:
        chunks.append(b"data: " + json.dumps({"choices": [], "usage": usage}).encode() + b"\n\n")
    chunks.append(b"data: [DONE]\n\n")
    return Reply(chunks, headers={"Content-Type": "text/event-stream"})


def openai_json(text: str, usage: dict[str, Any] | None = None, tool_calls: list[dict[str, Any]] | None = None) -> Reply:
    """A server that ignores stream:true: one chat.completion object as application/json."""
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if tool_calls:
        message["tool_calls"] = [{"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])}} for c in tool_calls]
    body: dict[str, Any] = {"id": "chatcmpl-1", "object": "chat.completion", "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if tool_calls else "stop"}]}
    if usage is not None:
        body["usage"] = usage
    return Reply([json.dumps(body).encode()], headers={"Content-Type": "application/json"})


def anthropic_events(*events: tuple[str, dict[str, Any]]) -> Reply:
    return Reply([f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in events], headers={"Content-Type": "text/event-stream"})


class FakeProvider(Resource):
    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.replies: list[Reply] = []
        self.requests: list[dict[str, Any]] = []
        self.open: list[Any] = []

    def render_POST(self, request: Any) -> Any:
        body = json.loads(request.content.read() or b"{}")
        self.requests.append({"path": request.path.decode(), "headers": {k.decode().lower(): v[0].decode() for k, v in request.requestHeaders.getAllRawHeaders()}, "body": body})
        reply = self.replies.pop(0) if self.replies else Reply([b'{"error":{"message":"no scripted reply"}}'], status=500)
        request.setResponseCode(reply.status)
        for k, v in reply.headers.items():
            request.setHeader(k, v)
        chunks = list(reply.chunks)
        self.open.append(request)
        finished = []
        request.notifyFinish().addBoth(lambda _: finished.append(True))

        def send() -> None:
            if finished:
                return
            if chunks:
                request.write(chunks.pop(0))
                reactor.callLater(reply.delay, send)
            elif not reply.hang:
                request.finish()

        send()
        return NOT_DONE_YET


async def start_fake(testcase: Any) -> tuple[FakeProvider, str]:
    """Listen on 127.0.0.1:0; returns the fake and its base URL (…/v1)."""
    fake = FakeProvider()
    root = Resource()
    root.putChild(b"v1", fake)
    root.putChild(b"api", fake)
    port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(Site(root))

    async def stop() -> None:
        for request in fake.open:
            if not request.finished and request.channel is not None:
                request.channel.transport.abortConnection()
        await port.stopListening()

    testcase.addCleanup(stop)
    return fake, f"http://127.0.0.1:{port.getHost().port}/v1"
