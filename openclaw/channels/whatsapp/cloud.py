# -*- test-case-name: tests.test_whatsapp_cloud -*-
"""
The WhatsApp Cloud API (Meta's Graph API), hand-written on treq and
twisted.web.

Inbound: a webhook on the gateway port (C{webhookPath}, default
C{/whatsapp-webhook}). Meta verifies it with C{GET
?hub.mode=subscribe&hub.verify_token=…&hub.challenge=…} (the challenge is
echoed only when the token matches, compared in constant time) and POSTs
deliveries signed with C{X-Hub-Signature-256: sha256=<HMAC-SHA256 of the raw
body, keyed by the App Secret>}; the signature is checked before the body is
parsed, a blank secret refuses everything, and a delivery is journaled
before the 200 (so Meta's redeliveries are dropped as duplicates).

Outbound: C{POST {graphBase}/{graphVersion}/{phoneNumberId}/messages} with
C{Authorization: Bearer <accessToken>}; uploads go to C{…/media}. The token
is only ever in that header, never in a URL or a log line. L{graph_error}
maps Meta's errors: 131047 (the 24-hour window is closed) refuses that
message with the reason, rate limits (HTTP 429, codes 4, 80007, 130429,
131048, 131056) wait, a refused token (190/401) stops the account.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import time
from typing import Any, Mapping

from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import Logger
from twisted.web.client import Agent, FileBodyProducer, HTTPConnectionPool
from twisted.web.http_headers import Headers
from twisted.web.resource import Resource
from twisted.web.server import Request
from zope.interface import implementer

import treq
from treq.client import HTTPClient

from openclaw.channels.interfaces import AuthFailed, ChannelError, ConfigProblem, IChannelReactor, Media, Rejected, RetryAfter, Unreachable
from openclaw.channels.ports import RoutesPort
from openclaw.channels.whatsapp.messages import Me, Quoted, WaMessage
from openclaw.channels.whatsapp.transport import ITransportEvents, IWhatsAppTransport

log = Logger(namespace="openclaw.channels.whatsapp")

GRAPH_BASE = "https://graph.facebook.com"
GRAPH_VERSION = "v23.0"
WEBHOOK_PATH = "/whatsapp-webhook"
MAX_BODY = 3 * 1024 * 1024
MAX_RESPONSE = 4 * 1024 * 1024
WINDOW_CLOSED = 131047
_RATE_CODES = {4: 60.0, 80007: 60.0, 130429: 2.0, 131048: 60.0, 131056: 6.0}  # code → default wait (s)
_TYPES = ("text", "image", "video", "audio", "document", "sticker", "location", "contacts", "interactive", "button", "reaction", "order")


def signature_ok(secret: str, body: bytes, header: bytes | None) -> bool:
    """Whether C{X-Hub-Signature-256} is the HMAC-SHA256 of C{body} keyed by the App Secret (never with a blank secret)."""
    if not secret or not header or not header.lower().startswith(b"sha256="):
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest().encode()
    return hmac.compare_digest(header[7:].strip().lower(), expected)


def graph_error(what: str, status: int, body: Any, retry_after: str | None = None) -> ChannelError:
    """The framework error for a Graph API failure (no secret ever in it)."""
    error = body["error"] if isinstance(body, dict) and isinstance(body.get("error"), dict) else {}
    code = error["code"] if isinstance(error.get("code"), int) else None
    message = str(error.get("message") or f"HTTP {status}")[:300]
    details = (error.get("error_data") or {}).get("details") if isinstance(error.get("error_data"), dict) else None
    text = f"{what}: Graph API {code if code is not None else status} {message}" + (f" ({str(details)[:200]})" if details else "")
    if code == WINDOW_CLOSED:
        return Rejected(
            f"{what}: WhatsApp refused the message (131047): more than 24 hours have passed since this person last wrote, "
            "and outside that window the Cloud API only sends approved templates. It can be sent after they write again."
        )
    if status == 429 or code in _RATE_CODES:
        wait = _RATE_CODES.get(code or 0, 10.0)
        if retry_after and retry_after.strip().isdigit():
            wait = float(retry_after.strip())
        return RetryAfter(wait, text)
    if status == 401 or code == 190:
        return AuthFailed(f"the Graph API refused the access token ({code or status} {message}): check channels.whatsapp.accessToken")
    if code == 10 or (code is not None and 200 <= code <= 299) or status == 403:
        return AuthFailed(f"the Graph API refused this app ({code or status} {message}): give the token whatsapp_business_messaging permission")
    if code in (131026, 131030):
        return Unreachable(text)
    if status >= 500 or code in (1, 2, 131000, 131016, 133004):
        return ChannelError(text)
    if status == 400:
        return Rejected(text)
    return ChannelError(text)


def _media_kind(media: Media) -> str:
    ctype = (media.content_type or "").lower()
    name = (media.filename or media.url or "").lower().split("?", 1)[0]
    if ctype.startswith("image/") or name.endswith((".jpg", ".jpeg", ".png")):
        return "image"
    if ctype.startswith("video/") or name.endswith((".mp4", ".3gp")):
        return "video"
    if ctype.startswith("audio/") or name.endswith((".ogg", ".opus", ".mp3", ".m4a", ".aac", ".amr")):
        return "audio"
    return "document"


def deliveries(payload: Any, phone_number_id: str) -> tuple[list[WaMessage], list[dict[str, Any]]]:
    """The messages (and delivery statuses) a webhook POST carries for our number (sans-IO)."""
    messages: list[WaMessage] = []
    statuses: list[dict[str, Any]] = []
    if not isinstance(payload, dict) or payload.get("object") != "whatsapp_business_account":
        return messages, statuses
    for entry in payload.get("entry") or []:
        for change in (entry.get("changes") or []) if isinstance(entry, dict) else []:
            if not isinstance(change, dict) or change.get("field") not in (None, "messages"):
                continue
            value = change.get("value")
            if not isinstance(value, dict):
                continue
            meta = value["metadata"] if isinstance(value.get("metadata"), dict) else {}
            if str(meta.get("phone_number_id") or "") != phone_number_id:
                continue  # another number of the same app
            names = {}
            for contact in value.get("contacts") or []:
                if isinstance(contact, dict) and isinstance(contact.get("wa_id"), str):
                    names[contact["wa_id"]] = str((contact.get("profile") or {}).get("name") or "")
            for item in value.get("messages") or []:
                message = _message(item, names)
                if message is not None:
                    messages.append(message)
            statuses += [s for s in value.get("statuses") or [] if isinstance(s, dict)]
    return messages, statuses


def _message(item: Any, names: Mapping[str, str]) -> WaMessage | None:
    if not isinstance(item, dict):
        return None
    sender, ident, kind = item.get("from"), item.get("id"), item.get("type")
    if not isinstance(sender, str) or not sender.isdigit() or not isinstance(ident, str) or not ident or kind not in _TYPES:
        return None
    if kind == "reaction":
        return None
    body = item[kind] if isinstance(item.get(kind), dict) else {}
    if kind == "text":
        text, media = str(body.get("body") or ""), None
    elif kind == "button":
        text, media = str(body.get("text") or ""), None
    elif kind == "interactive":
        reply = body.get("button_reply") or body.get("list_reply") or {}
        text, media = str(reply.get("title") or "") if isinstance(reply, dict) else "", None
    else:
        text = str(body.get("caption") or "")
        media = "voice" if kind == "audio" and body.get("voice") else {"contacts": "contact", "order": "document"}.get(kind, kind)
    context = item["context"] if isinstance(item.get("context"), dict) else {}
    quoted = None
    if isinstance(context.get("id"), str) and context["id"]:
        quoted = Quoted(context["id"][:128], f"{context['from']}@s.whatsapp.net" if str(context.get("from") or "").isdigit() else "")
    stamp = item.get("timestamp")
    jid = f"{sender}@s.whatsapp.net"
    return WaMessage(
        id=ident[:128],
        chat=jid,
        sender=jid,
        push_name=names.get(sender, "")[:128],
        text=text[:65536],
        timestamp=int(stamp) if isinstance(stamp, str) and stamp.isdigit() else 0,
        quoted=quoted,
        media=media,
    )


class WebhookResource(Resource):
    """C{GET} (Meta's verification) and C{POST} (signed deliveries) at C{webhookPath}."""

    isLeaf = True

    def __init__(self, transport: CloudTransport, events: ITransportEvents) -> None:
        super().__init__()
        self.transport = transport
        self.events = events
        self.open = True

    @staticmethod
    def _json(request: Request, code: int, body: dict[str, Any]) -> bytes:
        request.setResponseCode(code)
        request.setHeader(b"Content-Type", b"application/json")
        return json.dumps(body).encode()

    def render_GET(self, request: Request) -> bytes:
        args = request.args or {}

        def arg(name: bytes) -> bytes:
            values = args.get(name) or [b""]
            return values[0]

        token = self.transport.verify_token.encode()
        challenge = arg(b"hub.challenge")
        if arg(b"hub.mode") != b"subscribe" or not token or not hmac.compare_digest(arg(b"hub.verify_token"), token) or not 0 < len(challenge) <= 512:
            return self._json(request, 403, {"ok": False, "error": "verification failed"})
        request.authenticated = True  # type: ignore[attr-defined]
        log.info("whatsapp {account}: webhook verified by Meta", account=self.transport.account_id)
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        request.setHeader(b"X-Content-Type-Options", b"nosniff")
        return challenge

    def render_POST(self, request: Request) -> bytes:
        content = request.content
        body = content.read(MAX_BODY + 1) if content is not None else b""
        if len(body) > MAX_BODY:
            return self._json(request, 413, {"ok": False, "error": "too large"})
        if not signature_ok(self.transport.app_secret, body, request.getHeader(b"x-hub-signature-256")):
            return self._json(request, 401, {"ok": False, "error": "bad signature"})
        request.authenticated = True  # type: ignore[attr-defined]
        if not self.open:
            return self._json(request, 503, {"ok": False, "error": "the channel is stopped"})
        try:
            payload = json.loads(body)
        except ValueError:
            return self._json(request, 400, {"ok": False, "error": "not JSON"})
        messages, statuses = deliveries(payload, self.transport.phone_number_id)
        for status in statuses:
            if status.get("status") == "failed":
                errors = status["errors"] if isinstance(status.get("errors"), list) else []
                first = errors[0] if errors and isinstance(errors[0], dict) else {}
                log.warn("whatsapp {account}: a sent message failed: {code} {title}", account=self.transport.account_id, code=first.get("code"), title=str(first.get("title") or "")[:200])
        try:
            for message in messages:
                self.events.message(message)
        except Exception:
            log.failure("whatsapp webhook: could not keep a message; Meta will deliver it again")
            return self._json(request, 500, {"ok": False, "error": "try again"})
        return self._json(request, 200, {"ok": True})


@implementer(IWhatsAppTransport)
class CloudTransport:
    kind = "cloud"
    needs_link = False

    def __init__(
        self,
        reactor: IChannelReactor,
        routes: RoutesPort,
        account_id: str,
        token: str,
        phone_number_id: str,
        app_secret: str,
        verify_token: str,
        webhook_path: str,
        graph_base: str = GRAPH_BASE,
        graph_version: str = GRAPH_VERSION,
        timeout: float = 30.0,
    ) -> None:
        self.reactor = reactor
        self.routes = routes
        self.account_id = account_id
        self.token = token
        self.phone_number_id = phone_number_id
        self.app_secret = app_secret
        self.verify_token = verify_token
        self.webhook_path = webhook_path
        self.graph_base = graph_base.rstrip("/")
        self.graph_version = graph_version
        self.timeout = timeout
        self._pool = HTTPConnectionPool(reactor, persistent=True)
        self._pool.maxPersistentPerHost = 4
        self._http = HTTPClient(Agent(reactor, pool=self._pool))
        self._flying: set[Deferred[Any]] = set()
        self._hold: Deferred[None] | None = None
        self.number: dict[str, Any] = {}
        self.closed = False

    def may_be_linked(self) -> bool:
        return True

    def clear(self) -> None:
        pass

    # -- the Graph API

    def _url(self, *parts: str) -> str:
        return "/".join([self.graph_base, self.graph_version, *parts])

    async def call(self, what: str, method: str, parts: tuple[str, ...], json_body: Any = None, params: Mapping[str, str] | None = None, files: Any = None, data: Any = None, timeout: float | None = None) -> Any:
        if self.closed:
            raise ChannelError(f"{what}: the Cloud API client is closed")
        limit = timeout or self.timeout
        timed_out: list[bool] = []
        d = Deferred.fromCoroutine(self._request(what, method, self._url(*parts), json_body, params, files, data))
        self._flying.add(d)

        def expire() -> None:
            timed_out.append(True)
            d.cancel()

        timer = self.reactor.callLater(limit, expire)
        try:
            status, headers, body = await d
        except CancelledError:
            if timed_out:
                raise ChannelError(f"{what}: no answer from the Graph API within {limit:g} s") from None
            raise
        finally:
            self._flying.discard(d)
            if timer.active():
                timer.cancel()
        try:
            value = json.loads(body) if body else {}
        except ValueError:
            value = None
        if 200 <= status < 300 and isinstance(value, dict):
            return value
        if value is None and 200 <= status < 300:
            raise ChannelError(f"{what}: the Graph API answered HTTP {status} with a body that is not JSON")
        raise graph_error(what, status, value, headers.get("retry-after"))

    async def _request(self, what: str, method: str, url: str, json_body: Any, params: Any, files: Any, data: Any) -> tuple[int, dict[str, str], bytes]:
        headers = Headers({"Authorization": [f"Bearer {self.token}"]})
        try:
            if method == "GET":
                response = await self._http.get(url, params=params, headers=headers)
            elif files is not None:
                response = await self._http.post(url, data=data, files=files, headers=headers)
            else:
                response = await self._http.post(url, json=json_body, headers=headers)
            length = response.length if isinstance(response.length, int) else 0
            if length > MAX_RESPONSE:
                raise ChannelError(f"{what}: the Graph API's answer is too large ({length} bytes)")
            body = await treq.content(response)
        except (CancelledError, ChannelError):
            raise
        except Exception as e:
            if any(r.check(CancelledError) for r in getattr(e, "reasons", None) or ()):
                raise CancelledError() from None
            raise ChannelError(f"{what}: network error: {type(e).__name__}") from None
        found = {k.decode("latin-1").lower(): v[0].decode("latin-1") for k, v in response.headers.getAllRawHeaders() if v}
        return response.code, found, body

    def _number(self, timeout: float | None = None) -> Deferred[Any]:
        return Deferred.fromCoroutine(self.call("phone number", "GET", (self.phone_number_id,), params={"fields": "display_phone_number,verified_name,quality_rating"}, timeout=timeout))

    # -- the link

    def run(self, events: ITransportEvents) -> Deferred[None]:
        return Deferred.fromCoroutine(self._run(events))

    async def _run(self, events: ITransportEvents) -> None:
        resource = WebhookResource(self, events)
        try:
            self.routes.route(self.webhook_path, resource)
        except ValueError as e:
            raise ConfigProblem(f"channels.whatsapp.webhookPath: {e}") from None
        try:
            number = await self._number()
            self.number = number
            digits = "".join(c for c in str(number.get("display_phone_number") or "") if c.isdigit())
            events.connected(Me(jid=f"{digits}@s.whatsapp.net" if digits else "", name=str(number.get("verified_name") or "")))
            self._hold = Deferred()
            await self._hold  # until stopped or cancelled: deliveries arrive on the route
        finally:
            resource.open = False
            self.routes.unroute(self.webhook_path)
            self._hold = None

    def stop(self) -> None:
        if self._hold is not None and not self._hold.called:
            self._hold.callback(None)

    def _messages(self, body: dict[str, Any], timeout: float | None = None) -> Deferred[str]:
        async def go() -> str:
            result = await self.call("send", "POST", (self.phone_number_id, "messages"), json_body=body, timeout=timeout)
            sent = result.get("messages")
            if isinstance(sent, list) and sent and isinstance(sent[0], dict) and isinstance(sent[0].get("id"), str):
                return str(sent[0]["id"])
            raise ChannelError("send: the Graph API answered without the message id")

        return Deferred.fromCoroutine(go())

    @staticmethod
    def _to(jid: str) -> str:
        user = jid.split("@", 1)[0].lstrip("+")
        if ("@" in jid and not jid.endswith("@s.whatsapp.net")) or not user.isdigit():
            raise Rejected("the Cloud API sends to phone numbers only")
        return user

    def send_text(self, to: str, text: str, quote: str | None) -> Deferred[str]:
        try:
            number = self._to(to)
        except Rejected as e:
            return _failed(e)
        body: dict[str, Any] = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": number, "type": "text", "text": {"preview_url": False, "body": text}}
        if quote:
            body["context"] = {"message_id": quote}
        return self._messages(body)

    def send_media(self, to: str, media: Media, caption: str) -> Deferred[str]:
        return Deferred.fromCoroutine(self._send_media(to, media, caption))

    async def _send_media(self, to: str, media: Media, caption: str) -> str:
        number = self._to(to)
        kind = _media_kind(media)
        item: dict[str, Any] = {}
        if media.data is not None:
            ctype = media.content_type or "application/octet-stream"
            uploaded = await self.call(
                "upload",
                "POST",
                (self.phone_number_id, "media"),
                data={"messaging_product": "whatsapp", "type": ctype},
                files={"file": (media.filename or "file", ctype, FileBodyProducer(io.BytesIO(media.data)))},
                timeout=max(self.timeout, 120.0),
            )
            if not isinstance(uploaded.get("id"), str):
                raise ChannelError("upload: the Graph API answered without a media id")
            item["id"] = uploaded["id"]
        elif media.url:
            item["link"] = media.url
        else:
            raise Rejected("the attachment has neither data nor a URL")
        if caption and kind != "audio":
            item["caption"] = caption[:1024]
        if kind == "document" and media.filename:
            item["filename"] = media.filename[:240]
        body = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": number, "type": kind, kind: item}
        return await self._messages(body)

    def typing(self, to: str) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        d.callback(None)  # the Cloud API shows typing only together with a read receipt
        return d

    def read(self, chat: str, sender: str, message_ids: list[str]) -> Deferred[None]:
        async def go() -> None:
            for ident in message_ids:
                await self.call("read", "POST", (self.phone_number_id, "messages"), json_body={"messaging_product": "whatsapp", "status": "read", "message_id": ident})

        return Deferred.fromCoroutine(go())

    def logout(self) -> Deferred[bool]:
        d: Deferred[bool] = Deferred()
        d.callback(False)  # nothing to unlink: the token stays valid until revoked in Meta's console
        return d

    def probe(self, timeout: float) -> Deferred[dict[str, Any]]:
        async def go() -> dict[str, Any]:
            started = time.monotonic()
            try:
                number = await self._number(timeout)
            except ChannelError as e:
                return {"ok": False, "error": str(e), "elapsedMs": int((time.monotonic() - started) * 1000)}
            return {
                "ok": True,
                "phoneNumber": number.get("display_phone_number"),
                "verifiedName": number.get("verified_name"),
                "qualityRating": number.get("quality_rating"),
                "elapsedMs": int((time.monotonic() - started) * 1000),
            }

        return Deferred.fromCoroutine(go())

    def snapshot(self) -> dict[str, Any]:
        out: dict[str, Any] = {"webhookPath": self.webhook_path, "phoneNumberId": self.phone_number_id}
        if self.graph_base != GRAPH_BASE:
            out["baseUrl"] = self.graph_base
        return out

    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.token, self.app_secret, self.verify_token) if s)

    def close(self) -> Deferred[None]:
        return Deferred.fromCoroutine(self._close())

    async def _close(self) -> None:
        self.closed = True
        self.stop()
        for d in list(self._flying):
            d.cancel()
        await self._pool.closeCachedConnections()


def _failed(error: Exception) -> Deferred[Any]:
    d: Deferred[Any] = Deferred()
    d.errback(error)
    return d
