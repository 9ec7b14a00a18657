# -*- test-case-name: tests.test_channels_pairing -*-
"""
DM pairing (spec §8.4): an unknown sender gets a code; the owner approves it.

Per channel, in C{credentials/} and in upstream's v3 format (so its CLI
reads them too): C{<channel>-pairing.json} holds the pending requests,
C{<channel>-allowFrom.json} the approved senders. Codes are 8 characters
from an alphabet without C{0 O 1 I}, drawn with C{secrets}, unique among the
channel's pending codes; a request expires C{pairing.codeExpiry} after it
was created (default 300 s) and at most C{pairing.maxPending} (default 10)
wait per channel. Every change is a crash-safe write (0600). Files are read
again on each use, so an approval made by another process counts at once.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

import attrs
from twisted.logger import Logger

from openclaw.store import read_json, write_json

log = Logger(namespace="openclaw.channels")

ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8
DEFAULT_TTL_MS = 300_000
DEFAULT_MAX_PENDING = 10
CODE_ATTEMPTS = 500
MAX_ALLOW_ENTRIES = 10_000
_UNSAFE = re.compile(r'[\\/:*?"<>|]')
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)$")
_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def duration_ms(value: Any, default: int) -> int:
    """Milliseconds from a config duration (an integer of ms, or "90s", "5m", "1h")."""
    if isinstance(value, bool):
        return default
    if isinstance(value, int) and value >= 0:
        return value
    if isinstance(value, str):
        m = _DURATION.match(value.strip())
        if m:
            return int(float(m.group(1)) * _UNITS[m.group(2)])
    return default


def safe_channel(channel: str) -> str:
    """The channel id as upstream puts it in file names."""
    raw = str(channel).strip().lower()
    safe = _UNSAFE.sub("_", raw).replace("..", "_")
    if not safe or safe == "_":
        raise ValueError("invalid pairing channel")
    return safe


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def parse_iso(value: Any) -> int | None:
    if not isinstance(value, str):
        return None
    try:
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None


@attrs.frozen
class PairingSettings:
    enabled: bool = True
    ttl_ms: int = DEFAULT_TTL_MS
    max_pending: int = DEFAULT_MAX_PENDING

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> PairingSettings:
        section = config["pairing"] if isinstance(config.get("pairing"), dict) else {}
        assert isinstance(section, dict)
        limit = section.get("maxPending", DEFAULT_MAX_PENDING)
        return cls(
            enabled=section.get("enabled", True) is not False,
            ttl_ms=duration_ms(section.get("codeExpiry"), DEFAULT_TTL_MS),
            max_pending=limit if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0 else DEFAULT_MAX_PENDING,
        )


@attrs.frozen
class PairingRequest:
    channel: str
    sender_id: str
    code: str
    created_ms: int
    last_seen_ms: int
    meta: Mapping[str, str] = attrs.field(factory=dict)

    @property
    def account_id(self) -> str:
        return self.meta.get("accountId") or "default"

    @property
    def request_id(self) -> str:
        """Stable id for the RPCs: sha256(channel, account, sender, createdAt), as upstream."""
        seed = "\0".join((self.channel, self.account_id, self.sender_id, iso(self.created_ms)))
        return base64.urlsafe_b64encode(hashlib.sha256(seed.encode()).digest()).decode().rstrip("=")[:32]

    def expires_ms(self, ttl_ms: int) -> int:
        return self.created_ms + ttl_ms

    def to_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"id": self.sender_id, "code": self.code, "createdAt": iso(self.created_ms), "lastSeenAt": iso(self.last_seen_ms)}
        if self.meta:
            entry["meta"] = dict(self.meta)
        return entry

    @classmethod
    def from_json(cls, channel: str, entry: Any) -> PairingRequest | None:
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str) or not isinstance(entry.get("code"), str):
            return None
        created = parse_iso(entry.get("createdAt"))
        if created is None:
            return None
        meta = entry["meta"] if isinstance(entry.get("meta"), dict) else {}
        return cls(channel, entry["id"], entry["code"], created, parse_iso(entry.get("lastSeenAt")) or created, {str(k): str(v) for k, v in meta.items() if isinstance(v, (str, int))})


class PairingStore:
    """One channel's pending requests and approved senders."""

    def __init__(self, credentials: Path, channel: str, settings: PairingSettings) -> None:
        self.channel = channel
        self.settings = settings
        key = safe_channel(channel)
        self.requests_path = Path(credentials) / f"{key}-pairing.json"
        self.allow_path = Path(credentials) / f"{key}-allowFrom.json"
        self._allow_cache: tuple[Any, frozenset[str]] = (None, frozenset())

    # -- files

    def _read(self, path: Path, field: str) -> list[Any]:
        try:
            value = read_json(path, {})
        except (ValueError, OSError) as e:
            log.error("{path} cannot be read ({error}); treating it as empty", path=str(path), error=str(e))
            self._set_aside(path)
            return []
        items = value.get(field) if isinstance(value, dict) else None
        return items if isinstance(items, list) else []

    @staticmethod
    def _set_aside(path: Path) -> None:
        """Keep a damaged file for the owner instead of overwriting it."""
        try:
            os.replace(path, path.with_name(f"{path.name}.corrupt-{int(time.time())}"))
        except OSError:
            pass

    def _requests(self) -> list[PairingRequest]:
        found = (PairingRequest.from_json(self.channel, e) for e in self._read(self.requests_path, "requests"))
        return [r for r in found if r is not None]

    def _save_requests(self, requests: list[PairingRequest]) -> None:
        write_json(self.requests_path, {"version": 1, "requests": [r.to_json() for r in requests]})

    # -- approved senders

    def allowed(self) -> frozenset[str]:
        """The approved sender ids (re-read when the file changed)."""
        try:
            st = os.stat(self.allow_path)
            stamp: Any = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            stamp = None
        if stamp is None:
            return frozenset()
        if stamp != self._allow_cache[0]:
            entries = [str(e).strip() for e in self._read(self.allow_path, "allowFrom") if isinstance(e, (str, int))]
            self._allow_cache = (stamp, frozenset(e for e in entries if e and e != "*"))
        return self._allow_cache[1]

    def allow(self, sender_id: str) -> bool:
        """Add an approved sender; False when it was there already."""
        current = [str(e) for e in self._read(self.allow_path, "allowFrom") if isinstance(e, (str, int))]
        if sender_id in current:
            return False
        current = (current + [sender_id])[-MAX_ALLOW_ENTRIES:]
        write_json(self.allow_path, {"version": 1, "allowFrom": current})
        return True

    def revoke(self, sender_id: str) -> bool:
        current = [str(e) for e in self._read(self.allow_path, "allowFrom") if isinstance(e, (str, int))]
        if sender_id not in current:
            return False
        write_json(self.allow_path, {"version": 1, "allowFrom": [e for e in current if e != sender_id]})
        return True

    # -- pending requests

    def _live(self, now_ms: int) -> tuple[list[PairingRequest], list[PairingRequest]]:
        """(live, expired) requests, the expired ones removed from the file."""
        live: list[PairingRequest] = []
        expired: list[PairingRequest] = []
        for r in self._requests():
            (expired if now_ms - r.created_ms >= self.settings.ttl_ms or r.created_ms > now_ms + self.settings.ttl_ms else live).append(r)
        if expired:
            self._save_requests(live)
        return live, expired

    def expire(self, now_ms: int) -> list[PairingRequest]:
        """Drop and return the expired requests."""
        return self._live(now_ms)[1]

    def pending(self, now_ms: int) -> list[PairingRequest]:
        return sorted(self._live(now_ms)[0], key=lambda r: r.created_ms)

    def request(self, sender_id: str, now_ms: int, meta: Mapping[str, str] | None = None) -> tuple[PairingRequest | None, bool]:
        """
        The pending request for C{sender_id}: C{(request, created)}. A sender
        who asks again keeps the code (created False). C{(None, False)} when
        C{maxPending} requests already wait.
        """
        live, _ = self._live(now_ms)
        for i, r in enumerate(live):
            if r.sender_id == sender_id:
                live[i] = attrs.evolve(r, last_seen_ms=now_ms)
                self._save_requests(live)
                return live[i], False
        if len(live) >= self.settings.max_pending:
            return None, False
        codes = {r.code for r in live}
        for _ in range(CODE_ATTEMPTS):
            code = new_code()
            if code not in codes:
                break
        else:
            raise RuntimeError("could not draw a unique pairing code")
        request = PairingRequest(self.channel, sender_id, code, now_ms, now_ms, dict(meta or {}))
        self._save_requests([*live, request])
        return request, True

    def find(self, now_ms: int, code: str | None = None, request_id: str | None = None) -> PairingRequest | None:
        wanted = (code or "").strip().upper()
        for r in self._live(now_ms)[0]:
            if (wanted and r.code == wanted) or (request_id and r.request_id == request_id):
                return r
        return None

    def remove(self, request: PairingRequest) -> bool:
        requests = self._requests()
        kept = [r for r in requests if not (r.sender_id == request.sender_id and r.code == request.code)]
        if len(kept) == len(requests):
            return False
        self._save_requests(kept)
        return True

    def approve(self, request: PairingRequest) -> bool:
        """Allow the sender, then forget the request (a crash between leaves both); False if it was gone."""
        if not any(r.sender_id == request.sender_id and r.code == request.code for r in self._requests()):
            return False
        self.allow(request.sender_id)
        self.remove(request)
        return True
