# -*- test-case-name: tests.test_memory -*-
"""
Embedding clients: OpenAI-compatible C{POST /v1/embeddings} and Ollama's
C{POST /api/embed}, over treq on the reactor. Bounded: texts per request,
characters per request, response bytes, one timeout per request, and a few
retries (429/5xx/connection errors) with exponential backoff and jitter.
Keys go in headers only; errors never contain them.
"""

from __future__ import annotations

import json
import math
from typing import Any, Sequence

import treq
from twisted.internet.defer import CancelledError
from twisted.internet.task import deferLater

from openclaw.agent.memory.settings import EmbeddingTarget
from openclaw.agent.providers import QuietPool
from openclaw.backoff import Backoff

BATCH_TEXTS = 64
BATCH_CHARS = 200_000
MAX_TEXT_CHARS = 8000  # one input (about 2000 tokens)
MAX_RESPONSE = 32 * 1024 * 1024
TIMEOUT = 60.0
ATTEMPTS = 3


class EmbeddingError(Exception):
    """The provider could not embed; the message is safe to show."""


class _TooLarge(Exception):
    pass


class Embedder:
    def __init__(self, target: EmbeddingTarget, reactor: Any, http: Any = treq, timeout: float = TIMEOUT) -> None:
        self.target = target
        self.reactor = reactor
        self.http = http
        self.timeout = timeout
        self.pool = QuietPool(reactor, persistent=False)

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, in order."""
        out: list[list[float]] = []
        batch: list[str] = []
        size = 0
        for text in texts:
            text = text[:MAX_TEXT_CHARS] or " "
            if batch and (len(batch) >= BATCH_TEXTS or size + len(text) > BATCH_CHARS):
                out += await self._batch(batch)
                batch, size = [], 0
            batch.append(text)
            size += len(text)
        if batch:
            out += await self._batch(batch)
        return out

    async def _batch(self, texts: list[str]) -> list[list[float]]:
        backoff = Backoff(initial=0.5, maximum=8.0)
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return await self._once(texts)
            except _Retryable as e:
                if attempt == ATTEMPTS:
                    raise EmbeddingError(str(e)) from None
                await deferLater(self.reactor, backoff.next(), lambda: None)
        raise EmbeddingError("unreachable")

    async def _once(self, texts: list[str]) -> list[list[float]]:
        target = self.target
        headers = {"Content-Type": "application/json", **dict(target.headers)}
        if target.api_key:
            headers["Authorization"] = f"Bearer {target.api_key}"
        body = {"model": target.model, "input": texts}
        where = f"{target.provider} embeddings ({target.model})"
        try:
            response = await self.http.request("POST", target.url, data=json.dumps(body).encode(), headers=headers, reactor=self.reactor, timeout=self.timeout, pool=self.pool)
        except CancelledError:
            raise
        except Exception as e:
            raise _Retryable(f"cannot reach {where}: {type(e).__name__}") from None
        chunks: list[bytes] = []
        received = [0]

        def collect(data: bytes) -> None:
            received[0] += len(data)
            if received[0] > MAX_RESPONSE:
                raise _TooLarge()
            chunks.append(data)

        try:
            await self.http.collect(response, collect)
        except CancelledError:
            raise
        except _TooLarge:
            raise EmbeddingError(f"{where}: the response is over {MAX_RESPONSE // 1024 ** 2} MiB") from None
        except Exception as e:
            raise _Retryable(f"{where}: the response broke off ({type(e).__name__})") from None
        raw = b"".join(chunks)
        if response.code >= 400:
            message = _error_message(raw)
            text = f"{where} answered HTTP {response.code}: {message}"
            if response.code == 429 or response.code >= 500:
                raise _Retryable(text)
            raise EmbeddingError(text)
        try:
            parsed = json.loads(raw)
        except ValueError:
            raise EmbeddingError(f"{where}: the response is not JSON") from None
        vectors = _vectors(parsed, target.provider)
        if vectors is None or len(vectors) != len(texts):
            raise EmbeddingError(f"{where}: the response does not hold one embedding per input")
        return vectors


class _Retryable(Exception):
    pass


def _error_message(raw: bytes) -> str:
    text = raw[:2000].decode("utf-8", "replace")
    try:
        parsed = json.loads(text)
    except ValueError:
        return text[:300]
    error = parsed.get("error") if isinstance(parsed, dict) else None
    message = error.get("message") if isinstance(error, dict) else error
    return str(message or text)[:300]


def _vectors(parsed: Any, provider: str) -> list[list[float]] | None:
    """OpenAI: C{{data: [{index, embedding}]}}; Ollama: C{{embeddings: [[...]]}}."""
    if not isinstance(parsed, dict):
        return None
    if provider == "ollama":
        rows = parsed.get("embeddings")
        items = rows if isinstance(rows, list) else None
    else:
        data = parsed.get("data")
        if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
            return None
        ordered = sorted(data, key=lambda d: d.get("index", 0) if isinstance(d.get("index"), int) else 0)
        items = [d.get("embedding") for d in ordered]
    if items is None:
        return None
    out = []
    for item in items:
        if not isinstance(item, list) or not item or len(item) > 16384:
            return None
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in item):
            return None
        out.append([float(v) for v in item])
    return out
