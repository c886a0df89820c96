"""Model Markdown to Telegram HTML.

Telegram's HTML mode knows a handful of tags (``b i u s code pre a blockquote``) and needs
only ``< > &`` escaped. Markdown is parsed with markdown-it (raw HTML off, so whatever the model
writes in angle brackets is shown, not interpreted) and the token stream is walked once.
Splitting to the message limit is ``opencomputer.connectors.telegram.chunks``.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.token import Token

__all__ = [
    "TELEGRAM_LIMIT",
    "html_to_plain",
    "markdown_parser",
    "markdown_to_html",
    "render_tokens",
    "utf16_len",
]

TELEGRAM_LIMIT = 4096
"""Characters per message (UTF-16 code units, after entity parsing)."""

_SAFE_SCHEMES = ("http://", "https://", "tg://", "mailto:")


def utf16_len(text: str) -> int:
    """Length as Telegram counts it: astral characters (most emoji) count twice."""
    return len(text.encode("utf-16-le")) // 2


def markdown_parser() -> MarkdownIt:
    """CommonMark with tables and strikethrough; raw HTML off (it is shown as text)."""
    return MarkdownIt("commonmark", {"html": False}).enable(["strikethrough", "table"])


class _HtmlWriter:
    """Accumulates output, inserting block breaks lazily so none dangle at the end."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.pending = 0

    def write(self, text: str) -> None:
        if self.pending and self.parts:
            self.parts.append("\n" * self.pending)
        self.pending = 0
        self.parts.append(text)

    def close_tag(self, tag: str) -> None:
        """Close without flushing the pending break (the break belongs after the tag)."""
        self.parts.append(tag)

    def want_break(self, lines: int) -> None:
        self.pending = max(self.pending, lines)

    def result(self) -> str:
        return "".join(self.parts)


def _inline(children: Sequence[Token]) -> str:
    out: list[str] = []
    simple = {"strong": "b", "em": "i", "s": "s"}
    link_open: list[bool] = []
    for tok in children:
        kind = tok.type
        if kind == "text":
            out.append(html.escape(tok.content, quote=False))
        elif kind == "code_inline":
            out.append(f"<code>{html.escape(tok.content, quote=False)}</code>")
        elif kind in ("softbreak", "hardbreak"):
            out.append("\n")
        elif kind.endswith("_open") and kind[:-5] in simple:
            out.append(f"<{simple[kind[:-5]]}>")
        elif kind.endswith("_close") and kind[:-6] in simple:
            out.append(f"</{simple[kind[:-6]]}>")
        elif kind == "link_open":
            href = str(tok.attrs.get("href", ""))
            ok = href.lower().startswith(_SAFE_SCHEMES)
            link_open.append(ok)
            if ok:
                out.append(f'<a href="{html.escape(href, quote=True)}">')
        elif kind == "link_close":
            if link_open and link_open.pop():
                out.append("</a>")
        elif kind == "image":
            src = str(tok.attrs.get("src", ""))
            alt = html.escape(tok.content or src, quote=False)
            if src.lower().startswith(_SAFE_SCHEMES):
                out.append(f'<a href="{html.escape(src, quote=True)}">{alt}</a>')
            else:
                out.append(alt)
        elif tok.content:
            out.append(html.escape(tok.content, quote=False))
    return "".join(out)


def _plain(children: Sequence[Token] | None) -> str:
    """Inline content without markup (table cells go inside ``<pre>``)."""
    parts: list[str] = []
    for tok in children or ():
        if tok.type in ("text", "code_inline"):
            parts.append(tok.content)
        elif tok.type in ("softbreak", "hardbreak"):
            parts.append(" ")
    return "".join(parts)


def _table(tokens: list[Token], start: int) -> tuple[str, int]:
    """Render a table as an aligned ``<pre>`` block; return it and the index after it."""
    rows: list[list[str]] = []
    i = start
    while tokens[i].type != "table_close":
        tok = tokens[i]
        if tok.type == "tr_open":
            rows.append([])
        elif tok.type == "inline" and rows:
            rows[-1].append(_plain(tok.children))
        i += 1
    widths = [
        max((len(r[c]) for r in rows if c < len(r)), default=0)
        for c in range(max((len(r) for r in rows), default=0))
    ]
    lines = [" | ".join(cell.ljust(widths[c]) for c, cell in enumerate(r)).rstrip() for r in rows]
    if len(lines) > 1:
        lines.insert(1, "-+-".join("-" * w for w in widths))
    return f"<pre>{html.escape(chr(10).join(lines), quote=False)}</pre>", i + 1


def _code_block(tok: Token) -> str:
    body = html.escape(tok.content.rstrip("\n"), quote=False)
    lang = tok.info.strip().split()[0] if tok.info.strip() else ""
    if lang:
        cls = html.escape(f"language-{lang}", quote=True)
        return f'<pre><code class="{cls}">{body}</code></pre>'
    return f"<pre>{body}</pre>"


def markdown_to_html(markdown: str, parser: MarkdownIt | None = None) -> str:
    """Render Markdown as Telegram HTML (``parse_mode=HTML``)."""
    return render_tokens((parser or markdown_parser()).parse(markdown))


def render_tokens(tokens: Sequence[Token]) -> str:
    """Render markdown-it block tokens (a whole document or whole top-level blocks)."""
    tokens = list(tokens)
    w = _HtmlWriter()
    lists: list[dict[str, Any]] = []  # {"ordered": bool, "n": next number}
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        kind = tok.type
        inner_break = 1 if lists else 2
        if kind == "inline":
            w.write(_inline(tok.children or []))
        elif kind == "paragraph_close" or kind in ("bullet_list_close", "ordered_list_close"):
            if kind != "paragraph_close":
                lists.pop()
            w.want_break(1 if lists else 2)
        elif kind == "heading_open":
            w.write("<b>")
        elif kind == "heading_close":
            w.close_tag("</b>")
            w.want_break(inner_break)
        elif kind in ("bullet_list_open", "ordered_list_open"):
            w.want_break(1 if lists else 2)
            lists.append(
                {"ordered": kind == "ordered_list_open", "n": int(tok.attrs.get("start", 1) or 1)}
            )
        elif kind == "list_item_open":
            w.want_break(1)
            current = lists[-1]
            marker = f"{current['n']}." if current["ordered"] else "•"
            current["n"] += 1
            w.write("  " * (len(lists) - 1) + marker + " ")
        elif kind == "blockquote_open":
            w.write("<blockquote>")
        elif kind == "blockquote_close":
            w.close_tag("</blockquote>")
            w.want_break(inner_break)
        elif kind in ("fence", "code_block"):
            w.write(_code_block(tok))
            w.want_break(inner_break)
        elif kind == "hr":
            w.write("———")
            w.want_break(inner_break)
        elif kind == "table_open":
            text, i = _table(tokens, i)
            w.write(text)
            w.want_break(inner_break)
            continue
        i += 1
    return w.result()


_TAG = re.compile(r"<[^>]*>")


def html_to_plain(text: str) -> str:
    """Turn rendered HTML back into plain text, for a resend when Telegram rejects the markup."""
    return html.unescape(_TAG.sub("", text))
