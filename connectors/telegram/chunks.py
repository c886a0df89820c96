"""Rendered Telegram messages of at most 4096 characters, split where a reader expects.

The Markdown is parsed once; its top-level blocks (paragraphs, lists, code blocks, tables) are
rendered one by one and packed greedily, so a chunk boundary always falls between blocks and
never inside a tag. A block too long for one message on its own is split by
``bot.text.split_markdown`` (paragraph, line, then word boundaries; a code block is closed and
reopened with its language) with a measure that renders, and each piece is rendered on its own.
Parsing once matters: a streamed reply is re-rendered on every edit.
"""

from __future__ import annotations

from collections.abc import Iterator

from markdown_it import MarkdownIt
from markdown_it.token import Token

from opencomputer.bot.text import split_markdown
from opencomputer.connectors.telegram.render import (
    TELEGRAM_LIMIT,
    markdown_parser,
    markdown_to_html,
    render_tokens,
    utf16_len,
)

__all__ = ["render_chunks"]

_SEP = "\n\n"


def _blocks(tokens: list[Token]) -> Iterator[tuple[list[Token], tuple[int, int] | None]]:
    """Group tokens into top-level blocks, each with its source line range."""
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.nesting == 1:
            j = i + 1
            while not (tokens[j].level == tok.level and tokens[j].nesting == -1):
                j += 1
            group, i = tokens[i : j + 1], j + 1
        else:
            group, i = [tok], i + 1
        yield group, (tok.map[0], tok.map[1]) if tok.map else None


def _split_block(source: str, limit: int, parser: MarkdownIt) -> list[str]:
    """Render one over-long block as several chunks."""

    def measure(chunk: str) -> int:
        return utf16_len(markdown_to_html(chunk, parser))

    out: list[str] = []
    for piece in split_markdown(source, limit, measure):
        rendered = markdown_to_html(piece, parser)
        if utf16_len(rendered) > limit:  # the measure was not monotone here: split finer
            out.extend(_split_block(piece, int(limit * 0.8), parser))
        elif rendered.strip():
            out.append(rendered)
    return out


def render_chunks(markdown: str, limit: int = TELEGRAM_LIMIT) -> list[str]:
    """Markdown to HTML chunks, each within ``limit`` (UTF-16 units of the HTML, tags included).

    Counting tags makes the limit conservative: Telegram counts only the visible text.
    """
    parser = markdown_parser()
    lines = markdown.split("\n")
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for group, span in _blocks(parser.parse(markdown)):
        html_block = render_tokens(group)
        if not html_block.strip():
            continue
        block_size = utf16_len(html_block)
        if block_size > limit and span is not None:
            if current:
                chunks.append(_SEP.join(current))
            *full, last = _split_block("\n".join(lines[span[0] : span[1]]), limit, parser)
            chunks.extend(full)
            current, size = [last], utf16_len(last)  # what follows may fit after it
            continue
        if current and size + len(_SEP) + block_size > limit:
            chunks.append(_SEP.join(current))
            current, size = [], 0
        size += block_size + (len(_SEP) if current else 0)
        current.append(html_block)
    if current:
        chunks.append(_SEP.join(current))
    return chunks
