"""Providers against fake servers on loopback: streaming, tools, retries, errors, cancel."""

from __future__ import annotations

import json

from attrs import evolve as attrs_evolve

from twisted.internet import reactor
from twisted.internet.defer import CancelledError
from twisted.internet.task import deferLater
from twisted.logger import globalLogPublisher
from twisted.internet.testing import EventLoggingObserver
from twisted.trial.unittest import SynchronousTestCase, TestCase

from openclaw.agent.providers import (
    AnthropicMessages,
    ModelRef,
    ModelRequest,
    OllamaChat,
    OpenAICompletions,
    ProviderError,
    ToolSpec,
    resolve_models,
)
from openclaw.agent.sse import SSEParser
from tests.fakes import Reply, anthropic_events, openai_json, openai_text, openai_tool_call, start_fake
from tests.helpers import capture_log

KEY = "sk-test-secret-key-0123456789"


def request(text="hi", tools=()):
    return ModelRequest(system="be brief", messages=[{"role": "user", "content": [{"type": "text", "text": text}]}], tools=list(tools))


class SSETests(SynchronousTestCase):
    def test_parse_split_anywhere(self):
        """Events parse the same whatever the chunking; comments ignored; CRLF accepted."""
        raw = b": hello\r\nevent: a\r\ndata: one\r\ndata: two\r\n\r\ndata: x\n\n"
        for size in (1, 2, 3, 7, len(raw)):
            parser = SSEParser()
            events = []
            for i in range(0, len(raw), size):
                events += parser.feed(raw[i : i + size])
            self.assertEqual([(e.event, e.data) for e in events], [("a", "one\ntwo"), ("message", "x")])


class ResolveTests(SynchronousTestCase):
    def test_config_and_builtins(self):
        """primary + fallbacks from agents.defaults.model; built-ins need their env key."""
        config = {
            "models": {"providers": {"local": {"baseUrl": "http://127.0.0.1:1/v1", "api": "openai-completions", "models": [{"id": "m", "maxTokens": 99}]}}},
            "agents": {"defaults": {"model": {"primary": "local/m", "fallbacks": ["openai/gpt-4.1", "anthropic/claude"]}}},
        }
        refs = resolve_models(config, {"ANTHROPIC_API_KEY": "anthropic-key-XYZ"})
        self.assertEqual([r.label for r in refs], ["local/m", "anthropic/claude"])
        self.assertEqual((refs[0].max_tokens, refs[1].api), (99, "anthropic-messages"))
        self.assertEqual(resolve_models({}, {}), [])
        self.assertEqual([r.label for r in resolve_models({}, {"OPENAI_API_KEY": "k"})], ["openai/gpt-4.1"])
        self.assertEqual(refs[1].api_key, "anthropic-key-XYZ")
        self.assertNotIn("anthropic-key-XYZ", repr(refs[1]))


