# -*- test-case-name: tests.test_scopes -*-
"""Who may call what: roles, operator scopes and their implications (v3 table)."""

from __future__ import annotations

from typing import Iterable

from openclaw.protocol.connect import ADMIN, APPROVALS, PAIRING, QUESTIONS, READ, ROLE_CHANNEL, ROLE_NODE, ROLE_OPERATOR, WRITE
from openclaw.protocol.errors import FORBIDDEN, INVALID_REQUEST, GatewayError
from openclaw.protocol.versions import Version

NODE_METHODS = frozenset({"node.invoke.result", "node.event", "skills.bins"})
# An out-of-process channel adapter calls these, and nothing else (not even health).
CHANNEL_METHODS = frozenset({"channel.register", "channel.inbound", "channel.sent"})

_READ = {
    "health", "logs.tail", "channels.status", "status", "usage.status", "usage.cost", "tts.status",
    "tts.providers", "models.list", "agents.list", "agent.identity.get", "skills.status", "voicewake.get",
    "sessions.list", "sessions.preview", "cron.list", "cron.status", "cron.runs", "cron.get", "system-presence",
    "last-heartbeat", "node.list", "node.describe", "chat.history", "diagnostics.stability",
    # what the v4 Control UI reads
    "chat.startup", "chat.metadata", "sessions.describe", "sessions.branches.list", "sessions.subscribe",
    "sessions.unsubscribe", "sessions.messages.subscribe", "sessions.messages.unsubscribe",
    "sessions.observer.visibility", "sessions.companion.state", "environments.list", "system.info", "plugins.list", "plugins.catalog.browse",
    "models.authStatus", "tasks.list", "talk.catalog", "progressCard.get",
}
_READ_SINCE_V4 = {"config.get", "config.schema"}  # admin in v3
_WRITE = {
    "send", "agent", "agent.wait", "wake", "talk.mode", "tts.enable", "tts.disable", "tts.convert",
    "tts.setProvider", "voicewake.set", "node.invoke", "chat.send", "chat.abort", "browser.request", "poll",
}
_APPROVALS = {"exec.approval.request", "exec.approval.resolve", "exec.approval.list", "exec.approval.get", "plugin.approval.list", "openclaw.approval.list"}
_QUESTIONS = {"question.list"}
_PAIRING_PREFIXES = ("node.pair.", "device.pair.", "device.token.", "channels.pairing.")
_ADMIN_PREFIXES = ("config.", "wizard.", "update.", "exec.approvals.")

# What each scope also grants.
_IMPLIES = {WRITE: {READ, "operator.talk", "operator.sessions.read", "operator.sessions.write"}, READ: {"operator.sessions.read"}}


def required_scope(method: str, version: Version) -> str:
    """The scope an operator needs; unknown methods need admin."""
    if method in _READ or (version.number >= 4 and method in _READ_SINCE_V4):
        return READ
    if method in _WRITE:
        return WRITE
    if method in _APPROVALS:
        return APPROVALS
    if method in _QUESTIONS:
        return QUESTIONS
    if method.startswith(_PAIRING_PREFIXES) or method == "node.rename":
        return PAIRING
    return ADMIN


def effective(scopes: Iterable[str]) -> set[str]:
    have = set(scopes)
    for scope in list(have):
        have |= _IMPLIES.get(scope, set())
    return have


def has_scope(scopes: Iterable[str], needed: str) -> bool:
    if not isinstance(scopes, (list, tuple, set, frozenset)):
        scopes = list(scopes)
    if needed in scopes or ADMIN in scopes:
        return True  # the common case, without building the implied set (broadcasts ask per connection)
    have = effective(scopes)
    return ADMIN in have or needed in have


class RoleError(GatewayError):
    """The caller's role may not call this method (counted by the flood guard)."""


def authorize(method: str, role: str, scopes: Iterable[str], version: Version) -> None:
    """
    @raise RoleError: wrong role for the method.
    @raise GatewayError: missing scope (v3: INVALID_REQUEST; v4: FORBIDDEN + details).
    """
    if method in CHANNEL_METHODS or role == ROLE_CHANNEL:
        if role != ROLE_CHANNEL or method not in CHANNEL_METHODS:
            raise RoleError(INVALID_REQUEST, f"unauthorized role: {role}")
        return
    if method == "health":
        return
    if method in NODE_METHODS:
        if role != ROLE_NODE:
            raise RoleError(INVALID_REQUEST, f"unauthorized role: {role}")
        return
    if role != ROLE_OPERATOR:
        raise RoleError(INVALID_REQUEST, f"unauthorized role: {role}")
    needed = required_scope(method, version)
    if has_scope(scopes, needed):
        return
    message = f"missing scope: {needed}"
    if version.forbidden_code:
        raise GatewayError(FORBIDDEN, message, {"code": "MISSING_SCOPE", "missingScope": needed, "requiredScopes": [needed]})
    raise GatewayError(INVALID_REQUEST, message)
