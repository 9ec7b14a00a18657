"""
WhatsApp Cloud API end to end: the gateway's webhook on its own port and its
Graph API client, against the fake Graph server and Meta's side of the
webhook (signed deliveries) from tests/fakes_whatsapp.py, with the fake model
provider of tests/fakes.py; all on loopback.
"""

from __future__ import annotations

import json
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from openclaw.channels.interfaces import AuthFailed, ChannelError, Rejected, RetryAfter, Unreachable
from openclaw.channels.whatsapp.cloud import deliveries, graph_error, signature_ok
from tests.fakes import openai_text, start_fake
from tests.fakes_whatsapp import APP_SECRET, GRAPH_TOKEN, PHONE_ID, VERIFY_TOKEN, WINDOW_CLOSED, graph_error as fake_error, post_delivery, sign, start_graph, text_delivery, verify, wait_for
from tests.test_whatsapp import WhatsAppMixin
from tests.wsclient import TOKEN

ALICE = "15551234567"


class CloudMixin(WhatsAppMixin):
    async def start_cloud(self, whatsapp=None, replies=(), **config):
        self.graph, self.graph_url = await start_graph(self)
        self.model, self.model_url = await start_fake(self)
        self.model.replies += list(replies)
        section = {
            "transport": "cloud",
            "accessToken": GRAPH_TOKEN,
            "phoneNumberId": PHONE_ID,
            "appSecret": APP_SECRET,
            "verifyToken": VERIFY_TOKEN,
            "graphBase": self.graph_url,
            **(whatsapp or {}),
        }
        from tests.helpers import scratch_home
        from tests.test_agent import model_config

        self.home = scratch_home(self)
        await self.gateway(channels={"whatsapp": {k: v for k, v in section.items() if v is not None}}, **model_config(self.model_url), **config)

    async def deliver(self, text, msg_id, wa_id=ALICE, **kw):
        self.graph.open_windows.add(wa_id)
        return await post_delivery(self.service.port, text_delivery(wa_id, text, msg_id, **kw))

    async def cloud_connected(self):
        await wait_for(lambda: self.account().connected, what="connected")


class WebhookTests(CloudMixin, TestCase):
    async def test_verification(self):
        """Meta's GET verification: the challenge comes back only for the right token and mode; anything else is 403."""
        await self.start_cloud()
        await self.cloud_connected()
        self.assertEqual(await verify(self.service.port, VERIFY_TOKEN, "1158201444"), (200, b"1158201444"))
        self.assertEqual((await verify(self.service.port, "wrong-token"))[0], 403)
        self.assertEqual((await verify(self.service.port, VERIFY_TOKEN, mode="unsubscribe"))[0], 403)
        self.assertEqual((await verify(self.service.port, ""))[0], 403)

    async def test_signature_checked_before_anything(self):
        """Unsigned, wrongly signed (other secret, or a body changed after signing) deliveries get 401 and reach nobody; a signed one gets 200."""
        await self.start_cloud(whatsapp={"dmPolicy": "open"}, replies=[openai_text("ok")])
        await self.cloud_connected()
        self.graph.open_windows.add(ALICE)
        payload = text_delivery(ALICE, "hi", "wamid.IN1")
        body = json.dumps(payload).encode()
        self.assertEqual((await post_delivery(self.service.port, payload, secret=None))[0], 401)
        self.assertEqual((await post_delivery(self.service.port, payload, secret="not-the-app-secret"))[0], 401)
        self.assertEqual((await post_delivery(self.service.port, body.replace(b"hi", b"yo"), signature=sign(body)))[0], 401)
        self.assertEqual((await post_delivery(self.service.port, b"not json", signature="sha256=00"))[0], 401)
        await deferLater(reactor, 0.5, lambda: None)
        self.assertEqual(self.model.requests, [])
        self.assertEqual((await post_delivery(self.service.port, body, signature=sign(body)))[0], 200)
        await wait_for(lambda: self.graph.texts(ALICE), what="the reply")

    async def test_blank_app_secret_fails_closed(self):
        """No appSecret: the account does not start and no webhook route exists."""
        await self.start_cloud(whatsapp={"appSecret": "  "})
        await wait_for(lambda: self.account().state == "misconfigured", what="misconfigured")
        self.assertIn("appSecret", self.row()["lastError"])
        unrouted = (await post_delivery(self.service.port, text_delivery(ALICE, "hi", "wamid.X"), secret="  ", path="/never-routed"))[0]
        self.assertEqual((await post_delivery(self.service.port, text_delivery(ALICE, "hi", "wamid.X"), secret="  "))[0], unrouted)  # the root's answer for no route

    async def test_no_qr_login(self):
        """web.login.start refuses a Cloud API account (nothing to link), and a gateway without WhatsApp says how to configure it."""
        await self.start_cloud()
        await self.cloud_connected()
        answer = await self.rpc("web.login.start", {})
        self.assertEqual(answer["error"]["code"], "INVALID_REQUEST")
        self.assertIn("Cloud API", answer["error"]["message"])
        await self.service.stopService()
        await self.gateway()
        answer = await self.rpc("web.login.wait", {})
        self.assertIn("channels.whatsapp", answer["error"]["message"])

    def test_signature_helper(self):
        """signature_ok: right HMAC only; a blank secret never matches, even a signature made with it."""
        body = b'{"a":1}'
        self.assertTrue(signature_ok("s3", body, sign(body, "s3").encode()))
        self.assertTrue(signature_ok("s3", body, sign(body, "s3").upper().replace("SHA256=", "sha256=").encode()))
        self.assertFalse(signature_ok("s3", body + b" ", sign(body, "s3").encode()))
        self.assertFalse(signature_ok("", body, sign(body, "").encode()))
        self.assertFalse(signature_ok("s3", body, None))
        self.assertFalse(signature_ok("s3", body, b"sha1=abc"))


