# -*- test-case-name: tests.test_uimethods -*-
"""
Upstream features this gateway does not have, answered the way upstream
answers when they are off, so that its Control UI shows "nothing here"
instead of an error:

  - C{question.list}: agents asking the operator structured questions (no
    such tool here): no questions;
  - C{tasks.list}: upstream's background task ledger (runs here are not
    tasks; they are in C{chat}/C{agent} events): no tasks;
  - C{plugin.approval.list}, C{openclaw.approval.list}: approvals raised
    by plugins and by upstream's system agent (neither exists here): none
    pending;
  - C{talk.catalog}: voice providers (no speech or realtime voice here):
    nothing configured, not ready;
  - C{update.status}: self-update (install and update this gateway with pip):
    no update information, automatic updates off;
  - C{progressCard.get}: agent-written progress cards: none;
  - C{sessions.companion.state}: the side "companion" Q&A: no exchanges;
  - C{sessions.observer.visibility}: observer digests of sessions (none are
    made here): acknowledged.

Each answer has upstream's shape, and each method accepts upstream's params
(checked like every other method), so bad input is still refused.
"""

from __future__ import annotations

import attrs

from openclaw.protocol.dispatch import JSON, Caller, MethodTable, Params
from openclaw.shape import Bool, Either, Int, List, Obj, Str

TASK_STATUSES = ("queued", "running", "completed", "failed", "cancelled", "timed_out")
_KEY = Str(nonempty=True)


@attrs.frozen
class AbsentDeps:
    """These answers depend on nothing: the feature is not there."""


ABSENT_METHODS: MethodTable[AbsentDeps] = MethodTable()


@ABSENT_METHODS.method("question.list")
def question_list(ad: AbsentDeps, caller: Caller, params: Params) -> JSON:
    return {"questions": []}


_TASKS = Obj(
    {
        "status": Either((Str(TASK_STATUSES), List(Str(TASK_STATUSES)))),
        "agentId": _KEY,
        "sessionKey": _KEY,
        "limit": Int(1, 500),
        "cursor": Str(max_length=512),
        "sortBy": Str(("updatedAt", "endedAt")),
    },
    closed=True,
)


@ABSENT_METHODS.method("tasks.list", _TASKS)
def tasks_list(ad: AbsentDeps, caller: Caller, params: Params) -> JSON:
    return {"tasks": []}


@ABSENT_METHODS.method("plugin.approval.list")
def plugin_approval_list(ad: AbsentDeps, caller: Caller, params: Params) -> JSON:
    return []


@ABSENT_METHODS.method("openclaw.approval.list")
def openclaw_approval_list(ad: AbsentDeps, caller: Caller, params: Params) -> JSON:
    return []


def _no_providers() -> dict[str, JSON]:
    return {"ready": False, "providers": []}


@ABSENT_METHODS.method("talk.catalog", Obj({"provider": _KEY, "model": _KEY}, closed=True))
def talk_catalog(ad: AbsentDeps, caller: Caller, params: Params) -> JSON:
    return {"modes": [], "transports": [], "brains": [], "speech": _no_providers(), "transcription": _no_providers(), "realtime": _no_providers()}


@ABSENT_METHODS.method("update.status", Obj({"refreshCheckout": Bool()}, closed=True))
def update_status(ad: AbsentDeps, caller: Caller, params: Params) -> JSON:
    return {"sentinel": None, "updateAvailable": None, "schedule": {"channel": "stable", "autoEnabled": False, "install": {"kind": "package"}}}


@ABSENT_METHODS.method("progressCard.get", Obj({"sessionKey": _KEY, "agentId": _KEY}, required=("sessionKey",), closed=True))
def progress_card_get(ad: AbsentDeps, caller: Caller, params: Params) -> JSON:
    return {"card": None}


@ABSENT_METHODS.method("sessions.companion.state", Obj({"sessionKey": _KEY, "agentId": _KEY}, required=("sessionKey",), closed=True))
def companion_state(ad: AbsentDeps, caller: Caller, params: Params) -> JSON:
    return {"exchanges": []}


@ABSENT_METHODS.method("sessions.observer.visibility", Obj({"visible": Bool()}, required=("visible",), closed=True))
def observer_visibility(ad: AbsentDeps, caller: Caller, params: Params) -> JSON:
    """Whether the caller shows session observer digests: there are none to stream here, so nothing changes."""
    return {"ok": True}
