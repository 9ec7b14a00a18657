# -*- test-case-name: tests.test_matrix -*-
"""
The access token a password login obtained, kept for the next start:
C{credentials/matrix/credentials.json} (other accounts
C{credentials-<account>.json}), as upstream stores it, written crash-safe
with mode 0600. It is reused only for the same homeserver and user, and
forgotten when the homeserver refuses it (the next start logs in again).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import attrs

from openclaw.store import ensure_dir, read_json, write_json


@attrs.frozen
class Stored:
    homeserver: str
    user_id: str
    access_token: str = attrs.field(repr=False)
    device_id: str | None = None


def credentials_path(credentials_dir: Path, account_id: str) -> Path:
    name = "credentials.json" if account_id == "default" else f"credentials-{account_id}.json"
    return Path(credentials_dir) / "matrix" / name


def load(path: Path, homeserver: str, user_id: str | None) -> Stored | None:
    """The stored login for this homeserver (and user, when one is configured), else None."""
    try:
        value: Any = read_json(path, None)
    except (ValueError, OSError):
        return None
    if not isinstance(value, dict):
        return None
    token, stored_user, stored_hs = value.get("accessToken"), value.get("userId"), value.get("homeserver")
    if not (isinstance(token, str) and token and isinstance(stored_user, str) and stored_user and isinstance(stored_hs, str) and stored_hs):
        return None
    if stored_hs.rstrip("/") != homeserver.rstrip("/") or (user_id and stored_user != user_id):
        return None
    device = value["deviceId"] if isinstance(value.get("deviceId"), str) else None
    return Stored(stored_hs, stored_user, token, device)


def save(path: Path, stored: Stored) -> None:
    ensure_dir(path.parent)
    write_json(
        path,
        {
            "homeserver": stored.homeserver,
            "userId": stored.user_id,
            "accessToken": stored.access_token,
            "deviceId": stored.device_id,
            "createdAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
    )


def forget(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
