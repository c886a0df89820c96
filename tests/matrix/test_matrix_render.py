"""Outbound formatting without a homeserver: HTML, sizes, relations."""

from __future__ import annotations

from opencomputer.connectors.matrix.render import (
    MAX_BYTES,
    MAX_CHARS,
    edit_content,
    message_content,
    render_chunks,
    to_html,
)


def test_raw_html_from_the_model_is_escaped() -> None:
    assert to_html("<script>alert(1)</script> **hi**") == (
        "<p>&lt;script&gt;alert(1)&lt;/script&gt; <strong>hi</strong></p>"
    )


def test_tables_strikethrough_and_line_breaks() -> None:
    html = to_html("| a | b |\n|---|---|\n| 1 | 2 |\n\n~~old~~ new\nnext line")
    assert "<table>" in html and "<td>1</td>" in html
    assert "<s>old</s> new<br />\nnext line" in html


def test_short_text_is_one_chunk_and_blank_is_none() -> None:
    assert render_chunks("  hi  ") == ["hi"]
    assert render_chunks(" \n ") == []


def test_chunks_bounded_by_bytes_not_only_characters() -> None:
    emoji = " ".join(["👍🏽🎉"] * 6000)  # 18,000 characters, ~66,000 UTF-8 bytes
    chunks = render_chunks(emoji)
    assert len(chunks) >= 3
    for chunk in chunks:
        assert len(chunk) <= MAX_CHARS
        assert len(chunk.encode()) + len(to_html(chunk).encode()) <= MAX_BYTES
    assert " ".join(chunks).split() == emoji.split()


def test_thread_reply_and_edit_contents() -> None:
    threaded = message_content("hi", thread_id="$root", reply_to="$q")
    assert threaded["m.relates_to"] == {
        "rel_type": "m.thread",
        "event_id": "$root",
        "is_falling_back": True,
        "m.in_reply_to": {"event_id": "$q"},
    }
    assert message_content("hi", thread_id="$root")["m.relates_to"]["m.in_reply_to"] == {
        "event_id": "$root"
    }
    assert "m.relates_to" not in message_content("hi")
    edit = edit_content("$e", "*x*")
    assert edit["formatted_body"] == "* <p><em>x</em></p>"
    assert edit["m.new_content"]["formatted_body"] == "<p><em>x</em></p>"
