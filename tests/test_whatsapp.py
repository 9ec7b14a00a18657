"""
WhatsApp Web end to end: the gateway spawns a helper process and speaks the
JSON-lines protocol with it. The helper here is the fake bridge script
(tests/fake_wa_bridge.py) relaying to L{tests.fakes_whatsapp.FakeWhatsApp}:
WhatsApp Web's own wire (Noise, Signal, protobuf over a WebSocket) cannot
reasonably be faked, so the fake speaks the helper protocol the real
neonize/Baileys helpers speak. The model is the fake provider of
tests/fakes.py; everything is on loopback.
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import deferLater
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from tests.fakes import openai_text, start_fake
from tests.fakes_whatsapp import ME, SESSION, start_whatsapp, wait_for
from tests.helpers import REPO, scratch_home
from tests.test_agent import model_config
from tests.wsclient import TOKEN, GatewayMixin

CODE = re.compile(r"Pairing code: ([A-Z2-9]{8})")
ALICE = "+15551234567"
ALICE_JID = "15551234567@s.whatsapp.net"


class WhatsAppMixin(GatewayMixin):
    timeout = 60

    def auth_dir(self, account: str = "default") -> Path:
        return self.home / ".openclaw" / "credentials" / "whatsapp" / account

    def prelink(self, account: str = "default") -> None:
        """A session the fake helper accepts (as if linked before)."""
        folder = self.auth_dir(account)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / SESSION).write_text(json.dumps({"me": ME}))

    async def start(self, whatsapp=None, replies=(), linked=True, **config):
        self.home = scratch_home(self)
        self.wa, self.command = await start_whatsapp(self)
        self.model, self.model_url = await start_fake(self)
        self.model.replies += list(replies)
        if linked:
            self.prelink()
        self.section = {"bridgeCommand": self.command, **(whatsapp or {})}
        await self.gateway(channels={"whatsapp": self.section}, **model_config(self.model_url), **config)
        return self.service

    async def pause(self, seconds):
        await deferLater(reactor, seconds, lambda: None)

    def account(self, account_id="default"):
        return self.service.channels.accounts[("whatsapp", account_id)]

    def row(self, account_id="default"):
        return self.account(account_id).snapshot()

    async def connected(self, account_id="default"):
        await wait_for(lambda: self.account(account_id).connected and self.row(account_id).get("connected"), what=f"{account_id} connected")

    async def code_for(self, jid):
        text = await wait_for(lambda: next((t for t in self.wa.texts(jid) if CODE.search(t)), None), what="a pairing code")
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

    async def rpc(self, method, params=None):
        ws, _ = await self.connect()
        return await ws.request(method, params or {})


class RoundTripTests(WhatsAppMixin, TestCase):
    async def test_pairing_then_chunked_reply(self):
        """Unknown DM gets a pairing code (the agent never sees it); `openclaw pairing approve` (a subprocess) lets the next DM through; the reply comes back chunked under 4000, in order, quoting the question, with typing and a read receipt."""
        long = "\n\n".join(f"Paragraph {i}: " + "word " * 700 for i in range(3))
        await self.start(replies=[openai_text(long)])
        await self.connected()
        self.wa.dm(ALICE, "hello there")
        code = await self.code_for(ALICE_JID)
        self.assertEqual(self.model.requests, [])
        self.assertIn(f"openclaw pairing approve whatsapp {code}", self.wa.texts(ALICE_JID)[0])
        self.assertIn(f"your WhatsApp id: {ALICE}", self.wa.texts(ALICE_JID)[0])

        status, out, err = await self.cli("pairing", "list", "whatsapp")
        self.assertEqual(status, 0, err)
        self.assertIn(code, out)
        status, out, err = await self.cli("pairing", "approve", "whatsapp", code)
        self.assertEqual(status, 0, err)
        self.assertIn("Approved whatsapp sender", out)

        question = self.wa.dm(ALICE, "what is the plan?")
        replies = await wait_for(lambda: len(self.wa.texts(ALICE_JID)) >= 4 and self.wa.sent[1:], what="the chunked reply")
        self.assertEqual(len(replies), 3)
        self.assertTrue(all(len(r["text"]) <= 4000 for r in replies))
        self.assertEqual(" ".join(" ".join(r["text"].split()) for r in replies), " ".join(long.split()))
        self.assertEqual([r.get("quote") for r in replies], [question, None, None])
        prompt = self.model.requests[0]["body"]["messages"][-1]["content"]
        self.assertIn("what is the plan?", prompt)
        self.assertIn(ALICE_JID, self.wa.typing)
        self.assertIn(question, [i for r in self.wa.reads for i in r["ids"]])
