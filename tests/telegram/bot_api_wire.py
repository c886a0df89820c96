"""The Bot API's wire details the fake needs: argument decoding, errors, HTML validation."""

from __future__ import annotations

import html
import json
import re
from typing import Any

from aiohttp import web

__all__ = ["entities", "error", "read_args", "utf16_len", "validate_html"]

_STRING_ARGS = {"text", "parse_mode", "secret_token", "url", "action", "description"}
_ALLOWED_TAGS = {
    "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "code", "pre", "a",
    "blockquote", "tg-spoiler", "span", "tg-emoji",
}  # fmt: skip
_HTML_TOKEN = re.compile(
    r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[a-z-]+=\"[^\"<>]*\")*)\s*>"
    r"|&(?:lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);"
    r"|[<>&]"
)


def utf16_len(text: str) -> int:
    """Telegram's length: UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def validate_html(text: str) -> str:
    """Return the visible text of Telegram HTML, or raise ValueError as Telegram would."""
    stack: list[str] = []
    visible: list[str] = []
    pos = 0
    for m in _HTML_TOKEN.finditer(text):
        visible.append(text[pos : m.start()])
        pos = m.end()
        token = m.group(0)
        if token in "<>&":
            raise ValueError(f"can't parse entities: unescaped {token!r} at offset {m.start()}")
        if token.startswith("&"):
            visible.append(html.unescape(token))
            continue
        closing, tag = m.group(1), m.group(2).lower()
        if tag not in _ALLOWED_TAGS:
            raise ValueError(f'can\'t parse entities: Unsupported start tag "{tag}"')
        if closing:
            if not stack or stack[-1] != tag:
                raise ValueError(f'can\'t parse entities: Unexpected end tag "{tag}"')
            stack.pop()
        else:
            stack.append(tag)
    visible.append(text[pos:])
    if stack:
        raise ValueError(f"can't parse entities: Can't find end tag corresponding to {stack[-1]}")
    return "".join(visible)


def entities(text: str) -> list[dict[str, Any]]:
    """Mention and command entities the way Telegram computes them (UTF-16 offsets)."""
    out = []
    for m in re.finditer(
        r"(?<![\w/])(@[A-Za-z0-9_]{3,32}|/[A-Za-z0-9_]+(?:@[A-Za-z0-9_]+)?)", text
    ):
        kind = "mention" if m.group(0).startswith("@") else "bot_command"
        if kind == "bot_command" and m.start() != 0:
            continue
        offset = utf16_len(text[: m.start()])
        out.append({"type": kind, "offset": offset, "length": utf16_len(m.group(0))})
    return out


async def read_args(request: web.Request) -> dict[str, Any]:
    """Arguments from the query, a JSON body or a form (non-string values JSON-encoded)."""
    args: dict[str, Any] = dict(request.query)
    if request.content_type == "application/json":
        args.update(await request.json())
        return args
    form = await request.post()
    for key, value in form.items():
        if not isinstance(value, str):
            continue
        if key in _STRING_ARGS:
            args[key] = value
        else:
            try:
                args[key] = json.loads(value)
            except ValueError:
                args[key] = value
    return args


def error(status: int, description: str, parameters: dict[str, Any] | None = None) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return web.json_response(body, status=status)