class RoundTripTests(CloudMixin, TestCase):
    async def test_pairing_then_chunked_reply(self):
        """A signed DM gets a pairing code via the Graph API; `openclaw pairing approve` (subprocess) lets the next one through; the reply is chunked under 4096, the first chunk quoting the question; Meta's redelivery is answered once; read receipts go out."""
        long = "\n\n".join(f"Paragraph {i}: " + "word " * 700 for i in range(3))
        await self.start_cloud(replies=[openai_text(long)])
        await self.cloud_connected()
        self.assertEqual(self.row()["self"]["e164"], "+15550002222")
        self.assertEqual((await self.deliver("hello", "wamid.A1"))[0], 200)
        await wait_for(lambda: self.graph.texts(ALICE), what="the pairing code")
        code = __import__("re").search(r"Pairing code: ([A-Z2-9]{8})", self.graph.texts(ALICE)[0]).group(1)
        status, out, err = await self.cli("pairing", "approve", "whatsapp", code)
        self.assertEqual(status, 0, err)
        self.assertEqual((await self.deliver("what is the plan?", "wamid.A2"))[0], 200)
        self.assertEqual((await self.deliver("what is the plan?", "wamid.A2"))[0], 200)  # Meta retries
        await wait_for(lambda: len(self.graph.texts(ALICE)) >= 4, what="the chunked reply")
        await deferLater(reactor, 0.5, lambda: None)
        replies = self.graph.messages[1:]
        self.assertEqual(len(replies), 3)
        self.assertTrue(all(len(m["text"]["body"]) <= 4000 for m in replies))
        self.assertEqual(" ".join(" ".join(m["text"]["body"].split()) for m in replies), " ".join(long.split()))
        self.assertEqual([m.get("context") for m in replies], [{"message_id": "wamid.A2"}, None, None])
        self.assertEqual(len(self.model.requests), 1)
        self.assertIn("wamid.A2", self.graph.reads)
        self.assertTrue(all(r["auth"] == f"Bearer {GRAPH_TOKEN}" for r in self.graph.requests))
        self.assertFalse(any(GRAPH_TOKEN in r["path"] + r["query"] for r in self.graph.requests))

    async def test_other_numbers_and_statuses_are_ignored(self):
        """Deliveries for another phone number id of the same app, and delivery statuses, start no turn."""
        await self.start_cloud(whatsapp={"dmPolicy": "open"})
        await self.cloud_connected()
        self.assertEqual((await self.deliver("not ours", "wamid.B1", phone_id="999"))[0], 200)
        statuses = {"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages", "value": {"metadata": {"phone_number_id": PHONE_ID}, "statuses": [{"id": "wamid.S", "status": "failed", "errors": [{"code": 131047, "title": "Re-engagement message"}]}]}}]}]}
        self.assertEqual((await post_delivery(self.service.port, statuses))[0], 200)
        await deferLater(reactor, 0.5, lambda: None)
        self.assertEqual(self.model.requests, [])
        self.assertEqual(self.account().inbox.pending(), [])


