# -*- test-case-name: tests.test_cron_service -*-
"""
What scheduled work needs from the rest of the gateway, and nothing more.

L{openclaw.cron.wiring} implements these over today's hub and agent runtime;
tests implement them with a few lines each. Nothing in C{openclaw.cron}
imports the gateway or the agent runtime except that adapter.
"""

from __future__ import annotations

from typing import Any, Protocol

import attrs
from twisted.internet.defer import Deferred


@attrs.frozen
class TurnOutcome:
    """How an agent turn ended."""

    run_id: str
    session_key: str
    status: str  # ok | error | timeout | aborted
    text: str = ""
    error: str | None = None
    model: str | None = None


@attrs.frozen
class DeliveryResult:
    delivered: bool
    channel: str | None = None
    to: str | None = None
    error: str | None = None


class AgentPort(Protocol):
    """Sessions and agent turns."""

    def session_key(self, key: str | None, agent_id: str | None = None) -> str:
        """The canonical form of C{key} (None: the agent's main session). @raise ValueError."""

    def enqueue_system_event(self, session_key: str, text: str) -> None:
        """A line the session's next turn sees before its message."""

    def busy(self, session_key: str) -> bool:
        """Whether a turn runs (or waits) in the session."""

    def idle(self, session_key: str) -> Deferred[None]:
        """Fires when no turn runs or waits in the session."""

    def start_turn(self, session_key: str, message: str, run_id: str, quiet: bool = False, timeout: float | None = None, fresh: bool = False) -> Deferred[TurnOutcome]:
        """
        Run one turn; fires with its outcome (a turn that could not start is an
        C{error} outcome, never a failure). C{quiet}: no C{chat} events (the
        caller delivers the reply, or drops it). C{fresh}: a new session id first.
        """

    def heartbeat_file(self, agent_id: str | None = None) -> str | None:
        """The agent's workspace C{HEARTBEAT.md}, or None when there is none."""


class EventPort(Protocol):
    def emit(self, name: str, payload: dict[str, Any]) -> None:
        """Broadcast C{cron} or C{heartbeat} (dropped for slow consumers)."""


class DeliveryPort(Protocol):
    def deliver(self, text: str, channel: str, to: str | None, session_key: str, run_id: str, in_transcript: bool = False) -> Deferred[DeliveryResult]:
        """
        Send C{text} to C{channel} (C{last}: where the session last talked).
        C{in_transcript}: the turn that wrote it ran in C{session_key} already.
        """
