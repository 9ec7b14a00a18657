# -*- test-case-name: tests.test_matrix -*-
"""
L{MatrixChannel}: one Matrix user account on a homeserver.

Start: the access token (configured, stored from an earlier password login,
or a fresh C{m.login.password} login stored crash-safe under
C{credentials/}), C{whoami}, C{m.direct}. A fresh start without a journaled
C{next_batch} syncs once without answering anything (the room history is
not replayed); then C{/sync} long polls from the journaled token. Each
message is journaled before the batch's C{next_batch} is, so a crash
anywhere replays the batch and the journal drops what it already has.
Invites are joined first (C{autoJoin}); encrypted rooms are reported in
status (end-to-end encryption is not supported).

Sends C{PUT .../send/m.room.message/<txnId>} with a transaction id derived
from the journaled reply's key, so a retry or a restart never posts twice.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
import weakref
from typing import Any, Mapping

from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.logger import Logger
from zope.interface import implementer

from openclaw.channels.interfaces import (
    AccountConfig,
    AuthFailed,
    ChannelError,
    ChannelHost,
    ConfigProblem,
    IChannel,
    IInbound,
    Limits,
    Media,
    Outbound,
    Receipt,
    Rejected,
    RetryAfter,
    Target,
    Unreachable,
    Unsupported,
)
from openclaw.channels.matrix import credentials
from openclaw.channels.matrix.api import Forbidden, MatrixApi, MatrixError, TokenRefused, path
from openclaw.channels.matrix.events import THREAD_INBOUND, Me, Rooms, SyncBatch, Bounded, encrypted_events, parse_sync, to_message
from openclaw.channels.telegram.format import to_html

log = Logger(namespace="openclaw.channels.matrix")

LIMITS = Limits(chunk=4000, max_text=16000, typing_every=20.0, chat_rate=1.0, chat_burst=5, account_rate=2.0, account_burst=10)
DEFAULT_SYNC_TIMEOUT = 30
DEFAULT_TIMEOUT = 30.0
TYPING_MS = 25_000
TIMELINE_LIMIT = 100
MAX_PAUSE = 300.0
JOIN_ATTEMPTS = 3
_TARGET = re.compile(r"^[!#@][^\s:/]+:[^\s/]+$")
_EVENT = re.compile(r"^\$[^\s]+$")
_MARKDOWN = re.compile(r"(\*\*|__|`|~~|\[[^\]]+\]\(|^#{1,6} |(?<!\w)[*_][^\s*_])", re.M)
TIMELINE_TYPES = ["m.room.message", "m.room.member", "m.room.name", "m.room.encrypted", "m.room.encryption"]


def sync_filter(limit: int) -> str:
    """An inline filter: messages and the state we read, members lazily, no presence or receipts."""
    return json.dumps(
        {
            "presence": {"types": []},
            "account_data": {"types": ["m.direct"]},
            "room": {
                "timeline": {"limit": limit, "types": TIMELINE_TYPES},
                "state": {"lazy_load_members": True, "types": ["m.room.member", "m.room.name", "m.room.encryption"]},
                "ephemeral": {"types": []},
                "account_data": {"types": []},
            },
        },
        separators=(",", ":"),
    )


def txn_for(key: str) -> str:
    """A transaction id for a journaled message: the same after a retry or a restart."""
    return "oc" + hashlib.sha256(key.encode()).hexdigest()[:40]


def html(text: str) -> str | None:
    """C{formatted_body} for Markdown-looking text (None when plain text says it all)."""
    if not _MARKDOWN.search(text):
        return None
    rendered = to_html(text)
    parts = re.split(r"(<pre>.*?</pre>)", rendered, flags=re.S)
    return "".join(p if p.startswith("<pre>") else p.replace("\n", "<br>") for p in parts)


@implementer(IChannel)
class MatrixChannel:
    limits = LIMITS

    def __init__(self, account: AccountConfig, host: ChannelHost, settings: Mapping[str, Any]) -> None:
        self.account = account
        self.host = host
        self.reactor = host.reactor
        self.homeserver: str = settings["homeserver"]
        self.configured_token: str | None = settings.get("access_token")
        self.token_source: str = settings.get("token_source", "none")
        self.user_id: str | None = settings.get("user_id")
        self.password: str | None = settings.get("password")
        self.device_name: str = settings.get("device_name") or "OpenClaw Gateway"
        self.stored_path = credentials.credentials_path(account.credentials_dir, account.account_id)
        self.stored = None if self.configured_token else credentials.load(self.stored_path, self.homeserver, self.user_id)
        config = account.config
        self.sync_timeout = int(_number(config.get("syncTimeoutSeconds"), DEFAULT_SYNC_TIMEOUT, 0, 120))
        self.timeout = float(_number(config.get("timeoutSeconds"), DEFAULT_TIMEOUT, 1, 600))
        self.thread_mode: str = config["threadReplies"] if config.get("threadReplies") in ("off", "inbound", "always") else THREAD_INBOUND
        self.auto_join = config.get("autoJoin") if config.get("autoJoin") in ("always", "allowlist", "off") else "always"
        allow = config.get("autoJoinAllowlist")
        self.auto_join_allow = {str(a).strip() for a in allow if isinstance(a, str) and a.strip()} if isinstance(allow, list) else set()
        self.want_encryption = config.get("encryption") is True
        self.api = MatrixApi(host.reactor, self.homeserver)
        self.me: Me | None = None
        self.device_id: str | None = None
        self.rooms = Rooms()
        self.self_ids: frozenset[str] = frozenset({self.user_id} if self.user_id else ())
        self._direct: Any = {}
        self._resolved: Bounded = Bounded(1000)  # "#alias" / "@user" → room id
        self._room_encrypted: Bounded = Bounded(2000)  # room id → bool (checked before sending)
        self._typing_until: Bounded = Bounded(1000)  # room id → when our typing notice fades
        self._looked_up: Bounded = Bounded(2000)  # rooms whose name we asked for
        self._txns: dict[int, str] = {}
        self._inbound: IInbound | None = None
        self._encrypted_reported: set[str] = set()
        self.joined_invites = 0

    # -- logging in

    def _active_token(self) -> tuple[str | None, str]:
        if self.configured_token:
            return self.configured_token, self.token_source
        if self.stored is not None:
            return self.stored.access_token, "stored"
        return None, "none"

    async def _login(self) -> None:
        """A password login; the token is stored for the next start."""
        if not (self.password and self.user_id):
            raise ConfigProblem("no Matrix credentials: set channels.matrix.accessToken, or userId and password")
        body = {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": self.user_id},
            "password": self.password,
            "initial_device_display_name": self.device_name,
        }
        if self.stored is not None and self.stored.device_id:
            body["device_id"] = self.stored.device_id
        try:
            answer = await self.api.call("POST", path("login"), body, timeout=self.timeout, what="login", auth=False)
        except (Forbidden, TokenRefused) as e:
            raise AuthFailed(f"the homeserver refused the password login for {self.user_id} ({e}): check channels.matrix.userId and password") from None
        token, user = answer.get("access_token"), answer.get("user_id")
        if not isinstance(token, str) or not token or not isinstance(user, str):
            raise ChannelError("login: the homeserver answered without an access token")
        device = answer["device_id"] if isinstance(answer.get("device_id"), str) else None
        self.stored = credentials.Stored(self.homeserver, user, token, device)
        credentials.save(self.stored_path, self.stored)
        log.info("matrix {account}: logged in as {user}; the access token is kept in {file}", account=self.account.account_id, user=user, file=str(self.stored_path))

    async def _hello(self) -> Me:
        token, source = self._active_token()
        fresh = False
        if token is None:
            await self._login()
            token, source, fresh = self._active_token()[0], "password", True
        self.api.token = token
        try:
            who = await self.api.call("GET", path("account", "whoami"), timeout=self.timeout, what="whoami")
        except TokenRefused as e:
            if source in ("stored", "password"):
                self._drop_stored()
                if self.password and not fresh:
                    log.info("matrix {account}: the stored access token was refused; logging in again", account=self.account.account_id)
                    return await self._hello()
            fix = "channels.matrix.userId and password" if source in ("stored", "password") else "channels.matrix.accessToken"
            raise AuthFailed(f"{e}: check {fix}") from None
        user = who.get("user_id")
        if not isinstance(user, str) or not user.startswith("@"):
            raise ChannelError("whoami: the homeserver answered without a user id")
        if self.user_id and user != self.user_id:
            raise ConfigProblem(f"the access token belongs to {user}, not channels.matrix.userId {self.user_id}")
        self.device_id = who["device_id"] if isinstance(who.get("device_id"), str) else None
        me = Me(user, self.me.display_name if self.me and self.me.user_id == user else None)
        if self.me is not None and self.me.user_id == user:
            me.sent = self.me.sent
        self.me = me
        self.self_ids = frozenset({user})
        try:
            profile = await self.api.call("GET", path("profile", user, "displayname"), timeout=self.timeout, what="displayname")
            if isinstance(profile.get("displayname"), str) and profile["displayname"].strip():
                me.display_name = profile["displayname"].strip()[:100]
        except ChannelError as e:
            log.debug("matrix: no display name: {e}", e=str(e))
        await self._load_direct()
        return me

    def _drop_stored(self) -> None:
        self.stored = None
        credentials.forget(self.stored_path)
        self.api.token = None

    async def _load_direct(self) -> None:
        assert self.me is not None
        try:
            content = await self.api.call("GET", path("user", self.me.user_id, "account_data", "m.direct"), timeout=self.timeout, what="m.direct")
        except MatrixError as e:
            if e.status != 404:
                raise
            content = {}
        except Forbidden:
            content = {}
        self._direct = content
        self.rooms.set_direct(content)

    # -- receiving

    def run(self, inbound: IInbound) -> Deferred[None]:
        return Deferred.fromCoroutine(self._run(inbound))

    async def _sync(self, since: str | None, timeout_s: int, limit: int) -> SyncBatch:
        query = {"timeout": str(timeout_s * 1000), "filter": sync_filter(limit)}
        if since:
            query["since"] = since
        while True:
            try:
                body = await self.api.call("GET", path("sync"), query=query, timeout=timeout_s + self.timeout, what="sync")
            except RetryAfter as e:
                log.info("matrix {account}: sync rate limited; waiting {s:g} s", account=self.account.account_id, s=e.seconds)
                await deferLater(self.reactor, min(e.seconds, MAX_PAUSE), lambda: None)
                continue
            try:
                return parse_sync(body)
            except ValueError as e:
                raise ChannelError(f"sync: {e}") from None

    async def _run(self, inbound: IInbound) -> None:
        self._inbound = inbound
        try:
            me = await self._hello()
        except TokenRefused as e:
            raise AuthFailed(str(e)) from None
        since = inbound.cursor() if isinstance(inbound.cursor(), str) else None
        if since is None:
            # A fresh start: learn the rooms and take invites, answer nothing from the history.
            batch = await self._sync(None, 0, 1)
            await self._apply(batch, inbound, me, answer=False)
            since = batch.next_batch
        inbound.problem(self._note())
        inbound.connected()
        while True:
            try:
                batch = await self._sync(since, self.sync_timeout, TIMELINE_LIMIT)
            except TokenRefused as e:
                if self.configured_token:
                    raise AuthFailed(f"{e}: check channels.matrix.accessToken") from None
                self._drop_stored()  # the next connection logs in again
                raise ChannelError(f"{e}; logging in again") from None
            await self._apply(batch, inbound, me, answer=True)
            since = batch.next_batch

    async def _apply(self, batch: SyncBatch, inbound: IInbound, me: Me, answer: bool) -> None:
        """Journal what a batch brings, then its C{next_batch} (a crash in between replays the batch)."""
        for event in batch.account_data:
            if event.get("type") == "m.direct":
                self._direct = event["content"] if isinstance(event.get("content"), dict) else {}
                self.rooms.set_direct(self._direct)
        for room_id in batch.left:
            self.rooms.forget(room_id)
        for invite in batch.invites:
            await self._invited(invite.room_id, invite.inviter, invite.aliases)
        for room in batch.joined:
            self.rooms.learn(room)
            if room.limited and answer:
                log.warn("matrix {account}: room {room} had more than {n} new events; older ones were skipped", account=self.account.account_id, room=room.room_id, n=TIMELINE_LIMIT)
            if any(encrypted_events(room.timeline, me)):
                self._encrypted(room.room_id, inbound)
            if not answer:
                continue
            for event in room.timeline:
                if event.get("type") != "m.room.message" or event.get("sender") == me.user_id:
                    continue
                await self._learn(room.room_id)
                message = to_message(room.room_id, event, self.rooms, me, self.thread_mode, account_id=self.account.account_id)
                if message is not None:
                    inbound.received(message)
        for room_id, encrypted in list(self.rooms.encrypted.items()):
            if encrypted:
                self._encrypted(room_id, inbound)
        inbound.advance(batch.next_batch)

    async def _learn(self, room_id: str) -> None:
        """What a message's room needs known before it is read: its member count, its name."""
        if self.rooms.needs_count(room_id):
            await self._count(room_id)
        if room_id in self.rooms.names or room_id in self._looked_up:
            return
        self._looked_up.put(room_id, True)
        try:
            answer = await self.api.call("GET", path("rooms", room_id, "state", "m.room.name", ""), timeout=self.timeout, what="room name")
        except (MatrixError, Forbidden, Rejected):
            return  # unnamed (404) or not visible: the room id stands in
        if isinstance(answer.get("name"), str) and answer["name"].strip():
            self.rooms.names.put(room_id, answer["name"].strip()[:200])

    async def _count(self, room_id: str) -> None:
        try:
            answer = await self.api.call("GET", path("rooms", room_id, "joined_members"), timeout=self.timeout, what="joined_members")
        except (Forbidden, Rejected) as e:
            log.info("matrix: cannot count the members of {room}: {e}", room=room_id, e=str(e))
            self.rooms.counts.put(room_id, 0)
            return
        joined = answer.get("joined")
        self.rooms.counts.put(room_id, len(joined) if isinstance(joined, dict) else 0)

    async def _invited(self, room_id: str, inviter: str | None, aliases: tuple[str, ...]) -> None:
        if self.auto_join == "off":
            log.info("matrix {account}: invited to {room} by {who}; autoJoin is off", account=self.account.account_id, room=room_id, who=inviter)
            return
        if self.auto_join == "allowlist" and not ({room_id, *aliases} & self.auto_join_allow):
            log.info("matrix {account}: invited to {room} by {who}; not in autoJoinAllowlist", account=self.account.account_id, room=room_id, who=inviter)
            return
        for attempt in range(JOIN_ATTEMPTS):
            try:
                await self.api.call("POST", path("join", room_id), {}, timeout=self.timeout, what="join")
            except RetryAfter as e:
                await deferLater(self.reactor, min(e.seconds, 30.0), lambda: None)
                continue
            except (Forbidden, Rejected, MatrixError) as e:
                log.warn("matrix {account}: could not join {room} (invited by {who}): {e}", account=self.account.account_id, room=room_id, who=inviter, e=str(e))
                return
            self.joined_invites += 1
            log.info("matrix {account}: joined {room} (invited by {who})", account=self.account.account_id, room=room_id, who=inviter)
            return

    def _encrypted(self, room_id: str, inbound: IInbound) -> None:
        self.rooms.encrypted.put(room_id, True)
        self._room_encrypted.put(room_id, True)
        if room_id in self._encrypted_reported:
            return
        if len(self._encrypted_reported) < 1000:
            self._encrypted_reported.add(room_id)
        log.warn("matrix {account}: room {room} is end-to-end encrypted; its messages cannot be read (E2EE is not supported)", account=self.account.account_id, room=room_id)
        inbound.problem(self._note())

    def _note(self) -> str | None:
        notes = []
        if self.want_encryption:
            notes.append("channels.matrix.encryption is set, but this gateway does not support end-to-end encryption: encrypted rooms are not read")
        if self._encrypted_reported:
            notes.append(
                f"{len(self._encrypted_reported)} end-to-end encrypted room(s) cannot be read (E2EE is not supported): talk to the bot in an unencrypted room or DM"
            )
        return "; ".join(notes) or None

    # -- sending

    def parse_target(self, to: str, thread_id: str | None = None, reply_to: str | None = None) -> Target:
        raw = to.strip()
        if raw.lower().startswith("matrix:"):
            raw = raw[len("matrix:") :].strip()
        for prefix in ("room:", "channel:", "user:"):
            if raw.lower().startswith(prefix):
                raw = raw[len(prefix) :].strip()
        if ":thread:" in raw:
            raw, _, thread = raw.partition(":thread:")
            thread_id = thread_id or thread
        if not _TARGET.match(raw):
            raise ValueError(f"{to!r} is not a Matrix room id (!id:server), alias (#name:server) or user (@name:server)")
        if thread_id is not None and not _EVENT.match(str(thread_id)):
            raise ValueError(f"thread id {thread_id!r} is not an event id ($...)")
        if reply_to is not None and not _EVENT.match(str(reply_to)):
            raise ValueError(f"reply-to {reply_to!r} is not an event id ($...)")
        return Target(raw, str(thread_id) if thread_id else None, str(reply_to) if reply_to else None)

    async def _room_for(self, chat_id: str) -> str:
        if chat_id.startswith("!"):
            return chat_id
        known = self._resolved.get(chat_id)
        if known is not None:
            return str(known)
        if chat_id.startswith("#"):
            try:
                answer = await self.api.call("GET", path("directory", "room", chat_id), timeout=self.timeout, what="room alias")
            except MatrixError as e:
                if e.status == 404:
                    raise Unreachable(f"no room has the alias {chat_id}") from None
                raise
            room = answer.get("room_id")
            if not isinstance(room, str):
                raise Unreachable(f"the alias {chat_id} names no room")
        else:
            room = await self._dm_room(chat_id)
        self._resolved.put(chat_id, room)
        return room

    async def _dm_room(self, user_id: str) -> str:
        """Our DM room with a user: the one C{m.direct} names, else a new one (recorded in C{m.direct})."""
        if self.me is None:
            raise ChannelError("not logged in yet")
        room = self.rooms.direct_room(self._direct, user_id)
        if room is not None:
            return room
        answer = await self.api.call("POST", path("createRoom"), {"is_direct": True, "invite": [user_id], "preset": "trusted_private_chat"}, timeout=self.timeout, what="createRoom")
        room = answer.get("room_id")
        if not isinstance(room, str):
            raise ChannelError("createRoom: the homeserver answered without a room id")
        direct = {k: list(v) for k, v in self._direct.items() if isinstance(v, list)} if isinstance(self._direct, dict) else {}
        direct.setdefault(user_id, []).append(room)
        try:
            await self.api.call("PUT", path("user", self.me.user_id, "account_data", "m.direct"), direct, timeout=self.timeout, what="m.direct")
            self._direct = direct
            self.rooms.set_direct(direct)
        except ChannelError as e:
            log.warn("matrix: the new DM room {room} could not be recorded in m.direct: {e}", room=room, e=str(e))
        return room

    async def _check_plain(self, room: str) -> None:
        """Refuse to post plain text into an end-to-end encrypted room (it would not be encrypted)."""
        known = self._room_encrypted.get(room)
        if known is None:
            try:
                await self.api.call("GET", path("rooms", room, "state", "m.room.encryption", ""), timeout=self.timeout, what="room encryption")
                known = True
            except MatrixError as e:
                if e.status != 404:
                    raise
                known = False
            except Forbidden as e:
                raise Unreachable(f"not allowed in {room}: {e}") from None
            self._room_encrypted.put(room, known)
        if known:
            raise Rejected(f"room {room} is end-to-end encrypted and this gateway cannot encrypt; not sending")

    def _txn(self, message: Outbound) -> str:
        if message.key:
            return txn_for(message.key)
        txn = self._txns.get(id(message))
        if txn is None:
            txn = "oc" + secrets.token_hex(20)
            self._txns[id(message)] = txn
            weakref.finalize(message, self._txns.pop, id(message), None)  # retries send the same object
        return txn

    def send(self, target: Target, message: Outbound) -> Deferred[Receipt]:
        return Deferred.fromCoroutine(self._send(target, message))

    async def _send(self, target: Target, message: Outbound) -> Receipt:
        if self.me is None:
            raise ChannelError("not logged in yet")
        room = await self._room_for(target.chat_id)
        await self._check_plain(room)
        if message.media is not None:
            content = await self._media(message.media, message.text)
        else:
            if not message.text.strip():
                raise Rejected("empty message")
            content = {"msgtype": "m.text", "body": message.text}
            formatted = html(message.text)
            if formatted is not None:
                content.update({"format": "org.matrix.custom.html", "formatted_body": formatted})
        if target.thread_id:
            content["m.relates_to"] = {"rel_type": "m.thread", "event_id": target.thread_id, "is_falling_back": not target.reply_to, "m.in_reply_to": {"event_id": target.reply_to or target.thread_id}}
        elif target.reply_to:
            content["m.relates_to"] = {"m.in_reply_to": {"event_id": target.reply_to}}
        try:
            answer = await self.api.call("PUT", path("rooms", room, "send", "m.room.message", self._txn(message)), content, timeout=self.timeout, what="send")
        except Forbidden as e:
            raise Unreachable(f"cannot post in {room}: {e}") from None
        except TokenRefused as e:
            raise AuthFailed(str(e)) from None
        event_id = answer.get("event_id")
        if not isinstance(event_id, str):
            raise ChannelError("send: the homeserver answered without an event id")
        self.me.remember(event_id)
        if self._typing_until.get(room, 0) > time.monotonic():
            self._typing_until.pop(room, None)
            self._set_typing(room, False).addErrback(lambda f: log.debug("typing off failed: {e}", e=f.getErrorMessage()))
        return Receipt(event_id, room)

    async def _media(self, media: Media, caption: str) -> dict[str, Any]:
        kind = _media_kind(media)
        name = media.filename or (media.url or "file").rsplit("/", 1)[-1].split("?", 1)[0] or "file"
        if media.data is not None:
            answer = await self.api.call(
                "POST", "/_matrix/media/v3/upload", raw=media.data, content_type=media.content_type or "application/octet-stream", query={"filename": name}, timeout=max(self.timeout, 120.0), what="upload"
            )
            url = answer.get("content_uri")
            if not isinstance(url, str) or not url.startswith("mxc://"):
                raise ChannelError("upload: the homeserver answered without a content URI")
        elif media.url and media.url.startswith("mxc://"):
            url = media.url
        elif media.url:
            text = f"{caption}\n{media.url}".strip()
            return {"msgtype": "m.text", "body": text}
        else:
            raise Rejected("the attachment has neither data nor a URL")
        content: dict[str, Any] = {"msgtype": kind, "body": caption or name, "url": url, "info": {"size": len(media.data) if media.data else None, "mimetype": media.content_type}}
        content["info"] = {k: v for k, v in content["info"].items() if v is not None}
        if caption:
            content["filename"] = name
        return content

    def typing(self, target: Target) -> Deferred[None]:
        return Deferred.fromCoroutine(self._typing(target))

    async def _typing(self, target: Target) -> None:
        room = await self._room_for(target.chat_id)
        self._typing_until.put(room, time.monotonic() + TYPING_MS / 1000)
        await self._set_typing(room, True)

    def _set_typing(self, room: str, on: bool) -> Deferred[None]:
        assert self.me is not None
        body: dict[str, Any] = {"typing": on}
        if on:
            body["timeout"] = TYPING_MS
        return Deferred.fromCoroutine(self.api.call("PUT", path("rooms", room, "typing", self.me.user_id), body, timeout=self.timeout, what="typing")).addCallback(lambda _: None)

    def poll(self, target: Target, question: str, options: list[str], multi: bool, duration_s: int | None) -> Deferred[Receipt]:
        d: Deferred[Receipt] = Deferred()
        d.errback(Unsupported("polls are not supported on Matrix by this gateway"))
        return d

    # -- status

    def probe(self, timeout: float) -> Deferred[dict[str, Any]]:
        return Deferred.fromCoroutine(self._probe(timeout))

    async def _probe(self, timeout: float) -> dict[str, Any]:
        started = time.monotonic()
        if self.api.token is None:
            return {"ok": False, "error": "not logged in yet", "elapsedMs": 0}
        try:
            who = await self.api.call("GET", path("account", "whoami"), timeout=timeout, what="whoami")
            versions = await self.api.call("GET", "/_matrix/client/versions", timeout=timeout, what="versions", auth=False)
        except ChannelError as e:
            return {"ok": False, "error": str(e), "elapsedMs": int((time.monotonic() - started) * 1000)}
        listed = versions.get("versions")
        return {
            "ok": True,
            "userId": who.get("user_id"),
            "deviceId": who.get("device_id"),
            "versions": [v for v in listed if isinstance(v, str)][-3:] if isinstance(listed, list) else [],
            "elapsedMs": int((time.monotonic() - started) * 1000),
        }

    def logout(self) -> Deferred[dict[str, Any]]:
        return Deferred.fromCoroutine(self._logout())

    async def _logout(self) -> dict[str, Any]:
        if self.configured_token or self.stored is None:
            # The configured token is the owner's to revoke; forgetting it here would break their config.
            return {"cleared": False}
        api = MatrixApi(self.reactor, self.homeserver, self.stored.access_token)  # the account is stopped: its client is closed
        try:
            await api.call("POST", path("logout"), {}, timeout=self.timeout, what="logout")
        except (TokenRefused, Forbidden):
            pass  # gone already
        finally:
            await api.close()
        self._drop_stored()
        return {"cleared": True}

    def snapshot(self) -> dict[str, Any]:
        token_source = self._active_token()[1] if self._active_token()[0] else ("password" if self.password else "none")
        out: dict[str, Any] = {
            "mode": "sync",
            "baseUrl": self.homeserver,
            "tokenSource": token_source,
            "encryption": "unsupported",
            "autoJoin": self.auto_join,
            "threadReplies": self.thread_mode,
        }
        if self.me is not None:
            out["userId"] = self.me.user_id
            if self.me.display_name:
                out["displayName"] = self.me.display_name
        if self.device_id:
            out["deviceId"] = self.device_id
        if self._encrypted_reported:
            out["encryptedRooms"] = len(self._encrypted_reported)
        return out

    def secrets(self) -> tuple[str, ...]:
        values = [self.configured_token, self.password, self.stored.access_token if self.stored else None]
        return tuple(v for v in values if v)

    def close(self) -> Deferred[None]:
        return self.api.close()


def _media_kind(media: Media) -> str:
    ctype = (media.content_type or "").lower()
    name = (media.filename or media.url or "").lower()
    if ctype.startswith("image/") or name.endswith((".png", ".jpg", ".jpeg", ".gif", ".webp")):
        return "m.image"
    if ctype.startswith("video/") or name.endswith((".mp4", ".webm", ".mov")):
        return "m.video"
    if ctype.startswith("audio/") or name.endswith((".mp3", ".ogg", ".oga", ".opus", ".m4a", ".wav", ".flac")):
        return "m.audio"
    return "m.file"


def _number(value: Any, default: float, low: float, high: float) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= high:
        return value
    return default
