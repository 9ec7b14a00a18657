# -*- test-case-name: tests.test_telegram -*-
"""
Markdown-ish model output as Telegram HTML (C{parse_mode: "HTML"}).

Fenced code becomes C{<pre><code>}, inline code C{<code>}, C{**bold**}
C{<b>}, C{*italic*}/C{_italic_} C{<i>}, C{~~strike~~} C{<s>}, C{[text](url)}
links, C{# headings} bold lines. Everything else is escaped, so raw HTML
from the model is shown, not parsed. When Telegram still refuses the
result ("can't parse entities"), the channel resends the original text
without a parse mode.
"""

from __future__ import annotations

import html
import re

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})[ \t]*([\w+#.-]*)[^\n]*\n(.*?)(?:\n {0,3}\1[ \t]*(?=\n|$)|\Z)", re.S | re.M)
_CODE = re.compile(r"`([^`\n]+)`")
_LINK = re.compile(r"\[([^\]\n]+)\]\(((?:https?|tg)://[^\s)]+)\)")
_BOLD = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1", re.S)
_ITALIC_STAR = re.compile(r"(?<![*\w])\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?![*\w])", re.S)
_ITALIC_UNDER = re.compile(r"(?<![_\w])_(?=[^\s_])(.+?)(?<=[^\s_])_(?![_\w])", re.S)
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~", re.S)
_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.M)
_SLOT = "\x00{}\x00"


def _escape(text: str) -> str:
    return html.escape(text, quote=False)


def to_html(text: str) -> str:
    """Telegram HTML for C{text}."""
    slots: list[str] = []

    def keep(fragment: str) -> str:
        slots.append(fragment)
        return _SLOT.format(len(slots) - 1)

    def fence(m: re.Match[str]) -> str:
        lang = m.group(2)
        code = _escape(m.group(3))
        opener = f'<pre><code class="language-{_escape(lang)}">' if lang else "<pre><code>"
        return keep(f"{opener}{code}</code></pre>")

    text = text.replace("\x00", "")
    text = _FENCE.sub(fence, text)
    text = _CODE.sub(lambda m: keep(f"<code>{_escape(m.group(1))}</code>"), text)
    text = _LINK.sub(lambda m: keep(f'<a href="{html.escape(m.group(2), quote=True)}">') + m.group(1) + keep("</a>"), text)
    text = _escape(text)
    text = _HEADING.sub(r"<b>\1</b>", text)
    text = _BOLD.sub(r"<b>\2</b>", text)
    text = _STRIKE.sub(r"<s>\1</s>", text)
    text = _ITALIC_STAR.sub(r"<i>\1</i>", text)
    text = _ITALIC_UNDER.sub(r"<i>\1</i>", text)
    return re.sub("\x00(\\d+)\x00", lambda m: slots[int(m.group(1))], text)


def visible_length(fragment: str) -> int:
    """Characters Telegram counts for HTML text (tags out, entities as one)."""
    return len(html.unescape(re.sub(r"<[^>]+>", "", fragment)))
