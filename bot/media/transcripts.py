"""Transcripts kept with the stored message they came from.

A voice note is transcribed once: the transcript joins the attachment's entry in the inbound
row (``inbound_messages.attachments``, bot/storage/attachments.py), so a turn run again --
``/retry`` after the model failed, recovery after a crash -- reads it instead of sending the
recording to the speech engine again and showing "🎙 heard" twice. The transcript is the
sender's words: it lives and dies with their message (``/forget`` deletes the row, ``/export``
lists it), or earlier, after ``OC_FILE_RETENTION_DAYS`` (bot/media/retention.py). A
document's text (or summary) is kept the same way under ``text``, for ``remember_file``
(bot/media/remember.py).
"""

from __future__ import annotations

import logging

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from opencomputer.bot.storage.attachments import kept_from_json, with_kept
from opencomputer.bot.storage.models import InboundRow

__all__ = ["TranscriptStore", "inbound_id_of"]

logger = logging.getLogger(__name__)

_IN = InboundRow.__table__  # type: ignore[attr-defined]


def inbound_id_of(turn_key: str | None) -> int | None:
    """The stored message a turn answers (its key is ``in<id>``); None for other turns."""
    if turn_key and turn_key.startswith("in") and turn_key[2:].isdigit():
        return int(turn_key[2:])
    return None


class TranscriptStore:
    """Reads and keeps transcripts on inbound rows."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def kept(self, inbound_id: int, key: str = "transcript") -> dict[int, str]:
        """The transcripts (or other ``key``) kept for a message, by attachment position."""
        async with self.engine.connect() as conn:
            stored = await conn.scalar(select(_IN.c.attachments).where(_IN.c.id == inbound_id))
        return kept_from_json(stored, key)

    async def keep(
        self, inbound_id: int, index: int, transcript: str, key: str = "transcript"
    ) -> None:
        """Keep the transcript (or ``key``) of the attachment at ``index``; a failure costs
        only the reuse.
        """
        try:
            async with self.engine.begin() as conn:
                stored = await conn.scalar(select(_IN.c.attachments).where(_IN.c.id == inbound_id))
                changed = with_kept(stored, index, key, transcript)
                if changed is not None and changed != stored:
                    await conn.execute(
                        update(_IN).where(_IN.c.id == inbound_id).values(attachments=changed)
                    )
        except Exception as exc:
            logger.warning("transcript of message %s not kept: %s", inbound_id, exc)
