"""Fetch a page and turn its HTML into plain text the model can read."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from opencomputer import PluginContext, ToolError, tool

_SKIP = {"script", "style", "noscript", "template", "svg", "head"}
_BLOCK = {
    "p",
    "div",
    "br",
    "li",
    "tr",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "section",
    "article",
    "header",
    "footer",
    "pre",
    "blockquote",
    "table",
    "ul",
    "ol",
}


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title = ""
        self._skip = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        if tag in _SKIP:
            self._skip += 1
        if tag in _BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        if tag in _SKIP and self._skip:
            self._skip -= 1
        if tag in _BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif not self._skip:
            self.parts.append(data)


def readable(html: str) -> tuple[str, str]:
    """(title, text) of an HTML document, whitespace tidied."""
    parser = _Text()
    parser.feed(html)
    text = "".join(parser.parts)
    lines = [re.sub(r"[ \t\r\f\v]+", " ", line).strip() for line in text.splitlines()]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return parser.title.strip(), text


@tool
async def fetch_url(url: str, ctx: PluginContext, max_chars: int = 6000) -> str:
    """Fetch a URL and return its readable text.

    Args:
        url: The http(s) address to fetch.
        max_chars: Cut the text after this many characters.
    """
    resp = await ctx.http.get(url)
    if resp.status >= 400:
        raise ToolError(f"{url} answered HTTP {resp.status}")
    content_type = resp.headers.get("Content-Type", "")
    if "html" in content_type or resp.text.lstrip().lower().startswith(("<!doctype", "<html")):
        title, text = readable(resp.text)
    else:
        title, text = "", resp.text.strip()
    if len(text) > max_chars:
        text = text[:max_chars] + " ..."
    return f"# {title}\n\n{text}" if title else text
