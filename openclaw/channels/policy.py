# -*- test-case-name: tests.test_channels_policy -*-
"""
Who may reach the agent, and in which session (sans-IO).

Direct messages follow C{dmPolicy}: C{pairing} (default: unknown senders
get a pairing code), C{allowlist} (only C{allowFrom} and approved senders),
C{open} (everyone), C{disabled}. Groups and channels follow C{groupPolicy}:
C{allowlist} (default: only groups named in C{groups}, or C{"*"}), C{open}
(any group), C{disabled}; C{groupAllowFrom} (or a group's own C{allowFrom})
limits who may trigger the agent there, and C{requireMention} (default
true; per group, per topic, or under C{"*"}) waits for a mention.

Session keys follow spec §10: DMs share the agent's main session unless
C{session.dmScope} says otherwise; groups get
C{agent:<id>:<channel>:group:<chatId>}, channels C{...:channel:<chatId>},
with C{:topic:<id>} or C{:thread:<id>} appended for forum topics and threads.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

import attrs
from twisted.logger import Logger

from openclaw.channels.interfaces import CHANNEL, DM, GROUP, THREAD, TOPIC, InboundMessage

log = Logger(namespace="openclaw.channels")

ALLOW = "allow"
PAIR = "pair"
DROP = "drop"
DM_POLICIES = ("pairing", "allowlist", "open", "disabled")
GROUP_POLICIES = ("allowlist", "open", "disabled")
DM_SCOPES = ("main", "per-peer", "per-channel-peer", "per-account-channel-peer")
MAX_PATTERNS = 32


@attrs.frozen
class Decision:
    action: str  # allow | pair | drop
    reason: str = ""
    commands: bool = False  # the sender may use chat commands (paired, trusted or listed by name)


def _entries(value: Any) -> list[str]:
    return [str(v).strip() for v in value if isinstance(v, (str, int)) and str(v).strip()] if isinstance(value, list) else []


def matches(entries: Iterable[str], message: InboundMessage) -> bool:
    """Whether an allow list names the sender (id, @username, or C{<channel>:<id>}); C{*} names everyone."""
    names = {message.sender_id.lower()}
    if message.sender_username:
        names |= {message.sender_username.lower(), "@" + message.sender_username.lower()}
    prefix = message.channel.lower() + ":"
    for entry in entries:
        e = entry.strip().lower()
        if e == "*":
            return True
        if e.startswith(prefix):
            e = e[len(prefix) :]
        if e in names:
            return True
    return False


def _compile(patterns: Iterable[Any]) -> list[re.Pattern[str]]:
    out = []
    for p in list(patterns)[:MAX_PATTERNS]:
        if not isinstance(p, str) or not p:
            continue
        try:
            out.append(re.compile(p, re.IGNORECASE))
        except re.error as e:
            log.warn("mention pattern {pattern!r} ignored: {error}", pattern=p, error=str(e))
    return out


def mention_patterns(config: Mapping[str, Any], agent_id: str) -> list[re.Pattern[str]]:
    """C{agents.list[].groupChat.mentionPatterns} for the agent, else C{messages.groupChat.mentionPatterns}."""
    for agent in (config.get("agents") or {}).get("list") or []:
        if isinstance(agent, dict) and agent.get("id") == agent_id:
            patterns = (agent.get("groupChat") or {}).get("mentionPatterns")
            if isinstance(patterns, list):
                return _compile(patterns)
    return _compile(((config.get("messages") or {}).get("groupChat") or {}).get("mentionPatterns") or [])


def _group_settings(account: Mapping[str, Any], message: InboundMessage) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """(the group's own entry or None, its effective settings: "*" < group < topic)."""
    groups = account["groups"] if isinstance(account.get("groups"), dict) else {}
    assert isinstance(groups, dict)
    star = groups["*"] if isinstance(groups.get("*"), dict) else None
    own = groups[message.chat_id] if isinstance(groups.get(message.chat_id), dict) else None
    effective: dict[str, Any] = {**(star or {}), **(own or {})}
    topics = effective["topics"] if isinstance(effective.get("topics"), dict) else {}
    if message.thread_id and isinstance(topics.get(message.thread_id), dict):
        effective.update(topics[message.thread_id])
    listed = own if own is not None else star
    return listed, effective


def decide(
    message: InboundMessage,
    account: Mapping[str, Any],
    approved: Iterable[str] = (),
    pairing_enabled: bool = True,
    patterns: Iterable[re.Pattern[str]] = (),
) -> Decision:
    """What to do with an inbound message under the account's config."""
    if message.chat_type == DM:
        policy = account.get("dmPolicy", "pairing")
        if policy == "disabled":
            return Decision(DROP, "direct messages are disabled (dmPolicy: disabled)")
        known = message.trusted or matches(_entries(account.get("allowFrom")), message) or message.sender_id in approved
        if policy == "open" or known:
            return Decision(ALLOW, commands=known)
        if policy == "pairing":
            return Decision(PAIR) if pairing_enabled else Decision(DROP, "unknown sender and pairing is disabled (pairing.enabled: false)")
        return Decision(DROP, "sender is not in allowFrom (dmPolicy: allowlist)")

    policy = account.get("groupPolicy", "allowlist")
    if policy == "disabled":
        return Decision(DROP, "group messages are disabled (groupPolicy: disabled)")
    listed, settings = _group_settings(account, message)
    if policy != "open" and listed is None:
        return Decision(DROP, f"{message.chat_type} {message.chat_id} is not in groups (groupPolicy: allowlist)")
    if settings.get("enabled") is False:
        return Decision(DROP, f"{message.chat_type} {message.chat_id} is disabled in groups")
    senders = settings["allowFrom"] if isinstance(settings.get("allowFrom"), list) else account.get("groupAllowFrom")
    if isinstance(senders, list) and senders and not matches(_entries(senders), message):
        return Decision(DROP, "sender is not in groupAllowFrom")
    if settings.get("requireMention", True) is not False and not mentioned(message, patterns):
        return Decision(DROP, "no mention (requireMention)")
    listed_sender = isinstance(senders, list) and bool(senders) and matches(_entries(senders), message)
    known = message.trusted or listed_sender or matches(_entries(account.get("allowFrom")), message) or message.sender_id in approved
    return Decision(ALLOW, commands=known)


def mentioned(message: InboundMessage, patterns: Iterable[re.Pattern[str]]) -> bool:
    return message.mentions_me or any(p.search(message.text or "") for p in patterns)


# -- routing


def default_agent(config: Mapping[str, Any]) -> str:
    listed = [a for a in (config.get("agents") or {}).get("list") or [] if isinstance(a, dict) and isinstance(a.get("id"), str)]
    for agent in listed:
        if agent.get("default"):
            return str(agent["id"])
    return str(listed[0]["id"]) if listed else "main"


def agent_for(config: Mapping[str, Any], message: InboundMessage) -> str:
    """The agent a message goes to: C{bindings} (peer, then account, then channel), else the default."""
    best: tuple[int, str] | None = None
    for binding in config.get("bindings") or []:
        if not isinstance(binding, dict) or not isinstance(binding.get("agentId"), str):
            continue
        match = binding["match"] if isinstance(binding.get("match"), dict) else {}
        assert isinstance(match, dict)
        if match.get("channel") not in (None, message.channel):
            continue
        if match.get("accountId") not in (None, message.account_id):
            continue
        peer = match.get("peer")
        if isinstance(peer, dict):
            kind = {DM: ("dm", "direct"), GROUP: ("group",), CHANNEL: ("channel",)}[message.chat_type]
            wanted = message.sender_id if message.chat_type == DM else message.chat_id
            if peer.get("kind") not in kind or str(peer.get("id")) != wanted:
                continue
            rank = 3
        elif match.get("accountId") is not None:
            rank = 2
        else:
            rank = 1
        if best is None or rank > best[0]:
            best = (rank, binding["agentId"])
    return best[1] if best else default_agent(config)


def _peer(config: Mapping[str, Any], message: InboundMessage) -> str:
    """The sender, or its canonical name from C{session.identityLinks}."""
    links = (config.get("session") or {}).get("identityLinks")
    if isinstance(links, dict):
        wanted = {f"{message.channel}:{message.sender_id}".lower(), message.sender_id.lower()}
        for canonical, ids in links.items():
            if isinstance(ids, list) and wanted & {str(i).lower() for i in ids}:
                return str(canonical)
    return message.sender_id


def session_key(config: Mapping[str, Any], message: InboundMessage, agent_id: str) -> str:
    """The session a message runs in (spec §10)."""
    session = config["session"] if isinstance(config.get("session"), dict) else {}
    assert isinstance(session, dict)
    if message.chat_type == DM:
        if session.get("scope") == "global":
            return f"agent:{agent_id}:global"
        scope = session.get("dmScope", "main")
        peer = _peer(config, message)
        if scope == "per-peer":
            return f"agent:{agent_id}:dm:{peer}"
        if scope == "per-channel-peer":
            return f"agent:{agent_id}:{message.channel}:dm:{peer}"
        if scope == "per-account-channel-peer":
            return f"agent:{agent_id}:{message.channel}:{message.account_id}:dm:{peer}"
        return f"agent:{agent_id}:main"
    kind = "channel" if message.chat_type == CHANNEL else "group"
    key = f"agent:{agent_id}:{message.channel}:{kind}:{message.chat_id}"
    if message.thread_id and message.thread_kind in (TOPIC, THREAD):
        key += f":{message.thread_kind}:{message.thread_id}"
    return key
