"""Chunking replies to a platform's limit, and Markdown as Telegram HTML."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import TestCase

from openclaw.channels.chunking import _fences, chunk_text
from openclaw.channels.telegram.format import to_html, visible_length
from tests.fakes_telegram import check_html


def words(text: str) -> list[str]:
    return text.replace("```", " ").split()


class ChunkTests(TestCase):
    def test_short_text_is_one_chunk(self):
        """Text within the limit comes back whole (trimmed); empty text gives no chunk."""
        self.assertEqual(chunk_text("  hello  ", 100), ["hello"])
        self.assertEqual(chunk_text(" \n ", 100), [])

    def test_paragraph_before_line_before_word(self):
        """A paragraph break wins over a later line break, a line break over a later space."""
        para = "a" * 60 + "\n\n" + "b" * 30 + "\n" + "c" * 30
        self.assertEqual(chunk_text(para, 100)[0], "a" * 60)
        line = "a" * 60 + "\n" + "b" * 30 + " " + "c" * 30
        self.assertEqual(chunk_text(line, 100)[0], "a" * 60)
        spaces = ("word " * 40).strip()
        first = chunk_text(spaces, 100)[0]
        self.assertTrue(first.endswith("word") and len(first) <= 100)

    def test_long_word_is_cut_at_the_limit(self):
        """A word longer than the limit is cut at exactly the limit."""
        self.assertEqual(chunk_text("x" * 250, 100), ["x" * 100, "x" * 100, "x" * 50])

    def test_code_block_kept_whole_when_it_fits(self):
        """A cut falls before a code block that fits in the next chunk, not inside it."""
        text = "intro " * 5 + "\n\n```python\n" + "\n".join(f"print({i})" for i in range(8)) + "\n```\nafter"
        chunks = chunk_text(text, 110)
        self.assertEqual(chunks[0], ("intro " * 5).strip())
        self.assertTrue(chunks[1].startswith("```python"))
        self.assertIn("print(7)\n```", chunks[1])

    def test_long_code_block_is_closed_and_reopened(self):
        """A code block longer than the limit is closed in one chunk and reopened with its info string in the next."""
        code = "```js\n" + "\n".join(f"let v{i} = {i};" for i in range(40)) + "\n```"
        chunks = chunk_text(code, 120)
        self.assertGreater(len(chunks), 2)
        for chunk in chunks:
            self.assertLessEqual(len(chunk), 120)
            self.assertTrue(chunk.startswith("```js\n"), chunk)
            self.assertTrue(chunk.endswith("```"), chunk)
            self.assertIsNone(_fences(chunk + "\n")[-1], chunk)

    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.one_of(st.text(alphabet="ab \n", min_size=1, max_size=40), st.sampled_from(["```py\n", "\n```\n", "\n\n", "~~~\n"])), max_size=40), st.integers(32, 120))
    def test_chunks_fit_and_keep_every_word(self, pieces, limit):
        """Every chunk is within the limit and not empty; no word is lost or split, except words longer than the limit."""
        text = "".join(pieces)
        chunks = chunk_text(text, limit)
        self.assertTrue(all(0 < len(c) <= limit for c in chunks), chunks)
        if all(len(w) <= limit // 2 for w in text.split()):
            self.assertEqual([w for w in words(" ".join(chunks)) if w not in ("py", "~~~")], [w for w in words(text) if w not in ("py", "~~~")])

    def test_rejects_tiny_limits(self):
        """A limit under 32 characters is a programming error."""
        self.assertRaises(ValueError, chunk_text, "text", 8)


class TelegramFormatTests(TestCase):
    def test_markdown_to_html(self):
        """Bold, italics, strike, inline and fenced code, links and headings become Telegram's tags."""
        html = to_html("# Title\n**bold** *it* _it2_ ~~no~~ `a<b` [x](https://e.com/?a=1&b=2)\n```py\nif a < b: pass\n```")
        self.assertEqual(
            html,
            '<b>Title</b>\n<b>bold</b> <i>it</i> <i>it2</i> <s>no</s> <code>a&lt;b</code> <a href="https://e.com/?a=1&amp;b=2">x</a>\n'
            '<pre><code class="language-py">if a &lt; b: pass</code></pre>',
        )

    def test_raw_html_is_escaped(self):
        """HTML in the model's text is shown, not parsed; snake_case and 2*3*4 stay as they are."""
        html = to_html("<script>alert(1)</script> & snake_case_name 2*3*4")
        self.assertEqual(html, "&lt;script&gt;alert(1)&lt;/script&gt; &amp; snake_case_name 2*3*4")
        self.assertEqual(visible_length(html), len("<script>alert(1)</script> & snake_case_name 2*3*4"))

    @settings(max_examples=300, deadline=None)
    @given(st.text(alphabet="ab*_~`[]()<>&# \n:/.", max_size=80))
    def test_output_is_well_formed_or_plain_fallback_applies(self, text):
        """Whatever the input, the HTML has only Telegram's tags, and its visible text never grows beyond the input."""
        html = to_html(text)
        error, visible = check_html(html)
        if error is None:
            self.assertLessEqual(len(visible), len(text.replace("\x00", "")))
