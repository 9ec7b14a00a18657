"""sd_notify written out: READY=1 after the listeners, WATCHDOG=1 at half WatchdogSec, STOPPING=1, over a socket the test reads."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from openclaw.ops.sdnotify import Notifier, NotifyService, parse, socket_address, watchdog_interval
from tests.helpers import REPO, base_env, free_port, run_cli, scratch_home


def notify_socket(testcase, abstract=True):
    """A datagram socket like systemd's: its NOTIFY_SOCKET name and the socket to read."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if abstract:
        name = f"@openclaw-test-{secrets.token_hex(6)}"
    else:
        folder = tempfile.mkdtemp(prefix="oc-notify-")  # a unix socket path must stay short
        testcase.addCleanup(shutil.rmtree, folder, True)
        name = os.path.join(folder, "notify")
    sock.bind(socket_address(name))
    sock.settimeout(30)
    testcase.addCleanup(sock.close)
    return name, sock


def receive(sock, wanted, limit=30.0):
    """Datagrams until one has C{wanted}; all of them, parsed."""
    got = []
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        fields = parse(sock.recv(4096))
        got.append(fields)
        if wanted in fields:
            return got
    raise AssertionError(f"no {wanted} in {got}")


class ProtocolTests(SynchronousTestCase):
    def test_address_and_parse(self):
        """@name is the abstract socket; datagrams are KEY=VALUE lines."""
        self.assertEqual(socket_address("@x"), "\0x")
        self.assertEqual(socket_address("/run/x"), "/run/x")
        self.assertEqual(parse(b"READY=1\nSTATUS=a=b\nnoise"), {"READY": "1", "STATUS": "a=b"})

    def test_watchdog_interval(self):
        """Half of WATCHDOG_USEC, and only when WATCHDOG_PID is ours (or unset)."""
        self.assertEqual(watchdog_interval({"WATCHDOG_USEC": "60000000"}, 7), 30.0)
        self.assertEqual(watchdog_interval({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "7"}, 7), 30.0)
        self.assertIsNone(watchdog_interval({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "8"}, 7))
        self.assertIsNone(watchdog_interval({}, 7))
        self.assertIsNone(watchdog_interval({"WATCHDOG_USEC": "x"}, 7))

    def test_from_env(self):
        """Only absolute paths and abstract names are notify sockets."""
        self.assertIsNone(Notifier.from_env({}))
        self.assertIsNone(Notifier.from_env({"NOTIFY_SOCKET": "relative"}))
        self.assertEqual(Notifier.from_env({"NOTIFY_SOCKET": "@a"}).address, "\0a")

    def test_service_ready_watchdog_stopping(self):
        """READY=1 with MAINPID at start, WATCHDOG=1 every interval, STOPPING=1 once; pings stop with it."""
        for abstract in (True, False):
            name, sock = notify_socket(self, abstract)
            clock = Clock()
            service = NotifyService(Notifier(name), clock, 5.0, lambda: "listening on port 1")
            service.startService()
            ready = parse(sock.recv(4096))
            self.assertEqual(ready, {"READY": "1", "MAINPID": str(os.getpid()), "STATUS": "listening on port 1"})
            clock.advance(5.0)
            self.assertEqual(parse(sock.recv(4096)), {"WATCHDOG": "1"})
            service.stopping()
            service.stopService()
            self.assertEqual(parse(sock.recv(4096)), {"STOPPING": "1", "STATUS": "stopping"})
            self.assertEqual(clock.getDelayedCalls(), [])
            sock.setblocking(False)
            self.assertRaises(BlockingIOError, sock.recv, 4096)  # STOPPING was sent once

    def test_unreachable_socket_never_raises(self):
        """A manager that went away: send says False, nothing raises."""
        self.assertFalse(Notifier("@openclaw-nobody-" + secrets.token_hex(8)).send("READY=1"))


class GatewayNotifyTests(SynchronousTestCase):
    def test_gateway_run_under_a_fake_systemd(self):
        """`openclaw gateway run` as systemd runs it: READY=1 once it listens, WATCHDOG=1 pings, STOPPING=1 on SIGTERM, exit 0."""
        home = scratch_home(self)
        env = base_env(home)
        self.assertEqual(run_cli("setup", env=env).returncode, 0)
        port = free_port()
        name, sock = notify_socket(self)
        proc = subprocess.Popen(
            [sys.executable, "-m", "openclaw", "gateway", "run", "--port", str(port)],
            env={**env, "PYTHONPATH": str(REPO), "NOTIFY_SOCKET": name, "WATCHDOG_USEC": "1000000"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        got = receive(sock, "READY")
        ready = got[-1]
        self.assertEqual((ready["READY"], ready["MAINPID"]), ("1", str(proc.pid)))
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # every listener was up when READY=1 was sent
        with socket.create_connection(("127.0.0.1", port + 1), timeout=5):
            pass
        receive(sock, "WATCHDOG", limit=10)
        proc.send_signal(signal.SIGTERM)
        receive(sock, "STOPPING", limit=30)
        _, err = proc.communicate(timeout=60)
        self.assertEqual(proc.returncode, 0, err)
