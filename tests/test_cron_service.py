"""The cron scheduler on a task.Clock: schedules across DST, downtime, re-arming, concurrency, events."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from twisted.trial.unittest import TestCase

from openclaw.cron.heartbeat import HeartbeatConfig, HeartbeatRunner
from openclaw.cron.schedule import iso_ms
from openclaw.cron.service import CronService, CronSettings, cron_settings
from tests.cronfakes import FakeAgent, FakeDelivery, FakeEvents, advance_to, clock_at, epoch

HOUR = 3600.0


def isolated(name="job", schedule=None, **extra):
    """v3 cron.add params for an isolated agent turn."""
    return {"name": name, "schedule": schedule, "sessionTarget": "isolated", "wakeMode": "next-heartbeat", "payload": {"kind": "agentTurn", "message": f"do {name}"}, **extra}


def reminder(at_ms, text="call mom", **extra):
    return {"name": "reminder", "schedule": {"kind": "at", "atMs": at_ms}, "sessionTarget": "main", "wakeMode": "now", "payload": {"kind": "systemEvent", "text": text}, **extra}


class RecordingDisk:
    """A DiskPort that notes what it is asked (replace_now writes at once)."""

    def __init__(self):
        self.fsyncs, self.later, self.now = [], {}, []

    def fsync_later(self, path):
        self.fsyncs.append(path)

    def replace_later(self, path, render):
        self.later[path] = render

    def replace_now(self, path, data):
        self.now.append(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


class Harness:
    """One scheduler (and heartbeat runner) over fake ports, with a store in a temp dir."""

    def __init__(self, testcase, clock, path=None, heartbeat=None, disk=None, **settings):
        self.clock = clock
        self.path = path or Path(testcase.mktemp()) / "cron" / "jobs.json"
        self.agent, self.events, self.delivery = FakeAgent(clock, Path(testcase.mktemp())), FakeEvents(), FakeDelivery()
        self.heartbeat = HeartbeatRunner(heartbeat or HeartbeatConfig(), clock, self.agent, self.events, self.delivery)
        self.cron = CronService(CronSettings(self.path, **settings), clock, self.agent, self.events, self.delivery, self.heartbeat, disk=disk)
        testcase.addCleanup(self.stop)

    def start(self):
        self.cron.start()
        self.heartbeat.start()
        return self

    def stop(self):
        self.cron.stop()
        self.heartbeat.stop()

    def turn_times(self, prefix="[cron:"):
        return [iso_ms(int(t["at"] * 1000)) for t in self.agent.turns if t["message"].startswith(prefix)]

    def cron_turns(self):
        """Turns of isolated jobs (not heartbeats)."""
        return [t for t in self.agent.turns if t["message"].startswith("[cron:")]

    def beats(self):
        return [t for t in self.agent.turns if t["quiet"]]


class ScheduleKindsTests(TestCase):
    def test_cron_across_spring_forward(self):
        """"0 9 * * *" in Europe/Berlin fires at 09:00 local on each day: 08:00Z before the change, 07:00Z after."""
        h = Harness(self, clock_at(epoch(2026, 3, 27, 12))).start()
        h.cron.add(isolated("daily", {"kind": "cron", "expr": "0 9 * * *", "tz": "Europe/Berlin"}), 3)
        advance_to(h.clock, epoch(2026, 3, 31))
        self.assertEqual(h.turn_times(), ["2026-03-28T08:00:00.000Z", "2026-03-29T07:00:00.000Z", "2026-03-30T07:00:00.000Z"])

    def test_cron_skipped_and_repeated_hour(self):
        """02:30 Berlin: on the spring day it does not exist (runs at 03:00 CEST, once); on the autumn day it happens twice (runs once)."""
        night = isolated("night", {"kind": "cron", "expr": "30 2 * * *", "tz": "Europe/Berlin"})
        spring = Harness(self, clock_at(epoch(2026, 3, 28, 12))).start()
        spring.cron.add(night, 3)
        advance_to(spring.clock, epoch(2026, 3, 31))
        self.assertEqual(spring.turn_times(), ["2026-03-29T01:00:00.000Z", "2026-03-30T00:30:00.000Z"])
        autumn = Harness(self, clock_at(epoch(2026, 10, 24, 12))).start()
        autumn.cron.add(night, 3)
        advance_to(autumn.clock, epoch(2026, 10, 27))
        self.assertEqual(autumn.turn_times(), ["2026-10-25T00:30:00.000Z", "2026-10-26T01:30:00.000Z"])

    def test_hourly_cron_runs_in_both_repeated_hours(self):
        """An expression that runs every hour runs in both passes of the repeated hour (one real hour apart)."""
        h = Harness(self, clock_at(epoch(2026, 10, 24, 23, 50))).start()
        h.cron.add(isolated("hourly", {"kind": "cron", "expr": "30 * * * *", "tz": "Europe/Berlin"}), 3)
        advance_to(h.clock, epoch(2026, 10, 25, 3))
        self.assertEqual(h.turn_times(), ["2026-10-25T00:30:00.000Z", "2026-10-25T01:30:00.000Z", "2026-10-25T02:30:00.000Z"])

    def test_every_with_anchor_across_dst(self):
        """every 90m from its anchor: real elapsed time, unmoved by the DST change in between."""
        start = epoch(2026, 3, 28, 23)
        h = Harness(self, clock_at(start)).start()
        anchor = int((start + 15 * 60) * 1000)
        h.cron.add(isolated("pulse", {"kind": "every", "everyMs": 90 * 60_000, "anchorMs": anchor}), 3)
        advance_to(h.clock, start + 6 * HOUR)
        expected = [iso_ms(anchor + k * 90 * 60_000) for k in range(4)]
        self.assertEqual(h.turn_times(), expected)

    def test_at_fires_once_and_deletes(self):
        """A one-shot reminder fires at its time, once; deleteAfterRun removes it; events added/started/finished/removed."""
        h = Harness(self, clock_at(epoch(2026, 6, 1, 8))).start()
        at = int((h.clock.seconds() + 1200) * 1000)
        job, _ = h.cron.add(reminder(at, deleteAfterRun=True), 3)
        advance_to(h.clock, h.clock.seconds() + 1199)
        self.assertEqual(h.agent.events, [])
        advance_to(h.clock, h.clock.seconds() + 2 * HOUR)
        self.assertEqual(h.agent.events, [("agent:main:main", "call mom")])
        self.assertEqual([t["at"] for t in h.beats()][0], at / 1000)  # the wake-now heartbeat
        self.assertNotIn(job.id, h.cron.jobs)
        actions = [(e["jobId"], e["action"]) for e in h.events.named("cron")]
        self.assertEqual(actions, [(job.id, a) for a in ("added", "started", "finished", "removed")])
        finished = h.events.named("cron")[2]
        self.assertEqual((finished["status"], finished["runAtMs"], finished["summary"]), ("ok", at, "call mom"))
        [entry] = h.cron.entries(job.id)
        self.assertEqual((entry["status"], entry["action"], entry["jobId"]), ("ok", "finished", job.id))

    def test_isolated_turn_and_delivery(self):
        """An isolated job runs in cron:<id> with a fresh session, delivers its output, and posts a line to main."""
        h = Harness(self, clock_at(epoch(2026, 6, 1, 8)), heartbeat=HeartbeatConfig(every="0m", every_ms=0)).start()
        h.agent.replies.append(("ok", "Inbox: 3 new"))
        job, _ = h.cron.add(isolated("inbox", {"kind": "every", "everyMs": 3_600_000}, payload={"kind": "agentTurn", "message": "check", "deliver": True}), 3)
        advance_to(h.clock, h.clock.seconds() + HOUR)
        [turn] = h.cron_turns()
        self.assertEqual((turn["key"], turn["fresh"], turn["message"]), (f"agent:main:cron:{job.id}", True, f"[cron:{job.id} inbox] check"))
        self.assertEqual(h.delivery.sent, [{"text": "Inbox: 3 new", "channel": "last", "to": None, "sessionKey": "agent:main:main", "inTranscript": False}])
        self.assertEqual(h.agent.events, [("agent:main:main", "Cron: Inbox: 3 new")])
        [entry] = h.cron.entries(job.id)
        self.assertEqual((entry["status"], entry["deliveryStatus"], entry["delivered"], entry["sessionKey"]), ("ok", "delivered", True, f"agent:main:cron:{job.id}"))

    def test_delivery_names_account_and_thread(self):
        """A v4 delivery's accountId and threadId reach the delivery port (a channel needs them to pick the account and thread)."""
        h = Harness(self, clock_at(epoch(2026, 6, 1, 8)), heartbeat=HeartbeatConfig(every="0m", every_ms=0)).start()
        h.agent.replies.append(("ok", "standup"))
        delivery = {"mode": "announce", "channel": "last", "to": "-100123", "accountId": "work", "threadId": 42}
        job, _ = h.cron.add({**isolated("thread", {"kind": "every", "everyMs": 3_600_000}), "delivery": delivery}, 4)
        advance_to(h.clock, h.clock.seconds() + HOUR)
        [sent] = h.delivery.sent
        self.assertEqual((sent["channel"], sent["to"], sent["accountId"], sent["threadId"]), ("last", "-100123", "work", "42"))
        self.assertEqual(h.cron.entries(job.id)[0]["deliveryStatus"], "delivered")

    def test_delivery_to_missing_channel_fails_the_run(self):
        """Delivery to a channel this gateway does not have: the run is an error (unless bestEffort)."""
        h = Harness(self, clock_at(epoch(2026, 6, 1, 8))).start()
        job, _ = h.cron.add(isolated("tg", {"kind": "every", "everyMs": 3_600_000}, payload={"kind": "agentTurn", "message": "x", "deliver": True, "channel": "telegram", "to": "123"}), 3)
        other, _ = h.cron.add(isolated("tg2", {"kind": "every", "everyMs": 3_600_000}, payload={"kind": "agentTurn", "message": "x", "deliver": True, "channel": "telegram", "bestEffortDeliver": True}), 3)
        advance_to(h.clock, h.clock.seconds() + HOUR)
        self.assertEqual(h.cron.entries(job.id)[0]["status"], "error")
        self.assertIn("'telegram' is not available", h.cron.entries(job.id)[0]["error"])
        self.assertEqual((h.cron.entries(other.id)[0]["status"], h.cron.entries(other.id)[0]["deliveryStatus"]), ("ok", "not-delivered"))


