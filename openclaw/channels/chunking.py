# -*- test-case-name: tests.test_channels_text -*-
"""
Splitting a reply into platform-sized messages.

Cuts prefer a paragraph break, then a line break, then a space, and only
then the middle of a word, always at or under the limit. A cut never falls
inside a fenced code block if another cut is possible; when a code block is
itself longer than the limit, the fence is closed at the end of one message
and reopened (same info string) at the start of the next, so each message
renders on its own.
"""

from __future__ import annotations

import re

import attrs

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
MIN_FILL = 0.5  # a paragraph or line cut keeps at least half the limit
MIN_LIMIT = 32


@attrs.frozen
class _Fence:
    opener: str  # the opening line, e.g. "```python"
    marker: str  # its run of backticks or tildes


def _fences(text: str) -> list[_Fence | None]:
    """
    For each offset of C{text} (and one past the end), the code block it is
    in, or None. A cut at offset C{i} ends a chunk before C{text[i]}.
    """
    state: list[_Fence | None] = []
    current: _Fence | None = None
    for line in text.split("\n"):
        m = _FENCE.match(line)
        if current is None:
            if m is not None:
                current = _Fence(line.strip(), m.group(1))
            state += [current] * (len(line) + 1)
            continue
        state += [current] * len(line)
        closes = m is not None and m.group(1)[0] == current.marker[0] and len(m.group(1)) >= len(current.marker) and not m.group(2).strip()
        if closes:
            current = None
        state.append(current)  # the newline after a closing fence is outside
    return state


def _best_cut(text: str, limit: int, fences: list[_Fence | None], outside: bool) -> int | None:
    """The best cut in C{text[:limit]}: paragraph, line, then space; C{outside} a code block."""
    floor = max(1, int(limit * MIN_FILL))
    order = [("\n\n", floor), ("\n", floor), (" ", max(1, limit // 4))]
    if outside:
        order += [("\n\n", 1), ("\n", 1)]  # a short chunk beats a split code block
    for sep, low in order:
        at = text.rfind(sep, 0, limit + 1)
        while at >= low:
            if not outside or fences[at] is None:
                return at
            at = text.rfind(sep, 0, at)
    return None


def chunk_text(text: str, limit: int) -> list[str]:
    """C{text} as messages of at most C{limit} characters, none empty."""
    if limit < MIN_LIMIT:
        raise ValueError(f"chunk limit must be at least {MIN_LIMIT} characters")
    chunks: list[str] = []
    text = text.strip()
    while len(text) > limit:
        fences = _fences(text)
        at = _best_cut(text, limit, fences, outside=True)
        block = None
        if at is None:
            # Only cuts inside a code block: leave room to close it here.
            first = fences[_best_cut(text, limit, fences, outside=False) or limit]
            room = limit - (len(first.marker) + 1 if first is not None else 0)
            at = _best_cut(text, room, fences, outside=False) or room
            block = fences[at]
        if block is not None and len(block.opener) + len(block.marker) + 2 > limit // 4:
            block = None  # a fence line that long cannot be repeated in every message
        piece = text[:at].rstrip()
        rest = text[at:].lstrip(" ").lstrip("\n")  # the next line keeps its indentation
        if block is not None:
            piece += "\n" + block.marker
            rest = block.opener + "\n" + rest
        if piece.strip():
            chunks.append(piece)
        text = rest
    if text.strip():
        chunks.append(text)
    return chunks
