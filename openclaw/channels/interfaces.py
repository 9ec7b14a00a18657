# -*- test-case-name: tests.test_channels -*-
"""
The seam between the channel framework and each platform.

A platform (Telegram, Discord, ...) implements L{IPlatform} (which accounts
a config describes, and how to build one) and L{IChannel} (one account: its
receive loop and its sends). The framework gives each channel an
L{IInbound}, where it delivers what arrives. Everything that does not depend
on the platform is the framework's: access policy, DM pairing, session
routing, the agent run, chunking, per-chat send queues and rate limits,
reconnects with backoff, persistence of inbound messages and replies.

Errors a channel raises tell the framework what to do next: L{AuthFailed}
and L{ConfigProblem} stop the account (shown in status, no retry loop);
L{RetryAfter} waits as the platform asked; L{Unreachable} and L{Rejected}
drop the message; L{Moved} re-targets it; anything else is transient and is
retried with backoff. Their messages reach status and logs: never put a
secret in one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorProcess, IReactorTCP, IReactorTime
from zope.interface import Attribute, Interface

from openclaw.channels.ports import RoutesPort

DM = "dm"
GROUP = "group"
CHANNEL = "channel"
CHAT_TYPES = (DM, GROUP, CHANNEL)
TOPIC = "topic"  # Telegram forum topics: session keys get `:topic:<id>`
THREAD = "thread"  # Slack/Discord threads: `:thread:<id>`


# -- errors


class ChannelError(Exception):
    """A channel failure whose message is safe to show (no secrets)."""


class AuthFailed(ChannelError):
    """The platform refused the credentials: stop the account, do not retry."""


class ConfigProblem(ChannelError):
    """The account cannot run as configured: stop it until the config changes."""


class RetryAfter(ChannelError):
    """The platform asked us to wait C{seconds} before the next request."""

    def __init__(self, seconds: float, message: str = "rate limited") -> None:
        super().__init__(f"{message} (retry after {seconds:g} s)")
        self.seconds = max(0.0, float(seconds))


class Unreachable(ChannelError):
    """The destination refuses messages from us (blocked, kicked): drop, do not retry."""


class Rejected(ChannelError):
    """The platform refused this one message (bad request): drop it."""


class Moved(ChannelError):
    """The chat has a new id (Telegram group → supergroup): resend there."""

    def __init__(self, chat_id: str, message: str = "the chat moved") -> None:
        super().__init__(f"{message} (now {chat_id})")
        self.chat_id = chat_id


class Unsupported(ChannelError):
    """This platform cannot do that (polls, logout, ...)."""


# -- records


@attrs.frozen
class ReplyRef:
    """The message an inbound message answers."""

    message_id: str
    sender_name: str | None = None
    text: str | None = None
    from_me: bool = False


@attrs.frozen
class InboundMessage:
    """
    One message as every platform describes it. Ids are strings; C{chat_type}
    is C{dm}, C{group} or C{channel}; C{thread_kind} says what C{thread_id}
    is (C{topic} or C{thread}). C{mentions_me}: the platform saw a mention of
    this account (or a reply to it). C{trusted}: the sender is the account's
    owner, so DM policy lets it through.
    """

    channel: str
    account_id: str
    chat_id: str
    chat_type: str
    sender_id: str
    message_id: str
    text: str = ""
    sender_name: str | None = None
    sender_username: str | None = None
    chat_title: str | None = None
    thread_id: str | None = None
    thread_kind: str | None = None
    mentions_me: bool = False
    reply_to: ReplyRef | None = None
    media: tuple[str, ...] = ()  # placeholders such as "photo", "voice"
    ts_ms: int = 0
    trusted: bool = False  # the platform vouches for the sender (WhatsApp: the linked number itself)

    @property
    def key(self) -> str:
        """The dedupe key: platform message ids are unique within a chat."""
        return f"{self.chat_id}:{self.message_id}"

    @property
    def sender_label(self) -> str:
        if self.sender_username:
            return f"{self.sender_name} (@{self.sender_username})" if self.sender_name else f"@{self.sender_username}"
        return self.sender_name or self.sender_id

    def to_json(self) -> dict[str, Any]:
        value = attrs.asdict(self)
        value["media"] = list(self.media)
        return value

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> InboundMessage:
        fields = {a.name for a in attrs.fields(cls)}
        data = {k: v for k, v in value.items() if k in fields}
        if isinstance(data.get("reply_to"), dict):
            data["reply_to"] = ReplyRef(**{k: v for k, v in data["reply_to"].items() if k in {"message_id", "sender_name", "text", "from_me"}})
        data["media"] = tuple(data.get("media") or ())
        return cls(**data)


@attrs.frozen
class Target:
    """Where a message goes: a chat, maybe a thread/topic in it, maybe as a reply."""

    chat_id: str
    thread_id: str | None = None
    reply_to: str | None = None


@attrs.frozen
class Media:
    """An attachment: a URL the platform fetches, or bytes we upload."""

    url: str | None = None
    data: bytes | None = attrs.field(default=None, repr=False)
    filename: str | None = None
    content_type: str | None = None
    as_voice: bool = False


@attrs.frozen
class Outbound:
    """One platform message: text (within the platform's limit) and/or one attachment."""

    text: str = ""
    media: Media | None = None
    silent: bool = False
    key: str | None = None  # stable across retries and restarts (journaled replies): platforms with idempotent sends use it


@attrs.frozen
class Receipt:
    """What the platform said about a sent message."""

    message_id: str
    chat_id: str


@attrs.frozen
class Limits:
    """A platform's delivery limits; C{textChunkLimit} may lower C{chunk} per account."""

    chunk: int  # default chunk size (textChunkLimit)
    max_text: int  # the platform's hard limit per message
    typing_every: float | None = None  # resend the typing indicator this often (None: no typing)
    chat_rate: float = 1.0  # sustained messages per second to one chat
    chat_burst: int = 3
    account_rate: float = 30.0  # sustained messages per second for the account
    account_burst: int = 30
    reply_mode: str = "first"  # replyToMode when the account sets none: off | first | all


@attrs.frozen
class AccountConfig:
    """One account's config: the channel section merged with C{accounts.<name>}."""

    channel: str
    account_id: str
    config: Mapping[str, Any]
    env: Mapping[str, str] = attrs.field(factory=dict, repr=False)
    state_dir: Path = Path(".")  # this account's own folder, for platform state (created 0700)
    credentials_dir: Path = Path("credentials")  # the state dir's credentials/ (stored logins; create it 0700 before use)


class IChannelReactor(IReactorTime, IReactorTCP, IReactorProcess):
    """
    The reactor channels run on: time, TCP (treq, autobahn, IRC's endpoints)
    and child processes (imsg, the WhatsApp helper). Twisted's reactor
    provides each of these; this names them together for the type checker.
    """


@attrs.frozen
class ChannelHost:
    """What a channel may use of the gateway: the reactor, and HTTP routes for webhooks."""

    reactor: IChannelReactor
    routes: RoutesPort


# -- interfaces


class IInbound(Interface):
    """What a channel calls when something arrives (the framework's sink)."""

    def cursor() -> Any:
        """The platform position last persisted with L{received} or L{advance}; None at first."""

    def received(message: InboundMessage, cursor: Any = None) -> bool:
        """
        A message arrived. It is persisted (with C{cursor}, the position to
        resume from) before this returns, so the channel may then acknowledge
        it to the platform. False when it is a duplicate (already seen).
        """

    def advance(cursor: Any) -> None:
        """Nothing to process, but the platform position moved; persist it."""

    def connected() -> None:
        """The link is up and authenticated."""

    def disconnected(reason: str) -> None:
        """
        The link is down, and the channel waits for it without ending L{IChannel.run}
        (the other side reconnects to us: an out-of-process adapter).
        """

    def backlog() -> int:
        """Messages received and not finished yet (a channel that can push back uses it)."""

    def problem(text: str | None) -> None:
        """A condition the owner should see in status (with its fix), or None when it cleared."""


class IChannel(Interface):
    """One account on one platform, as the gateway drives it."""

    limits = Attribute("L{Limits}")
    self_ids = Attribute("frozenset of this account's own sender ids; their messages are dropped")

    def run(inbound: IInbound) -> Deferred[None]:
        """
        Connect, authenticate, and deliver what arrives to C{inbound} until
        the link fails (errback) or the Deferred is cancelled (stop). The
        framework calls it again after a backoff, except after L{AuthFailed}
        or L{ConfigProblem}.
        """

    def parse_target(to: str, thread_id: str | None = None, reply_to: str | None = None) -> Target:
        """A user-written destination (`send`, the CLI, the agent's tool); ValueError if unusable."""

    def send(target: Target, message: Outbound) -> Deferred[Receipt]:
        """Send one message (text within C{limits.max_text}); errors as in the module docstring."""

    def typing(target: Target) -> Deferred[None]:
        """Show the typing indicator once (it fades after a few seconds)."""

    def poll(target: Target, question: str, options: list[str], multi: bool, duration_s: int | None) -> Deferred[Receipt]:
        """Post a poll; L{Unsupported} where the platform has none."""

    def probe(timeout: float) -> Deferred[dict[str, Any]]:
        """A live check: C{{ok, ...details}} (never raises for a failed check)."""

    def logout() -> Deferred[dict[str, Any]]:
        """Forget the session on the platform side (stopped already); L{Unsupported} if meaningless."""

    def snapshot() -> dict[str, Any]:
        """Platform fields for C{channels.status} (mode, token source, bot, ...)."""

    def secrets() -> tuple[str, ...]:
        """Credential values to mask in every log line."""

    def close() -> Deferred[None]:
        """Release connections and timers; called once when the account stops."""


class ITypingStop(Interface):
    """A channel whose typing indicator stays on until told (iMessage, Signal)."""

    def typing_stop(target: Target) -> Deferred[None]:
        """Take the typing indicator down (no run is going in that chat any more)."""


class IConfigHint(Interface):
    """A platform that can say why an account is not configured, with the fix."""

    def unconfigured(account: AccountConfig) -> str:
        """The reason L{IPlatform.configured} is false, for status."""


class IPlatform(Interface):
    """A kind of channel: its id, defaults, and how to build an account."""

    id = Attribute("channel id, e.g. 'telegram'")
    label = Attribute("human name, e.g. 'Telegram'")
    limits = Attribute("default L{Limits}")

    def configured(account: AccountConfig) -> bool:
        """Whether the account has what it needs to try (credentials present)."""

    def build(account: AccountConfig, host: ChannelHost) -> IChannel:
        """The channel for C{account}; L{ConfigProblem} when it cannot run."""

    # Optional: C{normalize(config) -> Mapping}, the account's config with the
    # platform's own spellings (upstream's C{dm.policy}, say) turned into the
    # framework's keys; applied before anything reads the config.
