# -*- test-case-name: tests.test_nodehost -*-
"""`openclaw node run` (be a node) and `openclaw nodes ...` (manage nodes)."""

from __future__ import annotations

import json
import sys
import uuid
from typing import IO, Any, Mapping

from twisted.internet.defer import Deferred
from twisted.python import usage

from openclaw.cli.base import CommandOptions
from openclaw.cli.remote import Failed, OneArgCommand, TimedOptions
from openclaw.config import EX_CONFIG, ConfigError, load_valid


class NodeRunOptions(CommandOptions):
    synopsis = "[--host H] [--port P] [--bridge | --ws] [--display-name NAME] [--token T]"
    longdesc = "Run a headless node host: system.run (behind exec-approvals.json), system.which, system.notify, location.get."
    optParameters = [
        ["host", None, "127.0.0.1", "Gateway host."],
        ["port", None, None, "Gateway port (WebSocket) or bridge port (with --bridge).", int],
        ["display-name", None, None, "Name shown to operators."],
        ["token", None, None, "Gateway token (WebSocket mode)."],
    ]
    optFlags = [["bridge", None, "Connect over the JSONL bridge (gateway port + 1)."], ["ws", None, "Connect over the WebSocket (default)."]]

    def postOptions(self) -> None:
        if self["bridge"] and self["ws"]:
            raise usage.UsageError("--bridge and --ws exclude each other")

    def run(self, env: Mapping[str, str], out: IO[str], err: IO[str]) -> int:
        from twisted.internet import reactor, task

        from openclaw.nodehost.runner import NodeHost

        layout = self.layout(env)
        try:
            loaded = load_valid(layout, env)
        except ConfigError as e:
            err.write(e.describe() + "\n")
            return EX_CONFIG
        env = loaded.env  # with the .env files
        gateway = loaded.config.get("gateway") or {}
        base = int(env.get("OPENCLAW_GATEWAY_PORT") or gateway.get("port") or layout.default_port)
        port = self["port"] or (base + 1 if self["bridge"] else base)
        token = self["token"] or env.get("OPENCLAW_GATEWAY_TOKEN") or (gateway.get("auth") or {}).get("token")

        def status(text: str) -> None:
            out.write(f"[node] {text}\n")
            out.flush()

        host = NodeHost(reactor, layout.state_dir, self["host"], port, bridge=bool(self["bridge"]), display_name=self["display-name"], token=token, on_status=status)
        reactor.addSystemEventTrigger("before", "shutdown", host.stop)
        try:
            task.react(lambda r: Deferred.fromCoroutine(host.run()))
        except SystemExit as e:
            return int(e.code or 0)
        return 0


class NodesListOptions(TimedOptions):
    async def go(self, reactor: Any, env: Mapping[str, str], out: IO[str]) -> None:
        nodes = (await self.call_once(reactor, env, "node.list"))["nodes"]
        if self["json"]:
            self.emit(out, {"nodes": nodes})
            return
        if not nodes:
            out.write("No nodes.\n")
        for n in nodes:
            state = "connected" if n.get("connected") else "offline"
            out.write(f"{n['nodeId']}  {n.get('displayName', '')}  {n.get('platform', '')}  {state}  commands={','.join(n.get('commands', []))}\n")


class NodesStatusOptions(NodesListOptions):
    async def go(self, reactor: Any, env: Mapping[str, str], out: IO[str]) -> None:
        nodes = (await self.call_once(reactor, env, "node.list"))["nodes"]
        summary = {"total": len(nodes), "connected": sum(1 for n in nodes if n.get("connected")), "nodes": nodes}
        if self["json"]:
            self.emit(out, summary)
        else:
            out.write(f"{summary['connected']} of {summary['total']} nodes connected\n")


class _NodeTarget(TimedOptions):
    optParameters = [["node", None, None, "Node id, id prefix, or display name."]]

    async def resolve_node(self, connection: Any) -> str:
        wanted = self["node"]
        if not wanted:
            raise Failed("--node is required")
        nodes = (await self.call(connection, "node.list"))["nodes"]
        for match in (
            [n for n in nodes if n["nodeId"] == wanted],
            [n for n in nodes if n.get("displayName") == wanted],
            [n for n in nodes if n["nodeId"].startswith(wanted)],
        ):
            if len(match) == 1:
                return match[0]["nodeId"]
            if len(match) > 1:
                raise Failed(f"--node {wanted!r} matches {len(match)} nodes; give more of the id")
        raise Failed(f"no node matches {wanted!r}")


