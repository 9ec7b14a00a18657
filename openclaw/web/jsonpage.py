# -*- test-case-name: tests.test_service,tests.test_http -*-
"""JSON responses, the JSON 404 every unknown path gets, and the errback for deferred ones."""

from __future__ import annotations

import json
from typing import Any

from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import Request

log = Logger(namespace="openclaw.http")


def write_json(request: Request, code: int, body: Any) -> bytes:
    """Set status and headers for a JSON body; return the bytes (empty for HEAD)."""
    data = json.dumps(body, separators=(",", ":")).encode("utf-8")
    request.setResponseCode(code)
    request.setHeader(b"Content-Type", b"application/json; charset=utf-8")
    request.setHeader(b"Cache-Control", b"no-store")
    request.setHeader(b"Content-Length", str(len(data)).encode())
    return b"" if request.method == b"HEAD" else data


class JsonError(Resource):
    """A leaf that answers every method with one JSON error."""

    isLeaf = True

    def __init__(self, code: int, error: str, message: str) -> None:
        super().__init__()
        self.code = code
        self.body = {"ok": False, "error": {"type": error, "message": message}}

    def render(self, request: Request) -> bytes:
        return write_json(request, self.code, self.body)


def not_found() -> JsonError:
    return JsonError(404, "not_found", "Not Found")


def failed(failure: Failure, request: Request, closed: list[bool] | None = None) -> None:
    """An errback for a deferred response: the site's JSON 500 (or a cut), never a hung request."""
    if closed or request.finished or getattr(request, "_disconnected", False):
        log.failure("a response failed after its client left", failure)
        return
    request.processingFailed(failure)
