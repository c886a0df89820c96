"""The web chat's HTTP vocabulary: limits, headers, refusals, and the neutral events a
request becomes. Kept apart from the connector (which holds state) so each stays short.
"""

from __future__ import annotations

import json
import re
import uuid
from importlib import resources
from typing import Any

from aiohttp import web

from opencomputer.bot.events import Chat, ChatKind, Command, Message, Reaction, User
from opencomputer.bot.http import PAGE_CSP, PAGE_HEADERS
from opencomputer.bot.ratelimit import Bucket
from opencomputer.connectors.web.session import Sessions

__all__ = [
    "BOT_ID",
    "CLIENT_ID",
    "CSP",
    "HEADERS",
    "MAX_BODY",
    "NEW_VISITORS",
    "NO_STORE",
    "PLATFORM",
    "STATIC",
    "Refused",
    "error",
    "event_of",
    "reaction_of",
    "read_json",
    "read_static",
    "sse",
    "who",
]

PLATFORM = "web"
MAX_BODY = 64 * 1024
"""Bytes a POST may have (the longest message, JSON-escaped, with room to spare)."""
NEW_VISITORS = Bucket(20, 3600)
"""New visitor sessions per client address: 20 an hour. Each new visitor who writes makes a
pairing request for an admin, so one client must not mint them without end; a browser that
keeps its cookie never counts again. The address is the TCP peer's (the app has no setting
that says which proxy header to trust)."""
CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
BOT_ID = re.compile(r"^b[0-9a-f]{32}$")
STATIC = {
    "app.js": "text/javascript",
    "style.css": "text/css",
    "icon.svg": "image/svg+xml",
}
CSP = PAGE_CSP
HEADERS = PAGE_HEADERS
NO_STORE = {**HEADERS, "Cache-Control": "no-store"}


def error(status: int, text: str, **headers: str) -> web.Response:
    """A refusal: ``{"ok": false, "error": "<one line>"}``, never cached."""
    return web.json_response(
        {"ok": False, "error": text}, status=status, headers=NO_STORE | headers
    )


def sse(kind: str, data: dict[str, Any], event_id: str | None = None) -> bytes:
    """One server-sent event (JSON data on one line), with the id a reconnect sends back."""
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {kind}\ndata: {body}\n\n".encode()


class Refused(Exception):
    """A request this channel answers with one line (status, text, and for 429 when to retry)."""

    def __init__(self, status: int, text: str, *, retry_after: int | None = None) -> None:
        super().__init__(text)
        self.status = status
        self.retry_after = retry_after


async def read_json(request: web.Request, sessions: Sessions, visitor: str) -> dict[str, Any]:
    """The body of a POST, after the checks every POST passes."""
    if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
        raise Refused(403, "cross-site request refused")
    if not sessions.csrf_ok(visitor, request.headers.get("X-CSRF-Token")):
        raise Refused(403, "missing or wrong CSRF token: reload the page")
    body = await request.read()
    if len(body) > MAX_BODY:
        raise Refused(413, f"request larger than {MAX_BODY} bytes")
    if request.content_type != "application/json":
        raise Refused(415, "send JSON (Content-Type: application/json)")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise Refused(400, "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise Refused(400, "the body must be a JSON object")
    return data


def who(visitor: str) -> tuple[Chat, User]:
    """A visitor's direct chat and user (``web:<id>``, as access control knows them)."""
    name = f"web visitor {visitor[:6]}"
    return Chat(PLATFORM, visitor, ChatKind.DIRECT, title=name), User(PLATFORM, visitor, name)


def event_of(visitor: str, client_id: str, text: str, now: float) -> Message | Command:
    """The neutral event of a typed line: ``/name args`` is a command."""
    chat, user = who(visitor)
    event_id = f"{visitor}-{client_id}"  # the visitor's own ids never meet another's
    if text.startswith("/") and len(text) > 1 and not text[1].isspace():
        name, _, args = text[1:].partition(" ")
        return Command(
            platform=PLATFORM,
            event_id=event_id,
            chat=chat,
            user=user,
            name=name.lower(),
            args=args.strip(),
            message_id=client_id,
            received_at=now,
        )
    return Message(
        platform=PLATFORM,
        event_id=event_id,
        chat=chat,
        user=user,
        text=text,
        message_id=client_id,
        received_at=now,
    )


def reaction_of(visitor: str, message_id: str, emoji: str, added: bool) -> Reaction:
    """A vote on a bot message as the neutral reaction the feedback feature scores."""
    chat, user = who(visitor)
    return Reaction(
        platform=PLATFORM,
        event_id=f"{visitor}-r{uuid.uuid4().hex}",
        chat=chat,
        user=user,
        message_id=message_id,
        emoji=emoji,
        added=added,
    )


def read_static() -> dict[str, bytes]:
    """The page's files, read from the installed package (no disk path assumed)."""
    folder = resources.files("opencomputer.connectors.web") / "static"
    return {name: (folder / name).read_bytes() for name in ("index.html", *STATIC)}
