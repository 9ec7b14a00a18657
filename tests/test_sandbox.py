"""The exec sandbox holds when the gateway is root (and as a user): real bubblewrap, the seccomp filter, limits."""

from __future__ import annotations

import errno
import os
import platform
import shutil
import struct
import tempfile
import time
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import deferLater
from twisted.trial.unittest import SkipTest, TestCase

from openclaw.agent import seccomp
from openclaw.agent.sandbox import SANDBOX_UID, Bubblewrap, Docker, SandboxUnavailable, sandbox_from_config
from openclaw.agent.tools import TOOLS, ToolContext, run_tool
from openclaw.process import run_process
from tests.test_process import processes_with

GROUP = "agent:main:telegram:group:1"


def need_bwrap() -> None:
    if shutil.which("bwrap") is None:
        raise SkipTest("bubblewrap is not installed here (apt-get install bubblewrap)")


def need_root() -> None:
    if os.geteuid() != 0:
        raise SkipTest("needs root: this is the gateway-as-root case (CI runs as root)")


async def children_reaped(seconds: float = 15.0) -> None:
    """
    Wait until the children this reactor spawned are reaped. A cancelled exec
    answers at once while its process tree is still being stopped (TERM, then
    KILL after a grace): a test must not end before that.
    """
    from twisted.internet.process import ProcessReader

    def busy() -> bool:
        readers = any(isinstance(r, ProcessReader) for r in reactor.getReaders())
        stoppers = any("_kill_group" in repr(c) for c in reactor.getDelayedCalls())
        return readers or stoppers

    for _ in range(int(seconds / 0.05)):
        if not busy():
            return
        await deferLater(reactor, 0.05, lambda: None)


