# -*- test-case-name: tests.test_nodes -*-
"""
Which node commands may be invoked: what the node declares, intersected
with its platform's defaults plus C{gateway.nodes.commands.allow}, minus
C{deny}. Dangerous commands need an explicit C{allow}.
"""

from __future__ import annotations

from typing import Collection, Iterable

DANGEROUS = frozenset(
    {
        "camera.snap", "camera.clip", "camera.ptz.control", "desktop.stream", "screen.record",
        "contacts.add", "calendar.add", "reminders.add", "health.summary", "sms.send", "sms.search",
    }
)
_CANVAS = {"canvas.present", "canvas.hide", "canvas.navigate", "canvas.eval", "canvas.snapshot", "canvas.a2ui.push", "canvas.a2ui.pushJSONL", "canvas.a2ui.reset"}
_HOST = {"system.run", "system.which", "system.notify", "system.execApprovals.get", "system.execApprovals.set", "browser.proxy"}
_MOBILE = {"camera.list", "location.get", "device.info", "device.status", "notifications.list", "photos.latest", "contacts.search", "calendar.events", "reminders.list", "motion.activity"}

PLATFORM_DEFAULTS = {
    "linux": _HOST | _CANVAS | {"camera.list", "location.get"},
    "macos": _HOST | _CANVAS | {"camera.list", "location.get", "screen.list"},
    "windows": _HOST | {"camera.list"},
    "ios": _CANVAS | _MOBILE | {"talk.start", "talk.stop"},
    "android": _CANVAS | _MOBILE | {"talk.start", "talk.stop"},
}


def platform_family(platform: str | None) -> str:
    p = (platform or "").strip().lower()
    for family, needles in (("macos", ("darwin", "mac")), ("ios", ("ios", "ipad")), ("android", ("android",)), ("windows", ("win",)), ("linux", ("linux",))):
        if any(p.startswith(n) for n in needles):
            return family
    return "linux"


def allowed_commands(declared: Iterable[str], platform: str | None, allow: Collection[str] = (), deny: Collection[str] = ()) -> set[str]:
    """C{allow}/C{deny}: C{gateway.nodes.commands} (L{openclaw.config.settings.NodeSettings})."""
    base = PLATFORM_DEFAULTS[platform_family(platform)] - DANGEROUS
    return {c for c in declared if (c in base or c in allow) and c not in deny}
