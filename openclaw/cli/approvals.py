# -*- test-case-name: tests.test_approvals -*-
"""
C{openclaw approvals}: exec approvals policy and pending requests.

  - C{get}, C{set --file PATH | --stdin}, C{allowlist add|remove PATTERN
    [--agent ID]}: this machine's C{exec-approvals.json} by default, the
    gateway's with C{--gateway}, a node host's with C{--node ID}.
  - C{pending}, C{approve ID [--always]}, C{deny ID}, C{resolve ID
    DECISION}: the exec approvals waiting on the gateway now.
"""

from __future__ import annotations

import json
import sys
from typing import IO, Any, Mapping

from twisted.python import usage

from openclaw.agent.execpolicy import DECISIONS, FILE_NAME, ApprovalsFile, PolicyFileError, Snapshot, view
from openclaw.cli.base import CommandOptions
from openclaw.cli.nodes import _NodeTarget
from openclaw.cli.remote import Failed, TimedOptions


class _Target(_NodeTarget):
    """Where the policy lives: local (default), C{--gateway}, or C{--node}."""

    optFlags = [["gateway", None, "The gateway's approvals."]]

    def postOptions(self) -> None:
        if self["gateway"] and self["node"]:
            raise usage.UsageError("use --gateway or --node, not both")

    def remote(self) -> bool:
        return bool(self["gateway"] or self["node"])

    def local_file(self, env: Mapping[str, str]) -> ApprovalsFile:
        return ApprovalsFile(self.layout(env).state_dir / FILE_NAME)

    async def fetch(self, connection: Any) -> tuple[dict[str, Any], str | None]:
        """The remote snapshot, and the node it came from (None: the gateway)."""
        if self["node"]:
            node_id = await self.resolve_node(connection)
            return await self.call(connection, "exec.approvals.node.get", {"nodeId": node_id}), node_id
        return await self.call(connection, "exec.approvals.get", {}), None

    async def store(self, connection: Any, node_id: str | None, file: dict[str, Any], base_hash: str | None) -> Any:
        params: dict[str, Any] = {"file": file}
        if base_hash:
            params["baseHash"] = base_hash
        if node_id:
            return await self.call(connection, "exec.approvals.node.set", {"nodeId": node_id, **params})
        return await self.call(connection, "exec.approvals.set", params)

    def show(self, out: IO[str], snapshot: Mapping[str, Any], where: str) -> None:
        if self["json"]:
            self.emit(out, snapshot)
            return
        file = snapshot.get("file") or {}
        out.write(f"Exec approvals ({where}): {snapshot.get('path')}" + ("" if snapshot.get("exists") else " (not written yet: defaults apply)") + "\n")
        defaults = file.get("defaults") or {}
        resolved = snapshot.get("resolvedDefaults") or {}
        for key in ("security", "ask", "askFallback"):
            value = defaults.get(key)
            out.write(f"  {key}: {value if value else (resolved.get(key, 'default') + ' (default)' if resolved else 'default')}\n")
        agents = file.get("agents") or {}
        if not agents:
            out.write("  no agent entries, no allowlist\n")
        for name, agent in sorted(agents.items()):
            policy = ", ".join(f"{k}={agent[k]}" for k in ("security", "ask", "askFallback") if k in agent)
            out.write(f"  agent {name}" + (f": {policy}" if policy else "") + "\n")
            for entry in agent.get("allowlist") or []:
                used = f"  (last used: {entry['lastUsedCommand']})" if entry.get("lastUsedCommand") else ""
                out.write(f"    allow {entry.get('pattern')}{used}\n")


def _local_snapshot(snapshot: Snapshot) -> dict[str, Any]:
    return {"path": str(snapshot.path), "exists": snapshot.exists, "hash": snapshot.hash, "file": view(snapshot.file)}


class GetOptions(_Target):
    synopsis = "[--gateway | --node ID] [--json]"

    async def go(self, reactor: Any, env: Mapping[str, str], out: IO[str]) -> None:
        if not self.remote():
            self.show(out, _local_snapshot(self.local_file(env).read()), "local")
            return
        connection = await self.connection(reactor, env)
        try:
            snapshot, node_id = await self.fetch(connection)
        finally:
            connection.close()
        self.show(out, snapshot, f"node {node_id}" if node_id else "gateway")


class SetOptions(_Target):
    synopsis = "--file PATH | --stdin [--gateway | --node ID]"
    optParameters = [["file", None, None, "The new exec-approvals.json."]]
    optFlags = [["stdin", None, "Read the file from standard input."]]

    def postOptions(self) -> None:
        super().postOptions()
        if bool(self["file"]) == bool(self["stdin"]):
            raise usage.UsageError("give --file PATH or --stdin")

    def incoming(self) -> dict[str, Any]:
        try:
            text = sys.stdin.read() if self["stdin"] else open(self["file"], encoding="utf-8").read()
        except OSError as e:
            raise Failed(f"cannot read {self['file']}: {e.strerror}")
        try:
            value = json.loads(text)
        except ValueError as e:
            raise Failed(f"not JSON: {e}")
        if not isinstance(value, dict) or value.get("version") != 1:
            raise Failed('an approvals file is a JSON object with "version": 1')
        return value

    async def go(self, reactor: Any, env: Mapping[str, str], out: IO[str]) -> None:
        file = self.incoming()
        if not self.remote():
            local = self.local_file(env)
            try:
                snapshot = local.replace(file, local.read().hash)
            except PolicyFileError as e:
                raise Failed(str(e))
            self.show(out, _local_snapshot(snapshot), "local")
            return
        connection = await self.connection(reactor, env)
        try:
            current, node_id = await self.fetch(connection)
            stored = await self.store(connection, node_id, file, current.get("hash") if current.get("exists") else None)
        finally:
            connection.close()
        self.show(out, stored, f"node {node_id}" if node_id else "gateway")


