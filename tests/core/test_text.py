from __future__ import annotations

from opencomputer.bot.text import split_markdown


def test_short_text_is_one_chunk() -> None:
    assert split_markdown("hello", 100) == ["hello"]
    assert split_markdown("", 100) == []


def test_splits_on_paragraphs_within_limit() -> None:
    text = "\n\n".join(f"Paragraph {i} " + "word " * 60 for i in range(40))
    chunks = split_markdown(text, 1000)
    assert all(len(c) <= 1000 for c in chunks)
    assert all(c.startswith("Paragraph") for c in chunks)  # cut at paragraph starts
    assert " ".join(" ".join(chunks).split()) == " ".join(text.split())


def test_code_block_is_closed_and_reopened_with_language() -> None:
    code = "```python\n" + "\n".join(f"print({i})" for i in range(500)) + "\n```"
    chunks = split_markdown("Intro\n\n" + code + "\n\nOutro", 1200)
    assert len(chunks) > 3
    for chunk in chunks:
        assert len(chunk) <= 1200
        assert chunk.count("```") % 2 == 0, chunk[:40]
    assert all(c.startswith("```python") for c in chunks[1:-1])
    printed = [line for c in chunks for line in c.splitlines() if line.startswith("print(")]
    assert printed == [f"print({i})" for i in range(500)]


def test_measure_function_controls_the_split() -> None:
    text = "<&>" * 500
    chunks = split_markdown(text, 400, measure=lambda s: len(s.replace("<", "&lt;")))
    assert all(len(c.replace("<", "&lt;")) <= 400 for c in chunks)
    assert "".join(chunks) == text


def test_one_huge_word_is_hard_cut() -> None:
    chunks = split_markdown("x" * 5000, 1000)
    assert "".join(chunks) == "x" * 5000
    assert all(len(c) <= 1000 for c in chunks)
