# -*- test-case-name: tests.test_logs -*-
"""
Gateway logging on C{twisted.logger}.

The log file is JSON lines with a stable schema,
C{{"ts", "level", "subsystem", "msg", ...fields}}, rotated by size with a
bounded number of archives. The console gets one readable line per event.
Both pass every text and field through a L{Redactor}, so secrets never reach
a log. A module names its subsystem through a module-level logger's namespace:
C{log = Logger(namespace="openclaw.http")} logs as subsystem C{http}. (A
C{Logger} that is a class attribute takes the class name as its namespace.)
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Iterable, Mapping

from twisted.application.service import Service
from twisted.logger import (
    FilteringLogObserver,
    ILogFilterPredicate,
    ILogObserver,
    LogEvent,
    LogLevel,
    LogLevelFilterPredicate,
    LogPublisher,
    PredicateResult,
    formatEvent,
)
from twisted.python.logfile import LogFile
from zope.interface import implementer, provider

from openclaw.store import ensure_dir

if TYPE_CHECKING:
    from openclaw.config.settings import GatewaySettings

# OpenClaw's level names, mapped onto Twisted's (trace and debug share one).
LEVELS = {
    "trace": LogLevel.debug,
    "debug": LogLevel.debug,
    "info": LogLevel.info,
    "warn": LogLevel.warn,
    "error": LogLevel.error,
    "fatal": LogLevel.critical,
}
_NAMES = {LogLevel.debug: "debug", LogLevel.info: "info", LogLevel.warn: "warn", LogLevel.error: "error", LogLevel.critical: "fatal"}

MASK = "***"
_SENSITIVE_KEY = re.compile(r"(token|password|passwd|secret|api[-_]?key|authorization|cookie|private[-_]?key)", re.I)
_DEFAULT_PATTERNS = (
    re.compile(r"(?i)(?P<keep>\b(?:bearer|basic)\s+)[A-Za-z0-9._~+/=-]{6,}"),
    re.compile(r"\b(sk|pk|rk)-[A-Za-z0-9_-]{12,}"),
    re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}"),
    re.compile(r"(?<!\d)\d{6,12}:[A-Za-z0-9_-]{30,}"),  # Telegram bot tokens, also inside URLs
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"(?i)(?P<keep>[?&](?:token|key|password|secret|access_token)=)[^&\s]+"),
)


# Config keys whose string values are secrets wherever they appear (provider
# keys, channel tokens, gateway token/password, webhook secrets, ...).
_SECRET_FIELD = re.compile(r"(token|password|passwd|secret|api[-_]?key|private[-_]?key|credential|cookie)$", re.I)
_SECRET_ENV = re.compile(r"(TOKEN|PASSWORD|PASSWD|SECRET|API_?KEY|PRIVATE_?KEY|CREDENTIALS?)$")


def config_secrets(config: Mapping[str, Any], env: Mapping[str, str] = {}) -> set[str]:
    """Every configured secret, by value: secret-named config fields at any depth
    (C{models.providers.*.apiKey}, C{channels.*.botToken}, C{gateway.auth.token}, ...)
    and secret-named environment variables (C{OPENAI_API_KEY}, ...)."""
    found: set[str] = set()

    def walk(value: Any, key: str) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(v, str(k))
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk(v, key)
        elif isinstance(value, str) and _SECRET_FIELD.search(key):
            found.add(value)

    walk(config, "")
    found.update(v for k, v in env.items() if isinstance(v, str) and _SECRET_ENV.search(k.upper()))
    # Flags like "true" or a short word would mask ordinary text everywhere.
    return {s for s in found if len(s) >= 6 and s.lower() not in ("false", "enabled", "disabled")}


def gateway_redactor(settings: GatewaySettings) -> Redactor:
    """The gateway's redactor: auth secrets plus every configured secret (L{config_secrets})."""
    return Redactor((*settings.auth.secrets, *config_secrets(settings.config, settings.env)))


