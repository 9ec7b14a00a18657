# -*- test-case-name: tests.test_channels -*-
"""
What the channel framework needs from the rest of the gateway, as small
typed ports. The channels package reaches the gateway only through these;
L{openclaw.channels.wiring} fills them from the gateway's collaborators
(most of them are those collaborators themselves: the broadcaster, the
config watch, the log redactor), so reshaping those means rewriting that
one module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Protocol

import attrs
from twisted.internet.defer import Deferred
from twisted.web.resource import IResource


@attrs.frozen
class RunOutcome:
    """How an agent run ended: C{ok} (with its reply text), C{error}, C{timeout} or C{aborted}."""

    status: str
    text: str = ""
    error: str | None = None


class AgentBusy(Exception):
    """The session has too many queued runs; try again after C{retry_after} seconds."""

    def __init__(self, message: str, retry_after: float = 2.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RunHandle(Protocol):
    """One agent run started for a channel message."""

    run_id: str
    session_key: str

    def outcome(self) -> Deferred[RunOutcome]:
        """Fires once when the run ends (never errbacks)."""

    def observe(self, listener: Callable[[str, str], None]) -> None:
        """Call C{listener(stream, text)} for each assistant delta or tool event while it runs."""

    def abort(self) -> None: ...


@attrs.frozen
class Sender:
    """Who sent a channel message: C{commands} when they may use chat commands."""

    channel: str
    id: str
    name: str | None = None
    commands: bool = False


class AgentPort(Protocol):
    """Agent runs for channel messages (the gateway's agent runner, adapted by the wiring)."""

    def start(self, session_key: str, message: str, run_id: str, agent_id: str, sender: Sender | None = None) -> RunHandle:
        """
        Start (or queue) a run; a known C{run_id} returns the existing run.
        With a C{sender}, the text is what a person sent: chat commands and
        directives are read first (for a sender allowed them), as on WebChat.
        @raise AgentBusy: the session's queue is full.
        @raise ValueError: the session key is unusable.
        """


class EventPort(Protocol):
    """Events to operators (the gateway's broadcaster)."""

    def emit(self, name: str, payload: Mapping[str, Any]) -> None:
        """Broadcast an event to the operators allowed to see it (C{pairing}: operator.pairing); never raises."""


class ConfigPort(Protocol):
    """The configuration as it is now, and where state lives (the gateway's config watch)."""

    @property
    def state_dir(self) -> Path: ...

    def config(self) -> Mapping[str, Any]:
        """The current config: the last good one, re-read within seconds of a change to the file."""
        ...

    def env(self) -> Mapping[str, str]: ...

    def check(self) -> None:
        """Read the file again now if it changed (before acting on an operator's request)."""


class SecretsPort(Protocol):
    """The gateway's log redactor."""

    def add(self, *secrets: str | None) -> None:
        """Mask these values in every log line from now on."""


class RoutesPort(Protocol):
    """HTTP paths on the gateway port, for webhook transports."""

    def route(self, path: str, resource: IResource) -> None:
        """Serve C{resource} at C{path} (e.g. C{/telegram-webhook}); ValueError if taken."""

    def unroute(self, path: str) -> None: ...


@attrs.frozen
class Ports:
    """Everything the channels service is given."""

    agent: AgentPort
    events: EventPort
    config: ConfigPort
    secrets: SecretsPort
    routes: RoutesPort
