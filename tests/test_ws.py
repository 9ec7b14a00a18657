"""
Conformance of the WebSocket control plane (spec §13 items 1-30, 37-38) on
a real loopback port, with every server frame checked against upstream's
schemas where one applies.
"""

from __future__ import annotations

import base64
import gc
import json
import os
import struct
import uuid
import weakref

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from openclaw.protocol.errors import GatewayError
from openclaw.protocol.versions import V3, V4
from tests import schemas
from tests.helpers import capture_log
from tests.wsclient import TOKEN, Device, GatewayMixin, connect_params


def later(seconds=0.05):
    return deferLater(reactor, seconds, lambda: None)


class HandshakeTests(GatewayMixin, TestCase):
    async def test_challenge_first(self):
        """1. On open the server sends connect.challenge {nonce, ts} with no seq."""
        await self.gateway()
        ws = await self.ws()
        challenge = ws.challenge
        self.assertEqual((challenge["type"], challenge["event"]), ("event", "connect.challenge"))
        self.assertNotIn("seq", challenge)
        uuid.UUID(challenge["payload"]["nonce"])
        self.assertIsInstance(challenge["payload"]["ts"], int)
        schemas.validate(3, "EventFrame", challenge)

    async def test_not_json(self):
        """2. A first frame that is not JSON closes with 1000 and no response."""
        await self.gateway()
        ws = await self.ws()
        ws.protocol.sendMessage(b"{nope")
        self.assertEqual(await ws.closed, (1000, None))
        self.assertIsNone(await ws.next())

    async def test_not_a_request(self):
        """3. Valid JSON that is not a request frame closes 1008 "invalid request frame"."""
        await self.gateway()
        ws = await self.ws()
        ws.protocol.send_json({"type": "event"})
        self.assertEqual(await ws.closed, (1008, "invalid request frame"))
        self.assertIsNone(await ws.next())

    async def test_first_request_not_connect(self):
        """4. A first request that is not connect is answered, then closed 1008 with the message."""
        await self.gateway()
        ws = await self.ws()
        ws.protocol.send_json({"type": "req", "id": "x", "method": "health"})
        res = await ws.next()
        message = "invalid handshake: first request must be connect"
        self.assertEqual(res, {"type": "res", "id": "x", "ok": False, "error": {"code": "INVALID_REQUEST", "message": message}})
        schemas.validate(3, "ResponseFrame", res)
        self.assertEqual(await ws.closed, (1008, message))

    async def test_bad_connect_params(self):
        """5. Params breaking the schema: "invalid connect params: ...", then 1008."""
        await self.gateway()
        bad = [
            {**connect_params(), "client": {"id": "cli", "platform": "linux", "mode": "cli"}},
            {**connect_params(), "surprise": 1},
            {**connect_params(), "client": {"id": "martian", "version": "1", "platform": "linux", "mode": "cli"}},
        ]
        for params in bad:
            ws, res = await self.connect(params)
            self.assertFalse(res["ok"])
            self.assertEqual(res["error"]["code"], "INVALID_REQUEST")
            self.assertTrue(res["error"]["message"].startswith("invalid connect params:"), res)
            code, reason = await ws.closed
            self.assertEqual(code, 1008)
            self.assertTrue(reason.startswith("invalid connect params:"))

    async def test_preauth_too_large(self):
        """6. A pre-hello frame over 64 KiB closes 1009 "preauth payload too large"."""
        await self.gateway()
        ws = await self.ws()
        ws.protocol.sendMessage(b'{"type":"req","id":"1","method":"connect","params":"' + b"x" * 70000 + b'"}')
        self.assertEqual(await ws.closed, (1009, "preauth payload too large"))

    async def test_handshake_timeout(self):
        """7. A socket that never sends connect is closed with 1000 (v3: after 10 s)."""
        import openclaw.gateway.connection as connection

        self.patch(connection, "HANDSHAKE_TIMEOUT", 0.2)
        await self.gateway()
        ws = await self.ws()
        self.assertEqual(await ws.closed, (1000, None))

    async def test_protocol_mismatch(self):
        """8. 5..5 is refused: PROTOCOL_MISMATCH details, close 1002."""
        await self.gateway()
        ws, res = await self.connect(connect_params(protocol=5))
        error = res["error"]
        self.assertEqual((error["code"], error["message"]), ("INVALID_REQUEST", "protocol mismatch"))
        self.assertEqual(error["details"]["code"], "PROTOCOL_MISMATCH")
        self.assertEqual(error["details"]["expectedProtocol"], 4)
        self.assertEqual(await ws.closed, (1002, "protocol mismatch"))

    async def test_negotiation(self):
        """9. 3..3 gets v3 limits, 4..4 v4 limits, 3..4 the highest (4)."""
        await self.gateway()
        for low, high, expected in ((3, 3, V3), (4, 4, V4), (3, 4, V4)):
            params = {**connect_params(), "minProtocol": low, "maxProtocol": high}
            ws, res = await self.connect(params)
            hello = res["payload"]
            self.assertEqual(hello["protocol"], expected.number)
            self.assertEqual(hello["policy"], {"maxPayload": expected.max_payload, "maxBufferedBytes": expected.max_buffered, "tickIntervalMs": 30000})
            schemas.validate(expected.number, "HelloOk", hello)

    async def test_node_v3(self):
        """9. A node (role node, mode node) with 3..3 is accepted; node-only methods are its alone."""
        await self.gateway()
        params = {**connect_params(client_id="node-host", mode="node", scopes=[]), "role": "node", "commands": ["system.run"]}
        ws, res = await self.connect(params)
        self.assertEqual(res["payload"]["protocol"], 3)
        self.assertEqual((await ws.request("status"))["error"]["message"], "unauthorized role: node")
        self.assertTrue((await ws.request("health"))["ok"])

    async def test_invalid_role(self):
        """10. role "superuser": INVALID_REQUEST "invalid role", close 1008."""
        await self.gateway()
        ws, res = await self.connect({**connect_params(), "role": "superuser"})
        self.assertEqual(res["error"]["message"], "invalid role")
        self.assertEqual(await ws.closed, (1008, "invalid role"))

    async def test_second_connect(self):
        """21. connect after hello is refused and the socket stays open."""
        await self.gateway()
        ws, _ = await self.connect()
        res = await ws.request("connect", connect_params())
        self.assertEqual(res["error"], {"code": "INVALID_REQUEST", "message": "connect is only valid as the first request"})
        self.assertTrue((await ws.request("health"))["ok"])


