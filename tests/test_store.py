"""Crash-safe writes, permissions, stray temp cleanup, and the state lock."""

import os
import stat
import subprocess
import sys
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from openclaw.store import StateLock, StateLocked, atomic_write, clean_stray_temps, ensure_dir, read_json, write_json
from tests.helpers import REPO

CRASH_BETWEEN_WRITE_AND_RENAME = """
import os, sys
from pathlib import Path
from openclaw import store
def crash(*a, **kw):
    os._exit(9)  # like kill -9 after the temp file is written and fsynced
store.os.replace = crash
store.atomic_write(Path(sys.argv[1]), b'{"v": "new"}')
"""


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


class AtomicWriteTests(SynchronousTestCase):
    def setUp(self):
        self.dir = Path(self.mktemp())

    def test_write_and_replace(self):
        """A write creates the file; a second replaces it whole."""
        target = self.dir / "a" / "b.json"
        write_json(target, {"v": 1})
        write_json(target, {"v": 2})
        self.assertEqual(read_json(target), {"v": 2})
        self.assertEqual(sorted(os.listdir(target.parent)), ["b.json"])

    def test_modes_with_umask_000(self):
        """Files are 0600 and folders 0700 from creation, even with umask 000."""
        old = os.umask(0)
        try:
            atomic_write(self.dir / "x" / "y" / "f", b"data")
        finally:
            os.umask(old)
        self.assertEqual(mode(self.dir / "x" / "y" / "f"), 0o600)
        self.assertEqual(mode(self.dir / "x"), 0o700)
        self.assertEqual(mode(self.dir / "x" / "y"), 0o700)
        self.assertEqual(mode(self.dir), 0o700)

    def test_crash_between_write_and_rename(self):
        """A crash after the temp write leaves the old file intact; the next start cleans the temp."""
        target = self.dir / "state.json"
        write_json(target, {"v": "old"})
        result = subprocess.run(
            [sys.executable, "-c", CRASH_BETWEEN_WRITE_AND_RENAME, str(target)],
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        self.assertEqual(result.returncode, 9)
        self.assertEqual(read_json(target), {"v": "old"})
        leftovers = [n for n in os.listdir(self.dir) if n != "state.json"]
        self.assertEqual(len(leftovers), 1, leftovers)
        self.assertEqual(clean_stray_temps(self.dir), [self.dir / leftovers[0]])
        self.assertEqual(os.listdir(self.dir), ["state.json"])

    def test_failed_write_cleans_up(self):
        """An error during the write leaves the old file and no temp file."""
        target = self.dir / "f"
        atomic_write(target, b"old")
        self.patch(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(28, "No space left on device")))
        self.assertRaises(OSError, atomic_write, target, b"new")
        self.assertEqual(target.read_bytes(), b"old")
        self.assertEqual(os.listdir(self.dir), ["f"])

    def test_clean_leaves_other_files(self):
        """Cleanup removes only our temp names, in subfolders too, and not through symlinks."""
        ensure_dir(self.dir / "sub")
        keep = [self.dir / "a.json", self.dir / ".hidden", self.dir / "sub" / "b.tmp"]
        for p in keep:
            p.write_text("x")
        (self.dir / "sub" / ".b.json.tmp-1-ab").write_text("x")
        outside = Path(self.mktemp())
        ensure_dir(outside)
        (outside / ".o.tmp-1-cd").write_text("x")
        os.symlink(outside, self.dir / "link")
        self.assertEqual(clean_stray_temps(self.dir), [self.dir / "sub" / ".b.json.tmp-1-ab"])
        self.assertTrue(all(p.exists() for p in keep))
        self.assertTrue((outside / ".o.tmp-1-cd").exists())


class LockTests(SynchronousTestCase):
    def test_second_holder_refused(self):
        """A second lock on the same state dir is refused with the holder's pid; release frees it."""
        state = Path(self.mktemp())
        first, second = StateLock(state), StateLock(state)
        first.acquire()
        self.addCleanup(first.release)
        with self.assertRaises(StateLocked) as cm:
            second.acquire()
        self.assertIn(f"pid {os.getpid()}", str(cm.exception))
        self.assertIn(str(state), str(cm.exception))
        first.release()
        second.acquire()
        second.release()

    def test_other_state_dir_independent(self):
        """Locks on different state dirs (profiles) do not interfere."""
        a, b = StateLock(Path(self.mktemp())), StateLock(Path(self.mktemp()))
        a.acquire()
        b.acquire()
        a.release()
        b.release()
