"""How long what was read from files, and files the terminal was sent, are kept.

A voice note's transcript and a document's text or summary are kept on the stored message
(``bot/media/transcripts.py``) so ``/retry`` need not transcribe or summarize again; files a tool
sends to the terminal are written under ``<data dir>/files``. Neither is needed for long, and
both can be personal, so a sweep drops them after ``OC_FILE_RETENTION_DAYS`` (0: never): the
kept keys are removed from the attachments of older messages (their kind, name and size stay,
and a ``/retry`` of such a message fetches and reads the file again), and older files in the
folder are deleted. It runs once at start (``oc_ready``) and then every six hours.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, or_, select, update

from opencomputer.bot.storage.models import InboundRow

if TYPE_CHECKING:
    from opencomputer.bot.storage.store import SqlStore
    from opencomputer.bot.storage.writer import Tx

__all__ = ["KEPT_KEYS", "SWEEP_EVERY", "Retention", "Swept", "remove_files", "without_kept"]

logger = logging.getLogger(__name__)

KEPT_KEYS = ("transcript", "text", "block")
"""What a read left on an attachment's entry: a transcript, a document's text, its turn block
(the text or a summary)."""

SWEEP_EVERY = 6 * 3600.0
"""Seconds between sweeps after the first one at start."""

_BATCH = 200
_IN = InboundRow.__table__  # type: ignore[attr-defined]
# A cheap prefilter (json.dumps writes each key as "key"); each row is still parsed.
_OLD_KEPT = (
    select(_IN.c.id, _IN.c.attachments)
    .where(
        _IN.c.received_at < bindparam("cut"),
        _IN.c.id > bindparam("after"),
        or_(*(_IN.c.attachments.like(f'%"{key}"%') for key in KEPT_KEYS)),
    )
    .order_by(_IN.c.id)
    .limit(_BATCH)
)
_SET_ATTACHMENTS = (
    update(_IN).where(_IN.c.id == bindparam("iid")).values(attachments=bindparam("att"))
)


@dataclass(frozen=True, slots=True)
class Swept:
    """What one sweep removed."""

    messages: int
    files: int


def without_kept(text: str | None) -> str | None:
    """The stored attachments with the kept keys removed (unchanged when there are none)."""
    try:
        items = json.loads(text) if text else None
    except ValueError:
        return text
    if not isinstance(items, list):
        return text
    changed = False
    for item in items:
        if isinstance(item, dict):
            for key in KEPT_KEYS:
                if key in item:
                    del item[key]
                    changed = True
    return json.dumps(items) if changed else text


def _strip_batch(tx: Tx, cut: float, after: int) -> tuple[int, int, int]:
    """Strip one batch of older messages; (rows changed, rows seen, last id seen)."""
    rows = tx.all(_OLD_KEPT, {"cut": cut, "after": after})
    changed = 0
    for row in rows:
        stripped = without_kept(row.attachments)
        if stripped != row.attachments:
            tx.execute(_SET_ATTACHMENTS, {"iid": row.id, "att": stripped})
            changed += 1
    return changed, len(rows), (int(rows[-1].id) if rows else after)


def _is_link_or_file(mode: int) -> bool:
    return stat.S_ISREG(mode) or stat.S_ISLNK(mode)


def remove_files(folder: Path, older_than: float | None = None) -> int:
    """Delete the regular files (and links, as links) directly in ``folder``, those modified
    before ``older_than`` if given; subfolders are left alone and no link is followed, so
    nothing outside the folder is touched. How many were deleted.
    """
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return 0
    for entry in entries:
        try:
            info = entry.stat(follow_symlinks=False)
            if not _is_link_or_file(info.st_mode):
                continue
            if older_than is not None and info.st_mtime >= older_than:
                continue
            os.unlink(entry.path)  # a link is removed itself, never its target
            removed += 1
        except FileNotFoundError:
            continue
        except OSError as exc:
            logger.warning("could not delete %s: %s", entry.path, exc)
    return removed


class Retention:
    """The periodic sweep (the multimodal feature starts it at ``oc_ready``; ``stop`` ends it)."""

    def __init__(self, store: SqlStore, files_dir: Path, days: float) -> None:
        self.store = store
        self.files_dir = files_dir
        self.days = days
        self._job: asyncio.Task[None] | None = None

    async def sweep(self, now: float | None = None) -> Swept:
        """Remove what is older than the retention, as of ``now`` (default: the clock)."""
        if self.days <= 0:
            return Swept(0, 0)
        cut = (time.time() if now is None else now) - self.days * 86400.0
        messages, after = 0, 0
        while True:
            changed, seen, after = await self.store.transact(_strip_batch, cut, after)
            messages += changed
            if seen < _BATCH:
                break
        files = await asyncio.to_thread(remove_files, self.files_dir, cut)
        logger.info(
            "retention (%g days): kept file text dropped from %d messages, %d files deleted",
            self.days,
            messages,
            files,
        )
        return Swept(messages, files)

    async def start(self) -> None:
        """Start the job (no job when files are kept forever)."""
        if self.days > 0 and self._job is None:
            self._job = asyncio.create_task(self._every(SWEEP_EVERY))

    async def stop(self) -> None:
        """End the job (at app stop)."""
        job, self._job = self._job, None
        if job is not None:
            job.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await job

    async def _every(self, seconds: float) -> None:
        while True:
            try:
                await self.sweep()
            except Exception as exc:  # the next sweep tries again
                logger.warning("retention sweep failed: %s", exc)
            await asyncio.sleep(seconds)