class DowntimeTests(TestCase):
    def restart(self, first, at, **settings):
        first.stop()
        return Harness(self, clock_at(at), path=first.path, **settings).start()

    def test_missed_runs_run_once(self):
        """Ten hourly runs missed while down: one run at start-up, then the schedule goes on from now."""
        t0 = epoch(2026, 6, 1, 8)
        first = Harness(self, clock_at(t0)).start()
        job, _ = first.cron.add(isolated("hourly", {"kind": "every", "everyMs": 3_600_000}), 3)
        second = self.restart(first, t0 + 10 * HOUR + 300)
        second.clock.advance(0)
        self.assertEqual(len(second.cron_turns()), 1)
        self.assertEqual(second.cron.get(job.id).state.next_run_ms, int((t0 + 11 * HOUR) * 1000))
        advance_to(second.clock, t0 + 11 * HOUR)
        self.assertEqual(len(second.cron_turns()), 2)

    def test_missed_runs_skipped(self):
        """missedRuns skip: nothing runs at start-up; one skipped entry says so; a missed one-shot is disabled, not lost silently."""
        t0 = epoch(2026, 6, 1, 8)
        first = Harness(self, clock_at(t0)).start()
        job, _ = first.cron.add(isolated("hourly", {"kind": "every", "everyMs": 3_600_000}), 3)
        once, _ = first.cron.add(reminder(int((t0 + HOUR) * 1000)), 3)
        second = self.restart(first, t0 + 10 * HOUR + 300, missed="skip")
        second.clock.advance(0)
        self.assertEqual((second.cron_turns(), second.agent.events), ([], []))
        [entry] = second.cron.entries(job.id)
        self.assertEqual(entry["status"], "skipped")
        self.assertIn("missed while the gateway was down", entry["error"])
        self.assertEqual(second.cron.get(job.id).state.next_run_ms, int((t0 + 11 * HOUR) * 1000))
        self.assertFalse(second.cron.get(once.id).enabled)
        self.assertEqual(second.cron.entries(once.id)[0]["status"], "skipped")

    def test_missed_one_shot_runs_once(self):
        """A reminder whose time passed while down fires once at start-up, and not again after another restart."""
        t0 = epoch(2026, 6, 1, 8)
        first = Harness(self, clock_at(t0)).start()
        job, _ = first.cron.add(reminder(int((t0 + 60) * 1000)), 3)
        second = self.restart(first, t0 + HOUR)
        second.clock.advance(0)
        self.assertEqual(second.agent.events, [("agent:main:main", "call mom")])
        third = self.restart(second, t0 + 2 * HOUR)
        third.clock.advance(10)
        self.assertEqual(third.agent.events, [])
        self.assertEqual(len(third.cron.entries(job.id)), 1)

    def test_interrupted_run_is_recorded(self):
        """A run the gateway stopped in the middle of is an error entry at the next start; the one-shot then runs once."""
        t0 = epoch(2026, 6, 1, 8)
        first = Harness(self, clock_at(t0)).start()
        first.agent.hold = True
        job, _ = first.cron.add(isolated("long", {"kind": "at", "atMs": int((t0 + 60) * 1000)}), 3)
        advance_to(first.clock, t0 + 120)
        self.assertEqual(len(first.agent.held), 1)
        stored = json.loads(first.path.read_text())
        self.assertEqual(stored["jobs"][0]["state"]["runningAtMs"], int((t0 + 60) * 1000))
        second = self.restart(first, t0 + 600)
        second.clock.advance(0)
        entries = second.cron.entries(job.id)
        self.assertEqual([e["status"] for e in entries], ["error", "ok"])
        self.assertIn("interrupted", entries[0]["error"])

    def test_forward_clock_jump_runs_once(self):
        """The clock jumps five hours ahead in one step: a 10-minute job runs once, then on its cadence."""
        t0 = epoch(2026, 6, 1, 8)
        h = Harness(self, clock_at(t0)).start()
        h.cron.add(isolated("often", {"kind": "every", "everyMs": 600_000}), 3)
        h.clock.advance(5 * HOUR + 30)
        self.assertEqual(len(h.cron_turns()), 1)
        advance_to(h.clock, t0 + 5 * HOUR + 600)
        self.assertEqual(len(h.cron_turns()), 2)

    def test_clock_set_back_before_restart(self):
        """Stored next runs far beyond one period (the clock was set back) are re-derived at start-up."""
        t0 = epoch(2026, 6, 1, 8)
        first = Harness(self, clock_at(t0)).start()
        job, _ = first.cron.add(isolated("hourly", {"kind": "every", "everyMs": 3_600_000}), 3)
        second = self.restart(first, t0 - 86_400)
        self.assertEqual(second.cron.get(job.id).state.next_run_ms, int((t0 - 86_400 + HOUR) * 1000))


