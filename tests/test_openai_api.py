"""/v1/models and /v1/chat/completions, driven by the official openai Python package."""

from __future__ import annotations

import http.client
import json

import openai
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from tests.fakes import openai_text, start_fake
from tests.test_agent import model_config
from tests.wsclient import TOKEN, GatewayMixin

ENABLED = {"endpoints": {"chatCompletions": {"enabled": True}}}


class OpenAIApiTests(GatewayMixin, TestCase):
    timeout = 60

    async def setUp(self):
        self.fake, self.url = await start_fake(self)

    async def start(self, enabled=True):
        config = model_config(self.url)
        await self.gateway(gateway={"http": ENABLED} if enabled else {}, **config)
        return openai.OpenAI(base_url=f"http://127.0.0.1:{self.service.port}/v1", api_key=TOKEN, max_retries=0, timeout=20)

    def raw(self, method, path, body=None, headers=None):
        def go():
            conn = http.client.HTTPConnection("127.0.0.1", self.service.port, timeout=10)
            try:
                conn.request(method, path, body=body, headers={"Authorization": f"Bearer {TOKEN}", **(headers or {})})
                r = conn.getresponse()
                return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
            finally:
                conn.close()

        return deferToThread(go)

    async def test_disabled_by_default(self):
        """Without chatCompletions.enabled the API answers 404."""
        await self.start(enabled=False)
        status, _, body = await self.raw("GET", "/v1/models")
        self.assertEqual(status, 404)
        self.assertEqual(json.loads(body)["error"]["code"], "not_found")

    async def test_models_and_auth(self):
        """/v1/models lists openclaw, openclaw/default, openclaw/<agent>; no bearer is 401."""
        client = await self.start()
        models = await deferToThread(client.models.list)
        self.assertEqual([m.id for m in models.data], ["openclaw", "openclaw/default", "openclaw/main"])
        status, headers, _ = await self.raw("GET", "/v1/models", headers={"Authorization": "Bearer wrong"})
        self.assertEqual((status, headers["www-authenticate"]), (401, "Bearer"))

    async def test_non_streaming(self):
        """A completion comes back with content and usage."""
        self.fake.replies.append(openai_text("Hi there"))
        client = await self.start()
        result = await deferToThread(client.chat.completions.create, model="openclaw", messages=[{"role": "user", "content": "hello"}])
        self.assertEqual((result.choices[0].message.content, result.choices[0].finish_reason), ("Hi there", "stop"))
        self.assertEqual(result.usage.total_tokens, 18)

    async def test_streaming_with_usage(self):
        """stream=True yields text/event-stream chunks ending in [DONE]; include_usage adds usage."""
        self.fake.replies.append(openai_text("One ", "two ", "three"))
        client = await self.start()

        def consume():
            stream = client.chat.completions.create(model="openclaw/default", messages=[{"role": "user", "content": "count"}], stream=True, stream_options={"include_usage": True})
            pieces, usage = [], None
            for event in stream:
                if event.choices and event.choices[0].delta.content:
                    pieces.append(event.choices[0].delta.content)
                if event.usage:
                    usage = event.usage
            return "".join(pieces), usage

        text, usage = await deferToThread(consume)
        self.assertEqual(text, "One two three")
        self.assertEqual(usage.prompt_tokens, 11)
        self.fake.replies.append(openai_text("x"))
        status, headers, body = await self.raw("POST", "/v1/chat/completions", json.dumps({"model": "openclaw", "stream": True, "messages": [{"role": "user", "content": "y"}]}), {"Content-Type": "application/json"})
        self.assertEqual(headers["content-type"], "text/event-stream")
        self.assertTrue(body.endswith(b"data: [DONE]\n\n"))

    async def test_user_is_a_stable_session(self):
        """The same `user` continues one session; without it each request is fresh."""
        self.fake.replies += [openai_text("first answer"), openai_text("second answer")]
        client = await self.start()
        for text in ("first", "second"):
            await deferToThread(client.chat.completions.create, model="openclaw", user="alice", messages=[{"role": "user", "content": text}])
        sent = [m["content"] for m in self.fake.requests[1]["body"]["messages"] if m["role"] != "system"]
        self.assertEqual(sent, ["first", "first answer", "second"])

    async def test_errors(self):
        """Unknown model and reserved session keys are 400; agent failures are 500 with x-should-retry false."""
        client = await self.start()
        with self.assertRaises(openai.BadRequestError):
            await deferToThread(client.chat.completions.create, model="gpt-4o", messages=[{"role": "user", "content": "x"}])
        status, _, _ = await self.raw("POST", "/v1/chat/completions", json.dumps({"model": "openclaw", "messages": [{"role": "user", "content": "x"}]}), {"x-openclaw-session-key": "cron:job"})
        self.assertEqual(status, 400)
        status, _, _ = await self.raw("POST", "/v1/chat/completions", b"{nope")
        self.assertEqual(status, 400)
        self.fake.replies.append(openai_text("x"))
        self.fake.replies[-1].status = 400
        status, headers, body = await self.raw("POST", "/v1/chat/completions", json.dumps({"model": "openclaw", "messages": [{"role": "user", "content": "x"}]}))
        self.assertEqual(status, 500, (headers, body))
        self.assertEqual(headers.get("x-should-retry"), "false", headers)
        self.assertEqual(json.loads(body)["error"]["type"], "server_error")

    async def test_body_limit(self):
        """A body over the limit is refused with 413 before it is read."""
        await self.start()
        status, _, _ = await self.raw("POST", "/v1/chat/completions", b"x" * 10, {"Content-Length": str(30 * 1024 * 1024)})
        self.assertEqual(status, 413)
