"""Cron job params and shapes of both protocol generations, with upstream's schemas as the oracle; schedule parsing."""

from __future__ import annotations

from twisted.trial.unittest import TestCase

from openclaw.cron import schedule as sched
from openclaw.cron.jobs import CronInputError, apply_patch, from_stored, new_job, shown, shown_entry, to_stored
from tests import schemas

NOW = 1_780_000_000_000


def v3_add(**overrides):
    params = {"name": "Morning", "schedule": {"kind": "cron", "expr": "0 9 * * 1-5", "tz": "Europe/Berlin"}, "sessionTarget": "isolated", "wakeMode": "next-heartbeat", "payload": {"kind": "agentTurn", "message": "Summarise the inbox", "deliver": True, "channel": "last", "to": "me"}}
    params.update(overrides)
    return params


class ParamsTests(TestCase):
    def test_v3_add_roundtrip(self):
        """v3 params (as the 2026.1.30 CLI sends them) make a job that shows as a valid v3 and v4 CronJob."""
        schemas.validate(3, "CronAddParams", v3_add())
        job = new_job(v3_add(), 3, NOW)
        schemas.validate(3, "CronJob", shown(job, 3))
        schemas.validate(4, "CronJob", shown(job, 4))
        self.assertEqual(job.delivery, {"mode": "announce", "channel": "last", "to": "me"})
        self.assertEqual(shown(job, 3)["payload"], {"kind": "agentTurn", "message": "Summarise the inbox", "channel": "last", "deliver": True, "to": "me"})
        self.assertEqual(shown(job, 4)["delivery"], {"mode": "announce", "channel": "last", "to": "me"})

    def test_at_in_each_generation(self):
        """v3 at is {atMs}; v4 at is {at: ISO or ms string}; each is answered in its own shape."""
        v3 = {"name": "r", "schedule": {"kind": "at", "atMs": NOW + 60_000}, "sessionTarget": "main", "wakeMode": "now", "payload": {"kind": "systemEvent", "text": "hi"}}
        schemas.validate(3, "CronAddParams", v3)
        job = new_job(v3, 3, NOW)
        self.assertEqual(shown(job, 3)["schedule"], {"kind": "at", "atMs": NOW + 60_000})
        self.assertEqual(shown(job, 4)["schedule"], {"kind": "at", "at": sched.iso_ms(NOW + 60_000)})
        for at in (sched.iso_ms(NOW + 60_000), str(NOW + 60_000), "2026-05-28T20:27:40"):
            v4 = {**v3, "schedule": {"kind": "at", "at": at}}
            schemas.validate(4, "CronAddParams", v4)
            job = new_job(v4, 4, NOW)
            schemas.validate(4, "CronJob", shown(job, 4))
            schemas.validate(3, "CronJob", shown(job, 3))
        self.assertEqual(new_job({**v3, "schedule": {"kind": "at", "at": "2026-05-28T20:27:40"}}, 4, NOW).schedule["atMs"], sched.parse_instant("2026-05-28T20:27:40Z"))
        with self.assertRaises(CronInputError) as e:
            new_job({**v3, "schedule": {"kind": "at", "at": "tomorrow-ish"}}, 4, NOW)
        self.assertIn("schedule.at", str(e.exception))

    def test_v4_add_fields(self):
        """v4 params (as the 2026.9.6 CLI sends them): sessionKey, delivery, displayName; valid CronJob back."""
        params = {"name": "n", "displayName": "Nice", "sessionKey": "agent:main:main", "schedule": {"kind": "every", "everyMs": 600_000}, "sessionTarget": "isolated", "wakeMode": "now", "payload": {"kind": "agentTurn", "message": "m", "timeoutSeconds": 0}, "delivery": {"mode": "announce", "channel": "last"}}
        schemas.validate(4, "CronAddParams", params)
        job = new_job(params, 4, NOW)
        schemas.validate(4, "CronJob", shown(job, 4))
        self.assertEqual((shown(job, 4)["displayName"], shown(job, 4)["sessionKey"]), ("Nice", "agent:main:main"))
        current = new_job({**params, "sessionTarget": "current"}, 4, NOW)
        self.assertEqual(current.session_target, "session:agent:main:main")
        schemas.validate(3, "CronJob", shown(current, 3))

    def test_refusals_name_the_field(self):
        """Unknown fields, wrong kinds and unsupported features are refused with the field's name."""
        cases = [
            (v3_add(extra=1), 3, "extra: unexpected property"),
            (v3_add(sessionTarget="main"), 3, "main-session jobs need"),
            (v3_add(schedule={"kind": "cron", "expr": "61 * * * *"}), 3, "schedule"),
            (v3_add(schedule={"kind": "cron", "expr": "0 9 * * *", "tz": "Mars/Olympus"}), 3, "unknown time zone"),
            (v3_add(schedule={"kind": "every", "everyMs": 0}), 3, "schedule.everyMs"),
            (v3_add(payload={"kind": "agentTurn", "message": "m", "model": "opus"}), 3, "payload.model"),
            (v3_add(payload={"kind": "command", "argv": ["ls"]}), 4, "payload.kind"),
            (v3_add(schedule={"kind": "stream", "command": ["tail"]}, payload={"kind": "agentTurn", "message": "m"}), 4, "schedule.kind"),
            ({**v3_add(payload={"kind": "agentTurn", "message": "m"}), "trigger": {"script": "x"}}, 4, "trigger"),
            ({**v3_add(payload={"kind": "agentTurn", "message": "m"}), "delivery": {"mode": "webhook", "to": "https://x"}}, 4, "delivery.mode"),
            (v3_add(sessionTarget="current", payload={"kind": "agentTurn", "message": "m"}), 4, "sessionKey"),
            (v3_add(sessionTarget="current"), 3, "sessionTarget"),
            ({**v3_add(), "name": ""}, 3, "name"),
        ]
        for params, version, needle in cases:
            with self.assertRaises(CronInputError, msg=needle) as e:
                new_job(params, version, NOW)
            self.assertIn(needle, str(e.exception))

    def test_upstream_leniency(self):
        """As upstream: kind inferred from fields, an ISO string for atMs, wakeMode and sessionTarget defaulted."""
        job = new_job({"name": "x", "schedule": {"atMs": "2026-01-12T18:00:00Z"}, "payload": {"kind": "systemEvent", "text": "t"}}, 3, NOW)
        self.assertEqual((job.schedule, job.session_target, job.wake_mode), ({"kind": "at", "atMs": 1768240800000}, "main", "next-heartbeat"))

    def test_patch(self):
        """Patches merge same-kind payloads, replace schedules, clear agentId with null; v3 patch of v3 shape validates."""
        job = new_job(v3_add(agentId="ops"), 3, NOW)
        patch = {"payload": {"kind": "agentTurn", "message": "New prompt"}, "agentId": None, "enabled": False}
        schemas.validate(3, "CronUpdateParams", {"id": job.id, "patch": patch})
        patched = apply_patch(job, patch, 3, NOW + 1)
        self.assertEqual((patched.payload["message"], patched.agent_id, patched.enabled, patched.updated_ms), ("New prompt", None, False, NOW + 1))
        self.assertEqual(job.payload["message"], "Summarise the inbox")  # the original is untouched
        with self.assertRaises(CronInputError):
            apply_patch(job, {"sessionTarget": "main"}, 3, NOW)
        with self.assertRaises(CronInputError):
            apply_patch(job, {"state": {"nextRunAtMs": 1}}, 4, NOW)

    def test_stored_form(self):
        """The stored form reads back to the same job."""
        job = new_job(v3_add(), 3, NOW)
        job.state.next_run_ms = NOW + 5
        self.assertEqual(from_stored(to_stored(job)), job)

    def test_run_log_entries(self):
        """Run log entries: all fields for v4, the v3 subset for v3; both validate."""
        entry = {"ts": NOW, "jobId": "j", "action": "finished", "status": "ok", "summary": "s", "runAtMs": NOW - 5, "durationMs": 5, "nextRunAtMs": NOW + 1, "sessionKey": "agent:main:cron:j", "runId": "cron-1", "delivered": True, "deliveryStatus": "delivered", "jobName": "J"}
        schemas.validate(4, "CronRunLogEntry", shown_entry(entry, 4))
        schemas.validate(3, "CronRunLogEntry", shown_entry(entry, 3))
        self.assertNotIn("runId", shown_entry(entry, 3))