class TimerTests(TestCase):
    def test_one_timer_rearmed_on_changes(self):
        """One delayed call for the earliest job; add, update, disable, enable and remove re-arm it."""
        t0 = epoch(2026, 6, 1, 8)
        h = Harness(self, clock_at(t0), heartbeat=HeartbeatConfig(every="0m", every_ms=0)).start()
        self.assertEqual([c for c in h.clock.getDelayedCalls() if "CronService" in repr(c)], [])
        job, _ = h.cron.add(reminder(int((t0 + 600) * 1000)), 3)
        self.assertEqual([c.getTime() for c in h.clock.getDelayedCalls()], [t0 + 600])
        h.cron.update(job.id, {"schedule": {"kind": "at", "atMs": int((t0 + 300) * 1000)}}, 3)
        self.assertEqual([c.getTime() for c in h.clock.getDelayedCalls()], [t0 + 300])
        later, _ = h.cron.add(reminder(int((t0 + 900) * 1000)), 3)
        self.assertEqual([c.getTime() for c in h.clock.getDelayedCalls()], [t0 + 300])
        h.cron.update(job.id, {"enabled": False}, 3)
        self.assertEqual([c.getTime() for c in h.clock.getDelayedCalls()], [t0 + 900])
        h.cron.remove(later.id)
        self.assertEqual([c for c in h.clock.getDelayedCalls() if "CronService" in repr(c)], [])
        h.cron.update(job.id, {"enabled": True}, 3)
        self.assertEqual([c.getTime() for c in h.clock.getDelayedCalls()], [t0 + 300])
        h.cron.remove(job.id)
        self.assertEqual([c for c in h.clock.getDelayedCalls() if "CronService" in repr(c)], [])
        advance_to(h.clock, t0 + 2 * HOUR)
        self.assertEqual(h.agent.events, [])

    def test_far_timer_is_capped(self):
        """A job a week out arms a timer of at most an hour, which re-arms without running anything."""
        t0 = epoch(2026, 6, 1, 8)
        h = Harness(self, clock_at(t0), heartbeat=HeartbeatConfig(every="0m", every_ms=0)).start()
        h.cron.add(reminder(int((t0 + 7 * 86_400) * 1000)), 3)
        self.assertEqual([c.getTime() for c in h.clock.getDelayedCalls()], [t0 + HOUR])
        advance_to(h.clock, t0 + 7 * 86_400 - 1)
        self.assertEqual(h.agent.events, [])
        advance_to(h.clock, t0 + 7 * 86_400)
        self.assertEqual(len(h.agent.events), 1)

    def test_concurrency_limit(self):
        """Three jobs due at once with maxConcurrentRuns 1: one turn at a time; with 2: two."""
        for limit, first_wave in ((1, 1), (2, 2)):
            t0 = epoch(2026, 6, 1, 8)
            h = Harness(self, clock_at(t0), max_concurrent=limit).start()
            h.agent.hold = True
            for name in ("a", "b", "c"):
                h.cron.add(isolated(name, {"kind": "at", "atMs": int((t0 + 60) * 1000)}), 3)
            advance_to(h.clock, t0 + 60)
            self.assertEqual(len(h.agent.turns), first_wave, limit)
            h.agent.release()
            self.assertEqual(len(h.agent.turns), first_wave + 1, limit)
            while h.agent.held:
                h.agent.release()
            self.assertEqual(len(h.agent.turns), 3)
            self.assertEqual(sum(1 for e in h.events.named("cron") if e["action"] == "finished"), 3)
            h.stop()

    def test_stopped_scheduler_starts_nothing_queued(self):
        """At shutdown the scheduler stops first: a run ending then (aborted) does not start the job queued behind it."""
        t0 = epoch(2026, 6, 1, 8)
        h = Harness(self, clock_at(t0), max_concurrent=1).start()
        h.agent.hold = True
        for name in ("a", "b"):
            h.cron.add(isolated(name, {"kind": "at", "atMs": int((t0 + 60) * 1000)}), 3)
        advance_to(h.clock, t0 + 60)
        self.assertEqual(len(h.agent.turns), 1)
        h.cron.stop()
        h.agent.release()
        self.assertEqual(len(h.agent.turns), 1)
        self.assertEqual([c for c in h.clock.getDelayedCalls() if "CronService" in repr(c)], [])

    def test_removing_a_waiting_job_answers_its_run(self):
        """A run asked for while the slot is busy, then its job removed: whoever waits for it hears "skipped"."""
        t0 = epoch(2026, 6, 1, 8)
        h = Harness(self, clock_at(t0)).start()
        h.agent.hold = True
        busy, _ = h.cron.add(isolated("busy", {"kind": "every", "everyMs": 3_600_000}), 3)
        waiting, _ = h.cron.add(isolated("waiting", {"kind": "every", "everyMs": 3_600_000}), 3)
        h.cron.run(busy.id, force=True)
        _, finished = h.cron.run(waiting.id, force=True)
        self.assertNoResult(finished)
        h.cron.remove(waiting.id)
        self.assertEqual(self.successResultOf(finished)["status"], "skipped")
        h.agent.release()
        self.assertEqual(len(h.cron_turns()), 1)

    def test_one_shot_errors_back_off_then_give_up(self):
        """A failing one-shot is retried after 30 s and 60 s, then disabled with its error; never a hot loop."""
        t0 = epoch(2026, 6, 1, 8)
        h = Harness(self, clock_at(t0)).start()
        h.agent.default = ("error", "model down")
        job, _ = h.cron.add(isolated("x", {"kind": "at", "atMs": int((t0 + 10) * 1000)}), 3)
        advance_to(h.clock, t0 + HOUR)
        self.assertEqual([t["at"] - t0 for t in h.cron_turns()], [10, 40, 100])
        self.assertFalse(h.cron.get(job.id).enabled)
        self.assertEqual(h.cron.get(job.id).state.last_error, "model down")

    def test_recurring_error_backs_off(self):
        """A failing every-minute job waits out its backoff before the next try."""
        t0 = epoch(2026, 6, 1, 8)
        h = Harness(self, clock_at(t0)).start()
        h.agent.default = ("error", "boom")
        h.cron.add(isolated("m", {"kind": "every", "everyMs": 60_000, "anchorMs": int(t0 * 1000)}), 3)
        advance_to(h.clock, t0 + 500)
        self.assertEqual([t["at"] - t0 for t in h.cron_turns()], [60, 120, 180, 480])  # backoffs 30 s, 60 s, 5 min

    def test_run_now_and_not_due(self):
        """run force starts a run and its entry arrives; run due on a job not due says so."""
        t0 = epoch(2026, 6, 1, 8)
        h = Harness(self, clock_at(t0)).start()
        job, _ = h.cron.add(isolated("x", {"kind": "every", "everyMs": 3_600_000}), 3)
        self.assertEqual(h.cron.run(job.id, force=False), (None, None))
        run_id, finished = h.cron.run(job.id, force=True)
        entry = self.successResultOf(finished)
        self.assertEqual((entry["runId"], entry["status"]), (run_id, "ok"))
        self.assertEqual(h.cron.get(job.id).state.next_run_ms, int((t0 + HOUR) * 1000))


