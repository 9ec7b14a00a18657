"""
What the bench scripts share: the gateway as a separate process (its own
state directory, a free loopback port, the config a scenario needs), its CPU
time and memory read from /proc, percentiles, and the table printer.

Timestamps that cross processes (load clients, the fake provider, this
orchestrator) are C{time.monotonic()}: one clock for every process on the
machine, so a chunk's write time in the provider and its arrival in a client
can be subtracted.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Iterable, Sequence

REPO = Path(__file__).resolve().parent.parent
TOKEN = "bench-token-0123456789abcdef"
TICKS = os.sysconf("SC_CLK_TCK")


def free_port(span: int = 5) -> int:
    """A loopback port P with P..P+span free (the bridge is on P+1, the canvas on P+4)."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port + span >= 65536:
            continue
        taken = False
        for extra in range(1, span):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port + extra))
                except OSError:
                    taken = True
                    break
        if not taken:
            return port
    raise RuntimeError("no free port range on 127.0.0.1")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def cpu_split(pid: int) -> tuple[float, float]:
    """(utime, stime) of a process in seconds: Python's work, and the kernel's on its behalf."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICKS, int(fields[12]) / TICKS


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (the peak since the process started), in KiB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1])
    return out


def mib(kib: int) -> float:
    return round(kib / 1024, 1)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile of already sorted values (None for none)."""
    if not values:
        return None
    rank = max(1, min(len(values), int(-(-q * len(values) // 1))))  # ceil(q * n), at least 1
    return values[rank - 1]


def ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 2)


class Gateway:
    """
    `python -m openclaw gateway` in a fresh HOME, with the bench token, warn-level
    JSON logs to a file, and C{extra} merged into the config. C{profile}: run it
    under cProfile, the stats written to that path at stop.
    """

    def __init__(self, extra: dict[str, Any] | None = None, profile: Path | None = None, state: Path | None = None) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="oc-bench-"))
        self.state = self.home / ".openclaw"
        self.port = free_port()
        self.bridge_port = self.port + 1
        self.log_file = self.home / "gateway.log"
        config: dict[str, Any] = {
            "gateway": {
                "mode": "local",
                "maxConnections": 20000,
                "preauth": {"maxPerAddress": 20000},  # every bench client comes from 127.0.0.1
                "auth": {"token": TOKEN},
            },
            "logging": {"level": "warn", "file": str(self.log_file)},
        }
        for key, value in (extra or {}).items():
            if isinstance(value, dict) and isinstance(config.get(key), dict):
                config[key] = {**config[key], **value}
            else:
                config[key] = value
        self.state.mkdir(parents=True, mode=0o700)
        (self.state / "openclaw.json").write_text(json.dumps(config))
        if state is not None:
            shutil.copytree(state, self.state, dirs_exist_ok=True)
        self.profile = profile
        self.proc: subprocess.Popen[bytes] | None = None
        self.start_s: float | None = None

    def seed(self, relative: str, value: Any) -> None:
        """A state file in place before the gateway starts (e.g. a paired node)."""
        path = self.state / relative
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.write_text(json.dumps(value))
        os.chmod(path, 0o600)

    def start(self, timeout: float = 30.0) -> "Gateway":
        try:
            return self._start(timeout)
        except BaseException:
            self.stop()  # no process or state folder left behind
            raise

    def _start(self, timeout: float) -> "Gateway":
        argv = [sys.executable]
        if self.profile is not None:
            argv += ["-m", "cProfile", "-o", str(self.profile)]
        argv += ["-m", "openclaw", "gateway", "--port", str(self.port)]
        env = {**os.environ, "HOME": str(self.home), "PYTHONPATH": str(REPO)}
        t0 = time.monotonic()
        self.proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=open(self.home / "stderr.txt", "wb"))
        deadline = t0 + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited {self.proc.returncode}: {(self.home / 'stderr.txt').read_text()[-2000:]}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=1).read()
                self.start_s = time.monotonic() - t0  # process start → answering on its port
                return self
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("gateway did not answer /health") from None
                time.sleep(0.05)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def cpu_split(self) -> tuple[float, float]:
        return cpu_split(self.pid)

    def memory(self) -> dict[str, int]:
        return memory_kib(self.pid)

    def logged_errors(self) -> list[str]:
        found = []
        try:
            lines = self.log_file.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return found
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("level") in ("error", "fatal") or "Unhandled" in str(record.get("msg", "")):
                found.append(str(record.get("msg", ""))[:200])
        return found

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.home, ignore_errors=True)


UPSTREAM_VERSION = "2026.1.30"


