# -*- test-case-name: tests.test_cli -*-
"""`openclaw gateway`: run the gateway in the foreground on the global reactor."""

from __future__ import annotations

from typing import IO

from twisted.logger import globalLogBeginner, globalLogPublisher

from openclaw.config.settings import GatewaySettings
from openclaw.net.listen import StartupError
from openclaw.logs import console_observer
from openclaw.store import StateLocked


def run_gateway(settings: GatewaySettings, out: IO[str], err: IO[str]) -> int:
    """Start, run until SIGINT/SIGTERM, stop cleanly; return the exit code."""
    from twisted.internet import reactor

    from openclaw.service import GatewayService

    service = GatewayService(settings, reactor, globalLogPublisher)
    # The service's redactor: it learns secrets later (rotated auth, channel tokens).
    console = console_observer(service.redactor, settings.logging.console_level, settings.logging.console_style, out)
    globalLogBeginner.beginLoggingTo([console], redirectStandardIO=False)
    try:
        service.privilegedStartService()
        service.startService()
    except (StartupError, StateLocked) as e:
        err.write(f"openclaw gateway: {e}\n")
        return 1
    except OSError as e:
        err.write(f"openclaw gateway: cannot start: {e}\n")
        return 1
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    reactor.run()
    return 0
