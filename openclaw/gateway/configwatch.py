# -*- test-case-name: tests.test_ws -*-
"""
The config file while the gateway runs. Settings are read once at start;
what may change without a restart (today: the auth secrets, see
L{openclaw.gateway.auth.AuthState}) listens here. The file is polled (its
size and mtime) every 2 s and read again at once after C{config.set},
C{config.apply} and C{config.patch}; a file that does not load or validate
is logged and the last good config stays.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Mapping

from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from openclaw.config.errors import ConfigError
from openclaw.config.loader import LoadedConfig, load_config
from openclaw.config.settings import GatewaySettings, checked

log = Logger(namespace="openclaw.gateway")

POLL_SECONDS = 2.0


class ConfigWatch:
    """The current (last good) config; C{subscribe} to hear about each new one."""

    def __init__(self, settings: GatewaySettings, clock: IReactorTime, interval: float = POLL_SECONDS) -> None:
        self.path: Path = settings.layout.config_path
        self.state_dir: Path = settings.state_dir
        self._base_env = settings.env
        self._config: Mapping[str, Any] = settings.config
        self._env: Mapping[str, str] = settings.env
        self._listeners: list[Callable[[LoadedConfig], None]] = []
        self._stamp: tuple[int, int] | None = None
        self._loop = LoopingCall(self.check)
        self._loop.clock = clock
        self._interval = interval

    def config(self) -> Mapping[str, Any]:
        return self._config

    def env(self) -> Mapping[str, str]:
        return self._env

    def subscribe(self, listener: Callable[[LoadedConfig], None]) -> None:
        self._listeners.append(listener)

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def check(self) -> None:
        """Read the file again if it changed since the last look."""
        stamp = self._stat()
        if stamp != self._stamp:
            self.reload()

    def reload(self) -> None:
        """Read the file now; listeners hear of a config that loads and validates."""
        self._stamp = self._stat()
        try:
            loaded = checked(load_config(self.path, self._base_env))
        except ConfigError as e:
            log.warn("config reload skipped: {problem}", problem=e.describe())
            return
        self._config, self._env = loaded.config, loaded.env
        for listener in list(self._listeners):
            listener(loaded)

    def start(self) -> None:
        self._stamp = self._stat()
        self._loop.start(self._interval, now=False)

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()
