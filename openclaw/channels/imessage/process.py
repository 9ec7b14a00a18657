# -*- test-case-name: tests.test_imessage_units -*-
"""
L{RpcProcess}: one C{imsg rpc} child (or the SSH wrapper standing in for
it), driven through a L{ProcessProtocol}.

Requests get an id, a timeout and a Deferred; notifications go to a
callback; lines that are not JSON-RPC are counted and logged (at most one
line a minute), never fatal. When the child ends, every request still
waiting fails with the exit status and the last thing it said on stderr
(so status shows "imsg rpc exited (code 1): permission denied", not just
"closed"). L{RpcProcess.stop} closes stdin, then sends SIGTERM, then
SIGKILL, each after a grace period.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable

from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessDone, ProcessExitedAlready
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from openclaw.channels.imessage.rpc import Garbage, LineRpc, Notification, Response, RpcError
from openclaw.channels.interfaces import ChannelError, IChannelReactor

log = Logger(namespace="openclaw.channels.imessage")

MAX_PENDING = 256
STDERR_LINES = 20
STDERR_LINE_MAX = 300
STOP_GRACE = 2.0
GARBAGE_LOG_EVERY = 60.0
FULL_DISK_ACCESS = (
    "imsg cannot read ~/Library/Messages/chat.db: grant Full Disk Access to the process that runs imsg "
    "(System Settings → Privacy & Security → Full Disk Access), then restart the gateway"
)


class RpcFailed(ChannelError):
    """The helper answered a request with a JSON-RPC error."""

    def __init__(self, method: str, error: RpcError) -> None:
        super().__init__(f"imsg {method}: {error.text()}")
        self.method = method
        self.error = error


class RpcProcess(ProcessProtocol):
    def __init__(self, reactor: IReactorTime, on_notification: Callable[[Notification], None], name: str = "imsg") -> None:
        self.reactor = reactor
        self.on_notification = on_notification
        self.name = name
        self.codec = LineRpc()
        self.pending: dict[str, tuple[str, Deferred[Any], IDelayedCall]] = {}
        self.stderr: deque[str] = deque(maxlen=STDERR_LINES)
        self._stderr_partial = b""
        self.ended: Deferred[ChannelError | None] = Deferred()  # fires at exit: None for code 0, else why
        self.exited = False
        self.garbage = 0
        self._garbage_logged_at: float | None = None
        self.problem: str | None = None  # a condition with a fix, seen on stderr
        self._timers: list[IDelayedCall] = []

    # -- requests

    def request(self, method: str, params: dict[str, Any] | None = None, timeout: float = 30.0) -> Deferred[Any]:
        """The method's C{result}; L{RpcFailed} for a JSON-RPC error, L{ChannelError} otherwise."""
        if self.exited or self.transport is None:
            return _failed(ChannelError(f"imsg {method}: the imsg rpc process is not running"))
        if len(self.pending) >= MAX_PENDING:
            return _failed(ChannelError(f"imsg {method}: {MAX_PENDING} requests already wait for imsg"))
        rid, line = self.codec.request(method, params)

        def cancel(d: Deferred[Any]) -> None:
            entry = self.pending.pop(rid, None)
            if entry is not None and entry[2].active():
                entry[2].cancel()

        d: Deferred[Any] = Deferred(cancel)

        def expire() -> None:
            if self.pending.pop(rid, None) is not None and not d.called:
                d.errback(ChannelError(f"imsg {method}: no answer within {timeout:g} s"))

        timer = self.reactor.callLater(timeout, expire)
        self.pending[rid] = (method, d, timer)
        try:
            self.transport.write(line)
        except Exception as e:  # a closed pipe: the exit is on its way
            self.pending.pop(rid, None)
            timer.cancel()
            return _failed(ChannelError(f"imsg {method}: cannot write to imsg: {e}"))
        return d

    # -- ProcessProtocol

    def outReceived(self, data: bytes) -> None:
        for frame in self.codec.feed(data):
            if isinstance(frame, Response):
                entry = self.pending.pop(frame.id, None)
                if entry is None:
                    self._garbage(Garbage(f"a response to unknown request {frame.id[:20]}"))
                    continue
                method, d, timer = entry
                if timer.active():
                    timer.cancel()
                if frame.error is not None:
                    d.errback(RpcFailed(method, frame.error))
                else:
                    d.callback(frame.result)
            elif isinstance(frame, Notification):
                try:
                    self.on_notification(frame)
                except Exception:
                    log.failure("{name}: handling a {method} notification failed", name=self.name, method=frame.method)
            else:
                self._garbage(frame)

    def _garbage(self, frame: Garbage) -> None:
        self.garbage += 1
        now = self.reactor.seconds()
        if self._garbage_logged_at is None or now - self._garbage_logged_at >= GARBAGE_LOG_EVERY:
            self._garbage_logged_at = now
            log.warn("{name}: skipped a line from imsg ({reason}; {count} so far)", name=self.name, reason=frame.reason, count=self.garbage)

    def errReceived(self, data: bytes) -> None:
        data = self._stderr_partial + data
        *lines, rest = data.split(b"\n")
        self._stderr_partial = rest[-4096:]
        self._stderr_lines(lines)

    def _stderr_lines(self, lines: list[bytes]) -> None:
        for raw in lines:
            line = raw.decode("utf-8", "replace").strip()
            if not line:
                continue
            self.stderr.append(line[:STDERR_LINE_MAX])
            lowered = line.lower()
            if "full disk access" in lowered or ("chat.db" in lowered and ("permission" in lowered or "not permitted" in lowered or "unable to open" in lowered)):
                self.problem = FULL_DISK_ACCESS

    def last_words(self) -> str | None:
        return self.stderr[-1] if self.stderr else None

    def processEnded(self, reason: Failure) -> None:
        self.exited = True
        partial, self._stderr_partial = self._stderr_partial, b""
        self._stderr_lines([partial])
        for timer in self._timers:
            if timer.active():
                timer.cancel()
        value = reason.value
        if isinstance(value, ProcessDone):
            why = "exited"
        else:
            code = getattr(value, "exitCode", None)
            signal = getattr(value, "signal", None)
            why = f"exited (signal {signal})" if signal else f"exited (code {code})"
        said = self.last_words()
        error = ChannelError(f"imsg rpc {why}" + (f": {said}" if said else ""))
        pending, self.pending = self.pending, {}
        for method, d, timer in pending.values():
            if timer.active():
                timer.cancel()
            if not d.called:
                d.errback(ChannelError(f"imsg {method}: {error}"))
        self.ended.callback(None if isinstance(value, ProcessDone) else error)

    # -- stopping

    @property
    def pid(self) -> int | None:
        return getattr(self.transport, "pid", None)

    def stop(self, grace: float = STOP_GRACE) -> Deferred[None]:
        """Close stdin; SIGTERM after C{grace}; SIGKILL after another. Fires when the child is gone."""
        done: Deferred[None] = Deferred()

        def gone(_: object) -> None:
            if not done.called:
                done.callback(None)

        self.ended.addBoth(gone)
        transport = self.transport
        if self.exited or transport is None or self._timers:
            return done  # gone, or already stopping
        try:
            transport.closeStdin()
        except Exception:
            pass

        def signal(name: str) -> None:
            if not self.exited:
                try:
                    transport.signalProcess(name)
                except (ProcessExitedAlready, OSError):
                    pass

        self._timers = [self.reactor.callLater(grace, signal, "TERM"), self.reactor.callLater(grace * 2, signal, "KILL")]
        return done


def _failed(error: Exception) -> Deferred[Any]:
    d: Deferred[Any] = Deferred()
    d.errback(error)
    return d


def spawn(reactor: IChannelReactor, argv: list[str], env: dict[str, str], on_notification: Callable[[Notification], None], name: str = "imsg") -> RpcProcess:
    """Start the child (an exec failure shows as an exit with its error on stderr)."""
    process = RpcProcess(reactor, on_notification, name)
    reactor.spawnProcess(process, argv[0], argv, env=env)
    return process
