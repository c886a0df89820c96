"""Commands run once per platform event id, as messages do.

Messages are deduplicated by the inbound table's unique ``(platform, event_id)``; commands are
not stored there, so without this rule a replayed request (a validly signed Slack slash command
posted again within Slack's five-minute signature window, a Telegram update delivered twice)
ran the command again. This middleware records each command's platform event id in the same
database, in one insert, and drops an event whose id is already there. The database is shared
by every gateway, so a replay sent to another process of a scale-out deployment is caught too.

Rows older than ``keep`` seconds are pruned as new ones arrive: a platform stops redelivering
long before that, and a replayed signed request is refused for its age after five minutes.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import time
from typing import TYPE_CHECKING, Any

from sqlalchemy import UniqueConstraint, bindparam, delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, SQLModel

from opencomputer.bot.events import Command
from opencomputer.bot.hooks import hookimpl
from opencomputer.bot.middleware import Event, Handler, Middleware

if TYPE_CHECKING:
    from opencomputer.bot.features import Host as App
    from opencomputer.bot.storage.store import SqlStore
    from opencomputer.bot.storage.writer import Tx

__all__ = ["SeenCommandRow", "dedupe_commands", "setup"]

logger = logging.getLogger(__name__)

KEEP = 7 * 86400.0
"""Seconds a command's event id is remembered."""


class SeenCommandRow(SQLModel, table=True):
    """A command event already accepted (its id hashed: ids can be long)."""

    __tablename__ = "seen_command"
    __table_args__ = (UniqueConstraint("platform", "event_hash", name="uq_seen_command"),)

    id: int | None = Field(default=None, primary_key=True)
    platform: str = Field(max_length=32)
    event_hash: str = Field(max_length=64)
    at: float = Field(index=True)


_T = SeenCommandRow.__table__  # type: ignore[attr-defined]
_PRUNE = delete(_T).where(_T.c.at < bindparam("cutoff"))  # one statement: compiled once


def _record(tx: Tx, values: dict[str, Any], cutoff: float) -> None:
    tx.execute(_PRUNE, {"cutoff": cutoff})
    tx.insert(_T, values)


async def first_time(store: SqlStore, platform: str, event_id: str, *, keep: float = KEEP) -> bool:
    """Record ``event_id``; False when it was recorded before."""
    now = time.time()
    values = {
        "platform": platform,
        "event_hash": hashlib.sha256(event_id.encode()).hexdigest(),
        "at": now,
    }
    try:
        await store.transact(_record, values, now - keep)
    except (IntegrityError, sqlite3.IntegrityError):
        return False
    return True


def dedupe_commands(store: SqlStore, *, keep: float = KEEP) -> Middleware:
    """Drop a command whose platform event id was accepted before."""

    async def mw(event: Event, call_next: Handler) -> None:
        if isinstance(event, Command) and not await first_time(
            store, event.platform, event.event_id, keep=keep
        ):
            logger.info("duplicate %s command %s ignored", event.platform, event.event_id)
            return
        await call_next(event)

    return mw


class _Dedupe:
    def __init__(self, rule: Middleware) -> None:
        self.rule = rule

    @hookimpl
    def oc_inbound_rules(self) -> list[tuple[str, Middleware]]:
        return [("dedupe", self.rule)]


async def setup(app: App) -> None:
    """Feature entry point: the rule runs before access control (a replay is not even refused
    twice; stage ``dedupe`` of ``opencomputer.bot.hooks.INBOUND_STAGES``).
    """
    app.hooks.register(_Dedupe(dedupe_commands(app.store)), "dedupe")
