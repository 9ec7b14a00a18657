"""The heartbeat on a task.Clock: config, HEARTBEAT_OK semantics, active hours, queueing behind turns, events."""

from __future__ import annotations

from pathlib import Path

from twisted.trial.unittest import TestCase

from openclaw.cron.heartbeat import DEFAULT_PROMPT, ActiveHours, HeartbeatConfig, HeartbeatRunner, effectively_empty, heartbeat_config, strip_token, within_active_hours
from tests.cronfakes import FakeAgent, FakeDelivery, FakeEvents, advance_to, clock_at, epoch

LONG = "The backup failed twice tonight; the disk is 97% full. " * 8


class Runner:
    def __init__(self, testcase, clock, config=None):
        self.clock = clock
        self.agent, self.events, self.delivery = FakeAgent(clock, Path(testcase.mktemp())), FakeEvents(), FakeDelivery()
        self.runner = HeartbeatRunner(config or HeartbeatConfig(), clock, self.agent, self.events, self.delivery)
        self.runner.start()
        testcase.addCleanup(self.runner.stop)

    def beat(self, reply, reason="wake"):
        self.agent.replies.append(reply if isinstance(reply, tuple) else ("ok", reply))
        return self.runner.request(reason)


class TokenTests(TestCase):
    def test_matrix(self):
        """HEARTBEAT_OK exact, as prefix, as suffix, wrapped in markup: dropped; long content kept without the token; middle untouched; empty dropped."""
        cases = [
            ("HEARTBEAT_OK", (True, "")),
            ("  HEARTBEAT_OK  ", (True, "")),
            ("HEARTBEAT_OK All quiet.", (True, "")),
            ("Nothing new. HEARTBEAT_OK", (True, "")),
            ("**HEARTBEAT_OK**", (True, "")),
            ("<b>HEARTBEAT_OK</b>", (True, "")),
            ("HEARTBEAT_OK " + LONG, (False, LONG.strip())),
            (LONG + " HEARTBEAT_OK", (False, LONG.strip())),
            ("I said HEARTBEAT_OK yesterday", (False, "I said HEARTBEAT_OK yesterday")),
            ("Your meeting starts in 10 minutes.", (False, "Your meeting starts in 10 minutes.")),
            ("", (True, "")),
            ("   ", (True, "")),
            (None, (True, "")),
        ]
        for raw, expected in cases:
            self.assertEqual(strip_token(raw, True, 300), expected, raw)

    def test_ack_max_chars_and_outside_heartbeats(self):
        """The ack limit is configurable; outside heartbeats only a bare token is dropped."""
        self.assertEqual(strip_token("HEARTBEAT_OK " + "x" * 50, True, 10), (False, "x" * 50))
        self.assertEqual(strip_token("HEARTBEAT_OK short", False), (False, "short"))
        self.assertEqual(strip_token("HEARTBEAT_OK", False), (True, ""))

    def test_empty_checklist(self):
        """HEARTBEAT.md with only headings, blank lines and empty items has nothing to do."""
        self.assertTrue(effectively_empty("# Heartbeat\n\n## Daily\n- [ ]\n* \n"))
        self.assertFalse(effectively_empty("# Heartbeat\n- check mail\n"))
        self.assertFalse(effectively_empty("#hashtag is content"))