class AuthTests(GatewayMixin, TestCase):
    async def test_token_mismatch(self):
        """11. Wrong token: AUTH_TOKEN_MISMATCH, and the close reason equals the message."""
        await self.gateway()
        ws, res = await self.connect(connect_params(token="wrong"))
        error = res["error"]
        self.assertEqual(error["code"], "INVALID_REQUEST")
        self.assertTrue(error["message"].startswith("unauthorized: gateway token mismatch"))
        self.assertEqual(error["details"]["code"], "AUTH_TOKEN_MISMATCH")
        schemas.validate(4, "ErrorShape", error)
        code, reason = await ws.closed
        self.assertEqual((code, reason), (1008, error["message"]))
        self.assertLessEqual(len(reason.encode()), 120)

    async def test_token_missing(self):
        """12. No auth at all: AUTH_TOKEN_MISSING."""
        await self.gateway()
        _, res = await self.connect(connect_params(token=None))
        self.assertEqual(res["error"]["details"]["code"], "AUTH_TOKEN_MISSING")

    async def test_token_not_configured(self):
        """12. A gateway with no token refuses shared-token connects."""
        await self.gateway(gateway={"auth": {"mode": "token"}})
        _, res = await self.connect(connect_params(token="anything"))
        self.assertEqual(res["error"]["details"]["code"], "AUTH_TOKEN_NOT_CONFIGURED")

    async def test_password_mismatch(self):
        """12. Password mode, wrong password: AUTH_PASSWORD_MISMATCH; right one works."""
        await self.gateway(gateway={"auth": {"mode": "password", "password": "pw-correct"}})
        _, res = await self.connect(connect_params(token=None, auth={"password": "nope"}))
        self.assertEqual(res["error"]["details"]["code"], "AUTH_PASSWORD_MISMATCH")
        _, res = await self.connect(connect_params(token=None, auth={"password": "pw-correct"}))
        self.assertTrue(res["ok"])

    async def test_rate_limit(self):
        """Ten failures from a non-loopback client lock it out (AUTH_RATE_LIMITED, retryAfterMs)."""
        await self.gateway()
        remote = {"X-Forwarded-For": "203.0.113.9"}  # untrusted peer: treated as remote, not local
        for _ in range(10):
            _, res = await self.connect(connect_params(token="bad"), headers=remote)
            self.assertEqual(res["error"]["details"]["code"], "AUTH_TOKEN_MISMATCH")
        _, res = await self.connect(connect_params(), headers=remote)
        self.assertEqual(res["error"]["details"]["code"], "AUTH_RATE_LIMITED")
        self.assertTrue(res["error"]["retryable"])
        self.assertGreater(res["error"]["retryAfterMs"], 0)
        _, res = await self.connect(connect_params())  # loopback is exempt
        self.assertTrue(res["ok"])

    async def test_token_rotation(self):
        """A new token in the config applies to new connections and ends shared-secret sessions (4001)."""
        await self.gateway()
        ws, _ = await self.connect()
        path = self.service.settings.layout.config_path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text('{gateway: {mode: "local", auth: {token: "rotated-token-5678"}}}')
        self.service.core.config.check()  # what the 2 s poll does
        self.assertEqual(await ws.closed, (4001, "gateway auth changed"))
        _, res = await self.connect(connect_params(token=TOKEN))
        self.assertEqual(res["error"]["details"]["code"], "AUTH_TOKEN_MISMATCH")
        _, res = await self.connect(connect_params(token="rotated-token-5678"))
        self.assertTrue(res["ok"])

    async def test_browser_origin_not_exempt_on_loopback(self):
        """Loopback is exempt from the limiter, but not for connections carrying a browser Origin."""
        await self.gateway(gateway={"controlUi": {"allowedOrigins": ["http://127.0.0.1:1"]}})
        browser = {"Origin": "http://127.0.0.1:1"}
        for _ in range(10):
            _, res = await self.connect(connect_params(token="bad"), headers=browser)
            self.assertEqual(res["error"]["details"]["code"], "AUTH_TOKEN_MISMATCH")
        _, res = await self.connect(connect_params(), headers=browser)
        self.assertEqual(res["error"]["details"]["code"], "AUTH_RATE_LIMITED")
        for _ in range(11):
            _, res = await self.connect(connect_params(token="bad"))
        _, res = await self.connect(connect_params())
        self.assertTrue(res["ok"])  # the CLI on loopback is never locked out

    async def test_origin_checked_before_upgrade(self):
        """A foreign Origin (or "null") gets 403 before the 101; an allowed one connects."""
        await self.gateway(gateway={"controlUi": {"allowedOrigins": ["https://ui.example"]}})
        for origin in ("https://evil.example", "null"):
            with self.assertRaises(ConnectionError):
                await self.ws({"Origin": origin})
        ws = await self.ws({"Origin": "https://ui.example"})
        self.assertEqual(ws.challenge["event"], "connect.challenge")

    async def test_forwarded_for_not_local(self):
        """X-Forwarded-For from an untrusted peer loses local privileges (scopes cleared)."""
        await self.gateway()
        _, res = await self.connect(connect_params(), headers={"X-Forwarded-For": "127.0.0.1, 198.51.100.4"})
        self.assertEqual(res["payload"].get("auth", {}).get("scopes", []), [])

    async def test_control_ui_needs_device_unless_insecure_allowed(self):
        """A Control UI without device identity is refused unless gateway.allowInsecureAuth."""
        ui = {"Origin": "http://127.0.0.1"}
        params = connect_params(protocol=4, client_id="openclaw-control-ui", mode="ui", scopes=["operator.read"])
        await self.gateway(gateway={"controlUi": {"allowedOrigins": ["http://127.0.0.1"]}})
        ws, res = await self.connect(params, headers=ui)
        self.assertEqual(res["error"]["details"]["code"], "CONTROL_UI_DEVICE_IDENTITY_REQUIRED")
        self.assertEqual((await ws.closed)[0], 1008)
        await self.service.stopService()
        await self.gateway(gateway={"allowInsecureAuth": True, "controlUi": {"allowedOrigins": ["http://127.0.0.1"]}})
        _, res = await self.connect(params, headers=ui)
        self.assertEqual(res["payload"]["auth"]["scopes"], ["operator.read"])

    async def test_token_only_scopes(self):
        """Token-only connections keep scopes only as the local cli; others get []."""
        await self.gateway()
        _, res = await self.connect(connect_params(protocol=4, scopes=["operator.read"]))
        self.assertEqual(res["payload"]["auth"]["scopes"], ["operator.read"])
        _, res = await self.connect(connect_params(protocol=4, client_id="openclaw-probe", mode="probe", scopes=["operator.read"]))
        self.assertEqual(res["payload"]["auth"]["scopes"], [])


