# -*- test-case-name: tests.test_irc -*-
"""
IRC text rules (sans-IO): hostmasks, nick case folding, mentions, and
cutting outgoing text into protocol lines.

An IRC line is at most 512 bytes with its CRLF, and the server relays our
C{PRIVMSG} with our full C{:nick!user@host} prefix in front, so each
message line gets the bytes left after that prefix (with room for the
longest host) and the command: L{line_budget}. L{split_message} cuts by
UTF-8 bytes (never inside a character), at a space when one is near, one
protocol line per text line (IRC has no multi-line messages; blank lines
are dropped).
"""

from __future__ import annotations

import re

MAX_LINE = 512  # bytes, CRLF included
HOST_ROOM = 63  # the longest host the server may put in our prefix
CHANNEL_PREFIXES = "#&+!"
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # tabs become spaces; the rest (CTCP \x01 included) goes
_FORMATTING = re.compile(r"\x03(?:\d{1,2}(?:,\d{1,2})?)?|[\x02\x0f\x11\x16\x1d\x1e\x1f]")
_NICK_CHARS = r"\w\-\[\]\\`^{}|"


def parse_prefix(prefix: str) -> tuple[str, str | None, str | None]:
    """C{nick!user@host} → (nick, user, host); a server prefix is just a nick-less name."""
    nick, _, rest = prefix.partition("!")
    user, _, host = rest.partition("@")
    return nick, user or None, host or None


def casefold(name: str) -> str:
    """RFC 1459 case mapping: C{[]\\~} are the upper case of C{{}|^}."""
    return name.lower().translate(str.maketrans("[]\\~", "{}|^"))


def is_channel(target: str, prefixes: str = CHANNEL_PREFIXES) -> bool:
    return bool(target) and target[0] in prefixes


def strip_formatting(text: str) -> str:
    """Colours, bold, italics and the like removed (what the agent reads)."""
    return _FORMATTING.sub("", text)


def mentions(text: str, nick: str) -> bool:
    """The nick as a word of its own (C{claw: hi}, C{hey claw}), not inside another nick or word."""
    if not nick:
        return False
    pattern = rf"(?<![{_NICK_CHARS}]){re.escape(nick)}(?![{_NICK_CHARS}])"
    return re.search(pattern, strip_formatting(text), re.IGNORECASE) is not None


def line_budget(nick: str, user: str, target: str, command: str = "PRIVMSG") -> int:
    """Bytes of text one C{command target :text} line may carry once the server adds our prefix."""
    prefix = f":{nick}!{user}@".encode() + b"x" * HOST_ROOM + b" "
    head = f"{command} {target} :".encode()
    return MAX_LINE - 2 - len(prefix) - len(head)


def clean(text: str) -> str:
    """Text safe on one protocol line: tabs as spaces, no control characters (no CR/LF, no CTCP)."""
    return _CONTROL.sub("", text.replace("\t", "    "))


def split_message(text: str, budget: int) -> list[str]:
    """The protocol lines for C{text}: one per text line, each at most C{budget} UTF-8 bytes."""
    budget = max(budget, 16)
    out: list[str] = []
    for raw in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line = clean(raw).rstrip()
        while line:
            data = line.encode()
            if len(data) <= budget:
                out.append(line)
                break
            cut = budget
            while cut > 0 and (data[cut] & 0xC0) == 0x80:  # never inside a character
                cut -= 1
            head = data[:cut].decode()
            space = head.rfind(" ")
            if space >= len(head) // 2:
                head = head[:space]
            out.append(head.rstrip())
            line = line[len(head) :].lstrip()
    return [line for line in out if line]
