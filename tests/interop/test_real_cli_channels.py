"""
The real upstream CLI against our channels: `openclaw channels status`
(both versions, over `channels.status`), `openclaw health` (the snapshot's
`channels`) and v3's `openclaw pairing list` /
`pairing approve`, which read and write the state dir's credentials files
directly (v4's read its SQLite database, which this gateway does not keep).
"""

from __future__ import annotations

import json
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from tests.fakes import openai_text
from tests.fakes_telegram import wait_for
from tests.interop.test_real_cli import VERSIONS, cli_env, install
from tests.test_telegram import TelegramMixin


class RealChannelsCLIMixin(TelegramMixin):
    version: str
    timeout = 300

    async def real(self, *args: str, state: Path | None = None) -> tuple[int, str, str]:
        cli = install(self.version)
        if state is None:
            state = Path(self.mktemp()).resolve()
            state.mkdir()
        env = cli_env(state, OPENCLAW_GATEWAY_URL=f"ws://127.0.0.1:{self.service.port}", OPENCLAW_GATEWAY_PORT=str(self.service.port))
        out, err, code = await getProcessOutputAndValue(cli, list(args), env=env, reactor=reactor)
        return code, out.decode(), err.decode()

    async def test_channels_status(self):
        """`openclaw channels status` prints our Telegram account (JSON and text)."""
        await self.start()
        await self.connected()
        code, out, err = await self.real("channels", "status", "--json")
        self.assertEqual(code, 0, err[-2000:])
        status = json.loads(out[out.index("{") :])
        row = status["channelAccounts"]["telegram"][0]
        self.assertEqual((row["accountId"], row["connected"], row["running"]), ("default", True, True))
        # The text lists the channels the CLI's own config knows (v3 loads channel plugins from it).
        state = Path(self.mktemp()).resolve()
        state.mkdir()
        (state / "openclaw.json").write_text(json.dumps({"channels": {"telegram": {"enabled": True, "botToken": self.bot.token}}, "plugins": {"entries": {"telegram": {"enabled": True}}}}))
        code, out, err = await self.real("channels", "status", state=state)
        self.assertEqual(code, 0, err[-2000:])
        self.assertIn("running, connected", out)
        self.assertIn("bot:@claw_test_bot", out)

    async def test_health_shows_the_account(self):
        """`openclaw health` prints our Telegram account from the health snapshot's channels, as it is now (v3: configured; v4 shows its state)."""
        await self.start()
        await self.connected()
        code, out, err = await self.real("health")
        self.assertEqual(code, 0, err[-2000:])
        self.assertIn(self.health_line, out.splitlines())


class V3ChannelsTests(RealChannelsCLIMixin, TestCase):
    version = VERSIONS["v3"]
    health_line = "Telegram: configured"

    async def test_pairing_list_and_approve_share_our_files(self):
        """v3's `pairing list telegram` shows the code our gateway issued; its `pairing approve` lets the sender through our gateway."""
        await self.start(replies=[openai_text("welcome")])
        await self.connected()
        self.bot.dm(5, "hello")
        code = await self.code_for(5)
        state = self.service.settings.state_dir
        status, out, err = await self.real("pairing", "list", "telegram", "--json", state=state)
        self.assertEqual(status, 0, err[-2000:])
        listing = json.loads(out[out.index("{") :])
        self.assertEqual([(r["id"], r["code"]) for r in listing["requests"]], [("5", code)])
        status, out, err = await self.real("pairing", "approve", "telegram", code, state=state)
        self.assertEqual(status, 0, err[-2000:])
        self.bot.dm(5, "may I?")
        await wait_for(lambda: "welcome" in self.bot.texts(5), what="the reply after upstream's approval")


class V4ChannelsTests(RealChannelsCLIMixin, TestCase):
    version = VERSIONS["v4"]
    health_line = "Telegram: running"