class ConfigTests(TestCase):
    def test_defaults(self):
        """Defaults: every 30m, target last, the v3 prompt, ackMaxChars 300, no window."""
        config = heartbeat_config({})
        self.assertEqual((config.every_ms, config.target, config.prompt, config.ack_max_chars, config.active_hours), (1_800_000, "last", DEFAULT_PROMPT, 300, None))

    def test_values_and_problems(self):
        """Configured values apply (per-agent over defaults); "0m" disables; bad values are named and defaulted."""
        config = heartbeat_config({"agents": {"defaults": {"heartbeat": {"every": "1h", "target": "none", "ackMaxChars": 20, "prompt": "ping", "activeHours": {"start": "08:00", "end": "24:00", "timezone": "Europe/Berlin"}}}, "list": [{"id": "main", "heartbeat": {"every": "45m"}}]}})
        self.assertEqual((config.every_ms, config.target, config.ack_max_chars, config.prompt), (45 * 60_000, "none", 20, "ping"))
        self.assertEqual(config.active_hours, ActiveHours(480, 1440, "Europe/Berlin"))
        self.assertEqual(heartbeat_config({"agents": {"defaults": {"heartbeat": {"every": "0m"}}}}).every_ms, 0)
        bad = heartbeat_config({"agents": {"defaults": {"heartbeat": {"every": "soon", "activeHours": {"start": "8am", "end": "25:00"}, "ackMaxChars": -1}}}})
        self.assertEqual((bad.every_ms, bad.active_hours, len(bad.problems)), (1_800_000, None, 3))

    def test_active_hours(self):
        """The window in its zone; end 24:00; a window over midnight; equal ends mean always."""
        day = ActiveHours(8 * 60, 24 * 60, "Europe/Berlin")
        self.assertFalse(within_active_hours(day, int(epoch(2026, 6, 1, 5, 59) * 1000)))  # 07:59 CEST
        self.assertTrue(within_active_hours(day, int(epoch(2026, 6, 1, 6, 0) * 1000)))  # 08:00 CEST
        self.assertTrue(within_active_hours(day, int(epoch(2026, 6, 1, 21, 59) * 1000)))  # 23:59
        night = ActiveHours(22 * 60, 6 * 60, "UTC")
        self.assertTrue(within_active_hours(night, int(epoch(2026, 6, 1, 23) * 1000)))
        self.assertTrue(within_active_hours(night, int(epoch(2026, 6, 1, 5) * 1000)))
        self.assertFalse(within_active_hours(night, int(epoch(2026, 6, 1, 12) * 1000)))
        self.assertTrue(within_active_hours(None, 0))


