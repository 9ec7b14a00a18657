# -*- test-case-name: tests.test_whatsapp_qr -*-
"""
A small QR code encoder (ISO/IEC 18004, byte mode, versions 1-40) for the
WhatsApp link codes, and the two ways we show one: Unicode half blocks for
a terminal (C{openclaw channels login whatsapp}) and a PNG data URL for the
Control UI (C{web.login.start}). Pure functions, no dependencies: the
gateway renders a helper's QR without any extra installed.

The layout follows the standard: finder, timing and alignment patterns,
format and version information, Reed-Solomon codewords over GF(256)
(polynomial 0x11D) interleaved across blocks, the zigzag placement, and the
mask with the lowest penalty.
"""

from __future__ import annotations

import base64
import struct
import zlib

# Error correction level: format bits and the table row.
LEVELS = {"L": (1, 0), "M": (0, 1), "Q": (3, 2), "H": (2, 3)}

# Per level (L, M, Q, H), per version 1-40: EC codewords in each block, and the number of blocks.
_EC_PER_BLOCK = (
    (7, 10, 15, 20, 26, 18, 20, 24, 30, 18, 20, 24, 26, 30, 22, 24, 28, 30, 28, 28, 28, 28, 30, 30, 26, 28, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30),
    (10, 16, 26, 18, 24, 16, 18, 22, 22, 26, 30, 22, 22, 24, 24, 28, 28, 26, 26, 26, 26, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28),
    (13, 22, 18, 26, 18, 24, 18, 22, 20, 24, 28, 26, 24, 20, 30, 24, 28, 28, 26, 30, 28, 30, 30, 30, 30, 28, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30),
    (17, 28, 22, 16, 22, 28, 26, 26, 24, 28, 24, 28, 22, 24, 24, 30, 28, 28, 26, 28, 30, 24, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30),
)
_BLOCKS = (
    (1, 1, 1, 1, 1, 2, 2, 2, 2, 4, 4, 4, 4, 4, 6, 6, 6, 6, 7, 8, 8, 9, 9, 10, 12, 12, 12, 13, 14, 15, 16, 17, 18, 19, 19, 20, 21, 22, 24, 25),
    (1, 1, 1, 2, 2, 4, 4, 4, 5, 5, 5, 8, 9, 9, 10, 10, 11, 13, 14, 16, 17, 17, 18, 20, 21, 23, 25, 26, 28, 29, 31, 33, 35, 37, 38, 40, 43, 45, 47, 49),
    (1, 1, 2, 2, 4, 4, 6, 6, 8, 8, 8, 10, 12, 16, 12, 17, 16, 18, 21, 20, 23, 23, 25, 27, 29, 34, 34, 35, 38, 40, 43, 45, 48, 51, 53, 56, 59, 62, 65, 68),
    (1, 1, 2, 4, 4, 4, 5, 6, 8, 8, 11, 11, 16, 16, 18, 16, 19, 21, 25, 25, 25, 34, 30, 32, 35, 37, 40, 42, 45, 48, 51, 54, 57, 60, 63, 66, 70, 74, 77, 81),
)


class DataTooLong(ValueError):
    """The payload does not fit a version-40 symbol at this level."""


# -- Reed-Solomon over GF(256)


def _mul(x: int, y: int) -> int:
    z = 0
    for i in reversed(range(8)):
        z = (z << 1) ^ ((z >> 7) * 0x11D)
        z ^= ((y >> i) & 1) * x
    return z


def _divisor(degree: int) -> list[int]:
    result = [0] * (degree - 1) + [1]
    root = 1
    for _ in range(degree):
        for j in range(degree):
            result[j] = _mul(result[j], root)
            if j + 1 < degree:
                result[j] ^= result[j + 1]
        root = _mul(root, 0x02)
    return result


def _remainder(data: list[int], divisor: list[int]) -> list[int]:
    result = [0] * len(divisor)
    for b in data:
        factor = b ^ result.pop(0)
        result.append(0)
        for i, coef in enumerate(divisor):
            result[i] ^= _mul(coef, factor)
    return result


# -- capacities


def _raw_modules(version: int) -> int:
    """Modules left for data and EC codewords once the function patterns are drawn."""
    result = (16 * version + 128) * version + 64
    if version >= 2:
        count = version // 7 + 2
        result -= (25 * count - 10) * count - 55
        if version >= 7:
            result -= 36
    return result


def data_codewords(version: int, level: str = "M") -> int:
    row = LEVELS[level][1]
    return _raw_modules(version) // 8 - _EC_PER_BLOCK[row][version - 1] * _BLOCKS[row][version - 1]


def _alignment(version: int) -> list[int]:
    if version == 1:
        return []
    count = version // 7 + 2
    size = version * 4 + 17
    step = (version * 8 + count * 3 + 5) // (count * 4 - 4) * 2
    return [6] + sorted(size - 7 - i * step for i in range(count - 1))


