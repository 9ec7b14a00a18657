"""Child processes: timeouts and cancellation end the whole tree; nothing outlives its call."""

from __future__ import annotations

import math
import os
import time

from twisted.internet import reactor
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from openclaw.process import run_process

ENV = {"PATH": "/usr/bin:/bin"}


def processes_with(marker: str) -> list[int]:
    """Pids whose command line contains C{marker} (arguments are NUL-separated)."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    if marker.encode() in f.read():
                        found.append(int(name))
            except OSError:
                pass
    return found


class ProcessTests(TestCase):
    timeout = 30

    async def gone(self, marker, within=5.0):
        """True once no process has C{marker} in its command line."""
        deadline = time.monotonic() + within
        while processes_with(marker) and time.monotonic() < deadline:
            await deferLater(reactor, 0.05, lambda: None)
        return not processes_with(marker)

    async def run_sh(self, script, timeout, **kw):
        started = time.monotonic()
        ran = await run_process(reactor, ["/bin/sh", "-c", script], timeout, ENV, grace=0.5, **kw)
        return ran, time.monotonic() - started

    async def test_timeout_ends_the_command(self):
        """sleep 34 with a 1 s timeout returns at once (not after 34 s), marked timed out."""
        ran, took = await self.run_sh("sleep 34.01", 1)
        self.assertTrue(ran.timed_out)
        self.assertLess(took, 10)
        self.assertTrue(await self.gone("34.01"))

    async def test_term_ignored(self):
        """A command that ignores SIGTERM is killed after the grace."""
        ran, took = await self.run_sh("trap '' TERM; sleep 37.01; echo never", 1)
        self.assertTrue(ran.timed_out)
        self.assertLess(took, 10)
        self.assertNotIn(b"never", ran.stdout)
        self.assertTrue(await self.gone("37.01"))

    async def test_background_job_does_not_hold_the_call(self):
        """`sleep 15 & echo` returns when the shell exits; the background sleep is ended with it."""
        ran, took = await self.run_sh("sleep 15.01 & echo started", 30)
        self.assertEqual((ran.code, ran.stdout, ran.timed_out), (0, b"started\n", False))
        self.assertLess(took, 10)
        self.assertTrue(await self.gone("15.01"))

    async def test_setsid_daemon_does_not_survive(self):
        """`setsid nohup sleep 36 &` leaves our process group, not our reaper: it is ended too."""
        ran, _ = await self.run_sh("setsid nohup sleep 36.01 >/dev/null 2>&1 & sleep 0.2; echo started", 30)
        self.assertEqual(ran.stdout, b"started\n")
        self.assertTrue(await self.gone("36.01"))

    async def test_cancel_stops_the_command(self):
        """Cancelling the call (a run abort) stops the command and its children."""
        d = Deferred.fromCoroutine(run_process(reactor, ["/bin/sh", "-c", "sleep 33.01 & sleep 33.02"], 60, ENV, grace=0.5))
        for _ in range(100):
            if processes_with("33.02"):
                break
            await deferLater(reactor, 0.05, lambda: None)
        self.assertTrue(processes_with("33.02"))
        d.cancel()
        with self.assertRaises(CancelledError):
            await d
        self.assertTrue(await self.gone("33.01"))
        self.assertTrue(await self.gone("33.02"))

    async def test_bad_timeout_starts_nothing(self):
        """NaN, negative, zero or non-number timeouts are refused before anything starts."""

        class NoSpawn:
            def spawnProcess(self, *a, **kw):
                raise AssertionError("started a process")

        for bad in (math.nan, -5, 0, math.inf, "NaN", True, None):
            with self.assertRaises(ValueError, msg=repr(bad)):
                await run_process(NoSpawn(), ["/bin/true"], bad, ENV)

    async def test_output_cut_is_counted(self):
        """Past the cap, output is dropped and counted per stream."""
        ran, _ = await self.run_sh("head -c 300000 /dev/zero; echo err >&2", 10, cap=1000)
        self.assertEqual((len(ran.stdout), ran.stdout_dropped, ran.stderr, ran.stderr_dropped, ran.truncated), (1000, 299000, b"err\n", 0, True))

    async def test_exit_status(self):
        """Exit codes pass through; death by a signal is a negative code; stdin is closed."""
        self.assertEqual((await self.run_sh("exit 7", 10))[0].code, 7)
        self.assertEqual((await self.run_sh("kill -USR1 $$", 10))[0].code, -10)
        ran, took = await self.run_sh("cat; echo eof", 10)
        self.assertEqual(ran.stdout, b"eof\n")
        self.assertFalse(ran.timed_out)
