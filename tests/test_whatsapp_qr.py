"""
The QR encoder against an independent one (the `qrcode` package, as an
oracle), and the two renderings (terminal half blocks, PNG) read back.
"""

from __future__ import annotations

import base64
import random
import struct
import zlib

from twisted.trial.unittest import SkipTest, TestCase

from openclaw.channels.whatsapp import qr


def _oracle():
    try:
        import qrcode
        import qrcode.util
    except ImportError:
        raise SkipTest("the qrcode package (the oracle) is not installed: pip install '.[test]'")
    return qrcode


def read_png(data: bytes) -> tuple[int, int, list[list[int]]]:
    """Width, height and pixels (0 black, 1 white) of a 1-bit greyscale PNG without filters."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    idat = b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(kind + body) & 0xFFFFFFFF == crc
        if kind == b"IDAT":
            idat += body
        chunks[kind] = body
        pos += 12 + length
    width, height, depth, color = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (depth, color) == (1, 0)
    raw = zlib.decompress(idat)
    stride = 1 + (width + 7) // 8
    rows = []
    for y in range(height):
        line = raw[y * stride : (y + 1) * stride]
        assert line[0] == 0
        rows.append([(line[1 + x // 8] >> (7 - x % 8)) & 1 for x in range(width)])
    return width, height, rows


class EncoderTests(TestCase):
    def test_matches_an_independent_encoder(self):
        """Every version 1-40 at level M (the one used), and versions across the range at L, Q and H, with a forced mask, give the same modules as the qrcode package."""
        qrcode = _oracle()
        levels = {"L": qrcode.constants.ERROR_CORRECT_L, "M": qrcode.constants.ERROR_CORRECT_M, "Q": qrcode.constants.ERROR_CORRECT_Q, "H": qrcode.constants.ERROR_CORRECT_H}
        rng = random.Random(7)
        for level, constant in levels.items():
            for version in range(1, 41) if level == "M" else (1, 2, 6, 7, 10, 14, 21, 27, 32, 40):
                data = bytes(rng.randrange(256) for _ in range(qr.data_codewords(version, level) - 3))
                oracle = qrcode.QRCode(version=version, error_correction=constant, border=0, mask_pattern=version % 8)
                oracle.add_data(qrcode.util.QRData(data, mode=qrcode.util.MODE_8BIT_BYTE))
                oracle.make(fit=False)
                self.assertEqual(qr.encode(data, level, version, mask=version % 8), oracle.get_matrix(), f"version {version} level {level}")

    def test_picks_the_smallest_version_and_a_valid_mask(self):
        """A WhatsApp-sized link code (about 240 bytes) fits version 11-M; the chosen mask is one the oracle also draws."""
        qrcode = _oracle()
        code = "2@" + "A1b2C3d4" * 11 + "," + "K" * 43 + "=," + "I" * 43 + "=," + "S" * 43 + "="
        self.assertEqual(qr.fit(code.encode()), 11)
        matrix = qr.encode(code)
        self.assertEqual(len(matrix), 11 * 4 + 17)
        drawn = []
        for mask in range(8):
            oracle = qrcode.QRCode(version=11, error_correction=qrcode.constants.ERROR_CORRECT_M, border=0, mask_pattern=mask)
            oracle.add_data(qrcode.util.QRData(code.encode(), mode=qrcode.util.MODE_8BIT_BYTE))
            oracle.make(fit=False)
            drawn.append(oracle.get_matrix())
        self.assertIn(matrix, drawn)

    def test_too_long(self):
        """More than version 40 holds is refused, not truncated."""
        self.assertRaises(qr.DataTooLong, qr.encode, b"x" * 3000)
        self.assertRaises(qr.DataTooLong, qr.encode, b"x" * 100, "M", 1)


class RenderingTests(TestCase):
    def test_png_reads_back_as_the_matrix(self):
        """The data URL is a 1-bit PNG (black modules, white quiet zone of 4) within v4's 16384 characters."""
        code = "2@" + "x" * 230
        url = qr.data_url(code)
        self.assertTrue(url.startswith("data:image/png;base64,"))
        self.assertLess(len(url), 16384)
        width, height, pixels = read_png(base64.b64decode(url.split(",", 1)[1]))
        matrix = qr.encode(code)
        scale = width // (len(matrix) + 8)
        self.assertEqual(width, height)
        self.assertEqual(width, (len(matrix) + 8) * scale)
        back = [[pixels[(4 + y) * scale + scale // 2][(4 + x) * scale + scale // 2] == 0 for x in range(len(matrix))] for y in range(len(matrix))]
        self.assertEqual(back, matrix)
        self.assertTrue(all(p == 1 for p in pixels[0]))

    def test_terminal_halves(self):
        """Two module rows per text line: light drawn, dark blank, with a 2-module light border."""
        self.assertEqual(qr.terminal([[True, False], [False, True]], quiet=1).splitlines(), ["█▀██", "██▄█"])
        self.assertEqual(qr.terminal([[True, True, False], [True, False, False], [False, False, True]], quiet=1).splitlines(), ["█▀▀██", "█▄█▀█", "█████"])
