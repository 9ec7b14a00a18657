"""
The real upstream CLI against our Discord channel: `openclaw channels status`
(both versions) shows the account as our gateway reports it, and v3's
`openclaw pairing approve discord` (which writes the state dir's files)
lets a Discord sender through.
"""

from __future__ import annotations

import json
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from tests.fakes import openai_text
from tests.fakes_discord import wait_for
from tests.interop.test_real_cli import VERSIONS, cli_env, install
from tests.test_discord import ALICE, DiscordMixin


class RealDiscordCLIMixin(DiscordMixin):
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
        """`openclaw channels status` prints our Discord account (JSON, and text with the CLI's own config naming the channel)."""
        await self.start()
        await self.connected()
        code, out, err = await self.real("channels", "status", "--json", "--probe")
        self.assertEqual(code, 0, err[-2000:])
        status = json.loads(out[out.index("{") :])
        row = status["channelAccounts"]["discord"][0]
        self.assertEqual((row["accountId"], row["connected"], row["running"], row["probe"]["ok"]), ("default", True, True, True))
        state = Path(self.mktemp()).resolve()
        state.mkdir()
        (state / "openclaw.json").write_text(json.dumps({"channels": {"discord": {"enabled": True, "token": self.dc.token}}, "plugins": {"entries": {"discord": {"enabled": True}}}}))
        code, out, err = await self.real("channels", "status", state=state)
        self.assertEqual(code, 0, err[-2000:])
        self.assertIn("Discord default: enabled, configured, running, connected, mode:gateway, bot:@claw_test_bot", out)


class V3DiscordTests(RealDiscordCLIMixin, TestCase):
    version = VERSIONS["v3"]

    async def test_pairing_approve_shares_our_files(self):
        """v3's `pairing list discord` shows the code our gateway issued; its `pairing approve` lets the Discord sender through our gateway."""
        await self.start(replies=[openai_text("welcome")])
        await self.connected()
        self.dc.dm(ALICE, "hello")
        code = await self.code_for(ALICE)
        state = self.service.settings.state_dir
        status, out, err = await self.real("pairing", "list", "discord", "--json", state=state)
        self.assertEqual(status, 0, err[-2000:])
        listing = json.loads(out[out.index("{") :])
        self.assertEqual([(r["id"], r["code"]) for r in listing["requests"]], [(ALICE, code)])
        status, out, err = await self.real("pairing", "approve", "discord", code, state=state)
        self.assertEqual(status, 0, err[-2000:])
        self.dc.dm(ALICE, "may I?")
        await wait_for(lambda: "welcome" in self.dm_texts(ALICE), what="the reply after upstream's approval")


class V4DiscordTests(RealDiscordCLIMixin, TestCase):
    version = VERSIONS["v4"]