class NodesDescribeOptions(_NodeTarget):
    async def go(self, reactor: Any, env: Mapping[str, str], out: IO[str]) -> None:
        connection = await self.connection(reactor, env)
        try:
            self.emit(out, await self.call(connection, "node.describe", {"nodeId": await self.resolve_node(connection)}))
        finally:
            connection.close()


class NodesRenameOptions(_NodeTarget):
    optParameters = [["name", None, None, "The new display name."]]

    async def go(self, reactor: Any, env: Mapping[str, str], out: IO[str]) -> None:
        if not self["name"]:
            raise Failed("--name is required")
        connection = await self.connection(reactor, env)
        try:
            self.emit(out, await self.call(connection, "node.rename", {"nodeId": await self.resolve_node(connection), "displayName": self["name"]}))
        finally:
            connection.close()


class NodesInvokeOptions(_NodeTarget):
    optParameters = [
        ["command", None, None, "The node command, e.g. system.run."],
        ["params", None, "{}", "Command params as JSON."],
        ["invoke-timeout", None, None, "How long the node may take (ms).", int],
    ]

    def postOptions(self) -> None:
        try:
            self["parsed"] = json.loads(self["params"])
        except ValueError as e:
            raise usage.UsageError(f"--params is not JSON: {e}")
        if not self["command"]:
            raise usage.UsageError("--command is required")

    async def go(self, reactor: Any, env: Mapping[str, str], out: IO[str]) -> None:
        connection = await self.connection(reactor, env)
        try:
            params: dict[str, Any] = {"nodeId": await self.resolve_node(connection), "command": self["command"], "params": self["parsed"], "idempotencyKey": str(uuid.uuid4())}
            if self["invoke-timeout"]:
                params["timeoutMs"] = self["invoke-timeout"]
            result = await self.call(connection, "node.invoke", params)
        finally:
            connection.close()
        if self["json"] or not isinstance(result.get("payload"), dict) or "stdout" not in result["payload"]:
            self.emit(out, result)
            return
        payload = result["payload"]  # system.run: print what the command printed
        out.write(payload.get("stdout", ""))
        sys.stderr.write(payload.get("stderr", ""))
        if not payload.get("success"):
            raise Failed(f"exit code {payload.get('exitCode')}" + (" (timed out)" if payload.get("timedOut") else ""), 1)


class NodesPendingOptions(TimedOptions):
    async def go(self, reactor: Any, env: Mapping[str, str], out: IO[str]) -> None:
        self.emit(out, await self.call_once(reactor, env, "node.pair.list"))


class NodesApproveOptions(OneArgCommand):
    synopsis = "<requestId>"
    method, key = "node.pair.approve", "requestId"


class NodesRejectOptions(OneArgCommand):
    synopsis = "<requestId>"
    method, key = "node.pair.reject", "requestId"


class NodesOptions(CommandOptions):
    synopsis = "status|list|describe|pending|approve|reject|rename|invoke"
    subCommands = [
        ["status", None, NodesStatusOptions, "How many nodes are connected."],
        ["list", None, NodesListOptions, "Known and connected nodes."],
        ["describe", None, NodesDescribeOptions, "One node (--node)."],
        ["pending", None, NodesPendingOptions, "Pending node pairing requests."],
        ["approve", None, NodesApproveOptions, "Approve a node pairing request."],
        ["reject", None, NodesRejectOptions, "Reject a node pairing request."],
        ["rename", None, NodesRenameOptions, "Rename a node (--node --name)."],
        ["invoke", None, NodesInvokeOptions, "Run a command on a node (--node --command --params)."],
    ]


class NodeOptions(CommandOptions):
    synopsis = "run"
    subCommands = [["run", None, NodeRunOptions, "Run this machine as a node host."]]