class DeviceTests(GatewayMixin, TestCase):
    def signed(self, ws, device=None, version="v3", nonce="challenge", signed_at=None, protocol=4, **kw):
        device = device or Device()
        params = connect_params(protocol=protocol, **kw)
        nonce = ws.challenge["payload"]["nonce"] if nonce == "challenge" else nonce
        signed_at = ws.challenge["payload"]["ts"] if signed_at is None else signed_at
        token = (params.get("auth") or {}).get("token") or (params.get("auth") or {}).get("deviceToken") or ""
        params["device"] = device.block(params, nonce, signed_at, version, token)
        return device, params

    async def connect_signed(self, headers=None, **kw):
        ws = await self.ws(headers)
        device, params = self.signed(ws, **kw)
        return ws, device, await ws.request("connect", params)

    async def test_id_mismatch(self):
        """13. device.id not sha256(pubkey): DEVICE_AUTH_DEVICE_ID_MISMATCH, close 1008."""
        await self.gateway()
        ws = await self.ws()
        _, params = self.signed(ws)
        params["device"]["id"] = "0" * 64
        res = await ws.request("connect", params)
        self.assertEqual((res["error"]["message"], res["error"]["details"]["code"]), ("device identity mismatch", "DEVICE_AUTH_DEVICE_ID_MISMATCH"))
        self.assertEqual((await ws.closed)[0], 1008)

    async def test_nonce_expiry_signature(self):
        """14. Wrong nonce, a 3-minute-old (v4) signature, a garbage signature: each refused."""
        await self.gateway()
        ws = await self.ws()
        _, params = self.signed(ws, nonce="other-nonce")
        self.assertEqual((await ws.request("connect", params))["error"]["details"]["code"], "DEVICE_AUTH_NONCE_MISMATCH")
        ws = await self.ws()
        _, params = self.signed(ws, signed_at=ws.challenge["payload"]["ts"] - 180_000)
        self.assertEqual((await ws.request("connect", params))["error"]["details"]["code"], "DEVICE_AUTH_SIGNATURE_EXPIRED")
        ws = await self.ws()
        _, params = self.signed(ws)
        params["device"]["signature"] = "AAAA"
        self.assertEqual((await ws.request("connect", params))["error"]["details"]["code"], "DEVICE_AUTH_SIGNATURE_INVALID")

    async def test_v3_skew_is_ten_minutes(self):
        """v3 accepts a signature 3 minutes old (its skew is 10 minutes)."""
        await self.gateway()
        ws = await self.ws()
        _, params = self.signed(ws, protocol=3, signed_at=ws.challenge["payload"]["ts"] - 180_000)
        self.assertTrue((await ws.request("connect", params))["ok"])

    async def test_v2_and_v3_payloads(self):
        """15. Both v3 and v2 signed payloads are accepted."""
        await self.gateway()
        for version in ("v3", "v2"):
            _, _, res = await self.connect_signed(version=version)
            self.assertTrue(res["ok"], res)

    async def test_local_silent_pairing_and_device_token(self):
        """18/19. Loopback + shared token pairs silently; the device token alone reconnects."""
        await self.gateway()
        ws, device, res = await self.connect_signed(scopes=["operator.read"])
        hello = res["payload"]
        schemas.validate(4, "HelloOk", hello)
        token = hello["auth"]["deviceToken"]
        self.assertEqual(len(token), 32)
        self.assertEqual(hello["auth"]["scopes"], ["operator.read"])
        listing = await ws.request("device.pair.list")
        self.assertEqual(listing["error"]["message"], "missing scope: operator.pairing")
        ws2 = await self.ws()
        _, params = self.signed(ws2, device=device, scopes=["operator.read"], token=None, auth={"deviceToken": token})
        res2 = await ws2.request("connect", params)
        self.assertTrue(res2["ok"], res2)
        self.assertEqual(next(c for c in self.service.core.connections if c.auth_method == "device-token").auth_method, "device-token")
        ws3 = await self.ws()
        _, params = self.signed(ws3, device=device, scopes=["operator.read"], token=None, auth={"deviceToken": "f" * 32})
        res3 = await ws3.request("connect", params)
        self.assertEqual(res3["error"]["details"]["code"], "AUTH_DEVICE_TOKEN_MISMATCH")

    async def test_token_rotate_revoke_remove(self):
        """rotate gives the device a new token (old one refused); revoke ends its token sessions (4001); remove unpairs."""
        await self.gateway()
        admin, _, _ = await self.connect_signed(scopes=["operator.admin"])
        ws, device, res = await self.connect_signed(scopes=["operator.read", "operator.pairing"])
        old = res["payload"]["auth"]["deviceToken"]
        rotated = (await ws.request("device.token.rotate", {"deviceId": device.id, "role": "operator"}))["payload"]
        self.assertNotEqual(rotated["token"], old)
        self.assertIn("rotatedAtMs", rotated)
        wider = await ws.request("device.token.rotate", {"deviceId": device.id, "role": "operator", "scopes": ["operator.admin"]})
        self.assertEqual(wider["error"]["message"], "scopes exceed the caller's scopes")
        others = await ws.request("device.token.rotate", {"deviceId": "0" * 64, "role": "operator"})
        self.assertEqual(others["error"]["message"], "device tokens of other devices need operator.admin")

        async def with_token(token):
            sock = await self.ws()
            _, params = self.signed(sock, device=device, scopes=["operator.read"], token=None, auth={"deviceToken": token})
            return sock, await sock.request("connect", params)

        _, stale = await with_token(old)
        self.assertEqual(stale["error"]["details"]["code"], "AUTH_DEVICE_TOKEN_MISMATCH")
        by_token, fresh = await with_token(rotated["token"])
        self.assertTrue(fresh["ok"], fresh)
        revoked = await admin.request("device.token.revoke", {"deviceId": device.id, "role": "operator"})
        self.assertIn("revokedAtMs", revoked["payload"])
        self.assertEqual(await by_token.closed, (4001, "client invalidated: device token revoked"))
        _, refused = await with_token(rotated["token"])
        self.assertFalse(refused["ok"])
        removed = await admin.request("device.pair.remove", {"deviceId": device.id})
        self.assertEqual(removed["payload"], {"ok": True, "deviceId": device.id})
        self.assertEqual(await ws.closed, (4001, "client invalidated: device removed"))
        paired = [d["deviceId"] for d in (await admin.request("device.pair.list"))["payload"]["paired"]]
        self.assertNotIn(device.id, paired)

    async def test_remote_pairing_flow(self):
        """16/17. A remote device is NOT_PAIRED with a requestId; an operator approves; it connects."""
        await self.gateway()
        admin, device_admin, res = await self.connect_signed(scopes=["operator.admin", "operator.pairing"])
        self.assertTrue(res["ok"])
        remote = {"X-Forwarded-For": "198.51.100.7"}
        ws, device, res = await self.connect_signed(headers=remote, scopes=["operator.read"])
        error = res["error"]
        self.assertEqual((error["code"], error["details"]["code"], error["details"]["reason"]), ("NOT_PAIRED", "PAIRING_REQUIRED", "not-paired"))
        request_id = error["details"]["requestId"]
        self.assertEqual(await ws.closed, (1008, f"pairing required: device is not approved yet (requestId: {request_id})"))
        requested = await admin.event("device.pair.requested")
        self.assertEqual(requested["payload"]["requestId"], request_id)
        schemas.validate(4, "DevicePairRequestedEvent", requested["payload"])
        listing = await admin.request("device.pair.list")
        self.assertEqual([p["requestId"] for p in listing["payload"]["pending"]], [request_id])
        approved = await admin.request("device.pair.approve", {"requestId": request_id})
        self.assertEqual(approved["payload"]["device"]["deviceId"], device.id)
        resolved = await admin.event("device.pair.resolved")
        self.assertEqual(resolved["payload"]["decision"], "approved")
        schemas.validate(4, "DevicePairResolvedEvent", resolved["payload"])
        ws2 = await self.ws(remote)
        _, params = self.signed(ws2, device=device, scopes=["operator.read"])
        res = await ws2.request("connect", params)
        self.assertTrue(res["ok"], res)
        self.assertTrue(res["payload"]["auth"]["deviceToken"])

    async def test_v3_pairing_error_shape(self):
        """[v3] a remote unpaired device: NOT_PAIRED "pairing required", close reason "pairing required"."""
        await self.gateway()
        ws, _, res = await self.connect_signed(headers={"X-Forwarded-For": "198.51.100.8"}, protocol=3)
        self.assertEqual((res["error"]["code"], res["error"]["message"]), ("NOT_PAIRED", "pairing required"))
        self.assertIn("requestId", res["error"]["details"])
        self.assertEqual(await ws.closed, (1008, "pairing required"))


