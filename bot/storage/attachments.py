"""A stored message's attachments: a JSON column of the inbound row.

Only what is needed to fetch a file again is kept (kind, the connector's handle, name, the
claimed type and size), never the bytes: a message rebuilt after a crash downloads its files
through its connector like a fresh one. A voice note's transcript is added to its entry once
made (``transcript``), so ``/retry`` and recovery reuse it instead of transcribing again, and a
document's text or summary (``text``), which ``remember_file`` stores in memory when asked.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from opencomputer.bot.events import Attachment

__all__ = [
    "attachments_from_json",
    "attachments_from_row",
    "attachments_to_json",
    "kept_from_json",
    "transcripts_from_json",
    "with_kept",
    "with_transcript",
]

logger = logging.getLogger(__name__)


def attachments_to_json(attachments: Sequence[Attachment]) -> str | None:
    """The stored form of a message's files (None when there are none)."""
    if not attachments:
        return None
    # ASCII: a handle is the platform's text and must store whatever it holds
    return json.dumps([a.to_json() for a in attachments])


def attachments_from_json(text: str | None) -> tuple[Attachment, ...]:
    """Inverse of :func:`attachments_to_json`; an unreadable entry is skipped and logged."""
    if not text:
        return ()
    try:
        items = json.loads(text)
    except ValueError as exc:
        logger.warning("stored attachments could not be read: %s", exc)
        return ()
    found: list[Attachment] = []
    for item in items if isinstance(items, list) else []:
        try:
            found.append(Attachment.from_json(item))
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            logger.warning("a stored attachment could not be read: %s", exc)
    return tuple(found)


def attachments_from_row(row: Any) -> tuple[Attachment, ...]:
    """The attachments of a stored inbound row (rows from before attachments have none)."""
    return attachments_from_json(getattr(row, "attachments", None))


def kept_from_json(text: str | None, key: str) -> dict[int, str]:
    """Text kept under ``key`` on the stored attachments (a voice note's ``transcript``, a
    document's ``text``), by the attachment's position.
    """
    try:
        items = json.loads(text) if text else []
    except ValueError:
        return {}
    return {
        index: item[key]
        for index, item in enumerate(items if isinstance(items, list) else [])
        if isinstance(item, dict) and isinstance(item.get(key), str)
    }


def with_kept(text: str | None, index: int, key: str, value: str) -> str | None:
    """The stored form with ``value`` kept under ``key`` on the attachment at ``index``
    (unchanged when there is no such entry).
    """
    try:
        items = json.loads(text) if text else None
    except ValueError:
        return text
    if not isinstance(items, list) or not 0 <= index < len(items):
        return text
    if not isinstance(items[index], dict):
        return text
    items[index][key] = value
    return json.dumps(items)


def transcripts_from_json(text: str | None) -> dict[int, str]:
    """The transcripts kept in the stored form, by the attachment's position."""
    return kept_from_json(text, "transcript")


def with_transcript(text: str | None, index: int, transcript: str) -> str | None:
    """The stored form with ``transcript`` kept on the attachment at ``index``."""
    return with_kept(text, index, "transcript", transcript)
