"""HTTP hardening on real loopback sockets: JSON errors, bounded bodies, and the shared auth limiter."""

from __future__ import annotations

import http.client
import json

from twisted.internet.threads import deferToThread
from twisted.logger import LogLevel, globalLogPublisher
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource

from openclaw.protocol.jsonvalue import depth
from openclaw.web.jsonbody import MAX_DEPTH, BodyError, decode
from tests.wsclient import TOKEN, GatewayMixin, connect_params

ENABLED = {"http": {"endpoints": {"chatCompletions": {"enabled": True}}}}
REMOTE = {"X-Forwarded-For": "203.0.113.9"}  # from an untrusted peer: a remote caller, not exempt


def request(port, method, path, body=None, headers=None, chunked=False):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {}, encode_chunked=chunked)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


class Boom(Resource):
    isLeaf = True

    def render_GET(self, request):
        raise ZeroDivisionError("boom")


class NotBytes(Resource):
    isLeaf = True

    def render_GET(self, request):
        return "a str, not bytes"


class DepthTests(TestCase):
    def test_depth(self):
        """Nesting is counted outside strings only; escaped quotes do not end a string."""
        self.assertEqual(depth('{"a": [1, {"b": "[[[["}]}'), 3)
        self.assertEqual(depth('["\\"[[[", [[]]]'), 3)
        self.assertEqual(depth("1"), 0)

    def test_decode_bounds(self):
        """Deep nesting, NaN and Infinity are 400s, never RecursionError."""
        for data in (b"[" * 100_000 + b"]" * 100_000, b"[" * 100_000, b"[NaN]", b"{\"a\": -Infinity}", b"\xff"):
            error = self.assertRaises(BodyError, decode, data)
            self.assertEqual(error.status, 400)
        nested = b"[" * MAX_DEPTH + b"]" * MAX_DEPTH
        self.assertIsInstance(decode(nested), list)


class HttpErrorTests(GatewayMixin, TestCase):
    timeout = 120

    async def setUp(self):
        self.critical = []

        def observe(event):
            if event.get("log_level") in (LogLevel.critical, LogLevel.error):
                self.critical.append(event)

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)

    def call(self, method, path, body=None, headers=None, **kw):
        return deferToThread(request, self.service.port, method, path, body, headers, **kw)

    async def test_invalid_input_is_json_400(self):
        """Path-like agent ids, a non-string sessionKey, deep nesting: JSON 400s (OpenAI-shaped on /v1), nothing logged as an error."""
        await self.gateway(gateway=ENABLED)
        auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        message = {"messages": [{"role": "user", "content": "hi"}]}
        deep = b"[" * 100_000 + b"]" * 100_000
        cases = [
            ("/v1/chat/completions", json.dumps({**message, "model": "openclaw/../../x"}), auth),
            ("/v1/chat/completions", json.dumps(message), {**auth, "x-openclaw-agent-id": "../x"}),
            ("/v1/chat/completions", json.dumps({**message, "stream_options": [1]}), auth),
            ("/v1/chat/completions", deep, auth),
            ("/tools/invoke", json.dumps({"tool": "read", "sessionKey": 5}), auth),
            ("/tools/invoke", json.dumps({"tool": "read", "agentId": "../x"}), auth),
            ("/tools/invoke", json.dumps({"tool": "read", "args": [1]}), auth),
            ("/tools/invoke", deep, auth),
        ]
        for path, body, headers in cases:
            status, got, raw = await self.call("POST", path, body, headers)
            self.assertEqual((status, got["content-type"].split(";")[0]), (400, "application/json"), (path, body[:80], raw))
            error = json.loads(raw)["error"]
            if path.startswith("/v1"):
                self.assertEqual(error["type"], "invalid_request_error")
                self.assertIn("param", error)
            else:
                self.assertEqual(json.loads(raw)["ok"], False)
        self.assertEqual(self.critical, [])

    async def test_unhandled_errors_are_json_500(self):
        """A resource that raises, or returns no bytes, answers a JSON 500 on the gateway and the canvas sites; HTML 404/405 pages are JSON too."""
        await self.gateway()
        self.service.root.putChild(b"boom", Boom())
        self.service.root.putChild(b"notbytes", NotBytes())
        self.service.canvas.tree.putChild(b"boom", Boom())
        canvas = self.service.canvas_listeners[0].port
        for port, path in ((self.service.port, "/boom"), (self.service.port, "/notbytes"), (canvas, "/__openclaw__/boom"), (self.service.port, "/__openclaw__/boom")):
            status, headers, body = await deferToThread(request, port, "GET", path)
            self.assertEqual((status, headers["content-type"].split(";")[0]), (500, "application/json"), (port, path, body))
            self.assertEqual(json.loads(body)["error"]["type"], "server_error")
            self.assertNotIn(b"boom", body)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 3)
        self.assertEqual(len(self.flushLoggedErrors(TypeError)), 1)
        for path, code in (("/tools", 405), ("/tools/nope", 404), ("/__openclaw__/nope", 404)):
            status, headers, body = await self.call("GET", path)
            self.assertEqual((status, headers["content-type"].split(";")[0]), (code, "application/json"), (path, body))

    async def test_body_over_the_limit_is_413(self):
        """A 21 MB body to /v1/chat/completions is 413 (declared or chunked); the client reads the answer."""
        await self.gateway(gateway=ENABLED)
        body = b'{"messages": [{"role": "user", "content": "' + b"x" * (21 * 1024 * 1024) + b'"}]}'
        auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        status, headers, raw = await self.call("POST", "/v1/chat/completions", body, auth)
        self.assertEqual((status, headers["content-type"].split(";")[0]), (413, "application/json"), raw)
        self.assertEqual(json.loads(raw)["error"]["code"], "payload_too_large")

        def chunks():
            for start in range(0, len(body), 1024 * 1024):
                yield body[start : start + 1024 * 1024]

        status, _, raw = await self.call("POST", "/v1/chat/completions", chunks(), auth, chunked=True)
        self.assertEqual(status, 413, raw)
        status, _, raw = await self.call("POST", "/tools/invoke", json.dumps({"tool": "read", "args": {"path": "x" * (3 * 1024 * 1024)}}), auth)
        self.assertEqual((status, json.loads(raw)["error"]["type"]), (413, "payload_too_large"))
        status, _, _ = await self.call("GET", "/health")
        self.assertEqual(status, 200)


