"""Outbound formatting: Markdown chunks, their HTML, and the event contents that carry them.

A Matrix text event carries the Markdown as its plain ``body`` (what clients without HTML show,
and what Element itself sends) and the rendered HTML as ``formatted_body``. An event may be at
most 65,536 bytes of JSON, and an edit carries the text twice (fallback plus
``m.new_content``), so a chunk is bounded both in characters and in encoded bytes.
"""

from __future__ import annotations

from typing import Any

from markdown_it import MarkdownIt

from opencomputer.bot.text import split_markdown

__all__ = [
    "HTML_FORMAT",
    "MAX_BYTES",
    "MAX_CHARS",
    "edit_content",
    "message_content",
    "reaction_content",
    "render_chunks",
    "to_html",
]

HTML_FORMAT = "org.matrix.custom.html"
MAX_CHARS = 16_000
"""Characters of Markdown per message: well under the event limit, readable in one screen."""
MAX_BYTES = 24_000
"""UTF-8 bytes of body plus formatted_body per chunk; an edit doubles it, still under 64 KiB."""

# Raw HTML in model output is escaped, not passed through: the model's text is untrusted.
_MD = MarkdownIt("commonmark", {"html": False, "breaks": True}).enable(["table", "strikethrough"])


def to_html(markdown: str) -> str:
    """Render Markdown to the HTML subset Matrix clients display."""
    return str(_MD.render(markdown)).strip()


def _measure(chunk: str) -> int:
    """Size in "characters" such that a chunk within MAX_CHARS also fits MAX_BYTES."""
    encoded = len(chunk.encode()) + len(to_html(chunk).encode())
    return max(len(chunk), -(-encoded * MAX_CHARS // MAX_BYTES))


def render_chunks(markdown: str, limit: int = MAX_CHARS) -> list[str]:
    """Split Markdown into chunks that each fit one event (code blocks stay closed)."""
    text = markdown.strip()
    if not text:
        return []
    if len(text) <= limit // 4 and len(text.encode()) <= MAX_BYTES // 8:
        return [text]  # the common short answer: skip rendering just to measure
    return split_markdown(text, limit, _measure)


def message_content(
    markdown: str,
    *,
    thread_id: str | None = None,
    reply_to: str | None = None,
    msgtype: str = "m.text",
) -> dict[str, Any]:
    """Build ``m.room.message`` content with plain and HTML bodies and the right relation.

    In a thread the relation is ``m.thread`` with a reply fallback (``is_falling_back``) so
    clients without thread support still show the context; outside one it is a plain reply.
    """
    content: dict[str, Any] = {
        "msgtype": msgtype,
        "body": markdown,
        "format": HTML_FORMAT,
        "formatted_body": to_html(markdown),
    }
    if thread_id:
        content["m.relates_to"] = {
            "rel_type": "m.thread",
            "event_id": thread_id,
            "is_falling_back": True,
            "m.in_reply_to": {"event_id": reply_to or thread_id},
        }
    elif reply_to:
        content["m.relates_to"] = {"m.in_reply_to": {"event_id": reply_to}}
    return content


def edit_content(event_id: str, markdown: str, msgtype: str = "m.text") -> dict[str, Any]:
    """Build an ``m.replace`` edit of ``event_id`` (``* `` fallback for clients without edits)."""
    new = message_content(markdown, msgtype=msgtype)
    return {
        "msgtype": msgtype,
        "body": f"* {new['body']}",
        "format": HTML_FORMAT,
        "formatted_body": f"* {new['formatted_body']}",
        "m.new_content": new,
        "m.relates_to": {"rel_type": "m.replace", "event_id": event_id},
    }


def reaction_content(event_id: str, key: str) -> dict[str, Any]:
    """Build an ``m.reaction`` annotation."""
    return {"m.relates_to": {"rel_type": "m.annotation", "event_id": event_id, "key": key}}