class GraphErrorTests(CloudMixin, TestCase):
    async def test_window_closed_is_rejected_with_the_reason(self):
        """131047 (the fake Graph says the 24-hour window is closed): the reply is dropped at once (no retry) and status says why."""
        await self.start_cloud(whatsapp={"dmPolicy": "open"}, replies=[openai_text("too late")])
        await self.cloud_connected()
        await post_delivery(self.service.port, text_delivery(ALICE, "hi", "wamid.C1"))  # the fake holds this chat's window closed
        await wait_for(lambda: "24 hours" in (self.row().get("lastError") or ""), what="the reason in status")
        await deferLater(reactor, 1.5, lambda: None)
        sends = [r for r in self.graph.requests if r["path"].endswith("/messages") and r["method"] == "POST"]
        self.assertEqual(len(sends), 2)  # the read receipt, and the one refused reply
        self.assertEqual(self.graph.texts(ALICE), [])
        self.assertEqual(self.account().inbox.pending(), [])

    async def test_rate_limit_waits_retry_after(self):
        """429 with Retry-After holds the chat that long, then the same reply goes once."""
        await self.start_cloud(whatsapp={"dmPolicy": "open", "sendReadReceipts": False}, replies=[openai_text("patience")])
        await self.cloud_connected()
        self.graph.fault("messages", (429, fake_error(130429, "Rate limit hit")[1], {"Retry-After": "1"}))
        started = reactor.seconds()
        await self.deliver("hi", "wamid.D1")
        await wait_for(lambda: self.graph.texts(ALICE), what="the reply")
        self.assertGreaterEqual(reactor.seconds() - started, 1.0)
        self.assertEqual(self.graph.texts(ALICE), ["patience"])

    async def test_refused_token_stops_the_account(self):
        """A token the Graph API refuses (190) stops the account with the fix; it is not retried in a loop."""
        await self.start_cloud(whatsapp={"accessToken": "EAAGexpired-token-value-0123456789"})
        await wait_for(lambda: self.account().state == "auth-failed", what="auth-failed")
        self.assertIn("check channels.whatsapp.accessToken", self.row()["lastError"])
        await deferLater(reactor, 2.5, lambda: None)
        self.assertEqual(len(self.graph.requests), 1)

    async def test_secrets_never_logged_and_redacted_in_config(self):
        """The access token, app secret and verify token never reach the log, and config.get masks them."""
        await self.start_cloud(whatsapp={"dmPolicy": "open"}, replies=[openai_text("x")])
        await self.cloud_connected()
        self.graph.fault("messages", (500, {"error": {"message": "boom", "code": 1}}, {}))
        await self.deliver("hi", "wamid.E1")
        await wait_for(lambda: self.graph.texts(ALICE), timeout=15, what="the retried reply")
        ws, _ = await self.connect()
        config = (await ws.request("config.get", {}))["payload"]
        text = json.dumps(config)
        for secret in (GRAPH_TOKEN, APP_SECRET, VERIFY_TOKEN):
            self.assertNotIn(secret, text)
        log = Path(self.service.settings.logging.file).read_text()
        for secret in (GRAPH_TOKEN, APP_SECRET, VERIFY_TOKEN):
            self.assertNotIn(secret, log)

    def test_error_mapping(self):
        """graph_error: 131047 → Rejected naming the window; 429/130429/131056 → RetryAfter (header wins); 190/401 → AuthFailed; 131026 → Unreachable; 5xx → transient; other 400 → Rejected."""
        window = graph_error("send", 400, WINDOW_CLOSED[1])
        self.assertIsInstance(window, Rejected)
        self.assertIn("24 hours", str(window))
        rate = graph_error("send", 429, fake_error(130429, "Rate limit")[1], "7")
        self.assertIsInstance(rate, RetryAfter)
        self.assertEqual(rate.seconds, 7.0)
        self.assertEqual(graph_error("send", 400, fake_error(131056, "pair rate limit")[1]).seconds, 6.0)
        self.assertIsInstance(graph_error("send", 401, fake_error(190, "expired", status=401)[1]), AuthFailed)
        self.assertIsInstance(graph_error("send", 400, fake_error(131026, "undeliverable")[1]), Unreachable)
        transient = graph_error("send", 503, None)
        self.assertIs(type(transient), ChannelError)
        self.assertIsInstance(graph_error("send", 400, fake_error(100, "Invalid parameter")[1]), Rejected)

    def test_delivery_parsing(self):
        """deliveries: text, media placeholders, quoted context, names; reactions and malformed entries are skipped."""
        payload = text_delivery(ALICE, "hi", "wamid.1", context={"from": "15550002222", "id": "wamid.0"})
        value = payload["entry"][0]["changes"][0]["value"]
        value["messages"] += [
            {"from": ALICE, "id": "wamid.2", "timestamp": "1", "type": "image", "image": {"caption": "look", "id": "m1"}},
            {"from": ALICE, "id": "wamid.3", "timestamp": "1", "type": "audio", "audio": {"id": "m2", "voice": True}},
            {"from": ALICE, "id": "wamid.4", "timestamp": "1", "type": "reaction", "reaction": {"emoji": "👍"}},
            {"from": "not-a-number", "id": "wamid.5", "type": "text", "text": {"body": "x"}},
            "garbage",
        ]
        messages, _ = deliveries(payload, PHONE_ID)
        self.assertEqual([(m.id, m.text, m.media, m.push_name) for m in messages], [("wamid.1", "hi", None, "Alice"), ("wamid.2", "look", "image", "Alice"), ("wamid.3", "", "voice", "Alice")])
        self.assertEqual(messages[0].quoted.id, "wamid.0")
        self.assertEqual(messages[0].quoted.sender, "15550002222@s.whatsapp.net")
        self.assertEqual(deliveries(payload, "other")[0], [])
        self.assertEqual(deliveries({"object": "page"}, PHONE_ID), ([], []))