class _AllowlistChange(_Target):
    synopsis = "<pattern> [--agent ID] [--gateway | --node ID]"
    optParameters = [["agent", None, "*", 'Agent id ("*": every agent).']]
    adding = True

    def parseArgs(self, pattern: str) -> None:
        if not pattern.strip():
            raise usage.UsageError("the pattern must not be empty")
        self["pattern"] = pattern.strip()

    def changed(self, file: Mapping[str, Any]) -> dict[str, Any]:
        """C{file} with the pattern added to (or removed from) the agent's allowlist."""
        copy = json.loads(json.dumps(file))
        agent = copy.setdefault("agents", {}).setdefault(self["agent"], {})
        entries = [e for e in agent.get("allowlist") or [] if str(e.get("pattern", "")).lower() != self["pattern"].lower()]
        if self.adding:
            entries.append({"pattern": self["pattern"]})
        elif len(entries) == len(agent.get("allowlist") or []):
            raise Failed(f"{self['pattern']!r} is not in the allowlist of agent {self['agent']!r}")
        agent["allowlist"] = entries
        if not entries:
            del agent["allowlist"]
        return copy

    async def go(self, reactor: Any, env: Mapping[str, str], out: IO[str]) -> None:
        if "/" not in self["pattern"] and "~" not in self["pattern"] and self.adding:
            out.write(f"note: {self['pattern']!r} has no path; patterns match resolved paths, so it matches nothing\n")
        if not self.remote():
            local = self.local_file(env)
            read = local.read()
            self.show(out, _local_snapshot(local.replace(self.changed(read.file), read.hash)), "local")
            return
        connection = await self.connection(reactor, env)
        try:
            current, node_id = await self.fetch(connection)
            stored = await self.store(connection, node_id, self.changed(current.get("file") or {"version": 1}), current.get("hash") if current.get("exists") else None)
        finally:
            connection.close()
        self.show(out, stored, f"node {node_id}" if node_id else "gateway")


class AllowlistAddOptions(_AllowlistChange):
    adding = True


class AllowlistRemoveOptions(_AllowlistChange):
    adding = False


class AllowlistOptions(CommandOptions):
    synopsis = "add|remove <pattern>"
    subCommands = [
        ["add", None, AllowlistAddOptions, "Allow a program path (glob) for an agent."],
        ["remove", None, AllowlistRemoveOptions, "Remove a pattern."],
    ]


class PendingOptions(TimedOptions):
    synopsis = "[--json]"

    async def go(self, reactor: Any, env: Mapping[str, str], out: IO[str]) -> None:
        pending = await self.call_once(reactor, env, "exec.approval.list", {})
        if self["json"]:
            self.emit(out, {"approvals": pending})
            return
        if not pending:
            out.write("No pending exec approvals.\n")
        for record in pending:
            request = record.get("request") or {}
            left = max(0, (int(record.get("expiresAtMs", 0)) - int(reactor.seconds() * 1000)) // 1000)
            out.write(f"{record['id']}  {request.get('command', '')}\n    host={request.get('host', '?')} agent={request.get('agentId', '?')} session={request.get('sessionKey', '?')} cwd={request.get('cwd', '?')} expires in {left} s\n")


class ResolveOptions(TimedOptions):
    synopsis = "<id> <allow-once|allow-always|deny>"

    def parseArgs(self, approval_id: str, decision: str) -> None:
        if decision not in DECISIONS:
            raise usage.UsageError(f"decision: one of {', '.join(DECISIONS)}")
        self["id"], self["decision"] = approval_id, decision

    async def go(self, reactor: Any, env: Mapping[str, str], out: IO[str]) -> None:
        await self.call_once(reactor, env, "exec.approval.resolve", {"id": self["id"], "decision": self["decision"]})
        if self["json"]:
            self.emit(out, {"ok": True, "id": self["id"], "decision": self["decision"]})
        else:
            out.write(f"{self['id']}: {self['decision']}\n")


class ApproveOptions(ResolveOptions):
    synopsis = "<id> [--always]"
    optFlags = [["always", None, "Allow it and remember the program in the allowlist."]]

    def parseArgs(self, approval_id: str) -> None:
        self["id"], self["decision"] = approval_id, None

    def postOptions(self) -> None:
        self["decision"] = "allow-always" if self["always"] else "allow-once"


class DenyOptions(ResolveOptions):
    synopsis = "<id>"

    def parseArgs(self, approval_id: str) -> None:
        self["id"], self["decision"] = approval_id, "deny"


class ApprovalsOptions(CommandOptions):
    synopsis = "get|set|allowlist|pending|approve|deny|resolve"
    longdesc = "Exec approvals: the policy (this machine's by default, --gateway, --node) and the requests waiting now."
    subCommands = [
        ["get", None, GetOptions, "Show the exec approvals policy."],
        ["set", None, SetOptions, "Replace it with a JSON file (--file or --stdin)."],
        ["allowlist", None, AllowlistOptions, "Add or remove allowlist patterns."],
        ["pending", None, PendingOptions, "Exec approvals waiting on the gateway."],
        ["approve", None, ApproveOptions, "Allow a waiting exec (--always: remember it)."],
        ["deny", None, DenyOptions, "Deny a waiting exec."],
        ["resolve", None, ResolveOptions, "Answer a waiting exec: allow-once, allow-always or deny."],
    ]
