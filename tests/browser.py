"""
A real headless Chromium for the Web UI tests, driven by chromedriver through
Selenium. Every driver call runs in a thread, so the gateway on the test's
reactor keeps serving while the browser waits for it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
except ImportError:  # the test extra is not installed
    webdriver = None  # type: ignore[assignment]
    Keys = None  # type: ignore[assignment]

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
CHROMEDRIVER = shutil.which("chromedriver")
FLAGS = (
    "--headless",
    "--no-sandbox",  # we run as root in CI
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-proxy-server",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
)


def missing() -> str | None:
    """Why no browser test can run here (a missing tool), or None."""
    if webdriver is None:
        return "selenium is not installed (pip install -e '.[test]')"
    if CHROMIUM is None:
        return "chromium is not installed (Debian: apt-get install chromium)"
    if CHROMEDRIVER is None:
        return "chromedriver is not installed (Debian: apt-get install chromium-driver)"
    return None


def artefacts() -> Path:
    """Where screenshots go: $OPENCLAW_WEBUI_ARTEFACTS, else webui-artefacts/ in trial's working dir."""
    folder = Path(os.environ.get("OPENCLAW_WEBUI_ARTEFACTS") or "webui-artefacts").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Browser:
    def __init__(self, driver: Any) -> None:
        self.driver = driver

    @classmethod
    async def start(cls, testcase: Any, *extra: str) -> "Browser":
        profile = Path(testcase.mktemp()).resolve()  # fresh: no identity, no stored token
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in (*FLAGS, f"--user-data-dir={profile}", *extra):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = await deferToThread(webdriver.Chrome, service=Service(CHROMEDRIVER), options=options)
        driver.set_script_timeout(20)
        browser = cls(driver)
        testcase.addCleanup(deferToThread, driver.quit)
        return browser

    async def run(self, fn: Any, *args: Any) -> Any:
        return await deferToThread(fn, *args)

    async def get(self, url: str) -> None:
        await self.run(self.driver.get, url)

    async def js(self, script: str, *args: Any) -> Any:
        return await self.run(self.driver.execute_script, script, *args)

    async def find(self, css: str) -> Any:
        return await self.run(self.driver.find_element, By.CSS_SELECTOR, css)

    async def click(self, css: str) -> None:
        element = await self.find(css)
        await self.run(element.click)

    async def keys(self, css: str, *keys: str) -> None:
        element = await self.find(css)
        await self.run(element.send_keys, *keys)

    async def until(self, script: str, what: str, timeout: float = 20.0, *args: Any) -> Any:
        """Poll a JS expression (`return ...`) until it is truthy; fail saying `what` was awaited."""
        waited = 0.0
        while True:
            value = await self.js(script, *args)
            if value:
                return value
            if waited >= timeout:
                text = await self.js("return document.body ? document.body.innerText.slice(0, 1500) : ''")
                logs = await self.console()
                raise AssertionError(f"timed out after {timeout:g} s waiting for {what}\n--- page ---\n{text}\n--- console ---\n{logs}")
            await deferLater(reactor, 0.1, lambda: None)
            waited += 0.1

    async def console(self) -> str:
        entries = await self.run(self.driver.get_log, "browser")
        return "\n".join(f"{e.get('level')} {e.get('message')}" for e in entries)

    async def screenshot(self, name: str) -> Path:
        path = artefacts() / name
        await self.run(self.driver.save_screenshot, str(path))
        return path

    async def resize(self, width: int, height: int) -> None:
        await self.run(self.driver.set_window_size, width, height)
