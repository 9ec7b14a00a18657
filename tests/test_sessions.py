"""Session keys, the index, JSONL transcripts, and recovery after crashes."""

from __future__ import annotations

import json
import os
import stat
import threading
import time
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import SynchronousTestCase, TestCase

from openclaw.agent import sessions
from openclaw.agent.sessions import SessionError, SessionStore, Syncer, canonical_key, check_session_id


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


class SyncerTests(TestCase):
    """The group commit (issue 15): writes at once, fsyncs off the reactor thread, acks after the disk."""

    def setUp(self):
        self.state = Path(self.mktemp()).resolve()
        self.syncer = Syncer(reactor)
        self.addCleanup(self.syncer.stop)
        self.store = SessionStore(self.state, syncer=self.syncer)
        self.key = canonical_key("main")
        self.fsyncs: list[tuple[str, bool]] = []
        real = sessions._fsync_path

        def recording(path):
            self.fsyncs.append((str(path), threading.current_thread() is threading.main_thread()))
            real(path)

        self.patch(sessions, "_fsync_path", recording)

    def transcript_path(self):
        return self.store.transcript(self.store.get(self.key)["sessionId"]).path

    async def test_written_at_once_fsynced_off_the_reactor(self):
        """append() leaves the line in the file before it returns; its fsync runs in a pool thread, and flushed() fires after it."""
        self.store.append_message(self.key, user("one"))
        path = self.transcript_path()
        self.assertIn('"one"', path.read_text())  # in the page cache now: a killed process cannot lose it
        self.assertEqual(self.fsyncs, [])  # nothing synced on the reactor thread
        await self.store.flushed()
        self.assertIn((str(path), False), self.fsyncs)
        self.assertFalse(any(on_main for _, on_main in self.fsyncs))
        index = json.loads(self.store.index_path.read_text())
        self.assertEqual(index[self.key]["sessionId"], self.store.get(self.key)["sessionId"])

    async def test_flushed_waits_for_the_disk(self):
        """flushed() has not fired while the commit's fsync is still running."""
        gate = threading.Event()
        real = sessions._fsync_path

        def slow(path):
            gate.wait(10)
            real(path)

        self.patch(sessions, "_fsync_path", slow)
        self.store.append_message(self.key, user("one"))
        d = self.store.flushed()
        await deferLater(reactor, 0.2, lambda: None)
        self.assertFalse(d.called)
        gate.set()
        await d

    async def test_one_commit_per_reactor_turn(self):
        """Appends to many sessions in one reactor turn share one commit; a barrier covers them all."""
        keys = [canonical_key(f"s{i}") for i in range(5)]
        for k in keys:
            self.store.resolve(k)
        await self.store.flushed()
        before = self.syncer.commits
        for k in keys:
            self.store.append_message(k, user(k))
        await self.store.flushed()
        self.assertEqual(self.syncer.commits, before + 1)
        synced = {p for p, _ in self.fsyncs}
        for k in keys:
            self.assertIn(str(self.store.transcript(self.store.get(k)["sessionId"]).path), synced)

    def test_an_older_snapshot_never_lands_over_a_newer_one(self):
        """The index written now (a patch) is not replaced by an earlier snapshot a commit wrote later."""
        path = self.state / "index.json"
        self.syncer._write(path, b"new", 2)
        self.syncer._write(path, b"old", 1)
        self.assertEqual(path.read_bytes(), b"new")

    async def test_replace_now_after_a_commit_in_flight(self):
        """A commit is writing an older index while a patch writes the newer one now: the newer one stays."""
        started, release = threading.Event(), threading.Event()
        real = sessions.atomic_write

        def slow(target, data, *args):
            if data == b"older":
                started.set()
                release.wait(10)
            real(target, data, *args)

        self.patch(sessions, "atomic_write", slow)
        path = self.state / "index.json"
        self.syncer.replace_later(path, lambda: b"older")
        barrier = self.syncer.barrier()
        for _ in range(200):
            if started.is_set():
                break
            await deferLater(reactor, 0.01, lambda: None)
        self.assertTrue(started.is_set())
        reactor.callInThread(lambda: (time.sleep(0.1), release.set()))
        self.syncer.replace_now(path, b"newer")  # waits for the commit's write of "older" to end
        await barrier
        self.assertEqual(path.read_bytes(), b"newer")

    async def test_updated_at_bumps_are_coalesced(self):
        """Appends bump updatedAt in memory at once; the index file follows within INDEX_DELAY, once."""
        self.store.append_message(self.key, user("one"))
        await self.store.flushed()
        writes = []
        real = sessions.atomic_write
        self.patch(sessions, "atomic_write", lambda target, data, *a: (writes.append(target), real(target, data, *a)))
        for i in range(5):
            self.store.append_message(self.key, user(str(i)))
        await self.store.flushed()
        self.assertEqual(writes, [])
        await deferLater(reactor, sessions.INDEX_DELAY + 0.3, lambda: None)
        self.assertEqual(writes, [self.store.index_path])
        on_disk = json.loads(self.store.index_path.read_text())[self.key]["updatedAt"]
        self.assertEqual(on_disk, self.store.get(self.key)["updatedAt"])

    def test_stop_writes_what_waits(self):
        """stop() (the gateway stopping) makes queued fsyncs and the pending index write on its own thread."""
        store = SessionStore(self.state, syncer=self.syncer)
        store.append_message(self.key, user("one"))  # a commit is queued for the next reactor turn
        store.get(self.key)["label"] = "L"
        store._touched()
        self.syncer.stop()
        path = store.transcript(store.get(self.key)["sessionId"]).path
        self.assertIn((str(path), True), self.fsyncs)
        self.assertEqual(json.loads(store.index_path.read_text())[self.key]["label"], "L")
