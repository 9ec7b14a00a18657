"""
Telegram end to end: the gateway against the fake Bot API (tests/fakes_telegram.py)
and the fake model provider (tests/fakes.py), on loopback.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from tests.fakes import openai_text, start_fake
from tests.fakes_telegram import Fault, start_telegram, wait_for
from tests.helpers import REPO
from tests.test_agent import model_config
from tests.wsclient import TOKEN, GatewayMixin, connect_params

CODE = re.compile(r"Pairing code: ([A-Z2-9]{8})")


class TelegramMixin(GatewayMixin):
    timeout = 60

    async def start(self, telegram=None, replies=(), **config):
        self.tg, self.api = await start_telegram(self)
        self.bot = self.tg.bot()
        self.model, self.model_url = await start_fake(self)
        self.model.replies += list(replies)
        section = {"botToken": self.bot.token, "apiRoot": self.api, "pollTimeoutSeconds": 1, **(telegram or {})}
        await self.gateway(channels={"telegram": section}, **model_config(self.model_url), **config)
        return self.service

    def account(self, account_id="default"):
        return self.service.channels.accounts[("telegram", account_id)]

    async def connected(self, account_id="default"):
        await wait_for(lambda: self.account(account_id).connected, what=f"{account_id} connected")

    async def code_for(self, chat_id):
        text = await wait_for(lambda: next((t for t in self.bot.texts(chat_id) if CODE.search(t)), None), what="a pairing code")
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

    async def approve(self, user_id):
        await self.service.channels.pairing_approve("telegram", None, code=await self.code_for(user_id))


class RoundTripTests(TelegramMixin, TestCase):
    async def test_pairing_then_chunked_reply(self):
        """Unknown DM gets a code (the agent never sees it); `openclaw pairing approve` (a subprocess) lets the next DM through; the reply comes back in order, chunked under 4000, threaded to the question, with typing shown."""
        long = "\n\n".join(f"Paragraph {i}: " + "word " * 700 for i in range(3))
        await self.start(replies=[openai_text(long)])
        await self.connected()
        self.bot.dm(42, "hello there", username="alice")
        code = await self.code_for(42)
        self.assertEqual(self.model.requests, [])
        self.assertIn(f"openclaw pairing approve telegram {code}", self.bot.texts(42)[0])

        status, out, err = await self.cli("pairing", "list", "telegram")
        self.assertEqual(status, 0, err)
        self.assertIn(code, out)
        status, out, err = await self.cli("pairing", "approve", "telegram", code)
        self.assertEqual(status, 0, err)
        self.assertIn("Approved telegram sender", out)

        question = self.bot.dm(42, "what is the plan?")
        replies = await wait_for(lambda: len(self.bot.texts(42)) >= 4 and self.bot.sent[1:], what="the chunked reply")
        self.assertEqual(len(replies), 3)
        self.assertTrue(all(len(r["text"]) <= 4000 for r in replies))
        self.assertEqual(" ".join(" ".join(r["text"].split()) for r in replies), " ".join(long.split()))
        self.assertEqual([r["reply_to"] for r in replies], [question, None, None])
        prompt = self.model.requests[0]["body"]["messages"][-1]["content"]
        self.assertIn("what is the plan?", prompt)
        self.assertTrue(any(a["chat_id"] == 42 and a["action"] == "typing" for a in self.bot.actions))