class EventTests(GatewayMixin, TestCase):
    async def test_hello_shape(self):
        """20. hello-ok: type, protocol, fresh connId, methods, tick in events, policy, stateVersion, uptime."""
        await self.gateway()
        _, a = await self.connect(connect_params(protocol=4, scopes=["operator.admin"]))
        _, b = await self.connect(connect_params(protocol=4))
        hello = a["payload"]
        self.assertNotEqual(hello["server"]["connId"], b["payload"]["server"]["connId"])
        self.assertIn("tick", hello["features"]["events"])
        self.assertEqual(set(hello["features"]["methods"]), set(self.service.core.methods))
        self.assertIsInstance(hello["snapshot"]["uptimeMs"], int)
        self.assertEqual(set(hello["snapshot"]["stateVersion"]), {"presence", "health"})
        self.assertEqual((hello["auth"]["role"], hello["auth"]["scopes"]), ("operator", ["operator.admin"]))

    async def test_tick_and_seq(self):
        """22/23. tick {ts} events arrive with seq 1, 2, 3 per connection."""
        await self.gateway()
        core = self.service.core
        a, _ = await self.connect()
        b, _ = await self.connect()
        for _ in range(3):
            core.events._send_tick()
        seqs = [(await a.event("tick"))["seq"] for _ in range(3)]
        tick = await b.event("tick")
        self.assertEqual(seqs, [1, 2, 3])
        self.assertEqual(tick["seq"], 1)
        schemas.validate(3, "TickEvent", tick["payload"])

    async def test_presence(self):
        """24. presence carries stateVersion; a non-CLI client adds an entry; CLI clients do not."""
        await self.gateway()
        watcher, hello = await self.connect(connect_params(client_id="gateway-client", mode="backend"))
        before = hello["payload"]["snapshot"]["stateVersion"]["presence"]
        await self.connect({**connect_params(client_id="test", mode="test"), "client": {"id": "test", "version": "1", "platform": "linux", "mode": "test", "instanceId": "inst-1"}})
        event = await watcher.event("presence")
        while "inst-1" not in [e.get("instanceId") for e in event["payload"]["presence"]]:
            event = await watcher.event("presence")
        self.assertGreater(event["stateVersion"]["presence"], before)
        self.assertIn("inst-1", [e.get("instanceId") for e in event["payload"]["presence"]])
        for entry in event["payload"]["presence"]:
            schemas.validate(3, "PresenceEntry", entry)
        listing = await watcher.request("system-presence")
        self.assertTrue(all(isinstance(e["ts"], int) for e in listing["payload"]))
        self.assertNotIn("cli", [e.get("mode") for e in listing["payload"]])

    async def test_shutdown(self):
        """25. On stop every client gets shutdown {reason} then close 1012 "service restart"."""
        service = await self.gateway()
        ws, _ = await self.connect()
        await service.stopService()
        event = await ws.event("shutdown")
        self.assertEqual(event["payload"], {"reason": "gateway stopping"})
        schemas.validate(3, "ShutdownEvent", event["payload"])
        self.assertEqual(await ws.closed, (1012, "service restart"))

    async def test_slow_consumer(self):
        """A socket whose peer stops reading is dropped (1008) instead of buffering without bound."""
        await self.gateway()
        ws, _ = await self.connect()
        conn = next(iter(self.service.core.connections))
        ws.protocol.transport.pauseProducing()  # the client stops reading
        big = "x" * 200_000
        for _ in range(60):
            self.service.core.events.broadcast("health", {"blob": big})
            await later(0.005)
            if conn.state == "closed":
                break
        self.assertEqual(conn.state, "closed")
        ws.protocol.transport.resumeProducing()
        await ws.closed


