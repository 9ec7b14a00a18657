"""Config problems, each naming the key path it is about."""

from __future__ import annotations

from openclaw.shape import Issue

__all__ = ["EX_CONFIG", "ConfigError", "Issue"]

EX_CONFIG = 78  # sysexits.h: configuration error; what `openclaw gateway` exits with


class ConfigError(Exception):
    """The config cannot be used; C{issues} say where and why."""

    def __init__(self, issues: list[Issue], path: object = None) -> None:
        self.issues = list(issues)
        self.path = path
        super().__init__(self.describe())

    def describe(self) -> str:
        head = f"Invalid config at {self.path}:" if self.path else "Invalid config:"
        return "\n".join([head, *(f"  - {issue}" for issue in self.issues)])