class MediaTests(CloudMixin, TestCase):
    async def test_send_media_by_url_and_upload(self):
        """`send` with a media URL sends it by link with the caption; a buffer is uploaded to /media first, then sent by id."""
        import base64

        await self.start_cloud(whatsapp={"dmPolicy": "open"})
        await self.cloud_connected()
        self.graph.open_windows.add(ALICE)
        ws, _ = await self.connect()
        answer = await ws.request("send", {"to": f"+{ALICE}", "message": "a picture", "mediaUrl": "https://example.com/cat.jpg", "idempotencyKey": "m1", "channel": "whatsapp"})
        self.assertTrue(answer["ok"], answer)
        answer = await ws.request("send", {"to": f"+{ALICE}", "buffer": base64.b64encode(b"%PDF-1.4 fake").decode(), "filename": "r.pdf", "contentType": "application/pdf", "idempotencyKey": "m2", "channel": "whatsapp"})
        self.assertTrue(answer["ok"], answer)
        image, document = self.graph.messages[-2:]
        self.assertEqual(image["image"], {"link": "https://example.com/cat.jpg", "caption": "a picture"})
        self.assertEqual((document["type"], document["document"]["filename"]), ("document", "r.pdf"))
        self.assertTrue(document["document"]["id"].startswith("MEDIA"))
        self.assertIn("multipart/form-data", self.graph.uploads[0]["content_type"])
        answer = await ws.request("send", {"to": "120363012345678901@g.us", "message": "x", "idempotencyKey": "m3", "channel": "whatsapp"})
        self.assertFalse(answer["ok"])
        self.assertIn("phone numbers", answer["error"]["message"])


__all__ = ["TOKEN"]