class MethodTests(GatewayMixin, TestCase):
    async def test_health_without_scopes(self):
        """26. health works with scopes []; probe refreshes it."""
        await self.gateway()
        ws, res = await self.connect(connect_params(protocol=4, client_id="openclaw-probe", mode="probe"))
        self.assertEqual(res["payload"]["auth"]["scopes"], [])
        health = await ws.request("health", {"probe": True})
        self.assertTrue(health["payload"]["ok"])

    async def test_missing_scope(self):
        """27. status with [] is FORBIDDEN (v4) / INVALID_REQUEST (v3); write implies read."""
        await self.gateway()
        ws, _ = await self.connect(connect_params(protocol=4, scopes=[]))
        res = await ws.request("status")
        self.assertEqual(res["error"], {"code": "FORBIDDEN", "message": "missing scope: operator.read", "details": {"code": "MISSING_SCOPE", "missingScope": "operator.read", "requiredScopes": ["operator.read"]}})
        ws3, _ = await self.connect(connect_params(protocol=3, scopes=[]))
        self.assertEqual((await ws3.request("status"))["error"], {"code": "INVALID_REQUEST", "message": "missing scope: operator.read"})
        ws4, _ = await self.connect(connect_params(protocol=4, scopes=["operator.write"]))
        self.assertTrue((await ws4.request("status"))["ok"])

    async def test_unknown_method(self):
        """28. Unknown method: admin gets "unknown method", read-only gets missing admin."""
        await self.gateway()
        admin, _ = await self.connect(connect_params(protocol=4, scopes=["operator.admin"]))
        self.assertEqual((await admin.request("no.such.method"))["error"]["message"], "unknown method: no.such.method")
        reader, _ = await self.connect(connect_params(protocol=4, scopes=["operator.read"]))
        error = (await reader.request("no.such.method"))["error"]
        self.assertEqual((error["code"], error["message"]), ("FORBIDDEN", "missing scope: operator.admin"))

    async def test_bad_params(self):
        """29. logs.tail {limit: 0}: "invalid logs.tail params: ..."."""
        await self.gateway()
        ws, _ = await self.connect()
        error = (await ws.request("logs.tail", {"limit": 0}))["error"]
        self.assertEqual(error["code"], "INVALID_REQUEST")
        self.assertTrue(error["message"].startswith("invalid logs.tail params:"))

    async def test_role_flood(self):
        """30. Wrong-role calls are refused; more than 10 in a row close 1008."""
        await self.gateway()
        ws, _ = await self.connect()
        for i in range(11):
            res = await ws.request("node.invoke.result", {"id": "x"})
            self.assertEqual(res["error"]["message"], "unauthorized role: operator")
        self.assertEqual(await ws.closed, (1008, "repeated unauthorized calls"))

    async def test_bad_frame_after_hello(self):
        """A bad frame after hello gets an "invalid request frame" response; the socket stays."""
        await self.gateway()
        ws, _ = await self.connect()
        ws.protocol.sendMessage(b"garbage")
        res = await ws.response("invalid")
        self.assertTrue(res["error"]["message"].startswith("invalid request frame"))
        ws.protocol.send_json({"type": "req", "id": "t1", "method": "health", "traceparent": "00-x"})
        self.assertTrue((await ws.response("t1"))["error"]["message"].startswith("invalid request frame"))  # v3: no traceparent
        self.assertTrue((await ws.request("health"))["ok"])

    async def test_system_presence_is_list(self):
        """37. system-presence is an array of entries with integer ts."""
        await self.gateway()
        ws, _ = await self.connect()
        res = await ws.request("system-presence")
        self.assertIsInstance(res["payload"], list)
        self.assertTrue(all(isinstance(e["ts"], int) for e in res["payload"]))

    async def test_config_hash_rules(self):
        """38. config.get has hash; set without/with stale baseHash is refused; a good set writes."""
        await self.gateway()
        path = self.service.settings.layout.config_path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text('{gateway: {mode: "local", auth: {token: "%s"}}}' % TOKEN)
        ws, _ = await self.connect()
        got = (await ws.request("config.get"))["payload"]
        self.assertTrue(got["hash"])
        self.assertNotIn(TOKEN, json.dumps(got))
        self.assertEqual((await ws.request("config.set", {"raw": "{}"}))["error"]["message"], "config base hash required; re-run config.get and retry")
        stale = await ws.request("config.set", {"raw": "{}", "baseHash": "0" * 64})
        self.assertEqual(stale["error"]["message"], "config changed since last load; re-run config.get and retry")
        bad = await ws.request("config.patch", {"raw": '{gateway: {port: "x"}}', "baseHash": got["hash"]})
        self.assertIn("gateway.port", bad["error"]["message"])
        self.assertIn(TOKEN, path.read_text())
        patched = await ws.request("config.patch", {"raw": "{gateway: {port: 18999}}", "baseHash": got["hash"]})
        self.assertTrue(patched["ok"], patched)
        written = json.loads(path.read_text())
        self.assertEqual((written["gateway"]["port"], written["gateway"]["auth"]["token"]), (18999, TOKEN))
        echoed = (await ws.request("config.get"))["payload"]
        again = await ws.request("config.set", {"raw": json.dumps(echoed["parsed"]), "baseHash": echoed["hash"]})
        self.assertTrue(again["ok"])
        self.assertEqual(json.loads(path.read_text())["gateway"]["auth"]["token"], TOKEN)

    async def test_voicewake(self):
        """voicewake.set persists and broadcasts voicewake.changed."""
        await self.gateway()
        ws, _ = await self.connect()
        self.assertTrue((await ws.request("voicewake.get"))["payload"]["triggers"])
        await ws.request("voicewake.set", {"triggers": ["hey claw"]})
        self.assertEqual((await ws.event("voicewake.changed"))["payload"], {"triggers": ["hey claw"]})
        self.assertEqual((await ws.request("voicewake.get"))["payload"], {"triggers": ["hey claw"]})

    async def test_logs_tail(self):
        """logs.tail returns JSON lines with a cursor; the next call continues from it."""
        await self.gateway()
        ws, _ = await self.connect()
        first = (await ws.request("logs.tail", {"limit": 10}))["payload"]
        schemas.validate(3, "LogsTailResult", first)
        self.assertTrue(first["lines"])
        json.loads(first["lines"][-1])
        again = (await ws.request("logs.tail", {"cursor": first["cursor"]}))["payload"]
        self.assertGreaterEqual(again["cursor"], first["cursor"])

    async def test_other_methods_match_schemas(self):
        """agents.list, models.list, channels.status, config.schema answer in upstream's shapes."""
        await self.gateway(models={"providers": {"local": {"models": [{"id": "m1", "name": "M1"}]}}})
        ws, _ = await self.connect()
        schemas.validate(3, "AgentsListResult", (await ws.request("agents.list"))["payload"])
        models = (await ws.request("models.list"))["payload"]
        self.assertEqual(models["models"], [{"id": "m1", "name": "M1", "provider": "local"}])
        schemas.validate(3, "ModelsListResult", models)
        schemas.validate(3, "ChannelsStatusResult", (await ws.request("channels.status"))["payload"])
        schemas.validate(3, "ConfigSchemaResponse", (await ws.request("config.schema"))["payload"])


