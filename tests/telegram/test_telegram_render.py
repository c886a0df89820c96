"""Markdown -> Telegram HTML, and splitting long answers within 4096 characters."""

from __future__ import annotations

import re

import pytest

from opencomputer.connectors.telegram.chunks import render_chunks
from opencomputer.connectors.telegram.render import html_to_plain, markdown_to_html
from tests.telegram.fake_bot_api import utf16_len, validate_html


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("**bold** and *italic*", "<b>bold</b> and <i>italic</i>"),
        ("use `a<b && c>d`", "use <code>a&lt;b &amp;&amp; c&gt;d</code>"),
        ("1 < 2 & 3 > 2", "1 &lt; 2 &amp; 3 &gt; 2"),
        ("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"),
        ("~~gone~~", "<s>gone</s>"),
        ("# Title", "<b>Title</b>"),
        (
            '[docs](https://example.org/?a=1&b="2")',
            '<a href="https://example.org/?a=1&amp;b=%222%22">docs</a>',
        ),
        ("[local](../file)", "local"),  # Telegram rejects links it cannot open
        (
            "```python\nif a < b:\n    pass\n```",
            '<pre><code class="language-python">if a &lt; b:\n    pass</code></pre>',
        ),
        ("```\nplain & simple\n```", "<pre>plain &amp; simple</pre>"),
        ("- one\n- two\n  1. sub", "• one\n• two\n  1. sub"),
        ("> quoted\n> text", "<blockquote>quoted\ntext</blockquote>"),
        ("para one\n\npara two", "para one\n\npara two"),
    ],
)
def test_markdown_to_html(markdown: str, expected: str) -> None:
    rendered = markdown_to_html(markdown)
    assert rendered == expected
    validate_html(rendered)  # what Telegram would accept


def test_table_becomes_preformatted() -> None:
    rendered = markdown_to_html("| a | bb |\n|---|---|\n| 1 | <2> |")
    assert rendered == "<pre>a | bb\n--+----\n1 | &lt;2&gt;</pre>"


def test_plain_fallback_unescapes() -> None:
    assert html_to_plain("<b>1 &lt; 2</b> &amp; <i>x</i>") == "1 < 2 & x"


def _long_answer() -> tuple[str, str]:
    words = " ".join(f"word{i} <&>" for i in range(400))
    code = "\n".join(f"    line_{i} = {i} < {i + 1}  # keep" for i in range(150))
    text = f"# Report\n\n{words}\n\nHere is the code:\n\n```python\n{code}\n```\n\n" + "\n\n".join(
        f"Paragraph {i}: " + "lorem ipsum " * 30 for i in range(12)
    )
    return text, code


def test_ten_thousand_characters_split_within_limit_with_code_intact() -> None:
    text, code = _long_answer()
    assert len(text) >= 10_000
    chunks = render_chunks(text)
    assert len(chunks) >= 3
    visible = []
    for chunk in chunks:
        assert utf16_len(chunk) <= 4096  # the HTML itself, so certainly the visible text
        visible.append(validate_html(chunk))  # balanced tags, escaped text
    # Nothing lost or duplicated: every word appears once, in order.
    joined = "\n".join(visible)
    assert [int(n) for n in re.findall(r"word(\d+)", joined)] == list(range(400))
    assert joined.count("<&>") == 400
    assert all(joined.count(f"Paragraph {i}:") == 1 for i in range(12))
    # The code block: each piece is a complete python <pre>, and together they are the code.
    code_parts = [
        re.search(r'<pre><code class="language-python">(.*?)</code></pre>', c, re.DOTALL)
        for c in chunks
    ]
    pieces = [validate_html(m.group(1)) for m in code_parts if m]
    assert len(pieces) >= 2  # the block was cut, and reopened with its language
    assert "\n".join(pieces) == code


def test_short_answer_is_one_chunk() -> None:
    assert render_chunks("hi **there**") == ["hi <b>there</b>"]
    assert render_chunks("") == []


def test_escaping_growth_counts_against_the_limit() -> None:
    text = "&" * 5000  # 25,000 characters once escaped
    chunks = render_chunks(text)
    assert all(utf16_len(c) <= 4096 for c in chunks)
    assert "".join(validate_html(c) for c in chunks) == text


def test_emoji_count_twice() -> None:
    text = "😀 " * 3000  # 6000 characters, 9000 UTF-16 units
    chunks = render_chunks(text)
    assert len(chunks) == 3
    assert all(utf16_len(validate_html(c)) <= 4096 for c in chunks)


@pytest.mark.parametrize(
    "bad", ["<b>open", "</i>", "<div>x</div>", "a < b", "a & b", "<b><i>x</b></i>"]
)
def test_fake_rejects_what_telegram_rejects(bad: str) -> None:
    with pytest.raises(ValueError, match="can't parse entities"):
        validate_html(bad)
