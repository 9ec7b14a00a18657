# -*- test-case-name: tests.test_slack_units -*-
"""
Markdown-ish model output as Slack mrkdwn (which is not Markdown).

C{**bold**} becomes C{*bold*}, C{*italic*} C{_italic_}, C{~~strike~~}
C{~strike~}, C{[text](url)} C{<url|text>}, C{# headings} bold lines and
C{- items} bullets; fenced code loses its language tag (Slack would show
it). C{&}, C{<} and C{>} are escaped everywhere (code included), as Slack
requires, so text from the model can never form a mention or a link on its
own (C{<!channel>} stays text).

Escaping lengthens the text at most fivefold (C{&} → C{&amp;}); everything
else shortens it. So a chunk of 8000 characters always fits Slack's 40,000.
"""

from __future__ import annotations

import re

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})[ \t]*[\w+#.-]*[^\n]*\n(.*?)(?:\n {0,3}\1[ \t]*(?=\n|$)|\Z)", re.S | re.M)
_CODE = re.compile(r"`([^`\n]+)`")
_LINK = re.compile(r"\[([^\]\n]+)\]\((https?://[^\s)|<>]+)\)")
_BOLD = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1", re.S)
_ITALIC_STAR = re.compile(r"(?<![*\w])\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?![*\w])", re.S)
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~", re.S)
_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.M)
_BULLET = re.compile(r"^([ \t]*)[-*+][ \t]+(?=\S)", re.M)
_SLOT = "\x00{}\x00"
_STAR = "\x01"  # a bold marker, kept away from the italic rule


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_mrkdwn(text: str) -> str:
    """Slack mrkdwn for C{text}."""
    slots: list[str] = []

    def keep(fragment: str) -> str:
        slots.append(fragment)
        return _SLOT.format(len(slots) - 1)

    text = text.replace("\x00", "").replace(_STAR, "")
    text = _FENCE.sub(lambda m: keep(f"```\n{escape(m.group(2))}\n```"), text)
    text = _CODE.sub(lambda m: keep(f"`{escape(m.group(1))}`"), text)
    text = _LINK.sub(lambda m: keep(f"<{escape(m.group(2))}|") + m.group(1).replace("|", "¦") + keep(">"), text)
    text = escape(text)
    text = _HEADING.sub(lambda m: f"{_STAR}{m.group(1)}{_STAR}", text)
    text = _BULLET.sub(r"\1• ", text)
    text = _BOLD.sub(lambda m: f"{_STAR}{m.group(2)}{_STAR}", text)
    text = _STRIKE.sub(r"~\1~", text)
    text = _ITALIC_STAR.sub(r"_\1_", text)
    text = text.replace(_STAR, "*")
    return re.sub("\x00(\\d+)\x00", lambda m: slots[int(m.group(1))], text)
