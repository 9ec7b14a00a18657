# -*- test-case-name: tests.test_skills -*-
"""C{skills.status} (operator.read) and C{skills.bins} (nodes), over L{openclaw.skills.loader}."""

from __future__ import annotations

from typing import Any, Callable, TypeVar

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorThreads, IReactorTime
from twisted.internet.threads import deferToThreadPool

from openclaw.protocol.dispatch import JSON, Caller, MethodTable, Params
from openclaw.protocol.errors import INVALID_REQUEST, GatewayError
from openclaw.shape import Obj, Str
from openclaw.skills.loader import SkillScope

T = TypeVar("T")


@attrs.frozen
class SkillDeps:
    """What the skills methods work with: the agents' skill scope, the agent ids, the reactor for threads."""

    scope: SkillScope
    agents: frozenset[str]
    reactor: IReactorTime

    def blocking(self, f: Callable[[], T]) -> Deferred[T] | T:
        """C{f} in the reactor's thread pool (skill folders are read, PATH probed); inline on a test clock."""
        if not IReactorThreads.providedBy(self.reactor):
            return f()
        threads: Any = self.reactor
        return deferToThreadPool(self.reactor, threads.getThreadPool(), f)


SKILL_METHODS: MethodTable[SkillDeps] = MethodTable()


@SKILL_METHODS.method("skills.status", Obj({"agentId": Str(nonempty=True), "sessionKey": Str(nonempty=True)}, closed=True))
def skills_status(deps: SkillDeps, caller: Caller, params: Params) -> JSON:
    agent = params.get("agentId")
    if agent is None and params.get("sessionKey", "").startswith("agent:"):
        agent = params["sessionKey"].split(":")[1]
    if agent is not None and agent not in deps.agents:
        raise GatewayError(INVALID_REQUEST, f'unknown agent id "{agent[:64]}"')
    return deps.blocking(deps.scope.report)


@SKILL_METHODS.method("skills.bins")
def skills_bins(deps: SkillDeps, caller: Caller, params: Params) -> JSON:
    return deps.blocking(lambda: {"bins": deps.scope.bins()})
