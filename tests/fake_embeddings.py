"""
A fake embedding provider on 127.0.0.1: OpenAI's C{POST /v1/embeddings}
(C{{model, input}} → C{{object: "list", data: [{object, index, embedding}], model, usage}})
and Ollama's C{POST /api/embed} (C{{model, input}} → C{{model, embeddings}}).

Vectors come from a tiny lexicon of meanings: words of one group point the
same way, so a paraphrase is near its original with no word in common.
"""

from __future__ import annotations

import json
import re
from typing import Any

from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.web.resource import Resource
from twisted.web.server import Site

GROUPS = (
    {"drink", "drinks", "beverage", "tea", "coffee", "brewed"},
    {"weather", "july", "sunny", "rain", "forecast"},
    {"car", "vehicle", "garage", "parked"},
)


def meaning(text: str) -> list[float]:
    words = re.findall(r"\w+", text.lower())
    return [float(sum(w in group for w in words)) for group in GROUPS] + [0.01]


class FakeEmbeddings(Resource):
    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[dict[str, Any]] = []
        self.fail_with: int | None = None

    def render_POST(self, request: Any) -> bytes:
        body = json.loads(request.content.read() or b"{}")
        path = request.path.decode()
        self.requests.append({"path": path, "headers": {k.decode().lower(): v[0].decode() for k, v in request.requestHeaders.getAllRawHeaders()}, "body": body})
        request.setHeader("Content-Type", "application/json")
        if self.fail_with is not None:
            request.setResponseCode(self.fail_with)
            return json.dumps({"error": {"message": "embedding backend is down", "type": "server_error"}}).encode()
        inputs = body.get("input")
        inputs = [inputs] if isinstance(inputs, str) else inputs
        vectors = [meaning(text) for text in inputs]
        if path.endswith("/api/embed"):
            return json.dumps({"model": body.get("model"), "embeddings": vectors}).encode()
        data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]
        tokens = sum(len(t.split()) for t in inputs)
        return json.dumps({"object": "list", "data": data, "model": body.get("model"), "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}).encode()

    def inputs(self) -> list[str]:
        """Every text embedded so far."""
        out: list[str] = []
        for r in self.requests:
            value = r["body"].get("input")
            out += [value] if isinstance(value, str) else list(value or [])
        return out


async def start_embeddings(testcase: Any) -> tuple[FakeEmbeddings, str]:
    """Listen on 127.0.0.1:0; returns the fake and its OpenAI-style base URL (…/v1)."""
    fake = FakeEmbeddings()
    root = Resource()
    v1 = Resource()
    v1.putChild(b"embeddings", fake)
    root.putChild(b"v1", v1)
    api = Resource()
    api.putChild(b"embed", fake)
    root.putChild(b"api", api)
    port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(Site(root))
    testcase.addCleanup(port.stopListening)
    return fake, f"http://127.0.0.1:{port.getHost().port}/v1"
