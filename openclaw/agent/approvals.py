# -*- test-case-name: tests.test_approvals -*-
"""
Exec approvals on the gateway: which host an C{exec} runs on, whether it may,
and the operator's say when the policy asks for it.

C{tools.exec.host} (C{sandbox}, the default; C{gateway}; C{node}) picks the
host; a tool call may only name the configured one. C{sandbox} runs in the
session's sandbox when it has one, else directly on the gateway host with no
approvals (upstream's rule). On C{gateway} and C{node} the policy is the
stricter of C{tools.exec.security|ask} (per agent: C{agents.list[].tools.exec})
and the host's C{exec-approvals.json} (L{openclaw.agent.execpolicy}). When
it asks, the run waits: L{ApprovalQueue} broadcasts C{exec.approval.requested}
to C{operator.approvals} holders, and the first C{exec.approval.resolve}
(C{allow-once}, C{allow-always}: remembered in the allowlist, C{deny}) wins;
no answer in time means C{askFallback}.

The wait is bounded: at most C{DEFAULT_TIMEOUT}, and never past the run's
own deadline (less time for the model to answer). A run nobody watches
(cron, heartbeats: L{ExecCall.unattended}) does not wait when no approver
is connected: C{askFallback} decides at once, as upstream does when no
approval UI is reachable.
"""

from __future__ import annotations

import uuid
from typing import Any, Callable, Mapping, Protocol

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from openclaw.agent.execpolicy import (
    DECISIONS,
    FILE_NAME,
    SECURITY,
    ASK,
    Analysis,
    ApprovalsFile,
    Check,
    analyze_argv,
    analyze_shell,
    check,
    louder,
    needs_approval,
    normalize,
    resolve,
    safe_bins_from,
    stricter,
)
from openclaw.config.settings import GatewaySettings
from openclaw.interfaces import EventSink
from openclaw.protocol.errors import INVALID_REQUEST, UNAVAILABLE, GatewayError

log = Logger(namespace="openclaw.approvals")

HOSTS = ("sandbox", "gateway", "node")
DEFAULT_TIMEOUT = 120.0  # seconds an operator has to answer (upstream's)
REPLY_RESERVE = 15.0  # seconds left to the run after a wait, for the model to take the answer
MIN_WAIT = 1.0  # less than this left: not worth asking
MAX_PENDING = 200
WITHDRAWN_BY = "gateway (the run ended)"


class ExecDenied(Exception):
    """An exec the policy (or the operator) refused; the message goes back to the model."""


@attrs.frozen
class ExecSettings:
    """C{tools.exec}, with an agent's C{agents.list[].tools.exec} over it."""

    host: str = "sandbox"
    security: str | None = None
    ask: str | None = None
    safe_bins: frozenset[str] = frozenset()
    node: str | None = None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def exec_settings(config: Mapping[str, Any], agent_id: str) -> ExecSettings:
    block = dict(_dict(_dict(config.get("tools")).get("exec")))
    listed = _dict(config.get("agents")).get("list")
    for entry in listed if isinstance(listed, list) else []:
        if isinstance(entry, dict) and entry.get("id") == agent_id:
            block.update(_dict(_dict(entry.get("tools")).get("exec")))
    return ExecSettings(
        host=block["host"] if block.get("host") in HOSTS else "sandbox",
        security=block["security"] if block.get("security") in SECURITY else None,
        ask=block["ask"] if block.get("ask") in ASK else None,
        safe_bins=safe_bins_from(block.get("safeBins")),
        node=block["node"] if isinstance(block.get("node"), str) and block["node"].strip() else None,
    )


@attrs.define
class Pending:
    """One approval waiting for an operator."""

    id: str
    request: dict[str, Any]
    created_ms: int
    expires_ms: int
    decided: Deferred[str | None]
    timer: IDelayedCall | None = None

    def record(self) -> dict[str, Any]:
        return {"id": self.id, "request": self.request, "createdAtMs": self.created_ms, "expiresAtMs": self.expires_ms}