def upstream_cli() -> Path | None:
    """The cached upstream CLI's wrapper (tools: /work/shared/tools/install-openclaw-cli.sh), or None."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    path = cache / "openclaw-cli" / UPSTREAM_VERSION / "openclaw"
    return path if os.access(path, os.X_OK) else None


def process_tree(pid: int) -> list[int]:
    """C{pid} and its live descendants (from /proc/*/stat)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


class Upstream:
    """
    The real upstream gateway (openclaw 2026.1.30 on its own Node 22, from the
    CLI cache) as the comparison: the same config keys, token and port layout
    as L{Gateway}; CPU and memory summed over its process tree. No update
    check (no network); otherwise upstream's defaults.
    """

    name = f"upstream {UPSTREAM_VERSION}"

    def __init__(self, extra: dict[str, Any] | None = None, profile: Path | None = None) -> None:
        cli = upstream_cli()
        if cli is None:
            raise RuntimeError(f"the upstream CLI {UPSTREAM_VERSION} is not cached")
        self.cli = cli
        self.home = Path(tempfile.mkdtemp(prefix="oc-bench-up-"))
        self.state = self.home / ".openclaw"
        self.port = free_port()
        self.bridge_port = self.port + 1
        config: dict[str, Any] = {
            "gateway": {"mode": "local", "auth": {"token": TOKEN}},
            "update": {"checkOnStart": False},
            "logging": {"level": "warn", "file": str(self.home / "gateway.log")},
        }
        for key, value in (extra or {}).items():
            config[key] = {**config[key], **value} if isinstance(value, dict) and isinstance(config.get(key), dict) else value
        self.state.mkdir(parents=True, mode=0o700)
        (self.state / "openclaw.json").write_text(json.dumps(config))
        self.proc: subprocess.Popen[bytes] | None = None
        self.start_s: float | None = None

    def start(self, timeout: float = 90.0) -> "Upstream":
        try:
            return self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout: float) -> "Upstream":
        env = {**os.environ, "HOME": str(self.home), "OPENCLAW_STATE_DIR": str(self.state), "OPENCLAW_CONFIG_PATH": str(self.state / "openclaw.json")}
        env.pop("OPENCLAW_GATEWAY_TOKEN", None)
        t0 = time.monotonic()
        self.proc = subprocess.Popen([str(self.cli), "gateway", "--port", str(self.port), "--bind", "loopback"], env=env, stdout=open(self.home / "stdout.txt", "wb"), stderr=subprocess.STDOUT, start_new_session=True)
        deadline = t0 + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"upstream gateway exited {self.proc.returncode}: {(self.home / 'stdout.txt').read_text(errors='replace')[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    self.start_s = time.monotonic() - t0
                    time.sleep(1.0)  # what it starts after listening (heartbeat, browser service) settles
                    return self
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the upstream gateway did not listen") from None
                time.sleep(0.05)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cpu(self) -> float:
        total = 0.0
        for p in process_tree(self.pid):
            try:
                total += cpu_seconds(p)
            except OSError:
                pass  # ended meanwhile
        return total

    def cpu_split(self) -> tuple[float, float]:
        user = system = 0.0
        for p in process_tree(self.pid):
            try:
                u, k = cpu_split(p)
            except OSError:
                continue
            user, system = user + u, system + k
        return user, system

    def memory(self) -> dict[str, int]:
        total = {"VmRSS": 0, "VmHWM": 0}
        for p in process_tree(self.pid):
            try:
                m = memory_kib(p)
            except OSError:
                continue
            for k in total:
                total[k] += m.get(k, 0)
        return total

    def logged_errors(self) -> list[str]:
        return []  # its log is not ours to judge: errors show as failed requests

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, 15)
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()
            except ProcessLookupError:
                pass
        shutil.rmtree(self.home, ignore_errors=True)


class Workers:
    """
    Load-client processes (bench/load.py ROLE ARGS): each prints JSON lines on
    stdout (C{{"ready": ...}} once its connections are up, C{{"result": ...}}
    at the end) and stops holding its connections at EOF on stdin.
    """

    def __init__(self, role: str, args: Iterable[dict[str, Any]]) -> None:
        self.procs = [
            subprocess.Popen(
                [sys.executable, str(REPO / "bench" / "load.py"), role, json.dumps(a)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env={**os.environ, "PYTHONPATH": str(REPO)},
            )
            for a in args
        ]

    def _line(self, proc: subprocess.Popen[bytes]) -> dict[str, Any]:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            proc.wait()
            raise RuntimeError(f"load client exited {proc.returncode} without a result")
        return json.loads(line)

    def ready(self) -> list[dict[str, Any]]:
        """Wait until every worker says its connections are up."""
        return [self._line(p)["ready"] for p in self.procs]

    def release(self) -> None:
        for p in self.procs:
            assert p.stdin is not None
            p.stdin.close()

    def results(self, timeout: float = 300.0) -> list[dict[str, Any]]:
        out = []
        for p in self.procs:
            frame = self._line(p)
            while "result" not in frame:
                frame = self._line(p)
            out.append(frame["result"])
            p.wait(timeout)
        return out

    def kill(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def split(total: int, parts: int) -> list[int]:
    """C{total} in C{parts} shares that differ by at most one (empty shares dropped)."""
    return [n for n in (total // parts + (1 if i < total % parts else 0) for i in range(parts)) if n]


def table(title: str, rows: list[tuple[str, str, str, str]]) -> str:
    """A human table: figure, value, target, change against the baseline."""
    head = ("figure", "value", "target", "vs baseline")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    lines = [title]
    for r in [head, *rows]:
        lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return "\n".join(lines)
