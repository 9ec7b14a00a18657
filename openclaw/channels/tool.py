# -*- test-case-name: tests.test_channels_gateway -*-
"""
The agent's C{message} tool: send a message to a chat on any configured
channel. Only the main session may use it unless
C{tools.message.allowNonMainSessions} is true (a group chat must not be
able to make the agent write elsewhere).

L{openclaw.channels.wiring.install} adds it with C{core.agent.add_tool},
so C{tools.allow}/C{tools.deny} apply to it as to the built-in tools.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Protocol

from openclaw.agent.providers import ToolSpec
from openclaw.agent.tools import ToolError
from openclaw.channels.interfaces import ChannelError
from openclaw.channels.service import ChannelsService

SPEC = ToolSpec(
    "message",
    "Send a message to a chat on a configured messaging channel (e.g. Telegram). "
    "channel: the channel id (optional when only one is configured; 'last' = where the user last wrote from); "
    "to: the chat (Telegram: chat id or @username); message: the text.",
    {
        "type": "object",
        "properties": {
            "channel": {"type": "string"},
            "to": {"type": "string"},
            "message": {"type": "string"},
            "accountId": {"type": "string"},
            "threadId": {"type": "string"},
            "replyTo": {"type": "string"},
        },
        "required": ["to", "message"],
    },
)


class _Context(Protocol):
    @property
    def session_key(self) -> str: ...


class MessageTool:
    spec = SPEC

    def __init__(self, channels: ChannelsService, config: Callable[[], Mapping[str, Any]]) -> None:
        self._channels = channels
        self._config = config

    def _allowed(self, session_key: str) -> bool:
        agent = session_key.split(":", 2)[1] if session_key.startswith("agent:") else "main"
        if session_key in (f"agent:{agent}:main", "main"):
            return True
        tools = self._config().get("tools") or {}
        return isinstance(tools, dict) and (tools.get("message") or {}).get("allowNonMainSessions") is True

    async def run(self, ctx: _Context, args: dict[str, Any]) -> str:
        if not self._allowed(ctx.session_key):
            raise ToolError("the message tool is only available in the main session (set tools.message.allowNonMainSessions: true to allow it)")
        to, text = args.get("to"), args.get("message")
        if not isinstance(to, str) or not to.strip() or not isinstance(text, str) or not text.strip():
            raise ToolError("to and message are required")
        channel = args["channel"] if isinstance(args.get("channel"), str) and args.get("channel") else None
        strings = {k: str(args[k]) for k in ("accountId", "threadId", "replyTo") if isinstance(args.get(k), (str, int)) and str(args[k])}
        try:
            account, target = self._channels.resolve(channel, strings.get("accountId"), to.strip(), strings.get("threadId"), strings.get("replyTo"), ctx.session_key)
            result = await self._channels.send(None, account, target, text)
        except (ChannelError, ValueError) as e:
            raise ToolError(f"message not sent: {e}") from None
        return f"sent to {result['channel']} chat {result['chatId']} (message id {result['messageId']})"