class Redactor:
    """Masks known secret values, secret-looking strings, and secret-named fields."""

    def __init__(self, secrets: Iterable[str] = (), patterns: Iterable[re.Pattern[str]] = _DEFAULT_PATTERNS) -> None:
        self._secrets: set[str] = set()
        self._patterns = tuple(patterns)
        self.add(*secrets)

    def add(self, *secrets: str | None) -> None:
        # Very short values would mask ordinary words; they are weak secrets anyway.
        self._secrets.update(s for s in secrets if s and len(s) >= 4)

    def text(self, text: str) -> str:
        text = self.values(text)
        for pattern in self._patterns:
            text = pattern.sub(self._mask_match, text)
        return text

    def values(self, text: str) -> str:
        """C{text} with every known secret value masked (patterns are not applied)."""
        for secret in sorted(self._secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def scrub(self, value: Any) -> Any:
        """A copy of a JSON value with known secret values masked in every string;
        nothing else changes (for events and errors sent to clients)."""
        if not self._secrets:
            return value
        if isinstance(value, str):
            return self.values(value)
        if isinstance(value, dict):
            return {k: self.scrub(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.scrub(v) for v in value]
        return value

    @staticmethod
    def _mask_match(m: re.Match[str]) -> str:
        return (m.groupdict().get("keep") or "") + MASK

    def value(self, key: str, value: Any) -> Any:
        if _SENSITIVE_KEY.search(key) and value not in (None, "", False):
            return MASK
        return self.json(value)

    def json(self, value: Any) -> Any:
        """A JSON-safe, redacted copy of C{value}."""
        if isinstance(value, str):
            return self.text(value)
        if value is None or isinstance(value, (bool, int, float)):
            return value
        if isinstance(value, dict):
            return {str(k): self.value(str(k), v) for k, v in value.items()}
        if isinstance(value, (list, tuple, set, frozenset)):
            return [self.json(v) for v in value]
        if isinstance(value, bytes):
            return self.text(value.decode("utf-8", "replace"))
        return self.text(str(value) if isinstance(value, Path) else repr(value))


def level_name(level: LogLevel | None) -> str:
    return _NAMES.get(level, "info") if level is not None else "info"


def subsystem_of(event: dict[str, Any]) -> str:
    explicit = event.get("subsystem")
    if isinstance(explicit, str) and explicit:
        return explicit
    namespace = event.get("log_namespace") or "gateway"
    if namespace.startswith("openclaw."):
        return namespace.removeprefix("openclaw.")
    if namespace == "log_legacy" or namespace.startswith("twisted."):
        return "twisted"
    return namespace


def iso_ts(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


def event_record(event: dict[str, Any], redactor: Redactor) -> dict[str, Any]:
    """The stable JSON-lines record of one log event."""
    try:
        msg = formatEvent(event)
    except Exception:  # a broken format string must not lose the event
        msg = repr(event.get("log_format"))
    record: dict[str, Any] = {
        "ts": iso_ts(event.get("log_time") or time.time()),
        "level": level_name(event.get("log_level")),
        "subsystem": subsystem_of(event),
        "msg": redactor.text(msg or ""),
    }
    failure = event.get("log_failure")
    if failure is not None:
        record["error"] = redactor.text(f"{failure.type.__name__}: {failure.getErrorMessage()}")
        record["stack"] = redactor.text(failure.getTraceback())
    for key, value in event.items():
        if key.startswith("log_") or key in record or key in ("subsystem", "format", "message", "isError"):
            continue
        record[key] = redactor.value(key, value)
    return record


@implementer(ILogObserver)
class JsonLinesObserver:
    """Writes one JSON object per line to a file-like object."""

    def __init__(self, out: Any, redactor: Redactor) -> None:
        self._out = out
        self._redactor = redactor

    def __call__(self, event: dict[str, Any]) -> None:
        line = json.dumps(event_record(event, self._redactor), ensure_ascii=False, default=str) + "\n"
        self._out.write(line.encode("utf-8"))
        self._out.flush()


@implementer(ILogObserver)
class ConsoleObserver:
    """One readable line per event: C{HH:MM:SS level [subsystem] message}."""

    def __init__(self, out: IO[str], redactor: Redactor, style: str = "pretty") -> None:
        self._out = out
        self._redactor = redactor
        self._style = style

    def __call__(self, event: dict[str, Any]) -> None:
        record = event_record(event, self._redactor)
        if self._style == "json":
            line = json.dumps(record, ensure_ascii=False, default=str)
        else:
            clock = time.strftime("%H:%M:%S", time.localtime(event.get("log_time") or time.time()))
            level = "" if record["level"] == "info" else f"{record['level']} "
            line = f"{clock} {level}[{record['subsystem']}] {record['msg']}"
            if "stack" in record and self._style == "pretty":
                line += f"\n{record['stack']}"
        try:
            self._out.write(line + "\n")
            self._out.flush()
        except (OSError, ValueError):
            pass  # a closed terminal must not take the gateway down


@provider(ILogFilterPredicate)
def _nothing(event: LogEvent) -> PredicateResult:
    return PredicateResult.no


def filtered(observer: ILogObserver, level: str) -> ILogObserver:
    """Pass only events at C{level} or above; C{silent} passes nothing."""
    if level == "silent":
        return FilteringLogObserver(observer, [_nothing])
    predicate = LogLevelFilterPredicate(defaultLogLevel=LEVELS.get(level, LogLevel.info))
    return FilteringLogObserver(observer, [predicate])


def open_log_file(path: Path, max_bytes: int, max_files: int) -> LogFile:
    """A size-rotated log file, created 0600 in a 0700 folder."""
    ensure_dir(path.parent)
    return LogFile(path.name, str(path.parent), rotateLength=max_bytes, defaultMode=0o600, maxRotatedFiles=max_files)


class LogFileService(Service):
    """Adds the JSON-lines file observer to a publisher while running."""

    name = "log-file"

    def __init__(
        self,
        path: Path,
        level: str,
        redactor: Redactor,
        publisher: LogPublisher,
        max_bytes: int,
        max_files: int,
    ) -> None:
        self.path = path
        self._level = level
        self._redactor = redactor
        self._publisher = publisher
        self._max_bytes = max_bytes
        self._max_files = max_files
        self._file: LogFile | None = None
        self._observer: ILogObserver | None = None

    def startService(self) -> None:
        self._file = open_log_file(self.path, self._max_bytes, self._max_files)
        self._observer = filtered(JsonLinesObserver(self._file, self._redactor), self._level)
        self._publisher.addObserver(self._observer)
        super().startService()

    def stopService(self) -> None:
        super().stopService()
        if self._observer is not None:
            self._publisher.removeObserver(self._observer)
            self._observer = None
        if self._file is not None:
            self._file.close()
            self._file = None


def console_observer(redactor: Redactor, level: str, style: str, out: IO[str] | None = None) -> ILogObserver:
    return filtered(ConsoleObserver(out or sys.stdout, redactor, style), level)
