# -*- test-case-name: tests.test_core -*-
"""
The seams between the gateway's parts, as small typed protocols.

Each is implemented once (named below) and consumed by packages that must
not import the implementer: the node events, the HTTP API, scheduled work
and channels start agent runs through L{AgentRunner} without importing
C{openclaw.agent}; the agent runtime and the pairing flows send events
through L{EventSink}/L{SessionEvents} without importing C{openclaw.gateway}.
Structural typing (C{typing.Protocol}): an implementer need not import this
module either, and a test fake is a few lines.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Protocol

import attrs
from twisted.internet.defer import Deferred

from openclaw.protocol.errors import UNAVAILABLE, GatewayError

JSON = Any


class EventSink(Protocol):
    """Events to every authenticated connection allowed to see them (L{openclaw.gateway.events.Broadcaster})."""

    def broadcast(self, name: str, payload: JSON, drop_if_slow: bool = False) -> None:
        """
        Send C{name} to the operators whose scopes allow it (C{tick},
        C{presence}, C{cron}... to everyone), numbered per connection. Never
        raises; C{drop_if_slow}: skip a reader that is behind instead of
        closing it.
        """


class SessionEvents(Protocol):
    """A session's C{chat}/C{agent} events (L{openclaw.gateway.events.Broadcaster})."""

    def to_session(self, name: str, payload: JSON, session_key: str, drop_if_slow: bool = False) -> None:
        """To readers (C{operator.read}) and to nodes subscribed to C{session_key}."""

    def tool_event(self, payload: JSON, session_key: str, verbose: bool) -> None:
        """An C{agent} tool event: to readers that asked for C{tool-events}, or all readers when verbose."""


class ChannelAccess(Protocol):
    """Who may connect as an out-of-process channel adapter (L{openclaw.channels.adapter.registry.Adapters})."""

    def adapter_channels(self) -> frozenset[str]:
        """The channel ids configured to be served by an adapter (C{adapter: true})."""
        ...

    def token_grants(self, token: str) -> frozenset[str]:
        """The adapter channels whose C{adapterToken} C{token} is (compared in constant time)."""
        ...


class SessionWatch(Protocol):
    """
    What happens to sessions, for whoever follows them
    (L{openclaw.gateway.subscriptions.SessionFeeds}): told by the session
    stores and the agent runtime, after the change. Never raises.
    """

    def appended(self, session_key: str, record: Mapping[str, Any], seq: int) -> None:
        """A message entry (C{record}: C{id}, C{message}, ...) was appended; C{seq}: its number among the session's messages."""

    def changed(self, session_key: str, reason: str, run_id: str | None = None) -> None:
        """The session's row changed: C{reason} is C{create}, C{patch}, C{reset}, C{delete}, C{agent.run.started}, C{agent.run.ended}."""


class NoWatch:
    """Nobody follows sessions (a runtime or store built alone)."""

    def appended(self, session_key: str, record: Mapping[str, Any], seq: int) -> None:
        return None

    def changed(self, session_key: str, reason: str, run_id: str | None = None) -> None:
        return None


class PresenceSink(Protocol):
    """The presence list (L{openclaw.gateway.presence.Presence})."""

    def update(self, key: str, entry: dict[str, Any]) -> None:
        """Merge C{entry} into the entry under C{key} (now), and tell everyone."""


@attrs.frozen
class RunResult:
    """How an agent run ended: C{ok} (C{text} is its reply), C{error}, C{timeout} or C{aborted}."""

    run_id: str
    session_key: str
    status: str
    text: str = ""
    error: str | None = None
    model: str | None = None
    usage: Mapping[str, int] = attrs.field(factory=dict)
    # what the caller should see besides the reply, e.g. an exec denied for want of an approval:
    # {ts, source, severity, message, toolName?} (upstream's cron run diagnostics entries)
    diagnostics: tuple[Mapping[str, Any], ...] = ()


class QueueFull(GatewayError):
    """The session has too many runs waiting; retry after C{retry_after_ms}."""

    def __init__(self, message: str, retry_after_ms: int = 2000) -> None:
        super().__init__(UNAVAILABLE, message, retryable=True, retry_after_ms=retry_after_ms)


class RunHandle(Protocol):
    """One agent run (L{openclaw.agent.runtime.Run})."""

    @property
    def run_id(self) -> str: ...

    @property
    def session_key(self) -> str: ...

    def finished(self) -> Deferred[RunResult]:
        """Fires once, when the run ends (never errbacks)."""
        ...

    def observe(self, listener: Callable[[str, Mapping[str, Any]], None]) -> None:
        """
        Call C{listener(stream, data)} for each agent event while the run
        lasts: C{assistant} (C{text}, C{delta}), C{tool} (C{phase}, C{name},
        ...), C{lifecycle}.
        """


class AgentRunner(Protocol):
    """Agent runs in sessions (L{openclaw.agent.runtime.AgentRuntime})."""

    def session_key(self, key: str | None, agent_id: str | None = None) -> str:
        """
        The canonical key (C{None}: the agent's main session).

        @raise InvalidInput: the key or agent id cannot be used.
        @raise GatewayError: the agent is not configured.
        """
        ...

    def start(
        self,
        session_key: str,
        message: str,
        run_id: str,
        agent_id: str | None = None,
        timeout: float | None = None,
        quiet: bool = False,
        fresh: bool = False,
    ) -> RunHandle:
        """
        Start (or queue behind the session's run) one run; a known C{run_id}
        gives the existing run. C{quiet}: no C{chat} events (the caller
        delivers the reply). C{fresh}: a new session id first.

        @raise QueueFull: too many runs wait in the session.
        @raise InvalidInput: the key cannot be used.
        """
        ...

    def run(self, session_key: str, message: str, run_id: str, agent_id: str | None = None, timeout: float | None = None, quiet: bool = False, fresh: bool = False) -> Deferred[RunResult]:
        """
        L{start}, then its result; a run that cannot start is an C{error}
        result, never a failure. For callers that wait for the result, not a
        person (cron, heartbeats): the run is unattended, so an exec needing
        an approval while no approver is connected gets C{askFallback} at once.
        """
        ...

    def abort(self, session_key: str, run_id: str | None = None) -> list[str]:
        """Abort the session's runs (or just C{run_id}); the ids aborted."""
        ...

    def busy(self, session_key: str) -> bool:
        """Whether a run runs or waits in the session."""
        ...

    def idle(self, session_key: str) -> Deferred[None]:
        """Fires once no run runs or waits in the session."""
        ...

    def enqueue_event(self, session_key: str, text: str) -> None:
        """A system event line the session's next run sees before its message (bounded)."""
