"""Access policy (dmPolicy, allowFrom, groupPolicy, groups, mentions) and session routing (spec §10)."""

from __future__ import annotations

import attrs
from twisted.trial.unittest import TestCase

from openclaw.channels.interfaces import InboundMessage
from openclaw.channels.policy import ALLOW, DROP, PAIR, agent_for, decide, mention_patterns, session_key

DM_MSG = InboundMessage("telegram", "default", "42", "dm", "42", "1", "hi", sender_name="Alice", sender_username="Alice_W")
GROUP_MSG = InboundMessage("telegram", "default", "-100", "group", "42", "2", "hello all", chat_title="Team")


def group(**changes):
    return attrs.evolve(GROUP_MSG, **changes)


class DirectMessageTests(TestCase):
    def test_policies(self):
        """pairing (default) pairs unknown senders; allowlist drops them; open lets everyone in; disabled drops everything."""
        self.assertEqual(decide(DM_MSG, {}).action, PAIR)
        self.assertEqual(decide(DM_MSG, {"dmPolicy": "pairing"}, pairing_enabled=False).action, DROP)
        self.assertEqual(decide(DM_MSG, {"dmPolicy": "allowlist"}).action, DROP)
        self.assertEqual(decide(DM_MSG, {"dmPolicy": "open"}).action, ALLOW)
        self.assertEqual(decide(DM_MSG, {"dmPolicy": "disabled", "allowFrom": ["42"]}).action, DROP)

    def test_allow_from_entries(self):
        """allowFrom names senders by id, @username (any case), channel-prefixed id, or "*"; approved senders count too."""
        for entries in (["42"], [42], ["@alice_w"], ["alice_w"], ["telegram:42"], ["*"]):
            self.assertEqual(decide(DM_MSG, {"dmPolicy": "allowlist", "allowFrom": entries}).action, ALLOW, entries)
        for entries in (["43"], ["discord:42"], ["@alice"], []):
            self.assertEqual(decide(DM_MSG, {"dmPolicy": "allowlist", "allowFrom": entries}).action, DROP, entries)
        self.assertEqual(decide(DM_MSG, {"dmPolicy": "allowlist"}, approved={"42"}).action, ALLOW)
        self.assertEqual(decide(DM_MSG, {}, approved={"42"}).action, ALLOW)


    def test_who_may_use_commands(self):
        """Chat commands are for senders the account knows (allowFrom, paired, trusted); open policy lets strangers talk, not command."""
        self.assertTrue(decide(DM_MSG, {"dmPolicy": "allowlist", "allowFrom": ["42"]}).commands)
        self.assertTrue(decide(DM_MSG, {}, approved={"42"}).commands)
        self.assertTrue(decide(attrs.evolve(DM_MSG, trusted=True), {"dmPolicy": "open"}).commands)
        self.assertFalse(decide(DM_MSG, {"dmPolicy": "open"}).commands)
        self.assertTrue(decide(DM_MSG, {"dmPolicy": "open", "allowFrom": ["*"]}).commands)
        base = {"groups": {"*": {"requireMention": False}}}
        self.assertTrue(decide(GROUP_MSG, {**base, "groupAllowFrom": ["42"]}).commands)
        self.assertFalse(decide(GROUP_MSG, base).commands)
        self.assertTrue(decide(GROUP_MSG, base, approved={"42"}).commands)


