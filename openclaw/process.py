# -*- test-case-name: tests.test_nodehost -*-
"""
Running a child process on the reactor: argv only (no shell), output kept up
to a cap per stream, and past its timeout SIGTERM, then SIGKILL after a grace.
Used by the node host's commands and by the agent's C{exec} tool.
"""

from __future__ import annotations

import signal
from typing import Any

import attrs
from twisted.internet import error as twisted_error
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ProcessProtocol

OUTPUT_CAP = 200_000  # bytes kept per stream
KILL_GRACE = 2.0


@attrs.frozen
class ProcessResult:
    code: int | None  # negative: killed by that signal
    stdout: bytes
    stderr: bytes
    truncated: bool
    timed_out: bool = False


class _Collector(ProcessProtocol):
    def __init__(self, done: Deferred[ProcessResult], cap: int) -> None:
        self.done = done
        self.cap = cap
        self.out = bytearray()
        self.err = bytearray()
        self.truncated = False

    def _keep(self, buffer: bytearray, data: bytes) -> None:
        room = self.cap - len(buffer)
        if len(data) > room:
            self.truncated = True
        buffer.extend(data[: max(room, 0)])

    def outReceived(self, data: bytes) -> None:
        self._keep(self.out, data)

    def errReceived(self, data: bytes) -> None:
        self._keep(self.err, data)

    def processEnded(self, reason: Any) -> None:
        code = getattr(reason.value, "exitCode", None)
        if code is None and getattr(reason.value, "signal", None) is not None:
            code = -reason.value.signal
        self.done.callback(ProcessResult(code, bytes(self.out), bytes(self.err), self.truncated))


def _signal(process: Any, sig: int) -> None:
    try:
        process.signalProcess(sig)
    except (twisted_error.ProcessExitedAlready, OSError):
        pass


async def run_process(
    reactor: Any,
    argv: list[str],
    timeout: float,
    env: dict[str, str],
    cwd: str | None = None,
    executable: str | None = None,
    cap: int = OUTPUT_CAP,
) -> ProcessResult:
    """Run C{argv}; raises OSError when it cannot start."""
    done: Deferred[ProcessResult] = Deferred()
    process = reactor.spawnProcess(_Collector(done, cap), executable or argv[0], argv, env=env, path=cwd)
    timed_out: list[bool] = []
    kills: list[Any] = []

    def expire() -> None:
        timed_out.append(True)
        _signal(process, signal.SIGTERM)
        kills.append(reactor.callLater(KILL_GRACE, _signal, process, signal.SIGKILL))

    timer = reactor.callLater(timeout, expire)
    try:
        result = await done
    finally:
        for call in (timer, *kills):
            if call.active():
                call.cancel()
    return attrs.evolve(result, timed_out=bool(timed_out))