def status_fields(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep and name in ("CapEff", "CapPrm", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp"):
            out[name] = value.strip()
    return out


# The checks an escaping command would try; every one of them must fail. The sysctl
# write puts back the value it read, so that a sandbox that fails it changes nothing.
ESCAPES = (
    "mount -o remount,bind,rw /usr 2>/dev/null; echo remount=$?; "
    "touch /usr/local/share/openclaw-proof-$PROOF 2>/dev/null; echo touch=$?; "
    "v=$(cat /proc/sys/kernel/core_pattern); (printf '%s\\n' \"$v\" > /proc/sys/kernel/core_pattern) 2>/dev/null; echo sysctl=$?; "
    "unshare -U true 2>/dev/null; echo userns=$?; "
    "ls /sys >/dev/null 2>&1; echo sys=$?; "
    "id -u; grep -E '^(CapEff|CapPrm|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status"
)


class RootSandboxTests(TestCase):
    timeout = 60

    def setUp(self):
        need_bwrap()
        self.ws = Path(self.mktemp()).resolve()
        self.ws.mkdir(parents=True)

    async def exec(self, command, sandbox=None, **args):
        ctx = ToolContext(self.ws, GROUP, sandbox or Bubblewrap(), None, reactor)
        return await run_tool(TOOLS["exec"], ctx, {"command": command, **args})

    def assert_contained(self, text):
        for check in ("remount", "touch", "sysctl", "userns", "sys"):
            self.assertNotIn(f"{check}=0", text, text)
        fields = status_fields(text)
        self.assertEqual(fields["CapEff"], "0000000000000000", text)
        self.assertEqual(fields["CapPrm"], "0000000000000000", text)
        self.assertEqual(fields["NoNewPrivs"], "1", text)
        self.assertEqual(fields["Seccomp"], "2", text)  # a filter is on

    async def test_root_gateway_sandbox_holds(self):
        """As root: no remount of /usr, no sysctl write, no user namespace, no caps, seccomp on, uid not 0."""
        need_root()
        before = Path("/proc/sys/kernel/core_pattern").read_text()
        proof = f"/usr/local/share/openclaw-proof-{os.getpid()}"
        self.addCleanup(lambda: os.path.exists(proof) and os.unlink(proof))
        text, error = await self.exec(ESCAPES.replace("$PROOF", str(os.getpid())))
        self.assertFalse(error, text)
        self.assert_contained(text)
        self.assertEqual(status_fields(text)["CapBnd"], "0000000000000000", text)
        self.assertIn(f"\n{SANDBOX_UID}\n", text)
        self.assertFalse(os.path.exists(proof))
        self.assertEqual(Path("/proc/sys/kernel/core_pattern").read_text(), before)

    async def test_host_side_uid(self):
        """Seen from the host, a sandboxed process and the files it makes belong to uid 65534, not root."""
        need_root()
        d = Deferred.fromCoroutine(self.exec("echo x > made; sleep 6.25"))
        for _ in range(200):
            pids = [p for p in processes_with("sleep\x006.25") if "bwrap" not in Path(f"/proc/{p}/cmdline").read_text()]
            if pids:
                break
            await deferLater(reactor, 0.05, lambda: None)
        self.assertTrue(pids, "the sandboxed sleep never showed up")
        uids = Path(f"/proc/{pids[0]}/status").read_text().split("Uid:")[1].split()[:4]
        self.assertEqual(set(uids), {str(SANDBOX_UID)})
        d.cancel()
        with self.assertRaises(CancelledError):
            await d
        self.assertEqual(os.stat(self.ws / "made").st_uid, SANDBOX_UID)
        for _ in range(100):
            if not processes_with("sleep\x006.25"):
                break
            await deferLater(reactor, 0.05, lambda: None)
        self.assertEqual(processes_with("sleep\x006.25"), [])
        await children_reaped()

    async def test_user_mode_holds(self):
        """As an ordinary user (bubblewrap in a user namespace): the same checks fail the same way."""
        need_root()  # to become that user here
        folder = Path(tempfile.mkdtemp(prefix="openclaw-userns-"))
        self.addCleanup(shutil.rmtree, folder, True)
        os.chown(folder, SANDBOX_UID, SANDBOX_UID)
        launch = Bubblewrap(as_root=False).prepare(["/bin/sh", "-c", ESCAPES.replace("$PROOF", str(os.getpid()))], folder)
        become = ["/usr/bin/setpriv", f"--reuid={SANDBOX_UID}", f"--regid={SANDBOX_UID}", "--clear-groups", "--"]
        ran = await run_process(reactor, become + launch.argv, 30, launch.env, "/", fds=launch.fds)
        text = ran.stdout.decode() + ran.stderr.decode()
        self.assertEqual(ran.code, 0, text)
        self.assert_contained(text)

    async def test_fork_and_memory_limits(self):
        """pidsLimit stops a fork loop; memory caps each process's address space (ulimit -v)."""
        need_root()
        sandbox = sandbox_from_config({"pidsLimit": 12, "memory": "256m"})
        text, _ = await self.exec("for i in $(seq 1 40); do sleep 5.5 & done 2>&1 | tail -n 1; echo loop-done", sandbox)
        self.assertRegex(text, "Cannot fork|Resource temporarily unavailable")
        self.assertEqual(processes_with("sleep\x005.5"), [])  # and nothing outlived the call
        text, _ = await self.exec("ulimit -v; python3 -c 'bytearray(400 * 1024 * 1024)' 2>&1 | tail -n 1", sandbox)
        self.assertIn("262144", text)
        self.assertIn("MemoryError", text)

    async def test_allow_file_system_true(self):
        """allowFileSystem true: the host tree read-only (exec works), the gateway state hidden, /workspace writable."""
        state = Path(self.mktemp()).resolve()
        state.mkdir()
        (state / "openclaw.json").write_text('{"gateway":{"auth":{"token":"state-secret"}}}')
        sandbox = Bubblewrap(allow_file_system=True, hide=[state])
        text, error = await self.exec(f"cat /etc/os-release >/dev/null && echo sees-host; cat {state}/openclaw.json 2>&1; echo w > /workspace/w && echo wrote", sandbox)
        self.assertFalse(error, text)
        self.assertIn("sees-host", text)
        self.assertIn("wrote", text)
        self.assertNotIn("state-secret", text)
        self.assertEqual((self.ws / "w").read_text(), "w\n")

    async def test_refuses_what_it_cannot_make_safe(self):
        """Root without setpriv, an unknown architecture, or a bad limit: refused with the reason; nothing runs."""
        with self.assertRaises(SandboxUnavailable) as caught:
            Bubblewrap(as_root=True, setpriv=None).check()
        self.assertIn("refusing to run sandboxed commands as root", str(caught.exception))
        with self.assertRaises(seccomp.UnsupportedArch):
            seccomp.build_filter("sparc64")
        for sandbox in (Bubblewrap(as_root=True, setpriv=None), sandbox_from_config({"memory": "lots"}), Docker(binary=None)):
            text, error = await self.exec("touch ran", sandbox)
            self.assertTrue(error)
            self.assertIn("exec refused", text)
            self.assertFalse((self.ws / "ran").exists())


def run_filter(program: bytes, nr: int, arch: int, args=(0,) * 6) -> int:
    """A classic-BPF interpreter for what build_filter emits: the seccomp return value."""
    data = struct.pack("=iIQ6Q", nr, arch, 0, *args)
    ops = [struct.unpack("=HBBI", program[i : i + 8]) for i in range(0, len(program), 8)]
    pc, acc = 0, 0
    while True:
        code, jt, jf, k = ops[pc]
        if code == 0x20:
            acc = struct.unpack_from("=I", data, k)[0]
            pc += 1
        elif code == 0x15:
            pc += 1 + (jt if acc == k else jf)
        elif code == 0x35:
            pc += 1 + (jt if acc >= k else jf)
        elif code == 0x45:
            pc += 1 + (jt if acc & k else jf)
        elif code == 0x06:
            return k
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")


class SeccompFilterTests(TestCase):
    def test_decisions(self):
        """Both architectures: denied calls EPERM, clone3 ENOSYS, CLONE_NEWUSER and TIOCSTI refused, others allowed, wrong ABI killed."""
        eperm, enosys, allow, kill = 0x50000 | errno.EPERM, 0x50000 | errno.ENOSYS, 0x7FFF0000, 0x80000000
        for machine, (arch, table, x32) in seccomp.ARCHES.items():
            program = seccomp.build_filter(machine)
            for name in ("mount", "umount2", "pivot_root", "keyctl", "add_key", "ptrace", "kexec_load", "bpf", "unshare", "setns", "init_module", "open_by_handle_at"):
                self.assertEqual(run_filter(program, table[name], arch), eperm, (machine, name))
            self.assertEqual(run_filter(program, table["clone3"], arch), enosys)
            self.assertEqual(run_filter(program, table["clone"], arch, (0x10000000 | 17, 0, 0, 0, 0, 0)), eperm)
            self.assertEqual(run_filter(program, table["clone"], arch, (0x01200011, 0, 0, 0, 0, 0)), allow)  # fork()
            self.assertEqual(run_filter(program, table["ioctl"], arch, (1, 0x5412, 0, 0, 0, 0)), eperm)
            self.assertEqual(run_filter(program, table["ioctl"], arch, (1, 0x5401, 0, 0, 0, 0)), allow)  # TCGETS
            self.assertEqual(run_filter(program, 0 if machine == "x86_64" else 63, arch), allow)  # read
            self.assertEqual(run_filter(program, 0, 0x40000003), kill)  # i386 ABI
            if x32:
                self.assertEqual(run_filter(program, 0x40000000 | 165, arch), kill)

    async def test_filter_is_enforced(self):
        """Under bubblewrap the filter is live: ptrace(TRACEME), allowed to anyone on the host, fails with EPERM inside."""
        need_bwrap()
        ws = Path(self.mktemp()).resolve()
        ws.mkdir()
        number = seccomp.ARCHES[platform.machine()][1]["ptrace"]
        probe = f"import ctypes; libc = ctypes.CDLL(None, use_errno=True); print('ptrace', libc.syscall({number}, 0, 0, 0, 0), ctypes.get_errno())"
        host = await run_process(reactor, ["/usr/bin/python3", "-c", probe], 20, {"PATH": "/usr/bin:/bin"})
        self.assertEqual(host.stdout.decode().split(), ["ptrace", "0", "0"])
        text, error = await run_tool(TOOLS["exec"], ToolContext(ws, GROUP, Bubblewrap(), None, reactor), {"command": ["python3", "-c", probe]})
        self.assertFalse(error, text)
        self.assertIn(f"ptrace -1 {errno.EPERM}", text)
