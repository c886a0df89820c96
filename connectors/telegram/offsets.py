"""The last handled update id, kept in a small file so a restart neither replays nor skips.

``getUpdates`` with ``offset = last + 1`` confirms everything up to ``last`` to Telegram; after a
restart the stored value makes the first poll confirm what the previous run already handled.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import uuid
from pathlib import Path

__all__ = ["OffsetFile"]

logger = logging.getLogger(__name__)


class OffsetFile:
    """One JSON file per bot in the data directory, replaced atomically on each save."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def load(self) -> int | None:
        """Return the stored update id, or None when there is none (or it is unreadable)."""
        return await asyncio.to_thread(self._read)

    async def save(self, update_id: int) -> None:
        """Store ``update_id`` as handled."""
        await asyncio.to_thread(self._write, update_id)

    def _read(self) -> int | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return int(data["last_update_id"])
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError, OSError) as exc:
            logger.warning("ignoring unreadable Telegram offset file %s: %s", self.path, exc)
            return None

    def _write(self, update_id: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # A name of its own per save: two savers (a stop racing a batch, or a second process
        # polling the same token) must not rename each other's half-written file.
        tmp = self.path.with_suffix(f".{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        tmp.write_text(json.dumps({"last_update_id": update_id}), encoding="utf-8")
        os.replace(tmp, self.path)