class ScheduleParsingTests(TestCase):
    def test_durations_and_instants(self):
        """Durations (units, compounds, bare numbers) and instants (ISO with/without offset, ms)."""
        self.assertEqual([sched.parse_duration(x) for x in ("90s", "20m", "1h30m", "2d", "1w", "500ms")], [90_000, 1_200_000, 5_400_000, 172_800_000, 604_800_000, 500])
        self.assertEqual(sched.parse_duration("5", "m"), 300_000)
        for bad in ("", "soon", "5x", "m5", "1h soon"):
            with self.assertRaises(sched.ScheduleError):
                sched.parse_duration(bad)
        self.assertEqual(sched.parse_instant("2026-01-12T19:00:00+01:00"), 1768240800000)
        self.assertEqual(sched.iso_ms(1768240800000), "2026-01-12T18:00:00.000Z")

    def test_wall_time(self):
        """17:00 is today's if still ahead, else tomorrow's, in the given zone (DST-aware)."""
        now = int(sched.parse_instant("2026-03-28T17:30:00Z"))  # 18:30 CET
        self.assertEqual(sched.iso_ms(sched.wall_time_today("17:00", now, "Europe/Berlin")), "2026-03-29T15:00:00.000Z")  # CEST
        self.assertEqual(sched.iso_ms(sched.wall_time_today("19:00", now, "Europe/Berlin")), "2026-03-28T18:00:00.000Z")
        with self.assertRaises(sched.ScheduleError):
            sched.wall_time_today("25:00", now, None)

    def test_every_math(self):
        """every: from the anchor in whole steps, strictly after."""
        s = {"kind": "every", "everyMs": 1000, "anchorMs": 500}
        self.assertEqual([sched.next_run(s, t) for t in (0, 500, 501, 1500)], [500, 1500, 1500, 2500])
        self.assertIsNone(sched.next_run({"kind": "at", "atMs": 10}, 10))

    def test_stagger(self):
        """staggerMs shifts each occurrence by a fixed per-job offset inside the window."""
        s = {"kind": "cron", "expr": "0 * * * *", "tz": "UTC", "staggerMs": 300_000}
        base = sched.parse_instant("2026-06-01T08:00:00Z")
        first = sched.next_run(s, base, "job-a")
        offset = sched.stagger_offset("job-a", 300_000)
        self.assertEqual(first, base + offset if offset else base + 3_600_000)
        self.assertEqual(sched.next_run(s, first, "job-a"), first + 3_600_000)
