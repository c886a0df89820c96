"""Markdown from the model to Slack's ``mrkdwn``, split into messages Slack displays whole.

Slack's markup differs from Markdown in every detail that matters: ``*bold*``, ``_italic_``,
``~strike~``, ``<url|text>`` links, no headings, no tables, and ``&``, ``<``, ``>`` are control
characters everywhere (code included) that must be sent as entities. We parse with markdown-it
(CommonMark, so we never guess at nesting) and print Slack's syntax from the syntax tree.
"""

from __future__ import annotations

from markdown_it import MarkdownIt
from markdown_it.tree import SyntaxTreeNode

from opencomputer.bot.text import split_markdown

__all__ = ["escape", "render_chunks", "to_mrkdwn"]

SPLIT_LIMIT = 3500
"""Markdown is cut into pieces of about this size (measured cheaply, before rendering)."""
HARD_LIMIT = 3900
"""No rendered chunk is longer: Slack truncates the display of messages past ~4,000 chars."""

_HR = "──────────"
_PARSER = MarkdownIt("commonmark", {"html": False}).enable(["strikethrough", "table"])


def escape(text: str) -> str:
    """Entity-encode the three characters Slack treats as markup."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_mrkdwn(markdown: str) -> str:
    """Convert one Markdown document to Slack mrkdwn."""
    if not markdown.strip():
        return ""
    root = SyntaxTreeNode(_PARSER.parse(markdown))
    return _blocks(root.children).strip("\n")


def render_chunks(
    markdown: str, limit: int = SPLIT_LIMIT, hard_limit: int = HARD_LIMIT
) -> list[str]:
    """Split ``markdown`` (fence-aware) and render each piece; every piece <= ``hard_limit``.

    Splitting measures an upper bound of the rendered size (escaping grows ``&<>``) instead of
    rendering every candidate prefix, which would parse a long answer dozens of times on every
    streamed edit. The rare piece whose rendering still overshoots is split again exactly.
    """
    chunks: list[str] = []
    for piece in split_markdown(markdown, limit, measure=_estimate):
        rendered = to_mrkdwn(piece)
        if len(rendered) > hard_limit:
            exact = split_markdown(piece, hard_limit, measure=lambda s: len(to_mrkdwn(s)))
            chunks.extend(to_mrkdwn(p) for p in exact)
        elif rendered:
            chunks.append(rendered)
    return [part for chunk in chunks for part in _hard_cut(chunk, hard_limit)]


def _estimate(text: str) -> int:
    return len(text) + 4 * (text.count("&") + text.count("<") + text.count(">"))


def _hard_cut(text: str, limit: int) -> list[str]:
    """Last resort for a chunk that cannot be split on boundaries (a 5,000-char URL)."""
    return [text[i : i + limit] for i in range(0, len(text), limit)] or [text]


# --- blocks ----------------------------------------------------------------------------------
def _blocks(nodes: list[SyntaxTreeNode], sep: str = "\n\n") -> str:
    return sep.join(part for part in (_block(n) for n in nodes) if part)


def _block(node: SyntaxTreeNode) -> str:
    kind = node.type
    if kind == "paragraph":
        return _inline_of(node)
    if kind == "heading":
        title = _plain_of(node).strip()
        return f"*{escape(title)}*" if title else ""
    if kind in ("fence", "code_block"):
        return "```\n" + escape(node.content.rstrip("\n")) + "\n```"
    if kind in ("bullet_list", "ordered_list"):
        return _list(node)
    if kind == "blockquote":
        inner = _blocks(node.children)
        return "\n".join(f"> {line}" if line else ">" for line in inner.split("\n"))
    if kind == "hr":
        return _HR
    if kind == "table":
        return _table(node)
    if kind == "html_block":
        return escape(node.content.rstrip("\n"))
    return _blocks(node.children)


def _list(node: SyntaxTreeNode) -> str:
    ordered = node.type == "ordered_list"
    start = int(node.attrs.get("start", 1) or 1) if ordered else 1
    tight = all(p.hidden for item in node.children for p in item.children if p.type == "paragraph")
    items = []
    for i, item in enumerate(node.children):
        marker = f"{start + i}. " if ordered else "• "
        body = _blocks(item.children, sep="\n" if tight else "\n\n")
        lines = body.split("\n") or [""]
        pad = " " * len(marker)
        items.append(
            "\n".join([marker + lines[0]] + [pad + line if line else "" for line in lines[1:]])
        )
    return ("\n" if tight else "\n\n").join(items)


def _table(node: SyntaxTreeNode) -> str:
    """Slack has no tables: show one as aligned plain text in a code block."""
    rows = [
        [_plain_of(cell).strip() for cell in row.children]
        for section in node.children
        for row in section.children
    ]
    if not rows:
        return ""
    widths = [max(len(r[i]) if i < len(r) else 0 for r in rows) for i in range(len(rows[0]))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)).rstrip() for r in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "```\n" + escape("\n".join(lines)) + "\n```"


# --- inline ----------------------------------------------------------------------------------
def _inline_of(block: SyntaxTreeNode) -> str:
    return "".join(_inline(n) for c in block.children for n in c.children)


def _plain_of(block: SyntaxTreeNode) -> str:
    return "".join(_plain(n) for n in block.children)


def _plain(node: SyntaxTreeNode) -> str:
    if node.type in ("text", "code_inline", "html_inline"):
        return node.content
    if node.type in ("softbreak", "hardbreak"):
        return " "
    if node.type == "image":
        return _plain_children(node) or str(node.attrs.get("alt", ""))
    return _plain_children(node)


def _plain_children(node: SyntaxTreeNode) -> str:
    return "".join(_plain(n) for n in node.children)


_WRAP = {"strong": "*", "em": "_", "s": "~"}


def _inline(node: SyntaxTreeNode) -> str:
    kind = node.type
    if kind == "text":
        return escape(node.content)
    if kind in _WRAP:
        inner = "".join(_inline(n) for n in node.children)
        mark = _WRAP[kind]
        return f"{mark}{inner}{mark}" if inner.strip() else inner
    if kind == "code_inline":
        return f"`{escape(node.content)}`"
    if kind in ("softbreak", "hardbreak"):
        return "\n"
    if kind in ("link", "image"):
        url = str(node.attrs.get("href") or node.attrs.get("src") or "")
        label = _plain_children(node) or str(node.attrs.get("alt", ""))
        if not url:
            return escape(label)
        if not label or label in (url, url.removeprefix("mailto:")):
            return f"<{escape(url)}>"
        return f"<{escape(url)}|{escape(label).replace('|', '¦')}>"
    if kind == "html_inline":
        return escape(node.content)
    return "".join(_inline(n) for n in node.children)
