"""
Usage and cost: token counts from streamed and whole (non-streamed) provider
answers add up to what the provider reported, each transcript message keeps
its usage and cost, and usage.cost / usage.status / /usage read them back.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase, TestCase

from openclaw.agent.sessions import SessionStore
from openclaw.agent.usage import Prices, Window, cost_summary, prices_for, session_totals, tokens, transcript_usage
from openclaw.agent.usage_methods import window_of
from openclaw.protocol.errors import GatewayError
from tests.fakes import Reply, anthropic_events, openai_json, openai_tool_call, start_fake
from tests.wsclient import GatewayMixin, connect_params

PRICES = {"input": 3.0, "output": 15.0, "cacheRead": 0.3, "cacheWrite": 3.75}


def priced(url, api="openai-completions"):
    models = [{"id": "m1", "cost": PRICES}]
    return {"models": {"providers": {"fake": {"baseUrl": url, "apiKey": "sk-fake-key-123456", "api": api, "models": models}}}, "agents": {"defaults": {"model": {"primary": "fake/m1"}}}}


def usd(usage):
    """What PRICES say C{usage} costs (per million tokens)."""
    return (usage.get("input", 0) * 3.0 + usage.get("output", 0) * 15.0 + usage.get("cacheRead", 0) * 0.3 + usage.get("cacheWrite", 0) * 3.75) / 1e6


class CostTests(SynchronousTestCase):
    def test_prices_and_transcript_shape(self):
        """Prices are per million tokens per kind; the transcript keeps upstream's usage shape with the cost."""
        config = priced("http://x")
        prices = prices_for(config, "fake", "m1")
        self.assertEqual(prices, Prices(3.0, 15.0, 0.3, 3.75))
        self.assertIsNone(prices_for(config, "fake", "m2"))
        self.assertIsNone(prices_for({"models": {"providers": {"fake": {"models": [{"id": "m1", "cost": {"input": "lots"}}]}}}}, "fake", "m1"))
        usage = tokens(1000, 100, 2000, 400)
        self.assertEqual(usage["total"], 3500)
        stored = transcript_usage(usage, prices)
        self.assertEqual({k: stored[k] for k in ("input", "output", "cacheRead", "cacheWrite", "totalTokens")}, {"input": 1000, "output": 100, "cacheRead": 2000, "cacheWrite": 400, "totalTokens": 3500})
        self.assertAlmostEqual(stored["cost"]["total"], usd(usage))
        self.assertNotIn("cost", transcript_usage(usage, None))
        self.assertEqual(tokens(-5, float("nan"), True)["total"], 0)  # nonsense counts are zero

    def test_summary_per_day_and_model(self):
        """Entries inside the window count per day and per model; recorded costs win; unpriced ones are missing, by model."""
        folder = Path(self.mktemp()) / "agents" / "main" / "sessions"
        folder.mkdir(parents=True)
        day1 = "2026-03-01T10:00:00.000Z"
        day2 = "2026-03-02T23:59:59.999Z"
        lines = [
            {"type": "session", "id": "s1"},
            {"type": "message", "timestamp": day1, "message": {"role": "assistant", "provider": "fake", "model": "m1", "usage": {"input": 100, "output": 10, "totalTokens": 110}}},
            {"type": "message", "timestamp": day2, "message": {"role": "assistant", "provider": "fake", "model": "m1", "usage": {"input": 1, "output": 1, "totalTokens": 2, "cost": {"total": 0.5}}}},
            {"type": "message", "timestamp": day2, "message": {"role": "assistant", "model": "other/x", "usage": {"input": 7, "output": 3}}},
            {"type": "message", "timestamp": "2026-02-01T00:00:00.000Z", "message": {"role": "assistant", "provider": "fake", "model": "m1", "usage": {"input": 999}}},
            {"type": "message", "timestamp": day1, "message": {"role": "user", "usage": {"input": 5}}},
        ]
        (folder / "s1.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n{torn")
        start = 1772323200000  # 2026-03-01T00:00:00Z
        summary = cost_summary({"main": folder}, priced("http://x"), Window(start, start + 2 * 86_400_000 - 1), 2, 0)
        self.assertEqual([d["date"] for d in summary["daily"]], ["2026-03-01", "2026-03-02"])
        self.assertEqual(summary["daily"][0]["totalTokens"], 110)
        self.assertAlmostEqual(summary["daily"][0]["totalCost"], usd({"input": 100, "output": 10}))
        self.assertEqual(summary["totals"]["totalTokens"], 122)
        self.assertAlmostEqual(summary["totals"]["totalCost"], usd({"input": 100, "output": 10}) + 0.5)
        self.assertEqual((summary["totals"]["missingCostEntries"], summary["totals"]["missingCostByModel"]), (1, {"other/x": 1}))
        self.assertEqual([(m["provider"], m["model"], m["count"]) for m in summary["byModel"]], [("fake", "m1", 2), ("other", "x", 1)])
        totals, last = session_totals(SessionStore(Path(self.mktemp())).entries("nope"), {})
        self.assertEqual((totals.count, last), (0, None))

    def test_newest_transcripts_past_the_cap(self):
        """More transcripts than a summary reads (a cron job makes one per run): the newest count, whatever their names."""
        import os

        from openclaw.agent import usage as module

        folder = Path(self.mktemp()) / "sessions"
        folder.mkdir(parents=True)
        stamp = "2026-03-01T10:00:00.000Z"
        for i, (name, tokens_used) in enumerate([("c-newest", 5), ("b-older", 70), ("a-oldest", 900)]):
            line = {"type": "message", "timestamp": stamp, "message": {"role": "assistant", "provider": "fake", "model": "m1", "usage": {"input": tokens_used, "totalTokens": tokens_used}}}
            path = folder / f"{name}.jsonl"
            path.write_text(json.dumps(line) + "\n")
            os.utime(path, (1772360000 - i * 60, 1772360000 - i * 60))
        self.patch(module, "MAX_FILES", 2)
        start = 1772323200000  # 2026-03-01T00:00:00Z
        summary = cost_summary({"main": folder}, {}, Window(start, start + 86_400_000 - 1), 1, 0)
        self.assertEqual(summary["totals"]["totalTokens"], 75)

    def test_windows(self):
        """usage.cost days: both dates or neither, a sane order, 30 by default, UTC unless asked otherwise."""
        now = 1772409600000 + 3_600_000  # 2026-03-02T01:00Z
        window, days = window_of({}, now)
        self.assertEqual((days, window.day(window.start_ms), window.day(window.end_ms)), (30, "2026-02-01", "2026-03-02"))
        window, days = window_of({"startDate": "2026-03-01", "endDate": "2026-03-02"}, now)
        self.assertEqual((days, window.start_ms, window.end_ms), (2, 1772323200000, 1772496000000 - 1))
        self.assertEqual(window_of({"days": "7"}, now)[1], 7)
        self.assertEqual(window_of({"days": 10**9}, now)[1], 3650)
        shifted, _ = window_of({"mode": "specific", "utcOffset": "UTC-5", "days": 1}, now)
        self.assertEqual(shifted.day(now), "2026-03-01")
        for bad in ({"startDate": "2026-03-01"}, {"startDate": "2026-03-02", "endDate": "2026-03-01"}, {"startDate": "2026-02-30", "endDate": "2026-03-01"}, {"days": "many"}, {"mode": "specific", "utcOffset": "UTC+99"}):
            with self.assertRaises(GatewayError, msg=bad):
                window_of(bad, now)


