"""Session keys, the index, JSONL transcripts, and recovery after crashes."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from openclaw.agent.sessions import SessionError, SessionStore, canonical_key, check_session_id


def user(text):
    return {"role": "user", "content": [{"type": "text", "text": text}], "timestamp": 1}


class KeyTests(SynchronousTestCase):
    def test_canonical(self):
        """main → agent:main:main; bare keys get the agent prefix; agent: keys stay."""
        self.assertEqual(canonical_key("main"), "agent:main:main")
        self.assertEqual(canonical_key("main", "ops", "home"), "agent:ops:home")
        self.assertEqual(canonical_key("telegram:group:42"), "agent:main:telegram:group:42")
        self.assertEqual(canonical_key("agent:ops:dm:7"), "agent:ops:dm:7")
        for bad in ("", "  ", "agent:BAD ID:x", "agent:x", "a\x00b", "x" * 513):
            self.assertRaises(SessionError, canonical_key, bad)

    @settings(max_examples=300)
    @given(st.text(max_size=60))
    def test_session_ids_cannot_escape(self, text):
        """A session id that passes the check is a plain file name."""
        try:
            check_session_id(text)
        except SessionError:
            return
        self.assertNotIn("/", text)
        self.assertNotIn("..", text)
        self.assertNotIn("\\", text)


class StoreTests(SynchronousTestCase):
    def setUp(self):
        self.state = Path(self.mktemp()).resolve()
        self.store = SessionStore(self.state)
        self.key = canonical_key("main")

    def test_layout(self):
        """Transcripts are <sessionId>.jsonl (0600) with a header line, under agents/<id>/sessions/."""
        entry = self.store.resolve(self.key)
        path = self.state / "agents" / "main" / "sessions" / f"{entry['sessionId']}.jsonl"
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        header = json.loads(path.read_text().splitlines()[0])
        self.assertEqual((header["type"], header["id"], header["sessionKey"]), ("session", entry["sessionId"], self.key))
        index = json.loads((path.parent / "sessions.json").read_text())
        self.assertEqual(index[self.key]["sessionId"], entry["sessionId"])

    def test_append_chain_and_messages(self):
        """Entries chain by parentId; messages come back in order."""
        a = self.store.append_message(self.key, user("one"))
        b = self.store.append_message(self.key, {"role": "assistant", "content": [{"type": "text", "text": "two"}]})
        self.assertEqual((a["parentId"], b["parentId"]), (None, a["id"]))
        self.assertEqual([m["content"][0]["text"] for m in self.store.messages(self.key)], ["one", "two"])
        self.assertEqual(SessionStore(self.state).messages(self.key)[-1]["content"][0]["text"], "two")

    def test_reset(self):
        """reset keeps the key and label but starts a new session id (and an empty history)."""
        first = self.store.patch(self.key, {"label": "Mine"})
        self.store.append_message(self.key, user("old"))
        second = self.store.reset(self.key)
        self.assertNotEqual(first["sessionId"], second["sessionId"])
        self.assertEqual(second["label"], "Mine")
        self.assertEqual(self.store.messages(self.key), [])

    def test_index_rebuilt_when_missing_or_empty(self):
        """A deleted, empty or garbage index is rebuilt from the transcripts: no session lost."""
        keys = [canonical_key(k) for k in ("main", "telegram:group:1", "discord:dm:2")]
        for k in keys:
            self.store.append_message(k, user(k))
        for damage in (lambda p: p.unlink(), lambda p: p.write_text(""), lambda p: p.write_text("{not json")):
            damage(self.store.index_path)
            store = SessionStore(self.state)
            self.assertEqual(sorted(store.index), sorted(keys))
            self.assertEqual(store.messages(keys[1])[0]["content"][0]["text"], keys[1])

    def test_torn_last_line(self):
        """A crash mid-append leaves a torn line: reads skip it, the next append cuts it off."""
        self.store.append_message(self.key, user("kept"))
        path = self.store.transcript(self.store.get(self.key)["sessionId"]).path
        with open(path, "ab") as f:
            f.write(b'{"type":"message","id":"x","message":{"role":"user","con')
        store = SessionStore(self.state)
        self.assertEqual([m["content"][0]["text"] for m in store.messages(self.key)], ["kept"])
        store.append_message(self.key, user("after"))
        lines = path.read_text().splitlines()
        self.assertTrue(all(json.loads(line) for line in lines))
        self.assertEqual([m["content"][0]["text"] for m in store.messages(self.key)], ["kept", "after"])

    def test_truncated_at_every_offset(self):
        """Cutting the transcript at any byte of its last record never loses earlier entries."""
        self.store.append_message(self.key, user("first"))
        self.store.append_message(self.key, user("second"))
        path = self.store.transcript(self.store.get(self.key)["sessionId"]).path
        data = path.read_bytes()
        last_start = data.rstrip(b"\n").rfind(b"\n") + 1
        for cut in range(last_start, len(data)):
            path.write_bytes(data[:cut])
            texts = [m["content"][0]["text"] for m in SessionStore(self.state).messages(self.key)]
            self.assertEqual(texts[0], "first", cut)

    def test_delete(self):
        """delete removes the key; a rebuild does not bring it back."""
        self.store.append_message(self.key, user("x"))
        self.assertTrue(self.store.delete(self.key))
        self.store.index_path.unlink()
        self.assertEqual(SessionStore(self.state).index, {})

    def test_compaction_summary(self):
        """After a compaction entry the history starts with its summary."""
        self.store.append_message(self.key, user("old"))
        self.store.append(self.key, {"type": "compaction", "summary": "we talked", "firstKeptEntryId": None, "tokensBefore": 10})
        self.store.append_message(self.key, user("new"))
        texts = [m["content"][0]["text"] for m in self.store.messages(self.key)]
        self.assertEqual(texts, ["Summary of the earlier conversation:\nwe talked", "new"])