class OpenAITests(TestCase):
    async def setUp(self):
        self.fake, self.url = await start_fake(self)
        self.model = ModelRef("local", "m1", "openai-completions", self.url, KEY)
        self.provider = OpenAICompletions(reactor)

    async def test_text_stream(self):
        """Deltas arrive in order; the reply has the text, usage and stop reason; the key is a bearer."""
        self.fake.replies.append(openai_text("Hel", "lo", "!"))
        deltas = []
        reply = await self.provider.stream(self.model, request(), deltas.append)
        self.assertEqual((deltas, reply.text, reply.stop_reason), (["Hel", "lo", "!"], "Hello!", "stop"))
        self.assertEqual(reply.usage, {"input": 11, "output": 7, "total": 18})
        sent = self.fake.requests[0]
        self.assertEqual((sent["path"], sent["headers"]["authorization"]), ("/v1/chat/completions", f"Bearer {KEY}"))
        self.assertEqual(sent["body"]["messages"][0], {"role": "system", "content": "be brief"})
        self.assertTrue(sent["body"]["stream"])

    async def test_requests_do_not_flood_the_log(self):
        """Provider requests log no "Starting/Stopping factory _HTTP11ClientFactory" lines (one pair per request before)."""
        self.fake.replies += [openai_text("a"), openai_text("b")]
        log = capture_log(self)
        for _ in range(2):
            await self.provider.stream(self.model, request(), lambda d: None)
        await deferLater(reactor, 0.05, lambda: None)  # the connections' close
        self.assertEqual([t for t in log.texts() if "factory" in t.lower()], [])

    async def test_tool_calls(self):
        """tool_calls deltas are joined into calls with parsed arguments; tools are sent."""
        self.fake.replies.append(openai_tool_call("read", {"path": "notes.txt"}))
        tool = ToolSpec("read", "Read a file", {"type": "object", "properties": {"path": {"type": "string"}}})
        reply = await self.provider.stream(self.model, request(tools=[tool]), lambda d: None)
        self.assertEqual(reply.tool_calls, [{"id": "call_1", "name": "read", "arguments": {"path": "notes.txt"}}])
        self.assertEqual(self.fake.requests[0]["body"]["tools"][0]["function"]["name"], "read")

    async def test_streamed_usage_with_cached_tokens(self):
        """The usage chunk's cached prompt tokens are cache reads, not input; the parts add up to total_tokens."""
        usage = {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150, "prompt_tokens_details": {"cached_tokens": 100}}
        self.fake.replies.append(openai_tool_call("read", {"path": "a"}, usage=usage))
        reply = await self.provider.stream(self.model, request(), lambda d: None)
        self.assertEqual(reply.usage, {"input": 20, "output": 30, "cacheRead": 100, "total": 150})
        self.assertEqual(reply.usage["input"] + reply.usage["output"] + reply.usage["cacheRead"], 150)

    async def test_non_streamed_answer(self):
        """A server that ignores stream:true (one application/json body) still gives text, tool calls and usage."""
        self.fake.replies.append(openai_json("Whole answer", {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}))
        deltas = []
        reply = await self.provider.stream(self.model, request(), deltas.append)
        self.assertEqual((reply.text, deltas, reply.stop_reason), ("Whole answer", ["Whole answer"], "stop"))
        self.assertEqual(reply.usage, {"input": 9, "output": 4, "total": 13})
        self.fake.replies.append(openai_json("", tool_calls=[{"id": "c9", "name": "read", "arguments": {"path": "x"}}]))
        reply = await self.provider.stream(self.model, request(), lambda d: None)
        self.assertEqual(reply.tool_calls, [{"id": "c9", "name": "read", "arguments": {"path": "x"}}])
        self.fake.replies.append(Reply([b'{"choices": [tru'], headers={"Content-Type": "application/json"}))
        with self.assertRaises(ProviderError):
            await self.provider.stream(self.model, request(), lambda d: None)

    async def test_429_retry_after(self):
        """429 with retry-after is retried (after the delay); then the stream succeeds."""
        self.fake.replies += [Reply([b'{"error":{"message":"slow down"}}'], status=429, headers={"retry-after": "0.2"}), openai_text("ok")]
        started = reactor.seconds()
        reply = await self.provider.stream(self.model, request(), lambda d: None)
        self.assertEqual(reply.text, "ok")
        self.assertGreaterEqual(reactor.seconds() - started, 0.2)
        self.assertEqual(len(self.fake.requests), 2)

    async def test_errors_not_retried(self):
        """A 400 fails at once with the provider's message; no key in the error or the log."""
        observer = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        self.fake.replies.append(Reply([b'{"error":{"message":"maximum context length exceeded"}}'], status=400))
        with self.assertRaises(ProviderError) as cm:
            await self.provider.stream(self.model, request(), lambda d: None)
        self.assertEqual((cm.exception.status, cm.exception.kind), (400, "context_length"))
        self.assertIn("maximum context length", str(cm.exception))
        self.assertEqual(len(self.fake.requests), 1)
        self.assertNotIn(KEY, str(cm.exception) + repr([e for e in observer]))

    async def test_error_mid_stream(self):
        """A stream that breaks after output is an error, and is not retried."""
        reply = openai_text("partial")
        reply.chunks = reply.chunks[:2] + [b'data: {"error":{"message":"upstream died"}}\n\n']
        self.fake.replies.append(reply)
        with self.assertRaises(ProviderError) as cm:
            await self.provider.stream(self.model, request(), lambda d: None)
        self.assertIn("upstream died", str(cm.exception))
        self.assertEqual(len(self.fake.requests), 1)

    async def test_truncated_stream(self):
        """A stream that ends without [DONE] or a finish reason is an error."""
        reply = openai_text("cut")
        reply.chunks = reply.chunks[:2]
        self.fake.replies.append(reply)
        with self.assertRaises(ProviderError):
            await self.provider.stream(self.model, request(), lambda d: None)

    async def test_trickle_and_cancel(self):
        """Slow chunks keep streaming; cancelling the Deferred stops the request."""
        slow = openai_text("a", "b", "c", "d")
        slow.delay = 0.05
        self.fake.replies.append(slow)
        deltas = []
        reply = await self.provider.stream(self.model, request(), deltas.append)
        self.assertEqual(reply.text, "abcd")
        hanging = openai_text("x")
        hanging.chunks = hanging.chunks[:2]
        hanging.hang = True
        self.fake.replies.append(hanging)
        seen = []
        d = self.provider.stream(self.model, request(), seen.append)
        while not seen:
            await deferLater(reactor, 0.01, lambda: None)
        d.cancel()
        with self.assertRaises(CancelledError):
            await d


    async def test_cancel_before_the_answer_is_not_retried(self):
        """Cancelling while the provider has not answered yet stops there: CancelledError, and no retry (no second connection)."""
        from twisted.internet.endpoints import TCP4ServerEndpoint
        from twisted.internet.protocol import Factory, Protocol

        connections = []

        class Silent(Protocol):
            def connectionMade(self):
                connections.append(self)

        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(Factory.forProtocol(Silent))
        self.addCleanup(port.stopListening)
        self.addCleanup(lambda: [c.transport.abortConnection() for c in connections])
        model = ModelRef("local", "m1", "openai-completions", f"http://127.0.0.1:{port.getHost().port}/v1", KEY)
        d = self.provider.stream(model, request(), lambda delta: None)
        while not connections:
            await deferLater(reactor, 0.01, lambda: None)
        d.cancel()
        with self.assertRaises(CancelledError):
            await d
        await deferLater(reactor, 0.8, lambda: None)
        self.assertEqual(len(connections), 1)

    test_cancel_before_the_answer_is_not_retried.timeout = 15  # type: ignore[attr-defined]  # unfixed, it retries until the timeout

    async def test_cancel_while_connecting_is_not_retried(self):
        """Cancelling while the connection is being made (the endpoint fails it with ConnectingCancelledError) stops there: CancelledError, no retry."""
        from twisted.internet.defer import Deferred
        from twisted.internet.error import ConnectingCancelledError

        calls = []

        class Connecting:
            def request(self, *args, **kwargs):
                calls.append(args)
                return Deferred(lambda d: d.errback(ConnectingCancelledError(None)))

        provider = OpenAICompletions(reactor, http=Connecting())
        d = provider.stream(self.model, request(), lambda delta: None)
        d.cancel()
        with self.assertRaises(CancelledError):
            await d
        await deferLater(reactor, 0.8, lambda: None)
        self.assertEqual(len(calls), 1)

    test_cancel_while_connecting_is_not_retried.timeout = 15  # type: ignore[attr-defined]


