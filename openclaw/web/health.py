# -*- test-case-name: tests.test_service -*-
"""C{GET/HEAD /health} and C{/healthz}: liveness, no auth, no state."""

from __future__ import annotations

from twisted.web.resource import Resource
from twisted.web.server import Request

from openclaw.web.jsonpage import JsonError, not_found, write_json

LIVE = {"ok": True, "status": "live"}


class Health(Resource):
    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        return write_json(request, 200, LIVE)

    render_HEAD = render_GET

    def render(self, request: Request) -> bytes:
        if request.postpath not in ([], [b""]):
            return not_found().render(request)
        if request.method in (b"GET", b"HEAD"):
            return super().render(request)
        request.setHeader(b"Allow", b"GET, HEAD")
        return JsonError(405, "method_not_allowed", "Method Not Allowed").render(request)