class ApprovalQueue:
    """Pending exec approvals: announced to approvers, decided once, or expired (decision C{None})."""

    def __init__(self, clock: IReactorTime, events: EventSink | None = None, scrub: Callable[[Any], Any] = lambda value: value) -> None:
        self.clock = clock
        self.events = events
        self.scrub = scrub  # known secrets out of what approvers are shown (the gateway's redactor)
        self._pending: dict[str, Pending] = {}

    def now_ms(self) -> int:
        return int(self.clock.seconds() * 1000)

    def ask(self, request: Mapping[str, Any], timeout: float, approval_id: str | None = None, announce: bool = True) -> tuple[dict[str, Any], Deferred[str | None]]:
        """
        Queue a request; the Deferred fires with the decision, or C{None}
        after C{timeout} seconds. Cancelling it withdraws the request.

        @raise GatewayError: the id is already pending, or too many wait.
        """
        approval_id = approval_id or str(uuid.uuid4())
        if approval_id in self._pending:
            raise GatewayError(INVALID_REQUEST, "approval id already pending")
        if len(self._pending) >= MAX_PENDING:
            raise GatewayError(UNAVAILABLE, "too many exec approvals are waiting", retryable=True, retry_after_ms=5000)
        now = self.now_ms()
        decided: Deferred[str | None] = Deferred(lambda d: self._withdraw(approval_id))
        pending = Pending(approval_id, self.scrub(dict(request)), now, now + int(timeout * 1000), decided)
        pending.timer = self.clock.callLater(timeout, self._expire, approval_id)
        self._pending[approval_id] = pending
        if announce and self.events is not None:
            self.events.broadcast("exec.approval.requested", pending.record(), drop_if_slow=True)
        return pending.record(), decided

    def _withdraw(self, approval_id: str) -> None:
        """The asker gave up (its run ended): approvers drop the request, and nothing runs."""
        pending = self._pending.pop(approval_id, None)
        if pending is None:
            return
        if pending.timer is not None and pending.timer.active():
            pending.timer.cancel()
        log.info("exec approval {id} withdrawn: its run ended", id=approval_id)
        if self.events is not None:
            self.events.broadcast("exec.approval.resolved", {"id": approval_id, "decision": "deny", "resolvedBy": WITHDRAWN_BY, "ts": self.now_ms()}, drop_if_slow=True)

    def _expire(self, approval_id: str) -> None:
        pending = self._pending.pop(approval_id, None)
        if pending is not None:
            pending.timer = None
            log.info("exec approval {id} expired without a decision", id=approval_id)
            pending.decided.callback(None)

    def expire(self, approval_id: str) -> None:
        """No one can answer (no approver connected): decide C{None} now."""
        pending = self._pending.get(approval_id)
        if pending is not None:
            if pending.timer is not None and pending.timer.active():
                pending.timer.cancel()
            self._expire(approval_id)

    def resolve(self, approval_id: str, decision: str, resolved_by: str | None = None) -> bool:
        """The operator's answer; False when nothing with that id waits (unknown, decided or expired)."""
        if decision not in DECISIONS:
            raise GatewayError(INVALID_REQUEST, f"invalid decision {decision[:40]!r} (allow-once, allow-always or deny)")
        pending = self._pending.pop(approval_id, None)
        if pending is None:
            return False
        if pending.timer is not None and pending.timer.active():
            pending.timer.cancel()
        resolved: dict[str, Any] = {"id": approval_id, "decision": decision, "ts": self.now_ms()}
        if resolved_by:
            resolved["resolvedBy"] = resolved_by
        if self.events is not None:
            self.events.broadcast("exec.approval.resolved", resolved, drop_if_slow=True)
        log.info("exec approval {id}: {decision} by {by}", id=approval_id, decision=decision, by=resolved_by or "an operator")
        pending.decided.callback(decision)
        return True

    def get(self, approval_id: str) -> dict[str, Any] | None:
        pending = self._pending.get(approval_id)
        return pending.record() if pending is not None else None

    def pending(self) -> list[dict[str, Any]]:
        return [p.record() for p in sorted(self._pending.values(), key=lambda p: p.created_ms)]


class NodeRunner(Protocol):
    """The node registry as C{exec host=node} uses it (L{openclaw.nodes.registry.NodeRegistry})."""

    @property
    def links(self) -> Mapping[str, Any]: ...

    def describe(self, node_id: str, known: dict[str, Any] | None = None) -> dict[str, Any]: ...

    def invoke(self, node_id: str, command: str, params: Any, timeout_ms: int | None, idempotency_key: str | None) -> Deferred[Any]: ...


@attrs.frozen
class ExecCall:
    """One exec the agent asked for."""

    command: str | list[str]
    cwd: str
    agent_id: str
    session_key: str
    timeout: float
    node: str | None = None  # the tool call's node (host=node)
    run_id: str | None = None
    deadline: float | None = None  # clock seconds when the run times out
    unattended: bool = False  # nobody watches the run (cron, heartbeat)

    @property
    def text(self) -> str:
        return self.command if isinstance(self.command, str) else " ".join(self.command)


@attrs.frozen
class Answer:
    """The operator's C{decision}, or None and why there is none."""

    decision: str | None
    why: str = "no approval in time"