def unsent(tcp):
    """Bytes a Twisted TCP transport holds for its peer (its private buffers: what item 4 is about)."""
    return len(tcp.dataBuffer) - tcp.offset + tcp._tempDataLen


class Raw(Protocol):
    """A bare TCP client: bytes in, and how the connection ended."""

    def __init__(self):
        self.data = b""
        self.lost = Deferred()

    def dataReceived(self, data):
        self.data += data

    def connectionLost(self, reason):
        self.lost.callback(reason.value)


def masked_frame(opcode, payload):
    mask = os.urandom(4)
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class RawSocketTests(GatewayMixin, TestCase):
    """What a hand-written client sees on the wire: HTTP status lines, close frames, FIN or RST."""

    async def upgrade(self, origin=None):
        raw = Raw()
        await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", self.service.port), raw)
        self.addCleanup(lambda: raw.transport.abortConnection() if raw.transport.connected else None)
        key = base64.b64encode(os.urandom(16)).decode()
        head = f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{self.service.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        if origin is not None:
            head += f"Origin: {origin}\r\n"
        raw.transport.write((head + "\r\n").encode())
        for _ in range(200):
            if b"\r\n\r\n" in raw.data or raw.lost.called:
                break
            await later(0.01)
        return raw

    async def test_null_origin_is_403(self):
        """Origin: null is refused with 403 before the upgrade, like any other foreign origin (docs), not autobahn's 400."""
        await self.gateway()
        for origin in ("null", "https://evil.example"):
            raw = await self.upgrade(origin)
            self.assertTrue(raw.data.startswith(b"HTTP/1.1 403 "), raw.data[:80])

    async def test_bad_close_frames_get_1002_then_fin(self):
        """A close frame with an invalid code, or a 1-byte payload, gets a 1002 close frame and a FIN, not a reset."""
        await self.gateway()
        for payload in (struct.pack("!H", 999), struct.pack("!H", 1005), b"\x03"):
            raw = await self.upgrade()
            self.assertTrue(raw.data.startswith(b"HTTP/1.1 101 "))
            raw.transport.write(masked_frame(8, payload))
            reason = await raw.lost
            self.assertIsInstance(reason, ConnectionDone, f"{payload!r}: {reason!r}")
            frames_part = raw.data.split(b"\r\n\r\n", 1)[1]
            close_at = frames_part.find(b"\x88")
            self.assertNotEqual(close_at, -1, f"{payload!r}: no close frame in {frames_part!r}")
            length = frames_part[close_at + 1]
            code = struct.unpack("!H", frames_part[close_at + 2 : close_at + 4])[0]
            self.assertEqual(code, 1002, frames_part[close_at : close_at + 2 + length])

    async def test_good_close_still_echoed(self):
        """A valid close (1000) is still answered with 1000 and a FIN."""
        await self.gateway()
        raw = await self.upgrade()
        raw.transport.write(masked_frame(8, struct.pack("!H", 1000)))
        reason = await raw.lost
        self.assertIsInstance(reason, ConnectionDone)
        self.assertTrue(raw.data.endswith(b"\x88\x02\x03\xe8"))


class SendTests(GatewayMixin, TestCase):
    """Sending to a client never raises into the caller, and never buffers without bound."""

    async def two_clients(self):
        await self.gateway()
        watcher, _ = await self.connect(connect_params(client_id="gateway-client", mode="backend"))
        ws, _ = await self.connect()
        conns = {c.client["id"]: c for c in self.service.core.connections}
        return watcher, ws, conns["gateway-client"], conns["cli"]

    async def test_send_after_close_handshake_is_dropped(self):
        """
        The window: autobahn has finished the close handshake (socket closed)
        but connectionLost has not yet removed the connection from the live set.
        Broadcasts, responses, errors, direct events and node invokes to it are
        dropped and counted; none raises.
        """
        log = capture_log(self)
        watcher, ws, _, conn = await self.two_clients()
        core = self.service.core
        proto = conn.transport
        proto.dropConnection(abort=False)  # what autobahn does once a client's close frame is answered
        self.assertIn(conn, core.connections)
        self.assertEqual(conn.state, "ready")
        before = core.connections.stats.dropped
        core.events.broadcast("tick", {"ts": 1})
        core.events.broadcast("presence", {"presence": []}, drop_if_slow=True)
        conn.respond("r1", {"ok": True})
        conn.fail("r2", GatewayError("UNAVAILABLE", "nope"))
        conn.send_direct("voicewake.changed", {"triggers": []})
        conn.send_invoke("i1", "system.which", None, 1000, None)
        self.assertEqual(core.connections.stats.dropped, before + 6)
        await ws.closed
        self.assertNotIn(conn, core.connections)
        core.events.broadcast("tick", {"ts": 2})
        self.assertEqual((await watcher.event("tick"))["payload"], {"ts": 1})
        self.assertEqual((await watcher.event("tick"))["payload"], {"ts": 2})
        self.assertEqual(log.failures(), [])

    async def test_presence_broadcast_from_connection_lost(self):
        """A client leaving broadcasts presence while another socket is in the close window: no error is logged."""
        log = capture_log(self)
        watcher, ws, leaving, closing = await self.two_clients()
        closing.transport.dropConnection(abort=False)
        # "gateway-client" has a presence entry: its leaving is broadcast, to `closing` too
        leaving.close(1000, "bye")
        await watcher.closed
        await ws.closed
        self.assertEqual(set(self.service.core.connections), set())
        self.assertGreater(self.service.core.connections.stats.dropped, 0)
        self.assertEqual(log.failures(), [])

    async def test_clients_closing_together(self):
        """
        Three clients with presence entries close in the same turn (as the v4
        CLI's `status --all` does): each one's leaving is broadcast while the
        others are past their close handshake. No error is logged, all leave.
        """
        log = capture_log(self)
        await self.gateway()
        clients = []
        for i in range(3):
            params = connect_params(client_id="gateway-client", mode="backend")
            params["client"] = {**params["client"], "instanceId": f"inst-{i}"}
            clients.append((await self.connect(params))[0])
        for ws in clients:
            ws.close()
        for ws in clients:
            await ws.closed
        for _ in range(100):
            if not self.service.core.connections:
                break
            await later(0.01)
        self.assertEqual(set(self.service.core.connections), set())
        self.assertEqual(self.service.core.presence.entries, {})
        self.assertEqual(log.failures(), [])

    async def test_send_while_autobahn_closing_is_dropped(self):
        """A connection autobahn is failing (1009: message too big) but we still list: sends are dropped."""
        log = capture_log(self)
        watcher, ws, _, conn = await self.two_clients()
        conn.transport.closeHandshakeTimeout = 30  # the window stays open however slow this machine is
        ws.protocol.transport.pauseProducing()  # it will not answer the close handshake
        ws.protocol.sendMessage(b"x" * (V3.max_payload + 1))
        for _ in range(200):
            if conn.transport.state == conn.transport.STATE_CLOSING:
                break
            await later(0.01)
        self.assertEqual(conn.transport.state, conn.transport.STATE_CLOSING)
        self.assertIn(conn, self.service.core.connections)
        self.service.core.events.broadcast("tick", {"ts": 1})
        conn.respond("r", {})
        self.assertTrue((await watcher.request("health"))["ok"])
        ws.protocol.transport.resumeProducing()
        await ws.closed
        self.assertEqual(log.failures(), [])

    async def test_factory_options_reach_each_connection(self):
        """Every autobahn option the factory sets is on each connection's protocol (copied by connectionMade, not by autobahn)."""
        from autobahn.twisted.websocket import WebSocketServerProtocol

        await self.gateway()
        await self.connect()
        proto = next(iter(self.service.core.connections)).transport
        factory = proto.factory
        for name in WebSocketServerProtocol.CONFIG_ATTRS:
            self.assertTrue(hasattr(proto, name), name)
            if name not in ("maxMessagePayloadSize", "maxFramePayloadSize", "failByDrop"):  # the protocol's own
                self.assertEqual(getattr(proto, name), getattr(factory, name), name)
        self.assertEqual((proto.openHandshakeTimeout, proto.closeHandshakeTimeout, proto.failByDrop), (10, 1, False))
        self.assertEqual(proto.maxMessagePayloadSize, V3.max_payload)  # raised at hello, from the class's pre-auth cap

    async def test_large_response_is_sent(self):
        """A response larger than the client's own maxPayload is still sent (that limit is for what clients send)."""
        log = capture_log(self)
        await self.gateway()
        v4, _ = await self.connect(connect_params(protocol=4))
        big = "y" * (V3.max_payload + 1000)
        self.assertTrue((await v4.request("chat.inject", {"sessionKey": "main", "message": big}))["ok"])
        ws, _ = await self.connect(connect_params(protocol=3))
        history = await ws.request("chat.history", {"sessionKey": "main"})
        self.assertEqual(history["payload"]["messages"][-1]["content"][0]["text"], big)
        self.assertEqual(log.failures(), [])

    async def test_slow_consumer_of_responses(self):
        """
        A client that keeps asking (chat.history) and never reads is closed
        1008 "slow consumer" once its unread data passes maxBufferedBytes; the
        gateway never holds much more than that for it.
        """
        log = capture_log(self)
        await self.gateway()
        ws, _ = await self.connect()  # v3: 1.5 MB
        core = self.service.core
        conn = next(iter(core.connections))
        proto = conn.transport
        tcp = proto.transport
        message = "z" * 100_000
        await ws.request("chat.inject", {"sessionKey": "main", "message": message})
        ws.protocol.transport.pauseProducing()  # the client stops reading
        peak = 0
        for i in range(400):
            ws.protocol.send_json({"type": "req", "id": f"h{i}", "method": "chat.history" if i % 2 else "health", "params": {"sessionKey": "main"} if i % 2 else {}})
            await later(0.002)
            if tcp.connected:
                peak = max(peak, unsent(tcp))
            if conn.state == "closed":
                break
        self.assertEqual(conn.state, "closed")
        self.assertEqual((proto.localCloseCode, proto.localCloseReason), (1008, b"slow consumer"))
        self.assertLess(peak, V3.max_buffered + 64 * 1024 + 2 * len(message))
        self.assertEqual(core.connections.stats.slow_consumers, 1)
        self.assertTrue(any("slow consumer" in t for t in log.texts()))
        for _ in range(300):  # the close handshake times out (the client is not reading): the socket is dropped
            if not core.connections.open_sockets():
                break
            await later(0.01)
        self.assertEqual(core.connections.open_sockets(), 0)
        ws.protocol.transport.resumeProducing()
        await ws.closed

    async def test_closed_connection_freed_without_gc(self):
        """With the garbage collector off, a closed connection (socket, protocol, buffers) is freed by refcounting."""
        gc.collect()
        gc.disable()
        self.addCleanup(gc.enable)
        await self.gateway()
        waiting = []  # what a run still to answer holds: the connection, not its socket
        for how in ("abort", "close", "held"):
            ws, _ = await self.connect()
            conn = next(c for c in self.service.core.connections)
            refs = [weakref.ref(conn), weakref.ref(conn.transport), weakref.ref(conn.transport.transport)]
            ws.protocol.transport.pauseProducing()
            for _ in range(5):
                conn.send_direct("health", {"blob": "b" * 200_000})  # unsent data the socket holds
            if how == "held":
                waiting.append(conn)
            del conn
            if how in ("abort", "held"):
                ws.protocol.transport.abortConnection()
            else:
                ws.protocol.transport.resumeProducing()
                ws.close()
            await ws.closed
            for _ in range(100):
                if not self.service.core.connections.open_sockets() and all(r() is None for r in refs[1:]):
                    break
                await later(0.01)
            self.assertEqual([r() is None for r in refs], [how != "held", True, True], how)


class InputTests(GatewayMixin, TestCase):
    """Hostile JSON in request frames: a clear INVALID_REQUEST, the socket stays, nothing is logged as a failure."""

    async def test_non_finite_numbers_refused(self):
        """NaN/Infinity/-Infinity in params: INVALID_REQUEST answered under the request's id; the socket stays open."""
        log = capture_log(self)
        await self.gateway()
        ws, _ = await self.connect()
        for i, constant in enumerate(("NaN", "Infinity", "-Infinity")):
            # node.invoke's params are free-form: only the parser can refuse the constant
            ws.protocol.sendMessage(('{"type":"req","id":"n%d","method":"node.invoke","params":{"nodeId":"n","command":"c","idempotencyKey":"k","params":{"x":%s}}}' % (i, constant)).encode())
            error = (await ws.response(f"n{i}"))["error"]
            self.assertEqual(error["code"], "INVALID_REQUEST")
            self.assertIn(constant.lstrip("-"), error["message"])
        self.assertTrue((await ws.request("health"))["ok"])
        self.assertEqual(log.failures(), [])

    async def test_non_finite_in_connect(self):
        """NaN in the connect frame is an invalid request frame: close 1008."""
        await self.gateway()
        ws = await self.ws()
        ws.protocol.sendMessage(b'{"type":"req","id":"c","method":"connect","params":{"minProtocol":NaN}}')
        self.assertEqual(await ws.closed, (1008, "invalid request frame"))

    async def test_nesting_is_bounded(self):
        """Params nested past the frame depth limit (or 100k deep) are refused as INVALID_REQUEST; shallower ones reach the method."""
        log = capture_log(self)
        await self.gateway()
        ws, _ = await self.connect(connect_params(protocol=4))
        for levels in (70, 100_000):
            ws.protocol.sendMessage(b'{"type":"req","id":"deep","method":"node.invoke","params":{"nodeId":"n","command":"c","idempotencyKey":"k","params":' + b"[" * levels + b"]" * levels + b"}}")
            error = (await ws.response("invalid"))["error"]
            self.assertEqual(error["code"], "INVALID_REQUEST")
            self.assertIn("nested deeper than", error["message"])
        nested = "[" * 50 + "]" * 50
        res = await ws.request("node.invoke", json.loads('{"nodeId":"n","command":"c","idempotencyKey":"k2","params":%s}' % nested))
        self.assertEqual(res["error"]["message"], "node not connected")  # got past the parser
        self.assertEqual(log.failures(), [])
