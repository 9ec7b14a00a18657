# -*- test-case-name: tests.test_nodes -*-
"""Voice wake words, shared by operators and nodes (C{settings/voicewake.json})."""

from __future__ import annotations

from pathlib import Path

from openclaw.gateway.boot import Boot
from openclaw.interfaces import EventSink
from openclaw.store import read_json, write_json

DEFAULT_TRIGGERS = ["openclaw", "claude", "computer"]
MAX_TRIGGERS = 32


class VoiceWake:
    def __init__(self, state_dir: Path, boot: Boot, events: EventSink) -> None:
        self.path = Path(state_dir) / "settings" / "voicewake.json"
        self.boot = boot
        self.events = events

    def triggers(self) -> list[str]:
        stored = read_json(self.path, None)
        triggers = stored.get("triggers") if isinstance(stored, dict) else None
        return triggers if isinstance(triggers, list) else list(DEFAULT_TRIGGERS)

    def set(self, triggers: list[str]) -> list[str]:
        """Store the words (blank ones dropped, at most 32; none: the defaults) and tell everyone."""
        cleaned = [t.strip() for t in triggers if t.strip()][:MAX_TRIGGERS] or list(DEFAULT_TRIGGERS)
        write_json(self.path, {"triggers": cleaned, "updatedAtMs": self.boot.now_ms()})
        self.events.broadcast("voicewake.changed", {"triggers": cleaned})
        return cleaned
