# -*- test-case-name: tests.test_process -*-
"""
Running a child process on the reactor: argv only (no shell), stdin closed,
output kept up to a cap per stream (and how much was dropped), a timeout,
and cancellation that stops the process.

Every command runs under L{openclaw.process.reaper} in a session and process group of
its own, as a subreaper: whatever it starts (background jobs, daemons that
C{setsid}) ends with it. On timeout or cancellation the reaper sends SIGTERM
to all of them and SIGKILL after a grace; if the reaper itself does not end,
we SIGKILL its process group. Used by the node host's commands and by the
agent's C{exec} tool.
"""

from __future__ import annotations

import math
import os
import signal
import sys
from typing import Any, Callable, Mapping

import attrs
from twisted.internet import error as twisted_error
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.protocol import ProcessProtocol

from openclaw.process import reaper

OUTPUT_CAP = 200_000  # bytes kept per stream
KILL_GRACE = 2.0
REAPER_SLACK = 2.0  # past the grace, the reaper's own group is killed
REAPER = os.path.abspath(reaper.__file__)


@attrs.frozen
class Limits:
    """Resource limits for the command (and all it starts)."""

    pids: tuple[int, int] | None = None  # (uid, processes it may start beyond what the uid runs now)
    address_space: int | None = None  # bytes of virtual memory per process
    file_size: int | None = None  # bytes per written file
    umask: int | None = None  # for what the command (and bubblewrap) creates

    def flags(self) -> list[str]:
        out = [] if self.umask is None else ["--umask", f"{self.umask:o}"]
        if self.pids is not None:
            out += ["--pids", f"{self.pids[0]}:{self.pids[1]}"]
        if self.address_space is not None:
            out += ["--as", str(self.address_space)]
        if self.file_size is not None:
            out += ["--fsize", str(self.file_size)]
        return out


@attrs.frozen
class ProcessResult:
    code: int | None  # negative: killed by that signal
    stdout: bytes
    stderr: bytes
    truncated: bool
    timed_out: bool = False
    stdout_dropped: int = 0  # bytes past the cap
    stderr_dropped: int = 0


class _Collector(ProcessProtocol):
    def __init__(self, done: Deferred[ProcessResult], cap: int) -> None:
        self.done = done
        self.cap = cap
        self.out = bytearray()
        self.err = bytearray()
        self.dropped = {1: 0, 2: 0}
        self.on_end: list[Callable[[], None]] = []

    def _keep(self, fd: int, buffer: bytearray, data: bytes) -> None:
        room = max(self.cap - len(buffer), 0)
        buffer.extend(data[:room])
        self.dropped[fd] += max(len(data) - room, 0)

    def outReceived(self, data: bytes) -> None:
        self._keep(1, self.out, data)

    def errReceived(self, data: bytes) -> None:
        self._keep(2, self.err, data)

    def processEnded(self, reason: Any) -> None:
        for hook in self.on_end:
            hook()
        code = getattr(reason.value, "exitCode", None)
        if code is None and getattr(reason.value, "signal", None) is not None:
            code = -reason.value.signal
        result = ProcessResult(code, bytes(self.out), bytes(self.err), any(self.dropped.values()), False, self.dropped[1], self.dropped[2])
        if not self.done.called:  # a cancelled caller has stopped listening
            self.done.callback(result)


class _Stopper:
    """TERM to the reaper (it passes it on, then KILLs), then KILL to its group if it lingers."""

    def __init__(self, reactor: Any, process: Any, grace: float) -> None:
        self.reactor = reactor
        self.process = process
        self.grace = grace
        self.stopped = False
        self.ended = False
        self._kill: Any = None

    def stop(self) -> None:
        if self.stopped or self.ended:
            return
        self.stopped = True
        try:
            self.process.signalProcess("TERM")
        except (twisted_error.ProcessExitedAlready, OSError):
            return
        self._kill = self.reactor.callLater(self.grace + REAPER_SLACK, self._kill_group)

    def _kill_group(self) -> None:
        pid = self.process.pid
        if pid is None or self.ended:
            return
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass

    def end(self) -> None:
        self.ended = True
        if self._kill is not None and self._kill.active():
            self._kill.cancel()


def check_timeout(timeout: Any) -> float:
    """A timeout in seconds: a finite number above 0, or ValueError."""
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not math.isfinite(timeout) or timeout <= 0:
        raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
    return float(timeout)


async def run_process(
    reactor: Any,
    argv: list[str],
    timeout: float,
    env: dict[str, str],
    cwd: str | None = None,
    executable: str | None = None,
    cap: int = OUTPUT_CAP,
    *,
    grace: float = KILL_GRACE,
    limits: Limits | None = None,
    fds: Mapping[int, int] | None = None,
) -> ProcessResult:
    """
    Run C{argv}; raises OSError when it cannot start (a missing command ends
    with exit code 127 and says so on stderr). C{fds} maps extra child fds to
    ours; they are closed here once the child has them. Cancelling the
    returned coroutine's Deferred stops the process like a timeout does.
    """
    try:
        timeout = check_timeout(timeout)
    except ValueError:
        for fd in (fds or {}).values():
            os.close(fd)
        raise
    wrapper = [sys.executable, "-I", "-S", REAPER, "--grace", repr(float(grace)), *(limits.flags() if limits else [])]
    if executable:
        wrapper += ["--executable", executable]
    done: Deferred[ProcessResult] = Deferred()
    collector = _Collector(done, cap)
    child_fds: dict[int, Any] = {0: "w", 1: "r", 2: "r", **(fds or {})}
    try:
        process = reactor.spawnProcess(collector, sys.executable, [*wrapper, "--", *argv], env=env, path=cwd, childFDs=child_fds)
    finally:
        for fd in (fds or {}).values():
            os.close(fd)
    process.closeStdin()
    stopper = _Stopper(reactor, process, grace)
    collector.on_end.append(stopper.end)
    timer = reactor.callLater(timeout, stopper.stop)
    try:
        result = await done
    except CancelledError:
        stopper.stop()  # its KILL fallback stays armed until the process has ended
        raise
    finally:
        if timer.active():
            timer.cancel()
    return attrs.evolve(result, timed_out=stopper.stopped)
