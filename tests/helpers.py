"""Shared test helpers: scratch homes, configs, and subprocess runs of the CLI."""

from __future__ import annotations

import json
import os
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