class RunnerTests(TestCase):
    def test_statuses_and_events(self):
        """ok-token, ok-empty, sent (delivered to the session), failed: each a heartbeat event matching upstream's schema; last kept."""
        r = Runner(self, clock_at(epoch(2026, 6, 1, 8)))
        for reply, status in (("HEARTBEAT_OK", "ok-token"), ("", "ok-empty"), ("Meeting in 10 minutes.", "sent"), (("error", "model down"), "failed")):
            result = self.successResultOf(r.beat(reply))
            self.assertEqual(result.event["status"], status)
        statuses = [e["status"] for e in r.events.named("heartbeat")]
        self.assertEqual(statuses, ["ok-token", "ok-empty", "sent", "failed"])
        sent = r.events.named("heartbeat")[2]
        self.assertEqual((sent["preview"], sent["to"], sent["channel"], sent["indicatorType"]), ("Meeting in 10 minutes.", "agent:main:main", "webchat", "alert"))
        self.assertEqual(r.delivery.sent, [{"text": "Meeting in 10 minutes.", "channel": "last", "to": None, "sessionKey": "agent:main:main", "inTranscript": True}])
        self.assertEqual((r.events.named("heartbeat")[3]["reason"], r.events.named("heartbeat")[3]["indicatorType"]), ("model down", "error"))
        self.assertEqual(r.runner.last, r.events.named("heartbeat")[3])
        self.assertTrue(all(t["quiet"] and t["message"] == DEFAULT_PROMPT for t in r.agent.turns))

    def test_long_reply_with_token_is_delivered_stripped(self):
        """A long reply that ends with HEARTBEAT_OK is delivered without the token."""
        r = Runner(self, clock_at(epoch(2026, 6, 1, 8)))
        self.successResultOf(r.beat(LONG + " HEARTBEAT_OK"))
        self.assertEqual(r.delivery.sent[0]["text"], LONG.strip())

    def test_target_none_and_missing_channel(self):
        """target none: the run happens, nothing is delivered (skipped no-target); a channel this gateway lacks: skipped with why."""
        r = Runner(self, clock_at(epoch(2026, 6, 1, 8)), HeartbeatConfig(target="none"))
        self.successResultOf(r.beat("Alert!"))
        self.assertEqual((r.events.named("heartbeat")[-1]["status"], r.events.named("heartbeat")[-1]["reason"], r.delivery.sent), ("skipped", "no-target", []))
        r = Runner(self, clock_at(epoch(2026, 6, 1, 8)), HeartbeatConfig(target="whatsapp", to="+1555"))
        self.successResultOf(r.beat("Alert!"))
        self.assertIn("'whatsapp' is not available", r.events.named("heartbeat")[-1]["reason"])

    def test_interval_and_active_hours(self):
        """Every 30 minutes on the clock; outside the window a skipped event (quiet-hours) and no turn."""
        hours = ActiveHours(9 * 60, 17 * 60, "UTC")
        r = Runner(self, clock_at(epoch(2026, 6, 1, 16)), HeartbeatConfig(active_hours=hours))
        r.agent.default = ("ok", "HEARTBEAT_OK")
        advance_to(r.clock, epoch(2026, 6, 1, 18))
        self.assertEqual([t["at"] - epoch(2026, 6, 1, 16) for t in r.agent.turns], [1800])  # 16:30; 17:00 is outside
        self.assertEqual([(e["status"], e.get("reason")) for e in r.events.named("heartbeat")], [("ok-token", "interval")] + [("skipped", "quiet-hours")] * 3)

    def test_disabled(self):
        """set-heartbeats false and every 0m: no turns, requests say disabled; enabling again resumes."""
        r = Runner(self, clock_at(epoch(2026, 6, 1, 8)))
        r.runner.set_enabled(False)
        advance_to(r.clock, epoch(2026, 6, 1, 10))
        self.assertEqual(r.agent.turns, [])
        self.assertEqual(self.successResultOf(r.runner.request("wake")).reason, "disabled")
        self.assertFalse(r.runner.summary()["enabled"])
        r.runner.set_enabled(True)
        advance_to(r.clock, epoch(2026, 6, 1, 11))
        self.assertEqual(len(r.agent.turns), 2)
        off = Runner(self, clock_at(epoch(2026, 6, 1, 8)), heartbeat_config({"agents": {"defaults": {"heartbeat": {"every": "0m"}}}}))
        self.assertEqual(off.clock.getDelayedCalls(), [])
        self.assertEqual(off.runner.summary()["enabled"], False)

    def test_empty_checklist_skips_interval_only(self):
        """An empty HEARTBEAT.md skips interval heartbeats (no model call) but not a wake with an event."""
        r = Runner(self, clock_at(epoch(2026, 6, 1, 8)))
        r.agent.checklist = "# Heartbeat\n\n"
        advance_to(r.clock, epoch(2026, 6, 1, 8, 31))
        self.assertEqual(r.agent.turns, [])
        self.assertEqual(r.events.named("heartbeat")[-1]["reason"], "empty-heartbeat-file")
        self.successResultOf(r.beat("HEARTBEAT_OK", reason="wake"))
        self.assertEqual(len(r.agent.turns), 1)

    def test_waits_for_user_turn_and_coalesces(self):
        """A heartbeat never overlaps a turn in its session: it starts when the turn ends; requests meanwhile make one follow-up run."""
        r = Runner(self, clock_at(epoch(2026, 6, 1, 8)))
        from twisted.internet.defer import Deferred

        r.agent.busy_keys["agent:main:main"] = Deferred()
        first = r.runner.request("wake")
        self.assertEqual(r.agent.turns, [])
        r.agent.hold = True
        r.agent.finish_user_turn("agent:main:main")
        self.assertEqual(len(r.agent.turns), 1)
        second, third = r.runner.request("cron:a"), r.runner.request("cron:b")
        r.agent.release()
        self.assertEqual(self.successResultOf(first).status, "ran")
        self.assertEqual(len(r.agent.turns), 2)  # one follow-up for both
        r.agent.release()
        self.assertIs(self.successResultOf(second), self.successResultOf(third))

    def test_event_fields(self):
        """Heartbeat event payloads carry only spec §4.2's fields, with its statuses and indicator types."""
        r = Runner(self, clock_at(epoch(2026, 6, 1, 8)))
        for reply in ("HEARTBEAT_OK", "", "Alert", ("error", "x")):
            self.successResultOf(r.beat(reply))
        for event in r.events.named("heartbeat"):
            self.assertLessEqual(set(event), {"ts", "status", "reason", "to", "preview", "durationMs", "hasMedia", "channel", "silent", "indicatorType", "message"})
            self.assertIn(event["status"], ("sent", "ok-empty", "ok-token", "skipped", "failed"))
            self.assertIn(event.get("indicatorType"), ("ok", "alert", "error", None))
            self.assertIsInstance(event["ts"], int)