def fit(data: bytes, level: str = "M") -> int:
    """The smallest version that holds C{data} in byte mode."""
    for version in range(1, 41):
        count_bits = 8 if version <= 9 else 16
        if len(data) < (1 << count_bits) and 4 + count_bits + 8 * len(data) <= data_codewords(version, level) * 8:
            return version
    raise DataTooLong(f"{len(data)} bytes do not fit a QR code at level {level}")


# -- the symbol


class _Symbol:
    def __init__(self, version: int) -> None:
        self.version = version
        self.size = version * 4 + 17
        self.dark = [[False] * self.size for _ in range(self.size)]
        self.function = [[False] * self.size for _ in range(self.size)]

    def put(self, x: int, y: int, dark: bool) -> None:
        self.dark[y][x] = dark
        self.function[y][x] = True

    def draw_patterns(self) -> None:
        size = self.size
        for i in range(size):
            self.put(6, i, i % 2 == 0)
            self.put(i, 6, i % 2 == 0)
        for cx, cy in ((3, 3), (size - 4, 3), (3, size - 4)):
            for dy in range(-4, 5):
                for dx in range(-4, 5):
                    x, y = cx + dx, cy + dy
                    if 0 <= x < size and 0 <= y < size:
                        self.put(x, y, max(abs(dx), abs(dy)) not in (2, 4))
        positions = _alignment(self.version)
        last = len(positions) - 1
        for i, cx in enumerate(positions):
            for j, cy in enumerate(positions):
                if (i, j) in ((0, 0), (0, last), (last, 0)):
                    continue
                for dy in range(-2, 3):
                    for dx in range(-2, 3):
                        self.put(cx + dx, cy + dy, max(abs(dx), abs(dy)) != 1)
        self.draw_format(0, 0)  # reserves the areas; drawn for real after masking
        if self.version >= 7:
            rem = self.version
            for _ in range(12):
                rem = (rem << 1) ^ ((rem >> 11) * 0x1F25)
            bits = self.version << 12 | rem
            for i in range(18):
                bit = (bits >> i) & 1 == 1
                a, b = size - 11 + i % 3, i // 3
                self.put(a, b, bit)
                self.put(b, a, bit)

    def draw_format(self, level_bits: int, mask: int) -> None:
        data = level_bits << 3 | mask
        rem = data
        for _ in range(10):
            rem = (rem << 1) ^ ((rem >> 9) * 0x537)
        bits = (data << 10 | rem) ^ 0x5412
        size = self.size

        def bit(i: int) -> bool:
            return (bits >> i) & 1 == 1

        for i in range(6):
            self.put(8, i, bit(i))
        self.put(8, 7, bit(6))
        self.put(8, 8, bit(7))
        self.put(7, 8, bit(8))
        for i in range(9, 15):
            self.put(14 - i, 8, bit(i))
        for i in range(8):
            self.put(size - 1 - i, 8, bit(i))
        for i in range(8, 15):
            self.put(8, size - 15 + i, bit(i))
        self.put(8, size - 8, True)

    def draw_codewords(self, codewords: list[int]) -> None:
        size = self.size
        i = 0
        total = len(codewords) * 8
        right = size - 1
        while right >= 1:
            if right == 6:
                right = 5
            upward = (right + 1) & 2 == 0
            for vert in range(size):
                y = size - 1 - vert if upward else vert
                for x in (right, right - 1):
                    if not self.function[y][x] and i < total:
                        self.dark[y][x] = (codewords[i >> 3] >> (7 - (i & 7))) & 1 == 1
                        i += 1
            right -= 2

    def apply_mask(self, mask: int) -> None:
        test = _MASKS[mask]
        for y in range(self.size):
            row, fixed = self.dark[y], self.function[y]
            for x in range(self.size):
                if not fixed[x] and test(x, y):
                    row[x] = not row[x]

    def penalty(self) -> int:
        size = self.size
        score = 0
        lines = [list(r) for r in self.dark] + [[self.dark[y][x] for y in range(size)] for x in range(size)]
        finder_a = [True, False, True, True, True, False, True, False, False, False, False]
        finder_b = finder_a[::-1]
        for line in lines:
            run = 1
            for i in range(1, size):
                if line[i] == line[i - 1]:
                    run += 1
                else:
                    if run >= 5:
                        score += 3 + run - 5
                    run = 1
            if run >= 5:
                score += 3 + run - 5
            for i in range(size - 10):
                window = line[i : i + 11]
                if window == finder_a or window == finder_b:
                    score += 40
        for y in range(size - 1):
            for x in range(size - 1):
                c = self.dark[y][x]
                if c == self.dark[y][x + 1] == self.dark[y + 1][x] == self.dark[y + 1][x + 1]:
                    score += 3
        dark = sum(sum(r) for r in self.dark)
        total = size * size
        score += (abs(dark * 20 - total * 10) + total - 1) // total * 10 - 10
        return score


