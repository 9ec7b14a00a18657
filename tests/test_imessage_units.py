"""
iMessage without processes: the JSON-RPC line codec, the replay/backlog
fence, message normalization, targets, and the platform's config checks.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from openclaw.channels.imessage.channel import IMessageChannel
from openclaw.channels.imessage.messages import ACCEPT, BACKLOG, EMPTY, MALFORMED, OWN, REACTION, SEEN, STALE, Cursor, judge, normalize, parse_time
from openclaw.channels.imessage.platform import NOT_A_MAC, NO_IMSG, IMessagePlatform
from openclaw.channels.imessage.rpc import Garbage, LineRpc, Notification, Response
from openclaw.channels.interfaces import DM, GROUP, AccountConfig, ChannelHost, ConfigProblem, Target

NOW = 1_800_000_000_000
MIN = 60_000


def row(rowid: int = 10, text: str = "hi", ts: int = NOW, **extra):
    from tests.fakes_imsg import iso

    return {"id": rowid, "chat_id": 3, "guid": f"G{rowid}", "sender": "+15550001111", "is_from_me": False, "text": text, "created_at": iso(ts), "attachments": [], "is_group": False, **extra}


class CodecTests(TestCase):
    def test_requests_are_numbered_lines(self):
        """Each request is one JSON-RPC 2.0 line with a fresh id."""
        codec = LineRpc()
        first, line = codec.request("send", {"text": "hé"})
        second, _ = codec.request("chats.list")
        self.assertNotEqual(first, second)
        self.assertTrue(line.endswith(b"\n") and line.count(b"\n") == 1)
        self.assertEqual(json.loads(line), {"jsonrpc": "2.0", "id": first, "method": "send", "params": {"text": "hé"}})

    def test_frames_split_anywhere(self):
        """Responses, errors and notifications are found however the bytes are split, CRLF included."""
        codec = LineRpc()
        data = b'{"jsonrpc":"2.0","id":"1","result":{"ok":true}}\r\n{"jsonrpc":"2.0","id":2,"error":{"code":-32602,"message":"Invalid params","data":"x"}}\n{"jsonrpc":"2.0","method":"message","params":{"subscription":1}}\n'
        frames = []
        for i in range(len(data)):
            frames += codec.feed(data[i : i + 1])
        self.assertEqual(frames[0], Response("1", {"ok": True}))
        self.assertEqual((frames[1].id, frames[1].error.code, frames[1].error.data), ("2", -32602, "x"))
        self.assertEqual(frames[2], Notification("message", {"subscription": 1}))

    def test_garbage_is_reported_and_skipped(self):
        """Non-JSON, non-objects, id-less errors, responses without result, and over-long lines become Garbage; the next good line still parses."""
        codec = LineRpc(max_line=100)
        frames = codec.feed(b'nope\n[1]\n{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}\n{"id":"3"}\n\n')
        self.assertEqual([type(f) for f in frames], [Garbage] * 4)
        self.assertIn("Parse error", frames[2].reason)
        frames = codec.feed(b"x" * 150)
        frames += codec.feed(b"y" * 150 + b'\n{"jsonrpc":"2.0","id":"4","result":1}\n')
        self.assertEqual(len(frames), 2)
        self.assertIsInstance(frames[0], Garbage)
        self.assertEqual(frames[1], Response("4", 1))
        frames = codec.feed(b"z" * 150 + b'\n{"jsonrpc":"2.0","id":"5","result":2}\n')
        self.assertEqual([type(f) for f in frames], [Garbage, Response])


class FenceTests(TestCase):
    def test_first_message_and_cursor(self):
        """With no cursor a fresh message is answered; the cursor moves to its row and send time."""
        verdict = judge(row(10), None, NOW)
        self.assertEqual((verdict.action, verdict.cursor), (ACCEPT, Cursor(10, NOW)))

    def test_rows_already_seen(self):
        """A row at or below the cursor is skipped without moving it."""
        self.assertEqual(judge(row(10), Cursor(10, NOW), NOW).action, SEEN)
        self.assertIsNone(judge(row(9), Cursor(10, NOW), NOW).cursor)

    def test_backlog_older_than_the_last_answered(self):
        """A new row sent well before the newest answered message is backlog: skipped, but the cursor moves past it (and keeps its send time)."""
        verdict = judge(row(11, ts=NOW - 60 * MIN), Cursor(10, NOW), NOW + MIN)
        self.assertEqual((verdict.action, verdict.cursor), (BACKLOG, Cursor(11, NOW)))
        self.assertEqual(judge(row(11, ts=NOW - 5 * MIN), Cursor(10, NOW), NOW + MIN).action, ACCEPT)

    def test_stale_without_a_cursor(self):
        """With nothing answered yet, a message older than two hours is not answered."""
        self.assertEqual(judge(row(11, ts=NOW - 3 * 60 * MIN), None, NOW).action, STALE)

    def test_own_reactions_empty_malformed(self):
        """Own messages, tapbacks and empty rows move the cursor without an answer; rows without ids are malformed."""
        self.assertEqual(judge(row(11, is_from_me=True), Cursor(10, NOW), NOW).action, OWN)
        self.assertEqual(judge(row(11, is_reaction=True), Cursor(10, NOW), NOW).action, REACTION)
        self.assertEqual(judge(row(11, text="\ufffc "), Cursor(10, NOW), NOW).action, EMPTY)
        self.assertEqual(judge({"text": "x"}, None, NOW).action, MALFORMED)
        self.assertEqual(judge(row(11, text="\ufffc", attachments=[{"mime_type": "image/jpeg"}]), None, NOW).action, ACCEPT)

    def test_times(self):
        """imsg's ISO 8601 times (with Z or an offset) in ms; naive or unreadable times are unknown."""
        self.assertEqual(parse_time("2027-01-15T08:00:00.000Z"), parse_time("2027-01-15T09:00:00+01:00"))
        self.assertEqual(parse_time("2027-01-15T08:00:00"), 0)
        self.assertEqual(parse_time("yesterday"), 0)

    def test_cursor_json(self):
        """The persisted cursor round-trips; anything else is no cursor."""
        self.assertEqual(Cursor.from_json(Cursor(5, 6).to_json()), Cursor(5, 6))
        for bad in (None, 7, {"rowid": "5"}, {"rowid": True}):
            self.assertIsNone(Cursor.from_json(bad))


