from __future__ import annotations

from opencomputer.connectors.slack.mrkdwn import HARD_LIMIT, render_chunks, to_mrkdwn


def test_inline_formatting_becomes_mrkdwn() -> None:
    md = "Some **bold**, *italic*, _also_, ~~gone~~ and `a<b && c>d` here."
    assert to_mrkdwn(md) == (
        "Some *bold*, _italic_, _also_, ~gone~ and `a&lt;b &amp;&amp; c&gt;d` here."
    )


def test_links_and_autolinks() -> None:
    md = "See [the docs](https://x.org/a?b=1&c=2), <https://auto.link> and [https://same.io](https://same.io)."
    assert to_mrkdwn(md) == (
        "See <https://x.org/a?b=1&amp;c=2|the docs>, <https://auto.link> and <https://same.io>."
    )


def test_text_is_escaped_but_not_turned_into_links() -> None:
    out = to_mrkdwn("if a < b & c > d then <@U123>")
    assert out == "if a &lt; b &amp; c &gt; d then &lt;@U123&gt;"


def test_code_block_kept_and_escaped_without_language() -> None:
    md = "Run:\n\n```python\nif a < b:\n    print('**not bold**')\n```\n"
    assert to_mrkdwn(md) == "Run:\n\n```\nif a &lt; b:\n    print('**not bold**')\n```"


def test_headings_lists_quotes_rules() -> None:
    md = "# Title *x*\n\n- one\n- **two**\n  - nested\n\n3. c\n4. d\n\n> said\n> this\n\n---\n\nend"
    assert to_mrkdwn(md) == (
        "*Title x*\n\n• one\n• *two*\n  • nested\n\n3. c\n4. d\n\n"
        "> said\n> this\n\n──────────\n\nend"
    )


def test_table_becomes_aligned_code_block() -> None:
    md = "| name | n |\n|---|---|\n| a<b | 10 |\n| cc | 2 |\n"
    assert to_mrkdwn(md) == "```\nname | n\n-----+---\na&lt;b  | 10\ncc   | 2\n```"


def test_short_text_is_one_chunk_and_empty_is_none() -> None:
    assert render_chunks("hello **you**") == ["hello *you*"]
    assert render_chunks("") == []
    assert render_chunks("  \n ") == []


def test_ten_thousand_characters_split_on_paragraphs_within_limit() -> None:
    paragraph = ("The quick brown fox jumps over the lazy dog & friends. " * 9).strip()
    md = "\n\n".join(f"**{i}** {paragraph}" for i in range(20))
    assert len(md) >= 10_000
    chunks = render_chunks(md)
    assert len(chunks) >= 3
    assert all(len(c) <= HARD_LIMIT for c in chunks)
    assert all(c.startswith("*") and c.endswith("friends.") for c in chunks)  # whole paragraphs
    joined = "\n\n".join(chunks)
    assert joined == to_mrkdwn(md)


def test_long_code_block_split_stays_code_in_every_chunk() -> None:
    code = "\n".join(f"x{i} = {i} < {i + 1}" for i in range(600))
    chunks = render_chunks(f"Here:\n\n```py\n{code}\n```\n\nDone.")
    assert len(chunks) >= 3
    assert all(len(c) <= HARD_LIMIT for c in chunks)
    for chunk in chunks[1:-1]:
        assert chunk.startswith("```\n") and chunk.endswith("\n```")
    lines = [line for c in chunks for line in c.split("\n") if line.startswith("x")]
    assert lines == [f"x{i} = {i} &lt; {i + 1}" for i in range(600)]


def test_escaping_growth_is_accounted_for() -> None:
    md = "<>&" * 3000  # every character grows to 4-5 when escaped
    chunks = render_chunks(md)
    assert all(len(c) <= HARD_LIMIT for c in chunks)
    assert "".join(chunks).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&") == md


def test_unbreakable_text_is_cut_hard() -> None:
    chunks = render_chunks("a" * 9000)
    assert len(chunks) == 3
    assert all(len(c) <= HARD_LIMIT for c in chunks)
    assert "".join(chunks) == "a" * 9000
