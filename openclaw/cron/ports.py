# -*- test-case-name: tests.test_cron_service -*-
"""
What scheduled work needs from the rest of the gateway, and nothing more.

The gateway's own collaborators are the ports: the agent runtime
(L{openclaw.agent.runtime.AgentRuntime}, an C{AgentRunner}) is the
L{AgentPort}, the broadcaster (L{openclaw.gateway.events.Broadcaster}) the
L{EventPort}. Only delivery has an adapter of its own
(L{openclaw.cron.wiring.SessionDelivery}) while the gateway has no messaging
channels. Tests implement each with a few lines. Nothing in C{openclaw.cron}
but the wiring imports the gateway.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Protocol

import attrs
from twisted.internet.defer import Deferred

from openclaw.interfaces import RunResult
from openclaw.protocol.errors import GatewayError

# What AgentPort.session_key raises for a key or agent id it cannot use.
KEY_ERRORS = (ValueError, GatewayError)


@attrs.frozen
class DeliveryResult:
    delivered: bool
    channel: str | None = None
    to: str | None = None
    error: str | None = None


class AgentPort(Protocol):
    """Sessions and agent runs: the part of C{openclaw.interfaces.AgentRunner} scheduled work uses, and the workspace."""

    def session_key(self, key: str | None, agent_id: str | None = None) -> str:
        """
        The canonical form of C{key} (None: the agent's main session).

        @raise ValueError: the key cannot be used (C{InvalidInput}).
        @raise GatewayError: the agent is not configured.
        """
        ...

    def enqueue_event(self, session_key: str, text: str) -> None:
        """A line the session's next run sees before its message."""

    def busy(self, session_key: str) -> bool:
        """Whether a run runs (or waits) in the session."""
        ...

    def idle(self, session_key: str) -> Deferred[None]:
        """Fires when no run runs or waits in the session."""
        ...

    def run(self, session_key: str, message: str, run_id: str, agent_id: str | None = None, timeout: float | None = None, quiet: bool = False, fresh: bool = False) -> Deferred[RunResult]:
        """
        One run, queued behind the session's; fires with its result (a run
        that could not start is an C{error} result, never a failure).
        C{quiet}: no C{chat} events (the caller delivers the reply, or drops
        it). C{fresh}: a new session id first.
        """
        ...

    def workspace(self) -> Path:
        """The agents' workspace (where C{HEARTBEAT.md} is)."""
        ...


class EventPort(Protocol):
    def emit(self, name: str, payload: Mapping[str, Any]) -> None:
        """Broadcast C{cron} or C{heartbeat} (dropped for slow consumers)."""


class DeliveryPort(Protocol):
    def deliver(
        self, text: str, channel: str, to: str | None, session_key: str, run_id: str, in_transcript: bool = False, account_id: str | None = None, thread_id: str | None = None
    ) -> Deferred[DeliveryResult]:
        """
        Send C{text} to C{channel} (C{last}: where the session last talked),
        recipient C{to} (None: the session's own chat there), through the
        channel account C{account_id}, in thread C{thread_id}. C{in_transcript}:
        the turn that wrote it ran in C{session_key} already. Never fails: a
        delivery that did not happen is a result with its C{error}.
        """
        ...


class DiskPort(Protocol):
    """
    Durable writes off the reactor thread: the agent runtime's group commit
    (L{openclaw.agent.sessions.Syncer}). Without one, cron writes and fsyncs
    on the caller's thread.
    """

    def fsync_later(self, path: Path) -> None: ...

    def replace_later(self, path: Path, render: Callable[[], bytes]) -> None: ...

    def replace_now(self, path: Path, data: bytes) -> None: ...