class AnthropicTests(TestCase):
    async def test_text_and_tool_use(self):
        """message_start … message_stop: text deltas, a tool_use with streamed JSON input, usage."""
        fake, url = await start_fake(self)
        fake.replies.append(
            anthropic_events(
                ("message_start", {"type": "message_start", "message": {"usage": {"input_tokens": 12}}}),
                ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
                ("ping", {"type": "ping"}),
                ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Let me look."}}),
                ("content_block_stop", {"type": "content_block_stop", "index": 0}),
                ("content_block_start", {"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "read", "input": {}}}),
                ("content_block_delta", {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"path": "a'}}),
                ("content_block_delta", {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '.txt"}'}}),
                ("content_block_stop", {"type": "content_block_stop", "index": 1}),
                ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}}),
                ("message_stop", {"type": "message_stop"}),
            )
        )
        model = ModelRef("anthropic", "claude", "anthropic-messages", url, KEY)
        reply = await AnthropicMessages(reactor).stream(model, request(), lambda d: None)
        self.assertEqual((reply.text, reply.stop_reason), ("Let me look.", "tool_use"))
        self.assertEqual(reply.tool_calls, [{"id": "toolu_1", "name": "read", "arguments": {"path": "a.txt"}}])
        self.assertEqual(reply.usage, {"input": 12, "output": 9, "total": 21})
        headers = fake.requests[0]["headers"]
        self.assertEqual((headers["x-api-key"], headers["anthropic-version"]), (KEY, "2023-06-01"))
        self.assertEqual(fake.requests[0]["body"]["system"], "be brief")

    async def test_cache_usage_streamed_and_whole(self):
        """Cache reads and writes are counted from message_start and the cumulative message_delta, and from a whole JSON answer."""
        fake, url = await start_fake(self)
        start = {"type": "message_start", "message": {"usage": {"input_tokens": 5, "cache_read_input_tokens": 200, "cache_creation_input_tokens": 40, "output_tokens": 1}}}
        fake.replies.append(
            anthropic_events(
                ("message_start", start),
                ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "ok"}}),
                ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 12}}),
                ("message_stop", {"type": "message_stop"}),
            )
        )
        model = ModelRef("anthropic", "claude", "anthropic-messages", url, KEY)
        reply = await AnthropicMessages(reactor).stream(model, request(), lambda d: None)
        self.assertEqual(reply.usage, {"input": 5, "output": 12, "cacheRead": 200, "cacheWrite": 40, "total": 257})
        whole = {"type": "message", "content": [{"type": "text", "text": "Hi"}, {"type": "tool_use", "id": "t1", "name": "read", "input": {"path": "y"}}], "stop_reason": "tool_use", "usage": {"input_tokens": 3, "output_tokens": 2, "cache_read_input_tokens": 7}}
        fake.replies.append(Reply([json.dumps(whole).encode()], headers={"Content-Type": "application/json"}))
        reply = await AnthropicMessages(reactor).stream(model, request(), lambda d: None)
        self.assertEqual((reply.text, reply.stop_reason, reply.tool_calls), ("Hi", "tool_use", [{"id": "t1", "name": "read", "arguments": {"path": "y"}}]))
        self.assertEqual(reply.usage, {"input": 3, "output": 2, "cacheRead": 7, "total": 12})

    async def test_thinking_budget_and_signed_thinking(self):
        """A thinking level asks a reasoning model for a budget; signed thinking comes back in the reply and goes back with the history."""
        fake, url = await start_fake(self)
        fake.replies.append(
            anthropic_events(
                ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}}),
                ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "let me see"}}),
                ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "sig=="}}),
                ("content_block_delta", {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "ok"}}),
                ("message_stop", {"type": "message_stop"}),
            )
        )
        model = ModelRef("anthropic", "claude", "anthropic-messages", url, KEY, reasoning=True)
        reply = await AnthropicMessages(reactor).stream(model, ModelRequest(system="", messages=request().messages, thinking="high"), lambda d: None)
        self.assertEqual((reply.text, reply.thinking), ("ok", [{"type": "thinking", "thinking": "let me see", "thinkingSignature": "sig=="}]))
        body = fake.requests[0]["body"]
        self.assertEqual((body["thinking"], body["max_tokens"]), ({"type": "enabled", "budget_tokens": 16384}, 16384 + 4096))
        history = [*request().messages, {"role": "assistant", "content": [*reply.thinking, {"type": "toolCall", "id": "t", "name": "read", "arguments": {}}]}]
        sent = AnthropicMessages(reactor).to_messages(ModelRequest(system="", messages=history), thinking=True)
        self.assertEqual(sent[-1]["content"][0], {"type": "thinking", "thinking": "let me see", "signature": "sig=="})
        self.assertEqual(AnthropicMessages(reactor).to_messages(ModelRequest(system="", messages=history))[-1]["content"][0]["type"], "tool_use")
        fake.replies.append(anthropic_events(("message_stop", {"type": "message_stop"})))
        await AnthropicMessages(reactor).stream(attrs_evolve(model, reasoning=False), ModelRequest(system="", messages=request().messages, thinking="high"), lambda d: None)
        self.assertNotIn("thinking", fake.requests[1]["body"])  # only models marked reasoning: true

    async def test_overloaded_error_event(self):
        """An error event before output is retryable (overloaded), then succeeds."""
        fake, url = await start_fake(self)
        fake.replies.append(anthropic_events(("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})))
        fake.replies.append(anthropic_events(("message_start", {"type": "message_start", "message": {"usage": {"input_tokens": 1}}}), ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "ok"}}), ("message_stop", {"type": "message_stop"})))
        model = ModelRef("anthropic", "claude", "anthropic-messages", url, KEY)
        reply = await AnthropicMessages(reactor).stream(model, request(), lambda d: None)
        self.assertEqual(reply.text, "ok")


