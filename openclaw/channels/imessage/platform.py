# -*- test-case-name: tests.test_imessage -*-
"""
iMessage accounts from config: C{cliPath} (default C{imsg}, looked up on
C{PATH}; any executable that speaks C{imsg rpc} on stdio, such as a wrapper
that runs imsg on a Mac over SSH) and C{dbPath} (passed as C{--db}).

An account whose C{cliPath} is not an executable is not configured, and
says why in status instead of retrying: on macOS, install imsg; elsewhere,
point C{cliPath} at an SSH wrapper (Messages only runs on a Mac).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from zope.interface import implementer

from openclaw.channels.imessage.channel import LIMITS, IMessageChannel
from openclaw.channels.interfaces import AccountConfig, ChannelHost, ConfigProblem, IChannel, IConfigHint, IPlatform

DEFAULT_CLI = "imsg"
NOT_A_MAC = "needs macOS with imsg (or channels.imessage.cliPath pointing at an SSH wrapper)"
NO_IMSG = "imsg was not found: install it with `brew install steipete/tap/imsg`, or set channels.imessage.cliPath"


def resolve_cli(account: AccountConfig) -> str | None:
    """The absolute path of the helper to run, or None when there is no such executable."""
    raw = account.config.get("cliPath")
    name = raw.strip() if isinstance(raw, str) and raw.strip() else DEFAULT_CLI
    name = os.path.expanduser(name)
    if os.sep in name:
        path = Path(name)
        return os.path.abspath(path) if path.is_file() and os.access(path, os.X_OK) else None
    found = shutil.which(name, path=account.env.get("PATH") or os.defpath)
    return os.path.abspath(found) if found else None


@implementer(IPlatform, IConfigHint)
class IMessagePlatform:
    id = "imessage"
    label = "iMessage"
    limits = LIMITS

    def __init__(self, system: str = sys.platform) -> None:
        self.system = system

    def configured(self, account: AccountConfig) -> bool:
        return resolve_cli(account) is not None

    def unconfigured(self, account: AccountConfig) -> str:
        raw = account.config.get("cliPath")
        if isinstance(raw, str) and raw.strip():
            return f"channels.imessage.cliPath {raw.strip()!r} is not an executable file; " + (NO_IMSG if self.system == "darwin" else NOT_A_MAC)
        return NO_IMSG if self.system == "darwin" else NOT_A_MAC

    def build(self, account: AccountConfig, host: ChannelHost) -> IChannel:
        cli = resolve_cli(account)
        if cli is None:
            raise ConfigProblem(self.unconfigured(account))
        argv = [cli, "rpc"]
        db = account.config.get("dbPath")
        if isinstance(db, str) and db.strip():
            argv += ["--db", os.path.expanduser(db.strip())]
        channel: IChannel = IMessageChannel(account, host, argv, dict(account.env))
        return channel
