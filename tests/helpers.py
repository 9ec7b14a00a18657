"""Shared test helpers: scratch homes, configs, and subprocess runs of the CLI."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def scratch_home(testcase: Any) -> Path:
    """A fresh HOME for one test (trial's temp dir, removed by trial)."""
    home = Path(testcase.mktemp()).resolve()
    home.mkdir(parents=True)
    return home


def base_env(home: Path, **extra: str) -> dict[str, str]:
    """A minimal environment with no OpenClaw variables leaking in from outside."""
    env = {"HOME": str(home), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    env.update(extra)
    return env


def write_config(path: Path, config: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(config if isinstance(config, str) else json.dumps(config))
    return path


def run_cli(*args: str, env: dict[str, str], cwd: Path | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run `python -m openclaw.cli` in a subprocess, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "openclaw", *args],
        env={**env, "PYTHONPATH": str(REPO)},
        cwd=str(cwd or REPO),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


FREE_PORTS = (20000, 32000)  # above the profiles' default ports (18789-19769), below the ephemeral range


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    """
    A gateway base port P that is free with its derived ports (bridge P+1,
    canvas P+4). Chosen below the ephemeral range: a kernel-chosen port's
    neighbours are often taken by the client side of other tests' connections.
    """
    rng = random.Random()
    for _ in range(500):
        port = rng.randrange(*FREE_PORTS)
        if all(_bindable(port + k) for k in range(5)):
            return port
    raise RuntimeError(f"no five free ports in a row between {FREE_PORTS[0]} and {FREE_PORTS[1]}")


class LogCapture:
    """Every log event while a test runs (an observer on the global publisher)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any]) -> None:
        self.events.append(event)

    def texts(self) -> list[str]:
        from twisted.logger import formatEvent

        return [formatEvent(e) or "" for e in self.events]

    def failures(self) -> list[str]:
        """Tracebacks and errors: log.failure, log.error/critical, legacy log.err ("Unhandled Error")."""
        from twisted.logger import LogLevel, formatEvent

        bad = [e for e in self.events if "log_failure" in e or e.get("isError") or e.get("log_level") in (LogLevel.error, LogLevel.critical)]
        return [formatEvent(e) or repr(e.get("log_failure")) for e in bad]


def capture_log(testcase: Any) -> LogCapture:
    from twisted.logger import globalLogPublisher

    capture = LogCapture()
    globalLogPublisher.addObserver(capture)
    testcase.addCleanup(globalLogPublisher.removeObserver, capture)
    return capture


def sigint_default() -> None:
    """
    C{preexec_fn} for children a test stops with SIGINT (as Ctrl-C would): a
    test run started in the background inherits SIGINT ignored, and then
    Python in the child never turns SIGINT into KeyboardInterrupt.
    """
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def fake_bin(folder: Path, name: str, script: str) -> Path:
    """An executable shell script C{name} in C{folder} (put C{folder} first on PATH)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)
    return path