class StoreTests(TestCase):
    def test_store_file_and_modes(self):
        """jobs.json is {version: 1, jobs}, mode 0600 in a 0700 folder; a restart reads the same jobs."""
        t0 = epoch(2026, 6, 1, 8)
        h = Harness(self, clock_at(t0)).start()
        job, _ = h.cron.add(isolated("x", {"kind": "cron", "expr": "0 9 * * 1-5", "tz": "Europe/Berlin"}), 3)
        document = json.loads(h.path.read_text())
        self.assertEqual((document["version"], [j["id"] for j in document["jobs"]]), (1, [job.id]))
        self.assertEqual(stat.S_IMODE(os.stat(h.path).st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(os.stat(h.path.parent).st_mode), 0o700)
        again = Harness(self, clock_at(t0), path=h.path).start()
        self.assertEqual(again.cron.get(job.id).schedule, {"kind": "cron", "expr": "0 9 * * 1-5", "tz": "Europe/Berlin"})

    def test_corrupt_store_moved_aside(self):
        """A jobs file that is not JSON is moved aside (kept), and the scheduler starts empty."""
        path = Path(self.mktemp()) / "cron" / "jobs.json"
        path.parent.mkdir(parents=True)
        path.write_text("{not json")
        h = Harness(self, clock_at(epoch(2026, 6, 1)), path=path).start()
        self.assertEqual(h.cron.jobs, {})
        aside = [p for p in path.parent.iterdir() if ".corrupt-" in p.name]
        self.assertEqual([p.read_text() for p in aside], ["{not json"])

    def test_unreadable_job_is_kept(self):
        """A job this gateway cannot read stays in the file, untouched, across rewrites."""
        path = Path(self.mktemp()) / "cron" / "jobs.json"
        path.parent.mkdir(parents=True)
        odd = {"id": "odd", "name": "from the future", "schedule": {"kind": "stream", "command": ["x"]}, "payload": {"kind": "agentTurn", "message": "m"}, "sessionTarget": "isolated"}
        path.write_text(json.dumps({"version": 1, "jobs": [odd]}))
        h = Harness(self, clock_at(epoch(2026, 6, 1)), path=path).start()
        h.cron.add(isolated("new", {"kind": "every", "everyMs": 60_000}), 3)
        self.assertIn(odd, json.loads(path.read_text())["jobs"])

    def test_run_log_torn_tail_and_pruning(self):
        """A torn last line is skipped and cut before the next append; a log past its bound keeps its newest lines."""
        from openclaw.cron.store import RunLog

        folder = Path(self.mktemp())
        runs = RunLog(folder, max_bytes=4000, keep_lines=10)
        runs.append({"ts": 1, "jobId": "j", "action": "finished", "status": "ok"})
        with open(folder / "j.jsonl", "ab") as f:
            f.write(b'{"ts": 2, "jobId": "j", "act')
        self.assertEqual([e["ts"] for e in runs.entries("j")], [1])
        for ts in range(3, 100):
            runs.append({"ts": ts, "jobId": "j", "action": "finished", "status": "ok", "summary": "x" * 50})
        entries = runs.entries("j")
        self.assertLessEqual(len(entries), 10)
        self.assertEqual(entries[-1]["ts"], 99)
        self.assertLessEqual(os.path.getsize(folder / "j.jsonl"), 4000)
        self.assertEqual(stat.S_IMODE(os.stat(folder / "j.jsonl").st_mode), 0o600)
        with self.assertRaises(ValueError):
            runs.path("../escape")

    def test_runs_use_the_disk_port(self):
        """
        With a disk port (the runtime's group commit) a run's bookkeeping waits
        for no disk on the reactor: the log line is written at once and its
        fsync queued; the jobs file is rendered when the commit starts. Edits
        are written through the port now.
        """
        disk = RecordingDisk()
        t0 = epoch(2026, 6, 1, 8)
        h = Harness(self, clock_at(t0), disk=disk).start()
        fsyncs = []
        self.patch(os, "fsync", lambda fd: fsyncs.append(fd))
        del disk.now[:]  # the start's own write
        job, _ = h.cron.add(isolated("x", {"kind": "every", "everyMs": 60_000}), 3)
        self.assertEqual(disk.now, [h.path])  # the edit: written before add() returns
        advance_to(h.clock, t0 + 61)
        self.assertEqual(len(h.cron_turns()), 1)
        log_path = h.path.parent / "runs" / f"{job.id}.jsonl"
        self.assertEqual([e["status"] for e in h.cron.runs.entries(job.id)], ["ok"])  # in the file already
        self.assertIn(log_path, disk.fsyncs)
        self.assertEqual(fsyncs, [])
        self.assertIn(h.path, disk.later)
        rendered = json.loads(disk.later[h.path]())
        self.assertEqual(rendered["jobs"][0]["state"]["lastStatus"], "ok")  # as it is when the commit starts

    def test_settings(self):
        """cron.enabled, OPENCLAW_SKIP_CRON, store, maxConcurrentRuns, missedRuns (bad values named, defaults used)."""
        state = Path("/state")
        self.assertEqual(cron_settings({}, state), CronSettings(state / "cron" / "jobs.json"))
        self.assertFalse(cron_settings({"cron": {"enabled": False}}, state).enabled)
        self.assertFalse(cron_settings({}, state, {"OPENCLAW_SKIP_CRON": "1"}).enabled)
        s = cron_settings({"cron": {"store": "/x/jobs.json", "maxConcurrentRuns": 0, "missedRuns": "all"}}, state)
        self.assertEqual((s.store_path, s.max_concurrent, s.missed, len(s.problems)), (Path("/x/jobs.json"), 1, "run-once", 2))

    def test_disabled_scheduler_keeps_jobs(self):
        """cron.enabled false: jobs are added and listed, no timer runs them, status says disabled."""
        t0 = epoch(2026, 6, 1, 8)
        h = Harness(self, clock_at(t0), enabled=False, heartbeat=HeartbeatConfig(every="0m", every_ms=0)).start()
        h.cron.add(reminder(int((t0 + 60) * 1000)), 3)
        advance_to(h.clock, t0 + HOUR)
        self.assertEqual(h.agent.events, [])
        self.assertEqual(h.cron.status()["enabled"], False)
        self.assertIsNone(h.cron.status()["nextWakeAtMs"])