class GroupTests(TestCase):
    def test_group_policy(self):
        """Groups are allowlisted by default: unlisted groups are dropped; "*" or the id lists them; open takes any; disabled none."""
        mentioned = group(mentions_me=True)
        self.assertEqual(decide(mentioned, {}).action, DROP)
        self.assertEqual(decide(mentioned, {"groups": {"*": {}}}).action, ALLOW)
        self.assertEqual(decide(mentioned, {"groups": {"-100": {}}}).action, ALLOW)
        self.assertEqual(decide(mentioned, {"groups": {"-200": {}}}).action, DROP)
        self.assertEqual(decide(mentioned, {"groupPolicy": "open"}).action, ALLOW)
        self.assertEqual(decide(mentioned, {"groupPolicy": "disabled", "groups": {"*": {}}}).action, DROP)
        self.assertEqual(decide(mentioned, {"groups": {"-100": {"enabled": False}}}).action, DROP)

    def test_mention_gating(self):
        """Groups need a mention unless requireMention is false (per group, topic, or "*"); mention patterns count as mentions."""
        config = {"groups": {"*": {}}}
        self.assertEqual(decide(GROUP_MSG, config).action, DROP)
        self.assertIn("mention", decide(GROUP_MSG, config).reason)
        self.assertEqual(decide(group(mentions_me=True), config).action, ALLOW)
        self.assertEqual(decide(GROUP_MSG, {"groups": {"*": {"requireMention": False}}}).action, ALLOW)
        self.assertEqual(decide(GROUP_MSG, {"groups": {"*": {"requireMention": False}, "-100": {"requireMention": True}}}).action, DROP)
        topic = group(thread_id="5", thread_kind="topic")
        self.assertEqual(decide(topic, {"groups": {"-100": {"topics": {"5": {"requireMention": False}}}}}).action, ALLOW)
        patterns = mention_patterns({"messages": {"groupChat": {"mentionPatterns": [r"\bclaw\b", "(unclosed"]}}}, "main")
        self.assertEqual(len(patterns), 1)
        self.assertEqual(decide(group(text="hey claw, hi"), config, patterns=patterns).action, ALLOW)

    def test_group_senders(self):
        """groupAllowFrom (or a group's own allowFrom) limits who can trigger the agent in a group."""
        base = {"groups": {"*": {"requireMention": False}}}
        self.assertEqual(decide(GROUP_MSG, {**base, "groupAllowFrom": ["42"]}).action, ALLOW)
        self.assertEqual(decide(GROUP_MSG, {**base, "groupAllowFrom": ["7"]}).action, DROP)
        self.assertEqual(decide(GROUP_MSG, {"groups": {"-100": {"requireMention": False, "allowFrom": ["42"]}}, "groupAllowFrom": ["7"]}).action, ALLOW)


class RoutingTests(TestCase):
    def test_session_keys(self):
        """DMs share the main session; groups, channels, topics and threads get their own keys; dmScope splits DMs."""
        self.assertEqual(session_key({}, DM_MSG, "main"), "agent:main:main")
        self.assertEqual(session_key({}, GROUP_MSG, "main"), "agent:main:telegram:group:-100")
        self.assertEqual(session_key({}, group(thread_id="7", thread_kind="topic"), "main"), "agent:main:telegram:group:-100:topic:7")
        self.assertEqual(session_key({}, group(chat_type="channel", thread_id="9", thread_kind="thread"), "ops"), "agent:ops:telegram:channel:-100:thread:9")
        self.assertEqual(session_key({}, attrs.evolve(DM_MSG, thread_id="3", thread_kind="topic"), "main"), "agent:main:main")
        scopes = {"per-peer": "agent:main:dm:42", "per-channel-peer": "agent:main:telegram:dm:42", "per-account-channel-peer": "agent:main:telegram:default:dm:42"}
        for scope, key in scopes.items():
            self.assertEqual(session_key({"session": {"dmScope": scope}}, DM_MSG, "main"), key)
        self.assertEqual(session_key({"session": {"dmScope": "per-peer", "identityLinks": {"alice": ["telegram:42"]}}}, DM_MSG, "main"), "agent:main:dm:alice")
        self.assertEqual(session_key({"session": {"scope": "global"}}, DM_MSG, "main"), "agent:main:global")

    def test_agent_bindings(self):
        """bindings pick the agent: a peer match beats an account match beats a channel match; else the default agent."""
        config = {
            "agents": {"list": [{"id": "home"}, {"id": "work", "default": True}]},
            "bindings": [
                {"match": {"channel": "telegram"}, "agentId": "home"},
                {"match": {"channel": "telegram", "accountId": "default"}, "agentId": "acct"},
                {"match": {"channel": "telegram", "peer": {"kind": "group", "id": "-100"}}, "agentId": "team"},
            ],
        }
        self.assertEqual(agent_for(config, GROUP_MSG), "team")
        self.assertEqual(agent_for(config, DM_MSG), "acct")
        self.assertEqual(agent_for({**config, "bindings": config["bindings"][:1]}, DM_MSG), "home")
        self.assertEqual(agent_for({"agents": config["agents"]}, DM_MSG), "work")
        self.assertEqual(agent_for({}, DM_MSG), "main")
