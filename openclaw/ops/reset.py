# -*- test-case-name: tests.test_daemon -*-
"""
`openclaw gateway reset --state`: remove what the gateway rebuilds or can
do without, keep what the user would lose.

Removed: the lock and pid files, pending pairing requests (devices, nodes),
the derived session indexes (rebuilt from the transcripts), stray temp
files, C{gateway-state/} (the seed's runtime folder). Kept: the config and
C{.env}, credentials, this machine's identity, paired devices and nodes,
node names, transcripts, the workspace, the canvas and the logs.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from openclaw.ops.daemon import PID_NAME, RECORD_NAME
from openclaw.store import LOCK_NAME, clean_stray_temps

RUNTIME_FILES = (LOCK_NAME, PID_NAME, RECORD_NAME, "devices/pending.json", "nodes/pending.json", "tailscale.json")
RUNTIME_DIRS = ("gateway-state",)


def reset_state(state_dir: Path) -> list[Path]:
    """Remove the runtime state of a stopped gateway; return what was removed."""
    state_dir = Path(state_dir)
    removed: list[Path] = []
    for name in RUNTIME_FILES:
        path = state_dir / name
        if path.is_file() and not path.is_symlink():
            path.unlink()
            removed.append(path)
    for name in RUNTIME_DIRS:
        path = state_dir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
            removed.append(path)
    agents = state_dir / "agents"
    if agents.is_dir():
        for index in sorted(agents.glob("*/sessions/sessions.json")):
            if index.is_file() and not index.is_symlink():
                index.unlink()
                removed.append(index)
    removed += clean_stray_temps(state_dir)
    return removed