class EndToEndTests(GatewayMixin, TestCase):
    timeout = 60

    async def setUp(self):
        self.fake, self.url = await start_fake(self)

    async def run_chat(self, ws, run_id, message="go"):
        await ws.request("chat.send", {"sessionKey": "main", "message": message, "idempotencyKey": run_id})
        while True:
            event = (await ws.event("chat", timeout=10))["payload"]
            if event["runId"] == run_id and event["state"] in ("final", "error"):
                return event

    async def test_streamed_and_whole_answers_add_up(self):
        """A streamed tool call (with cached tokens) then a whole JSON answer: run, transcript, usage.cost and usage.status agree with the provider and the prices."""
        streamed = {"prompt_tokens": 1000, "completion_tokens": 50, "total_tokens": 1050, "prompt_tokens_details": {"cached_tokens": 400}}
        whole = {"prompt_tokens": 1200, "completion_tokens": 80, "total_tokens": 1280}
        self.fake.replies += [openai_tool_call("sessions_list", {}, usage=streamed), openai_json("all done", whole)]
        await self.gateway(**priced(self.url))
        ws, _ = await self.connect(connect_params(protocol=4, scopes=["operator.write"]))
        final = await self.run_chat(ws, "u1")
        self.assertEqual(final["state"], "final")
        self.assertEqual(final["usage"], {"input": 600 + 1200, "output": 130, "cacheRead": 400, "total": 1050 + 1280})
        messages = SessionStore(self.service.settings.state_dir).messages("agent:main:main")
        recorded = [m["usage"] for m in messages if m["role"] == "assistant"]
        self.assertEqual([u["totalTokens"] for u in recorded], [1050, 1280])
        self.assertEqual([(m["provider"], m["model"]) for m in messages if m["role"] == "assistant"], [("fake", "m1")] * 2)
        expected = usd({"input": 600, "output": 50, "cacheRead": 400}) + usd({"input": 1200, "output": 80})
        self.assertAlmostEqual(sum(u["cost"]["total"] for u in recorded), expected)
        cost = (await ws.request("usage.cost", {"days": 30}))["payload"]
        self.assertEqual(cost["totals"]["totalTokens"], 1050 + 1280)
        self.assertAlmostEqual(cost["totals"]["totalCost"], expected)
        self.assertAlmostEqual(cost["totals"]["cacheReadCost"], 400 * 0.3 / 1e6)
        self.assertEqual(cost["totals"]["missingCostEntries"], 0)
        self.assertEqual([d["date"] for d in cost["daily"]], [time.strftime("%Y-%m-%d", time.gmtime())])
        self.assertEqual(cost["byModel"][0]["model"], "m1")
        self.assertAlmostEqual(cost["byModel"][0]["totals"]["totalCost"], expected)
        status = (await ws.request("usage.status"))["payload"]
        self.assertEqual([(p["provider"], p["requests"], p["totalTokens"]) for p in status["providers"]], [("fake", 2, 2330)])
        self.assertAlmostEqual(status["providers"][0]["totalCost"], expected)
        scoped = await ws.request("usage.cost", {"agentId": "main", "agentScope": "all"})
        self.assertEqual(scoped["error"]["code"], "INVALID_REQUEST")
        everyone = (await ws.request("usage.cost", {"agentScope": "all", "startDate": "2000-01-01", "endDate": "2000-01-02"}))["payload"]
        self.assertEqual((everyone["days"], everyone["totals"]["totalTokens"]), (2, 0))

    async def test_anthropic_cache_writes_cost(self):
        """Anthropic's cache reads and writes, streamed and whole, are priced as such."""
        start = {"type": "message_start", "message": {"usage": {"input_tokens": 20, "cache_creation_input_tokens": 3000, "cache_read_input_tokens": 0}}}
        self.fake.replies.append(
            anthropic_events(
                ("message_start", start),
                ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "t1", "name": "sessions_list"}}),
                ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 30}}),
                ("message_stop", {"type": "message_stop"}),
            )
        )
        whole = {"type": "message", "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn", "usage": {"input_tokens": 25, "output_tokens": 5, "cache_read_input_tokens": 3000}}
        self.fake.replies.append(Reply([json.dumps(whole).encode()], headers={"Content-Type": "application/json"}))
        await self.gateway(**priced(self.url, "anthropic-messages"))
        ws, _ = await self.connect(connect_params(protocol=3, scopes=["operator.write"]))
        final = await self.run_chat(ws, "a1")
        self.assertEqual(final["usage"], {"input": 45, "output": 35, "cacheRead": 3000, "cacheWrite": 3000, "total": 6080})
        cost = (await ws.request("usage.cost", {}))["payload"]
        self.assertEqual(cost["totals"]["totalTokens"], 6080)
        self.assertAlmostEqual(cost["totals"]["totalCost"], usd({"input": 45, "output": 35, "cacheRead": 3000, "cacheWrite": 3000}))
        self.assertAlmostEqual(cost["totals"]["cacheWriteCost"], 3000 * 3.75 / 1e6)

    async def test_usage_command(self):
        """/usage shows the session's tokens and cost; /usage full adds a line to each reply; /usage cost sums 30 days; /usage off stops it."""
        from tests.fakes import openai_text

        await self.gateway(**priced(self.url))
        ws, _ = await self.connect(connect_params(protocol=3, scopes=["operator.write"]))
        self.fake.replies.append(openai_text("first"))
        await self.run_chat(ws, "q1", "hi")
        text = lambda event: event["message"]["content"][0]["text"]  # noqa: E731
        summary = text(await self.run_chat(ws, "q2", "/usage"))
        self.assertIn("This session: 1 replies · 11 in / 7 out", summary)
        self.assertIn("$0.0001", summary)
        self.assertIn("Usage line: off", summary)
        self.assertEqual(text(await self.run_chat(ws, "q3", "/usage full")), "Usage line on (full): each reply ends with what it used.")
        self.fake.replies.append(openai_text("second"))
        reply = text(await self.run_chat(ws, "q4", "again"))
        self.assertTrue(reply.startswith("second\n\nUsage: 11 in / 7 out · 18 total · $0.0001"), reply)
        history = (await ws.request("chat.history", {"sessionKey": "main"}))["payload"]["messages"]
        self.assertEqual(history[-1]["content"][0]["text"], "second")  # the line is not part of the conversation
        self.fake.replies.append(openai_text("HEARTBEAT_OK"))
        beat = await self.service.core.agent.run("main", "heartbeat", "q4b", quiet=True)
        self.assertEqual(beat.text, "HEARTBEAT_OK")  # a quiet run's caller delivers or drops the reply: no line to deliver alone
        cost = text(await self.run_chat(ws, "q5", "/usage cost"))
        self.assertIn("Cost (30 days, agent main): $0.0004 · 54 tokens", cost)
        self.assertEqual(text(await self.run_chat(ws, "q6", "/usage off")), "Usage line off.")
        self.fake.replies.append(openai_text("third"))
        self.assertEqual(text(await self.run_chat(ws, "q7", "more")), "third")