class NormalizeTests(TestCase):
    def test_dm(self):
        """A DM: the chat rowid is the chat, the handle the sender, the guid the message id; attachments become placeholders."""
        message = normalize(row(12, text="look \ufffc", attachments=[{"mime_type": "image/png"}, {"mime_type": "application/pdf"}], reply_to_guid="G1"), NOW, {})
        self.assertEqual((message.chat_id, message.chat_type, message.sender_id, message.message_id, message.text), ("3", DM, "+15550001111", "G12", "look"))
        self.assertEqual((message.media, message.reply_to.message_id, message.ts_ms), (("image", "file"), "G1", NOW))

    def test_groups(self):
        """is_group threads are groups with their name; a thread listed under groups is a group even when imsg says it is not."""
        message = normalize(row(12, is_group=True, chat_name="Team"), NOW, {})
        self.assertEqual((message.chat_type, message.chat_title), (GROUP, "Team"))
        self.assertEqual(normalize(row(12), NOW, {"3": {}}).chat_type, GROUP)
        self.assertEqual(normalize(row(12), NOW, {"*": {}}).chat_type, DM)


class TargetTests(TestCase):
    def channel(self, **config):
        account = AccountConfig("imessage", "default", config)
        return IMessageChannel(account, ChannelHost(Clock(), None), ["/bin/imsg", "rpc"], {})

    def test_parse_target(self):
        """Upstream's target forms: chat_id:N (or N), chat_guid:, chat_identifier:, handles with an optional service, the channel prefix."""
        channel = self.channel()
        self.assertEqual(channel.parse_target("chat_id:42"), Target("42"))
        self.assertEqual(channel.parse_target("imessage:chat_id:42"), Target("42"))
        self.assertEqual(channel.parse_target("42"), Target("42"))
        self.assertEqual(channel.parse_target("chat_guid:iMessage;+;chat123"), Target("chat_guid:iMessage;+;chat123"))
        self.assertEqual(channel.parse_target("+1 555 123 4567"), Target("+1 555 123 4567"))
        self.assertEqual(channel.parse_target("imessage:+15551234567"), Target("imessage:+15551234567"))
        self.assertEqual(channel.parse_target("sms:+15551234567"), Target("sms:+15551234567"))
        self.assertEqual(channel.parse_target("bob@example.com"), Target("bob@example.com"))
        for bad in ("", "chat_id:x", "hello", "chat_guid:"):
            self.assertRaises(ValueError, channel.parse_target, bad)

    def test_addresses(self):
        """Targets become imsg's send parameters; the account's service and region apply to bare handles."""
        channel = self.channel(service="sms", region="GB")
        self.assertEqual(channel._address(Target("42")), {"chat_id": 42})
        self.assertEqual(channel._address(Target("chat_identifier:chat9")), {"chat_identifier": "chat9"})
        self.assertEqual(channel._address(Target("+447700900000")), {"to": "+447700900000", "service": "sms", "region": "GB"})
        self.assertEqual(channel._address(Target("imessage:bob@example.com")), {"to": "bob@example.com", "service": "imessage", "region": "GB"})


class PlatformTests(TestCase):
    def account(self, config, path):
        return AccountConfig("imessage", "default", config, {"PATH": str(path)})

    def test_linux_without_imsg(self):
        """On Linux with no imsg on PATH and no cliPath, the account is not configured and says it needs macOS or an SSH wrapper; build refuses too."""
        empty = Path(self.mktemp())
        empty.mkdir()
        platform = IMessagePlatform(system="linux")
        account = self.account({}, empty)
        self.assertFalse(platform.configured(account))
        self.assertEqual(platform.unconfigured(account), NOT_A_MAC)
        self.assertIn("needs macOS with imsg (or channels.imessage.cliPath pointing at an SSH wrapper)", NOT_A_MAC)
        self.assertRaises(ConfigProblem, platform.build, account, ChannelHost(Clock(), None))
        self.assertEqual(IMessagePlatform(system="darwin").unconfigured(account), NO_IMSG)

    def test_wrapper_anywhere(self):
        """A cliPath wrapper (or imsg on PATH) that is executable makes the account configured; `--db` carries dbPath."""
        folder = Path(self.mktemp()).resolve()
        folder.mkdir()
        wrapper = folder / "imsg"
        wrapper.write_text("#!/bin/sh\n")
        platform = IMessagePlatform(system="linux")
        self.assertFalse(platform.configured(self.account({"cliPath": str(wrapper)}, folder)))  # not executable yet
        self.assertIn("is not an executable file", platform.unconfigured(self.account({"cliPath": str(wrapper)}, folder)))
        wrapper.chmod(0o700)
        self.assertTrue(platform.configured(self.account({}, folder)))
        channel = platform.build(self.account({"cliPath": str(wrapper), "dbPath": "~/chat.db"}, folder), ChannelHost(Clock(), None))
        self.assertEqual(channel.argv, [str(wrapper), "rpc", "--db", os.path.expanduser("~/chat.db")])
