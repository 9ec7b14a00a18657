# -*- test-case-name: tests.test_channels_gateway -*-
"""
The one adapter between the channels package and today's gateway: the
ports of L{openclaw.channels.ports} implemented over the C{Hub}, the
C{AgentRuntime}, the gateway's log redactor and its HTTP root. When those
change shape, this module is what changes.

L{attach} builds the L{ChannelsService} for a gateway service; the method
handlers find it again with L{channels_of}.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Mapping

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.web.resource import IResource, Resource

from openclaw.agent.sessions import SessionError
from openclaw.channels.ports import AgentBusy, Ports, RunOutcome
from openclaw.channels.registry import platforms
from openclaw.channels.service import ChannelsService
from openclaw.channels.tool import MessageTool
from openclaw.config.errors import ConfigError
from openclaw.config.loader import load_config
from openclaw.config.settings import checked
from openclaw.protocol.errors import GatewayError

log = Logger(namespace="openclaw.channels")


class _Run:
    """A L{RunHandle} over an agent runtime C{Run}."""

    def __init__(self, runtime: Any, run: Any) -> None:
        self._runtime = runtime
        self._run = run
        self.run_id: str = run.run_id
        self.session_key: str = run.session_key

    def outcome(self) -> Deferred[RunOutcome]:
        run = self._run
        return run.outcome.wait().addCallback(lambda _: RunOutcome(run.status, run.text if run.status == "ok" else "", run.error))

    def observe(self, listener: Callable[[str, str], None]) -> None:
        self._run.listeners.append(lambda stream, data: listener(stream, str(data.get("delta") or data.get("name") or "")))

    def abort(self) -> None:
        self._runtime.abort(self._run.session_key, self._run.run_id)


class RuntimeAgent:
    """L{AgentPort} over C{AgentRuntime.submit}."""

    def __init__(self, runtime: Any) -> None:
        self._runtime = runtime

    def start(self, session_key: str, message: str, run_id: str, agent_id: str) -> _Run:
        try:
            run, _ = self._runtime.submit(session_key, message, run_id, agent_id)
        except SessionError as e:
            raise ValueError(str(e)) from None
        except GatewayError as e:
            if e.retryable:
                raise AgentBusy(e.message, (e.retry_after_ms or 2000) / 1000) from None
            raise ValueError(e.message) from None
        return _Run(self._runtime, run)


class HubEvents:
    """L{EventPort} over the hub's scope-gated broadcast."""

    def __init__(self, hub: Any) -> None:
        self._hub = hub

    def emit(self, event: str, payload: Mapping[str, Any]) -> None:
        self._hub.broadcast(event, dict(payload), drop_if_slow=True)


class FileConfig:
    """
    L{ConfigPort}: the gateway's settings, and the config file read again
    when it changed since the gateway started (the last good one if it is
    broken now).
    """

    def __init__(self, settings: Any) -> None:
        self._settings = settings
        self._path: Path = settings.layout.config_path
        self._stamp = self._stat()
        self._config: Mapping[str, Any] = settings.config
        self._env: Mapping[str, str] = settings.env

    @property
    def state_dir(self) -> Path:
        return Path(self._settings.state_dir)

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self._path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def config(self) -> Mapping[str, Any]:
        stamp = self._stat()
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                loaded = checked(load_config(self._path, self._settings.env))
                self._config, self._env = loaded.config, loaded.env
            except ConfigError as e:
                log.warn("channels keep the last good config: {problem}", problem=e.describe())
        return self._config

    def env(self) -> Mapping[str, str]:
        self.config()
        return self._env


class RedactorSecrets:
    def __init__(self, redactor: Any) -> None:
        self._redactor = redactor

    def redact(self, *secrets: str) -> None:
        self._redactor.add(*secrets)


class RootRoutes:
    """L{RoutesPort}: paths under the gateway's HTTP root."""

    def __init__(self, root: Resource) -> None:
        self._root = root
        self._owned: set[str] = set()

    @staticmethod
    def _parts(path: str) -> list[bytes]:
        parts = [p.encode() for p in path.strip("/").split("/") if p]
        if not parts or any(p in (b".", b"..") for p in parts):
            raise ValueError(f"invalid webhook path {path!r}")
        return parts

    def route(self, path: str, resource: IResource) -> None:
        parts = self._parts(path)
        node = self._root
        for part in parts[:-1]:
            child = node.children.get(part)
            if child is None:
                child = Resource()
                node.putChild(part, child)
            if not isinstance(child, Resource) or getattr(child, "isLeaf", False):
                raise ValueError(f"{path} is taken")
            node = child
        if parts[-1] in node.children:
            raise ValueError(f"{path} is taken")
        node.putChild(parts[-1], resource)
        self._owned.add("/".join(p.decode() for p in parts))

    def unroute(self, path: str) -> None:
        parts = self._parts(path)
        key = "/".join(p.decode() for p in parts)
        if key not in self._owned:
            return
        node: Any = self._root
        for part in parts[:-1]:
            node = node.children.get(part)
            if node is None:
                return
        node.children.pop(parts[-1], None)
        self._owned.discard(key)


def attach(gateway: Any) -> ChannelsService:
    """The channels service for a C{GatewayService}, its methods' way to it, and the message tool."""
    hub = gateway.hub
    ports = Ports(
        agent=RuntimeAgent(hub.agent),
        events=HubEvents(hub),
        config=FileConfig(gateway.settings),
        secrets=RedactorSecrets(gateway.redactor),
        routes=RootRoutes(gateway.root),
    )
    channels = ChannelsService(ports, gateway.reactor, platforms())
    hub.channels = channels
    hub.agent.extra_tools["message"] = MessageTool(channels, ports.config.config)
    return channels


def channels_of(conn: Any) -> ChannelsService:
    """The channels service behind a connection's gateway."""
    channels = getattr(conn.hub, "channels", None)
    if not isinstance(channels, ChannelsService):
        raise GatewayError("UNAVAILABLE", "channels are not available in this gateway")
    return channels