class OllamaTests(TestCase):
    async def test_ndjson_with_tools(self):
        """/api/chat NDJSON: content pieces, a tool call with object arguments, done."""
        fake, url = await start_fake(self)
        lines = [
            {"message": {"role": "assistant", "content": "Hi"}, "done": False},
            {"message": {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "read", "arguments": {"path": "x"}}}]}, "done": False},
            {"message": {"role": "assistant", "content": ""}, "done": True, "done_reason": "stop", "prompt_eval_count": 3, "eval_count": 4},
        ]
        fake.replies.append(Reply([json.dumps(line).encode() + b"\n" for line in lines]))
        model = ModelRef("ollama", "llama3", "ollama", url, None)
        reply = await OllamaChat(reactor).stream(model, request(), lambda d: None)
        self.assertEqual((reply.text, reply.tool_calls[0]["arguments"], reply.usage["total"]), ("Hi", {"path": "x"}, 7))
        self.assertEqual(fake.requests[0]["path"], "/api/chat")

    async def test_whole_answer_without_newline(self):
        """One JSON object without a trailing newline (stream ignored) is the whole answer, usage included."""
        fake, url = await start_fake(self)
        fake.replies.append(Reply([json.dumps({"message": {"role": "assistant", "content": "all"}, "done": True, "prompt_eval_count": 4, "eval_count": 6}).encode()]))
        reply = await OllamaChat(reactor).stream(ModelRef("ollama", "llama3", "ollama", url, None), request(), lambda d: None)
        self.assertEqual((reply.text, reply.usage), ("all", {"input": 4, "output": 6, "total": 10}))

    async def test_history_with_tool_calls(self):
        """Earlier tool calls go to Ollama with arguments as objects, results as role tool."""
        fake, url = await start_fake(self)
        fake.replies.append(Reply([json.dumps({"message": {"role": "assistant", "content": "ok"}, "done": True}).encode() + b"\n"]))
        history = [
            {"role": "user", "content": [{"type": "text", "text": "read x"}]},
            {"role": "assistant", "content": [{"type": "toolCall", "id": "c1", "name": "read", "arguments": {"path": "x"}}]},
            {"role": "toolResult", "toolCallId": "c1", "toolName": "read", "content": [{"type": "text", "text": "hello"}]},
        ]
        model = ModelRef("ollama", "llama3", "ollama", url, None)
        await OllamaChat(reactor).stream(model, ModelRequest(system="", messages=history), lambda d: None)
        sent = fake.requests[0]["body"]["messages"]
        self.assertEqual(sent[1]["tool_calls"][0]["function"]["arguments"], {"path": "x"})
        self.assertEqual(sent[2], {"role": "tool", "tool_call_id": "c1", "content": "hello"})