class ExecGate:
    """The gateway side of exec approvals (the node host enforces its own file too)."""

    def __init__(self, settings: GatewaySettings, clock: IReactorTime, queue: ApprovalQueue | None = None, approvers: Callable[[], bool] = lambda: True) -> None:
        self.settings = settings
        self.clock = clock
        self.queue = queue
        self.approvers = approvers  # whether a connection that may answer (operator.approvals) is there
        self.file = ApprovalsFile(settings.state_dir / FILE_NAME)
        self.timeout = DEFAULT_TIMEOUT

    def wait_for(self, call: ExecCall) -> float | None:
        """How long to wait for an answer: the gate's timeout, cut to leave the run time to use it (None: no time)."""
        if call.deadline is None:
            return self.timeout
        left = call.deadline - self.clock.seconds()
        budget = left - min(REPLY_RESERVE, left / 2)
        return min(self.timeout, budget) if budget >= MIN_WAIT else None

    def config(self, agent_id: str) -> ExecSettings:
        return exec_settings(self.settings.config, agent_id)

    def host(self, agent_id: str, requested: Any) -> str:
        """Where this exec runs: the configured host; a tool call may not pick another."""
        configured = self.config(agent_id).host
        if requested in (None, ""):
            return configured
        if requested not in HOSTS:
            raise ExecDenied(f"exec host must be one of {', '.join(HOSTS)}")
        if requested != configured:
            raise ExecDenied(f"exec host not allowed (requested {requested}; configure tools.exec.host={requested} to allow)")
        return configured

    def _policy(self, call: ExecCall, host: str) -> tuple[str, str, str, tuple[Mapping[str, Any], ...]]:
        settings = self.config(call.agent_id)
        security, ask = settings.security or "allowlist", settings.ask or "on-miss"
        policy = resolve(self.file.read().file, call.agent_id, security, ask)
        security, ask = stricter(security, policy.security), louder(ask, policy.ask)
        if security == "deny":
            raise ExecDenied(f"exec denied: host={host} security=deny (tools.exec.security or exec-approvals.json)")
        return security, ask, policy.ask_fallback, policy.allowlist

    async def _ask(self, call: ExecCall, host: str, security: str, ask: str, analysis: Analysis, node_id: str | None = None) -> Answer:
        """The operator's decision, or none (no decision in time, nobody to ask, no time left)."""
        if self.queue is None or (call.unattended and not self.approvers()):
            return self._unasked(call, "nobody could approve it (no client with operator.approvals is connected)")
        wait = self.wait_for(call)
        if wait is None:
            return self._unasked(call, "no time left in the run to ask for approval")
        request: dict[str, Any] = {"command": call.text[:10_000], "cwd": call.cwd, "host": host, "security": security, "ask": ask, "agentId": call.agent_id, "sessionKey": call.session_key}
        resolved = analysis.segments[0].resolved if analysis.ok and analysis.segments else None
        if resolved:
            request["resolvedPath"] = resolved
        if node_id:
            request["nodeId"] = node_id
        if call.run_id:
            request["runId"] = call.run_id
        record, decided = self.queue.ask(request, wait)
        log.info("exec approval {id} requested: {command}", id=record["id"], command=call.text[:200])
        decision = await decided
        if decision is None:
            log.warn("exec approval {id} for run {run}: no decision within {wait:.0f} s", id=record["id"], run=call.run_id, wait=wait)
        return Answer(decision)

    def _unasked(self, call: ExecCall, why: str) -> Answer:
        log.warn("exec in run {run} not put to an operator: {why}: {command}", run=call.run_id, why=why, command=call.text[:200])
        return Answer(None, why)

    async def approve_gateway(self, call: ExecCall, path_env: str) -> None:
        """
        An exec on the gateway host: returns when it may run.

        @raise ExecDenied: it may not (policy, the operator, or no decision and C{askFallback}).
        """
        security, ask, fallback, allowlist = self._policy(call, "gateway")
        analysis = analyze_shell(call.command, call.cwd, path_env) if isinstance(call.command, str) else analyze_argv(call.command, call.cwd, path_env)
        found = check(analysis, allowlist, self.config(call.agent_id).safe_bins, call.cwd) if security == "allowlist" else Check(True)
        if needs_approval(ask, security, analysis.ok, found.satisfied):
            answer = await self._ask(call, "gateway", security, ask, analysis)
            self._after(call, answer, fallback, analysis, found)
        elif security == "allowlist" and not (analysis.ok and found.satisfied):
            raise ExecDenied(f"exec denied: allowlist miss ({analysis.reason or 'not in the allowlist of exec-approvals.json'})")
        if found.matched:
            resolved = analysis.segments[0].resolved if analysis.segments else None
            self.file.change(call.agent_id, used={str(e["pattern"]): (call.text, resolved) for e in found.matched})

    def _after(self, call: ExecCall, answer: Answer, fallback: str, analysis: Analysis, found: Check) -> None:
        decision = answer.decision
        if decision == "deny":
            raise ExecDenied("exec denied: the operator denied it")
        if decision is None:
            if fallback == "full" or (fallback == "allowlist" and analysis.ok and found.satisfied):
                return
            raise ExecDenied(f"exec denied: {answer.why} (askFallback={fallback})")
        if decision == "allow-always" and analysis.ok:
            patterns = [s.resolved for s in analysis.segments if s.resolved]
            if patterns:
                self.file.change(call.agent_id, add=patterns)

    # -- nodes

    def pick_node(self, nodes: NodeRunner, wanted: str | None) -> str:
        """A connected node that runs commands: the one named (id, name or id prefix), or the only one."""
        able = {}
        for node_id in list(nodes.links):
            described = nodes.describe(node_id)
            if "system.run" in (described.get("commands") or []):
                able[node_id] = described
        if not able:
            raise ExecDenied("exec host=node needs a connected node that offers system.run (a node host: `openclaw node run`)")
        if wanted:
            exact = [i for i, d in able.items() if wanted in (i, d.get("displayName"))]
            found = exact or [i for i in able if i.startswith(wanted)]
            if len(found) == 1:
                return found[0]
            raise ExecDenied(f"exec node {wanted!r} " + ("matches several nodes; give more of its id" if found else "is not connected"))
        if len(able) > 1:
            raise ExecDenied("exec host=node: several nodes are connected; set tools.exec.node or pass node")
        return next(iter(able))

    async def run_on_node(self, nodes: NodeRunner | None, call: ExecCall) -> dict[str, Any]:
        """
        C{system.run} on a node, asking the operator first when the policy
        says so; the node checks its own C{exec-approvals.json} as well.

        @return: the node's result (C{exitCode}, C{stdout}, ...).
        @raise ExecDenied: refused here, or by the node.
        """
        if nodes is None:
            raise ExecDenied("exec host=node is not available here")
        security, ask, fallback, _ = self._policy(call, "node")
        node_id = self.pick_node(nodes, call.node or self.config(call.agent_id).node)
        argv = ["/bin/sh", "-lc", call.command] if isinstance(call.command, str) else list(call.command)
        analysis = analyze_shell(call.command, call.cwd, "") if isinstance(call.command, str) else analyze_argv(argv, call.cwd, "")
        found = Check(False)
        if ask == "on-miss" and security == "allowlist" and analysis.ok:
            found = await self._node_allowlist(nodes, node_id, call, analysis)
        approved, decision = False, None
        if needs_approval(ask, security, analysis.ok, found.satisfied):
            answer = await self._ask(call, "node", security, ask, analysis, node_id)
            decision = answer.decision
            if decision == "deny":
                raise ExecDenied("exec denied: the operator denied it")
            if decision is None and fallback != "full":
                if not (fallback == "allowlist" and found.satisfied):
                    raise ExecDenied(f"exec denied: {answer.why} (askFallback={fallback})")
            approved = decision is not None or fallback == "full"
        params: dict[str, Any] = {"command": argv, "timeoutMs": int(call.timeout * 1000), "agentId": call.agent_id, "sessionKey": call.session_key}
        if call.cwd:
            params["cwd"] = call.cwd  # a folder on the node; else the node host's own
        if isinstance(call.command, str):
            params["rawCommand"] = call.command
        if approved:
            params["approved"] = True
            params["approvalDecision"] = decision if decision in ("allow-once", "allow-always") else "allow-once"
        try:
            result = await nodes.invoke(node_id, "system.run", params, int(call.timeout * 1000) + 5000, str(uuid.uuid4()))
        except GatewayError as e:
            raise ExecDenied(f"exec on node {node_id} failed: {e.message}")
        payload = result.get("payload") if isinstance(result, dict) else None
        return payload if isinstance(payload, dict) else {}

    async def _node_allowlist(self, nodes: NodeRunner, node_id: str, call: ExecCall, analysis: Analysis) -> Check:
        """The node's own allowlist, to skip asking for what it allows anyway (unknown: ask)."""
        try:
            result = await nodes.invoke(node_id, "system.execApprovals.get", {}, 10_000, None)
        except GatewayError:
            return Check(False)
        payload = result.get("payload") if isinstance(result, dict) else None
        file = normalize(payload.get("file")) if isinstance(payload, dict) else None
        if file is None:
            return Check(False)
        policy = resolve(file, call.agent_id, "allowlist")
        # The node resolves paths on its own machine; here only what the command names as a path can match.
        named = Analysis(True, tuple(tuple(attrs.evolve(s, resolved=s.argv[0] if s.argv[0].startswith("/") else None) for s in chain) for chain in analysis.chains))
        return check(named, policy.allowlist, frozenset(), call.cwd)

