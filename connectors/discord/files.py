"""Discord attachment handles, and renewing an expired CDN link.

Discord's CDN links are signed and expire after about a day (``ex``, ``is``, ``hm`` in the
query); past that the CDN answers 404 (or 403). A message stored before a crash, or retried the
next day, would then lose its files. So the handle keeps, besides the link, the channel and
message the file came with (JSON), and a refused signed link is renewed by fetching the message
again through discord.py (``fetch_message`` on a partial channel: its attachments carry fresh
links), then downloaded once more. Handles stored before this (a bare URL) still download,
unrenewed.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import discord
from yarl import URL

from opencomputer.bot.attachments import AttachmentError

__all__ = ["attachment_handle", "fresh_url", "parse_handle", "renewable"]

logger = logging.getLogger(__name__)


def attachment_handle(url: str, channel_id: int, message_id: int) -> str:
    """The stored handle of an attachment: its link and where to renew it."""
    return json.dumps({"url": url, "channel": str(channel_id), "message": str(message_id)})


def parse_handle(handle: str) -> tuple[str, int | None, int | None]:
    """``(url, channel id, message id)``; the ids are None for a bare-URL handle."""
    if not handle.startswith("{"):
        return handle, None, None
    try:
        data = json.loads(handle)
        return str(data["url"]), int(data["channel"]), int(data["message"])
    except (ValueError, KeyError, TypeError):
        raise AttachmentError("the Discord file's stored handle is damaged") from None


def renewable(url: str, status: int, message_id: int | None) -> bool:
    """Whether a refused download may be an expired signed link worth renewing."""
    return status in (403, 404) and message_id is not None and "ex" in URL(url).query


async def fresh_url(client: Any, channel_id: int, message_id: int, url: str, what: str) -> str:
    """The attachment's current link, from the message fetched again; one-line
    :class:`AttachmentError` when Discord will not give it (message deleted, no access).
    """
    parts = URL(url).path.strip("/").split("/")  # attachments/<channel>/<attachment id>/<name>
    attachment_id = parts[2] if len(parts) >= 4 and parts[0] == "attachments" else ""
    try:
        # a partial channel: one REST call (GET the message), no channel lookup first
        message = await client.get_partial_messageable(channel_id).fetch_message(message_id)
    except discord.HTTPException as exc:
        raise AttachmentError(
            f"could not download {what}: its link expired and Discord would not renew it "
            f"(HTTP {exc.status}; was the message deleted?)"
        ) from None
    for item in message.attachments:
        if str(item.id) == attachment_id or (not attachment_id and item.url == url):
            logger.info("renewed an expired Discord link of message %s", message_id)
            return str(item.url)
    raise AttachmentError(f"could not download {what}: it is no longer on its message")