_MASKS = (
    lambda x, y: (x + y) % 2 == 0,
    lambda x, y: y % 2 == 0,
    lambda x, y: x % 3 == 0,
    lambda x, y: (x + y) % 3 == 0,
    lambda x, y: (x // 3 + y // 2) % 2 == 0,
    lambda x, y: x * y % 2 + x * y % 3 == 0,
    lambda x, y: (x * y % 2 + x * y % 3) % 2 == 0,
    lambda x, y: ((x + y) % 2 + x * y % 3) % 2 == 0,
)


def _codewords(data: bytes, version: int, level: str) -> list[int]:
    row = LEVELS[level][1]
    capacity = data_codewords(version, level)
    count_bits = 8 if version <= 9 else 16
    bits: list[int] = []

    def append(value: int, length: int) -> None:
        bits.extend((value >> i) & 1 for i in reversed(range(length)))

    append(0b0100, 4)
    append(len(data), count_bits)
    for b in data:
        append(b, 8)
    append(0, min(4, capacity * 8 - len(bits)))
    append(0, -len(bits) % 8)
    words = [int("".join(map(str, bits[i : i + 8])), 2) for i in range(0, len(bits), 8)]
    pad = 0xEC
    while len(words) < capacity:
        words.append(pad)
        pad ^= 0xEC ^ 0x11
    blocks_count = _BLOCKS[row][version - 1]
    ec_len = _EC_PER_BLOCK[row][version - 1]
    raw = _raw_modules(version) // 8
    short_count = blocks_count - raw % blocks_count
    short_len = raw // blocks_count
    divisor = _divisor(ec_len)
    blocks: list[list[int]] = []
    k = 0
    for i in range(blocks_count):
        size = short_len - ec_len + (0 if i < short_count else 1)
        chunk = words[k : k + size]
        k += size
        ec = _remainder(chunk, divisor)
        if i < short_count:
            chunk.append(0)
        blocks.append(chunk + ec)
    out = []
    for i in range(len(blocks[0])):
        for j, block in enumerate(blocks):
            if i != short_len - ec_len or j >= short_count:
                out.append(block[i])
    return out


def encode(data: bytes | str, level: str = "M", version: int | None = None, mask: int | None = None) -> list[list[bool]]:
    """The module matrix (True = dark) for C{data} in byte mode."""
    payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    if level not in LEVELS:
        raise ValueError(f"unknown error correction level {level!r}")
    smallest = fit(payload, level)
    version = smallest if version is None else version
    if not smallest <= version <= 40:
        raise DataTooLong(f"{len(payload)} bytes need at least version {smallest}")
    codewords = _codewords(payload, version, level)
    level_bits = LEVELS[level][0]
    best: _Symbol | None = None
    best_score = 0
    for m in range(8) if mask is None else (mask,):
        symbol = _Symbol(version)
        symbol.draw_patterns()
        symbol.draw_codewords(codewords)
        symbol.apply_mask(m)
        symbol.draw_format(level_bits, m)
        if mask is not None:
            return symbol.dark
        score = symbol.penalty()
        if best is None or score < best_score:
            best, best_score = symbol, score
    assert best is not None
    return best.dark


# -- showing it


def _bordered(matrix: list[list[bool]], quiet: int) -> list[list[bool]]:
    size = len(matrix) + 2 * quiet
    blank = [False] * size
    return [blank] * quiet + [[False] * quiet + row + [False] * quiet for row in matrix] + [blank] * quiet


def terminal(matrix: list[list[bool]], quiet: int = 2) -> str:
    """
    Two rows per line in Unicode half blocks. Light modules are drawn (the
    terminal's text colour), dark ones left blank, so the code reads right on
    the usual dark terminal background.
    """
    rows = _bordered(matrix, quiet)
    if len(rows) % 2:
        rows.append([False] * len(rows[0]))
    glyphs = {(False, False): "█", (False, True): "▀", (True, False): "▄", (True, True): " "}
    return "\n".join("".join(glyphs[(top, bottom)] for top, bottom in zip(rows[i], rows[i + 1])) for i in range(0, len(rows), 2))


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def png(matrix: list[list[bool]], scale: int = 6, quiet: int = 4) -> bytes:
    """A 1-bit greyscale PNG of the code (black on white)."""
    rows = _bordered(matrix, quiet)
    width = len(rows[0]) * scale
    raw = bytearray()
    for row in rows:
        bits = []
        for dark in row:
            bits.extend([0 if dark else 1] * scale)
        bits.extend([1] * (-len(bits) % 8))
        line = bytes(int("".join(map(str, bits[i : i + 8])), 2) for i in range(0, len(bits), 8))
        raw += (b"\x00" + line) * scale
    header = struct.pack(">IIBBBBB", width, width, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(bytes(raw), 9)) + _chunk(b"IEND", b"")


def data_url(payload: str) -> str:
    """C{data:image/png;base64,...} for the Control UI (v4 caps it at 16384 characters)."""
    return "data:image/png;base64," + base64.b64encode(png(encode(payload), scale=5)).decode("ascii")