class SharedLimiterTests(GatewayMixin, TestCase):
    timeout = 60

    def call(self, path, token, headers=None):
        auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json", **(headers or {})}
        body = json.dumps({"tool": "read", "args": {"path": "x"}} if path == "/tools/invoke" else {"messages": [{"role": "user", "content": "hi"}]})
        return deferToThread(request, self.service.port, "POST", path, body, auth)

    async def test_http_guesses_lock_out_http_and_websocket(self):
        """Wrong bearers count: the 11th try is 429 with Retry-After and a JSON body without the secret, and the WebSocket is locked too."""
        await self.gateway(gateway=ENABLED)
        for i in range(10):
            status, _, _ = await self.call(("/tools/invoke", "/v1/chat/completions")[i % 2], "wrong-guess", REMOTE)
            self.assertEqual(status, 401)
        for path in ("/tools/invoke", "/v1/chat/completions"):
            status, headers, raw = await self.call(path, TOKEN, REMOTE)  # even the right secret, while locked out
            self.assertEqual((status, headers["content-type"].split(";")[0]), (429, "application/json"), raw)
            self.assertGreater(int(headers["retry-after"]), 0)
            self.assertNotIn(TOKEN.encode(), raw)
            self.assertNotIn(b"wrong-guess", raw)
        _, res = await self.connect(connect_params(), headers=REMOTE)
        self.assertEqual(res["error"]["details"]["code"], "AUTH_RATE_LIMITED")
        status, _, _ = await self.call("/tools/invoke", "wrong-guess")  # loopback without Origin stays exempt
        self.assertEqual(status, 401)

    async def test_websocket_guesses_lock_out_http(self):
        """Failed WebSocket connects count toward the HTTP lockout; a browser Origin on loopback is not exempt."""
        await self.gateway(gateway={**ENABLED, "controlUi": {"allowedOrigins": ["http://127.0.0.1:1"]}})
        browser = {"Origin": "http://127.0.0.1:1"}
        for _ in range(9):
            _, res = await self.connect(connect_params(token="bad"), headers=browser)
            self.assertEqual(res["error"]["details"]["code"], "AUTH_TOKEN_MISMATCH")
        status, _, _ = await self.call("/v1/chat/completions", "bad", browser)
        self.assertEqual(status, 401)
        status, headers, _ = await self.call("/v1/chat/completions", TOKEN, browser)
        self.assertEqual(status, 429)
        self.assertIn("retry-after", headers)
        for _ in range(12):  # loopback without an Origin is never locked out
            status, _, _ = await self.call("/tools/invoke", "bad")
            self.assertEqual(status, 401)
        status, _, _ = await self.call("/tools/invoke", TOKEN)
        self.assertNotIn(status, (401, 429))
