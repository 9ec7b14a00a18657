"""
Discord end to end: the gateway against the fake Discord (tests/fakes_discord.py:
REST and a WebSocket gateway) and the fake model provider (tests/fakes.py), on
loopback.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from tests.fakes import openai_text, start_fake
from tests.fakes_discord import RestFault, start_discord, too_many, wait_for
from tests.helpers import REPO
from tests.test_agent import model_config
from tests.test_telegram import Gateway
from tests.wsclient import TOKEN, GatewayMixin

CODE = re.compile(r"Pairing code: ([A-Z2-9]{8})")
GENERAL = "700000000000000001"
RANDOM = "700000000000000002"
GUILD = "800000000000000001"
ALICE = "600000000000000042"
BOB = "600000000000000043"


class DiscordMixin(GatewayMixin):
    timeout = 60

    async def start(self, discord=None, replies=(), heartbeat_ms=41250, before=None, **config):
        self.dc, self.api = await start_discord(self, heartbeat_ms)
        self.dc.add_guild(GUILD, "Test Server", {GENERAL: "general", RANDOM: "random"})
        if before is not None:
            before(self.dc)
        self.model, self.model_url = await start_fake(self)
        self.model.replies += list(replies)
        self.section = {k: v for k, v in {"token": self.dc.token, "apiBase": self.api, **(discord or {})}.items() if v is not None}
        await self.gateway(channels={"discord": self.section}, **model_config(self.model_url), **config)
        return self.service

    async def restart(self):
        await self.service.stopService()
        await self.gateway(channels={"discord": self.section}, **model_config(self.model_url))

    async def pause(self, seconds):
        await deferLater(reactor, seconds, lambda: None)

    def account(self, account_id="default"):
        return self.service.channels.accounts[("discord", account_id)]

    async def connected(self, account_id="default"):
        await wait_for(lambda: self.account(account_id).connected, what=f"{account_id} connected")

    def dm_texts(self, user):
        return self.dc.sent_to(self.dc.dm_channel(user))

    async def code_for(self, user):
        text = await wait_for(lambda: next((t for t in self.dm_texts(user) if CODE.search(t)), None), what="a pairing code")
        return CODE.search(text).group(1)

    def cli_env(self):
        home = Path(self.mktemp()).resolve()
        home.mkdir()
        return {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "PYTHONPATH": str(REPO)}

    async def cli(self, *args):
        out, err, code = await getProcessOutputAndValue(
            sys.executable, ["-m", "openclaw", *args, "--url", f"ws://127.0.0.1:{self.service.port}", "--token", TOKEN], env=self.cli_env(), reactor=reactor
        )
        return code, out.decode(), err.decode()

    def asked(self):
        return [r["body"]["messages"][-1]["content"] for r in self.model.requests]


class RoundTripTests(DiscordMixin, TestCase):
    async def test_pairing_then_chunked_reply(self):
        """Unknown DM gets a code (the agent never sees it); `openclaw pairing approve` (a subprocess) lets the next DM through; the reply comes back chunked at 2000, the first chunk a reply without pings, with typing shown."""
        long = "\n\n".join(f"Paragraph {i}: " + "word " * 350 for i in range(3))
        await self.start(replies=[openai_text(long)])
        await self.connected()
        identify = self.dc.identifies[0]
        self.assertEqual(identify["intents"], 1 | 1 << 9 | 1 << 12 | 1 << 15)
        self.dc.dm(ALICE, "hello there")
        code = await self.code_for(ALICE)
        self.assertEqual(self.model.requests, [])
        self.assertIn(f"openclaw pairing approve discord {code}", self.dm_texts(ALICE)[0])

        status, out, err = await self.cli("pairing", "list", "discord")
        self.assertEqual(status, 0, err)
        self.assertIn(code, out)
        status, out, err = await self.cli("pairing", "approve", "discord", code)
        self.assertEqual(status, 0, err)

        question = self.dc.dm(ALICE, "what is the plan?")
        await wait_for(lambda: len(self.dm_texts(ALICE)) >= 4, what="the chunked reply")
        replies = [m for m in self.dc.sent if m["channel_id"] == self.dc.dm_channel(ALICE)][1:]
        self.assertEqual(len(replies), 3)
        self.assertTrue(all(len(r["content"]) <= 2000 for r in replies))
        self.assertEqual(" ".join(" ".join(r["content"].split()) for r in replies), " ".join(long.split()))
        self.assertEqual([(r.get("message_reference") or {}).get("message_id") for r in replies], [question, None, None])
        self.assertTrue(all(r["allowed_mentions"] == {"parse": []} for r in replies))
        self.assertEqual(self.asked(), ["what is the plan?"])
        self.assertIn(self.dc.dm_channel(ALICE), self.dc.typing)
        self.assertTrue(all(ua.startswith("DiscordBot (") for ua in self.dc.user_agents))
        await self.pause(0.3)
        self.assertEqual(len(self.model.requests), 1)  # the bot's own echoed messages were not answered
