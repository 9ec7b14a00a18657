"""The cron CLI's schedule input (no gateway needed)."""

from __future__ import annotations

from twisted.python import usage
from twisted.trial.unittest import TestCase

from openclaw.cli.cron import CronAddOptions, CronEditOptions, RemindOptions, parse_at, schedule_of
from openclaw.cron.schedule import iso_ms, parse_instant

NOW = parse_instant("2026-03-28T17:30:00Z")


class AtTests(TestCase):
    def test_forms(self):
        """"in 20m", "+20m", "20m", "1h30m", HH:MM (zone-aware), ISO, milliseconds."""
        self.assertEqual(parse_at("in 20m", NOW), NOW + 1_200_000)
        self.assertEqual(parse_at("+20m", NOW), NOW + 1_200_000)
        self.assertEqual(parse_at("20m", NOW), NOW + 1_200_000)
        self.assertEqual(parse_at("1h30m", NOW), NOW + 5_400_000)
        self.assertEqual(iso_ms(parse_at("17:00", NOW, "Europe/Berlin")), "2026-03-29T15:00:00.000Z")
        self.assertEqual(parse_at("2026-04-01T09:00:00Z", NOW), parse_instant("2026-04-01T09:00:00Z"))
        self.assertEqual(parse_at("1800000000000", NOW), 1_800_000_000_000)
        for bad in ("soonish", "in a bit", "25:61", ""):
            with self.assertRaises(usage.UsageError):
                parse_at(bad, NOW)

    def test_one_schedule(self):
        """Exactly one of --at, --every, --cron; the cron expression and zone are checked here."""
        add = CronAddOptions()
        with self.assertRaises(usage.UsageError):
            add.parseOptions(["--name", "x", "--every", "1h", "--cron", "0 9 * * *", "--system-event", "y"])
        with self.assertRaises(usage.UsageError):
            CronAddOptions().parseOptions(["--name", "x", "--cron", "0 9 * * *", "--tz", "Nowhere/Land", "--system-event", "y"])
        add = CronAddOptions()
        add.parseOptions(["--name", "x", "--cron", "0 9 * * 1-5", "--tz", "Europe/Berlin", "--message", "m", "--announce"])
        params = add["params"]
        self.assertEqual((params["schedule"], params["sessionTarget"], params["delivery"]), ({"kind": "cron", "expr": "0 9 * * 1-5", "tz": "Europe/Berlin"}, "isolated", {"mode": "announce", "channel": "last"}))
        self.assertIsNone(schedule_of({"at": None, "every": None, "cron": None, "tz": None}, NOW, False))

    def test_edit_needs_a_change(self):
        """`cron edit` with nothing to change is a usage error; --every makes a schedule patch."""
        with self.assertRaises(usage.UsageError):
            CronEditOptions().parseOptions(["abc"])
        edit = CronEditOptions()
        edit.parseOptions(["abc", "--every", "2h", "--disable"])
        self.assertEqual(edit["patch"], {"schedule": {"kind": "every", "everyMs": 7_200_000}, "enabled": False})

    def test_remind(self):
        """`remind TEXT --in 20m`: a one-shot main-session reminder that wakes now and deletes itself."""
        remind = RemindOptions()
        remind.parseOptions(["call", "mom", "--in", "20m"])
        params = remind["params"]
        self.assertEqual((params["payload"], params["wakeMode"], params["deleteAfterRun"], params["sessionTarget"]), ({"kind": "systemEvent", "text": "Reminder: call mom"}, "now", True, "main"))
        for argv in (["x"], ["x", "--in", "1m", "--at", "17:00"], ["--in", "5m"], ["x", "--at", "2020-01-01T00:00:00Z"]):
            with self.assertRaises(usage.UsageError, msg=argv):
                RemindOptions().parseOptions(argv)
