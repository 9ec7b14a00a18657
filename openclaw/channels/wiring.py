# -*- test-case-name: tests.test_channels_gateway -*-
"""
How the channels plug into a gateway: the ports of
L{openclaw.channels.ports} filled from the L{GatewayCore}'s collaborators,
the channel methods served, the C{message} tool added, and the accounts
reported by C{health} and C{status}.

Most ports are the collaborators themselves: events are the broadcaster
(C{emit} is its droppable broadcast), config is the config watch (the last
good config, re-read within seconds of a change), secrets go to the log
redactor. The agent runner needs a small adapter (L{RuntimeAgent}): the
channels see their own refusals (L{AgentBusy}, C{ValueError}) and a reply
text only for a run that ended well; webhook paths hang under the site root
(L{RootRoutes}).

L{install} builds the L{ChannelsService}; the gateway service adds it as a
child and calls L{ChannelsService.shutting_down} before it stops the core.
Scheduled work delivers through the channels with L{ChannelDelivery}.
Out-of-process adapters (role C{channel}) plug in here too: their methods,
the handshake's access rules (L{Adapters} is the core's C{ChannelAccess}),
and the roster telling them when a connection leaves.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.web.resource import IResource, Resource

from openclaw.agent.commands import ChatCommands
from openclaw.agent.commands import Sender as CommandSender
from openclaw.agent.tools import Tool
from openclaw.channels.adapter.methods import ADAPTER_METHODS
from openclaw.channels.adapter.registry import Adapters
from openclaw.channels.interfaces import ChannelError, IChannelReactor
from openclaw.channels.methods import CHANNEL_METHODS
from openclaw.channels.ports import AgentBusy, Ports, RunOutcome, Sender
from openclaw.channels.registry import platforms
from openclaw.channels.service import ChannelsService
from openclaw.channels.tool import SPEC, MessageTool
from openclaw.channels.whatsapp.login import LOGIN_METHODS
from openclaw.cron.ports import DeliveryPort, DeliveryResult
from openclaw.gateway.core import GatewayCore
from openclaw.interfaces import AgentRunner, QueueFull, RunHandle, RunResult
from openclaw.protocol.errors import GatewayError

log = Logger(namespace="openclaw.channels")

DEFAULT_RETRY_MS = 2000


def outcome_of(result: RunResult) -> RunOutcome:
    """What a channel delivers: the reply only when the run ended C{ok}."""
    return RunOutcome(result.status, result.text if result.status == "ok" else "", result.error)


class _Run:
    """The channels' L{openclaw.channels.ports.RunHandle} over one of the runner's runs."""

    def __init__(self, runner: AgentRunner, run: RunHandle) -> None:
        self._runner = runner
        self._run = run
        self.run_id: str = run.run_id
        self.session_key: str = run.session_key

    def outcome(self) -> Deferred[RunOutcome]:
        return self._run.finished().addCallback(outcome_of)

    def observe(self, listener: Callable[[str, str], None]) -> None:
        def seen(stream: str, data: Mapping[str, Any]) -> None:
            listener(stream, str(data.get("delta") or data.get("name") or ""))

        self._run.observe(seen)

    def abort(self) -> None:
        self._runner.abort(self.session_key, self.run_id)


class RuntimeAgent:
    """L{openclaw.channels.ports.AgentPort} over the gateway's L{AgentRunner}."""

    def __init__(self, runner: AgentRunner, commands: ChatCommands | None = None) -> None:
        # without commands (a runner alone) every message is plain text for the model
        self._runner = runner
        self._commands = commands

    def start(self, session_key: str, message: str, run_id: str, agent_id: str, sender: Sender | None = None) -> _Run:
        try:
            if sender is None or self._commands is None:
                run: RunHandle = self._runner.start(session_key, message, run_id, agent_id=agent_id)
            else:  # a person's text: chat commands and directives first, as on WebChat
                who = CommandSender(authorized=sender.commands, id=sender.id, name=sender.name, surface=sender.channel)
                run = self._commands.start(session_key, message, run_id, who, agent_id=agent_id)
        except QueueFull as e:
            raise AgentBusy(e.message, (e.retry_after_ms or DEFAULT_RETRY_MS) / 1000) from None
        except GatewayError as e:  # an agent that is not configured
            raise ValueError(e.message) from None
        # An unusable key is InvalidInput, a ValueError already.
        return _Run(self._runner, run)


class RootRoutes:
    """L{openclaw.channels.ports.RoutesPort}: paths under the gateway's HTTP root."""

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
            if not isinstance(child, Resource) or child.isLeaf:
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
        node = self._root
        for part in parts[:-1]:
            child = node.children.get(part)
            if not isinstance(child, Resource):
                return
            node = child
        node.children.pop(parts[-1], None)
        self._owned.discard(key)


class ChannelDelivery:
    """
    Scheduled work's L{DeliveryPort} once the gateway has channels. C{last}
    is the channel (account and chat) the session last heard from; a
    channel id sends through that channel (C{to}: the chat, else the one the
    session last heard from there). C{webchat}, and C{last} for a session no
    channel has talked in, go to the session itself (C{fallback}). Repeated
    deliveries of one run send once.
    """

    def __init__(self, channels: ChannelsService, fallback: DeliveryPort) -> None:
        self._channels = channels
        self._fallback = fallback

    def deliver(
        self, text: str, channel: str, to: str | None, session_key: str, run_id: str, in_transcript: bool = False, account_id: str | None = None, thread_id: str | None = None
    ) -> Deferred[DeliveryResult]:
        if channel == "webchat" or (channel == "last" and session_key not in self._channels.routes):
            return self._fallback.deliver(text, channel, to, session_key, run_id, in_transcript, account_id, thread_id)
        return Deferred.fromCoroutine(self._send(text, channel, to, session_key, run_id, account_id, thread_id))

    async def _send(self, text: str, channel: str, to: str | None, session_key: str, run_id: str, account_id: str | None, thread_id: str | None) -> DeliveryResult:
        try:
            account, target = self._channels.resolve(channel, account_id, to, thread_id, None, session_key)
            result = await self._channels.send(f"deliver:{run_id}", account, target, text)
        except (ChannelError, ValueError) as e:
            return DeliveryResult(False, channel, to, str(e))
        except Exception as e:  # the port never fails: a bug here is a delivery that did not happen
            log.failure("delivering run {run} to {channel} crashed", run=run_id, channel=channel)
            return DeliveryResult(False, channel, to, f"internal error: {type(e).__name__}")
        return DeliveryResult(True, str(result["channel"]), str(result["chatId"]))


def install(core: GatewayCore, root: Resource, reactor: IChannelReactor) -> ChannelsService:
    """The channels of the gateway C{core} serves (webhooks under C{root}); the caller makes it a child service."""
    ports = Ports(
        agent=RuntimeAgent(core.agent, core.commands),
        events=core.events,
        config=core.config,
        secrets=core.redactor,
        routes=RootRoutes(root),
    )
    builtin = platforms()
    core.channel_platforms[:] = [(pid, platform.label) for pid, platform in builtin.items()]  # plugins.list
    adapters = Adapters(core.config.config, builtin, reactor)
    channels = ChannelsService(ports, reactor, builtin, platform_for=adapters.platform_for)
    core.serve(CHANNEL_METHODS.bind(channels))
    core.serve(ADAPTER_METHODS.bind(adapters))
    core.channel_admission.use(adapters)
    core.roster.on_leave(adapters.left)
    core.serve(LOGIN_METHODS.bind(channels))
    core.agent.add_tool(Tool(SPEC, MessageTool(channels, core.config.config).run))
    core.health.channels.use(channels)
    return channels
