# -*- test-case-name: tests.test_cli,tests.test_sdnotify -*-
"""`openclaw gateway`: run the gateway in the foreground on the global reactor."""

from __future__ import annotations

import os
from typing import IO

from twisted.logger import globalLogBeginner, globalLogPublisher

from openclaw.config.settings import GatewaySettings
from openclaw.net.listen import StartupError
from openclaw.logs import console_observer
from openclaw.ops.sdnotify import NotifyService
from openclaw.ops.tailscale import TailscaleService, TailscaleSettings, cli_runner, identity_verifier
from openclaw.store import StateLocked

# Variables meant for this process only: the agent's children must not inherit them.
_NOTIFY_VARS = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def run_gateway(settings: GatewaySettings, out: IO[str], err: IO[str], quiet: bool = False, tailscale: TailscaleSettings = TailscaleSettings()) -> int:
    """
    Start, run until SIGINT/SIGTERM, stop cleanly; return the exit code.

    C{quiet}: no console log (a background gateway; its JSON-lines file has
    everything). C{tailscale}: Serve or Funnel the port once every listener
    is up (undone before they stop), and with C{allowTailscale} trust the
    identity Serve forwards once C{tailscale whois} confirms it. The
    sd_notify service is the last child.
    """
    from twisted.internet import reactor

    from openclaw.service import GatewayService

    notify_env = {k: os.environ.pop(k) for k in _NOTIFY_VARS if k in os.environ}
    run = cli_runner(reactor, settings.env)
    identity = identity_verifier(run) if tailscale.mode != "off" and tailscale.allow_identity else None
    service = GatewayService(settings, reactor, globalLogPublisher, identity=identity)
    observers = []
    if not quiet:
        # the service's redactor: it learns secrets later (rotated auth, channel tokens)
        observers.append(console_observer(service.redactor, settings.logging.console_level, settings.logging.console_style, out))
    globalLogBeginner.beginLoggingTo(observers, redirectStandardIO=False)
    if tailscale.mode != "off":
        TailscaleService(tailscale, lambda: service.port, run).setServiceParent(service)
    notify = NotifyService.from_env(notify_env, reactor, lambda: f"listening on port {service.port}")
    if notify is not None:
        notify.setServiceParent(service)  # the last child: READY=1 once every listener is up
    try:
        service.privilegedStartService()
        service.startService()
    except (StartupError, StateLocked) as e:
        err.write(f"openclaw gateway: {e}\n")
        return 1
    except OSError as e:
        err.write(f"openclaw gateway: cannot start: {e}\n")
        return 1
    if notify is not None:
        reactor.addSystemEventTrigger("before", "shutdown", notify.stopping)  # STOPPING=1 before the drain
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    reactor.run()
    return 0
