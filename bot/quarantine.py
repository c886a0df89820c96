"""Poisoned inbound events: kept for the admin, acknowledged, reported once, never retried.

An update that cannot be parsed, translated or handed over after a few tries must not stop the
platform's input for every chat (a Telegram offset that never moves, a gateway that logs in
again and again). A connector gives such an event to :class:`Quarantine`, which appends the raw
payload (as the platform sent it, lone surrogates escaped) and the reason as one JSON line to
``<data dir>/quarantine/<platform>.jsonl``, owner-only. A file beside the connector's own state
rather than a table: connectors do not hold the store, and a poisoned event is often exactly
what the database refused. Only once it is written does the connector acknowledge the event;
if the write fails the event is not acknowledged (the platform delivers it again).

:class:`FailureCounter` is the "bounded number of failures": an event id that failed
``limit`` times in this process is poison.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

__all__ = ["FailureCounter", "PoisonEvent", "Quarantine", "payload_of"]

logger = logging.getLogger(__name__)


class PoisonEvent(Exception):
    """A raw platform event that cannot become core events: quarantine it and go on.

    The one documented outcome of a connector's translation besides a list of events.
    """


def payload_of(raw: Any) -> Any:
    """A JSON-able form of a raw platform payload (``to_dict()`` when the library has one)."""
    if isinstance(raw, dict | list | str | int | float | bool) or raw is None:
        return raw
    to_dict = getattr(raw, "to_dict", None)
    if callable(to_dict):
        try:
            return to_dict()
        except Exception:  # a half-parsed object: its repr is still useful
            pass
    return repr(raw)


class Quarantine:
    """Append-only store of the poisoned events of one platform."""

    def __init__(self, data_dir: Path, platform: str) -> None:
        self.platform = platform
        self.path = data_dir / "quarantine" / f"{platform}.jsonl"
        self.held: set[str] = set()  # keys held by this process (each reported once)
        self._lock = asyncio.Lock()

    async def hold(self, key: str, raw: Any, reason: str) -> bool:
        """Store an event as poisoned; True the first time this key is held in this process.

        Logs one warning line (no traceback) per key. Raises ``OSError`` when the file cannot
        be written: the caller must then not acknowledge the event.
        """
        if key in self.held:
            return False
        record = {
            "platform": self.platform,
            "key": key,
            "reason": reason[:2000],
            "at": time.time(),
            "raw": payload_of(raw),
        }
        # ensure_ascii: lone surrogates become escapes, so the raw payload is kept exactly.
        line = json.dumps(record, ensure_ascii=True, default=repr)
        async with self._lock:
            await asyncio.to_thread(self._append, line)
        self.held.add(key)
        first = reason.splitlines()[0][:300] if reason else "no reason given"
        logger.warning(
            "%s: event %s quarantined (%s); kept in %s, input goes on",
            self.platform,
            key,
            first,
            self.path,
        )
        return True

    def _append(self, line: str) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode("ascii") + b"\n")
        finally:
            os.close(fd)

    def entries(self) -> list[dict[str, Any]]:
        """Every stored poisoned event, oldest first (for the admin and tests)."""
        try:
            text = self.path.read_text(encoding="ascii")
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines() if line.strip()]


class FailureCounter:
    """Failures per event id (bounded memory); ``limit`` failures make an event poison."""

    def __init__(self, limit: int = 3, size: int = 4096) -> None:
        self.limit = limit
        self._size = size
        self._counts: OrderedDict[str, int] = OrderedDict()

    def failed(self, key: str) -> bool:
        """Record one failure of ``key``; True when it has now failed ``limit`` times."""
        count = self._counts.pop(key, 0) + 1
        self._counts[key] = count
        while len(self._counts) > self._size:
            self._counts.popitem(last=False)
        return count >= self.limit

    def forget(self, key: str) -> None:
        """Drop ``key`` (it went through, or it was quarantined)."""
        self._counts.pop(key, None)
