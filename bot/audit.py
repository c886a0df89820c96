"""The audit log: an append-only, hash-chained record of admin actions and approvals.

Each row stores the hash of the row before it and a hash over its own content plus that
previous hash, so editing a row, deleting one in the middle or reordering them breaks the chain
and :func:`verify` reports the first broken row. Deleting the newest rows is caught only against
a head (count and hash) noted earlier: ``opencomputer audit verify`` prints it for that purpose.

Writers from several processes are safe without locks: ``seq`` is unique, so two writers racing
for the same position cannot both win; the loser re-reads the head and tries again.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import Field, SQLModel

__all__ = ["AuditEntry", "AuditRow", "Verification", "audit", "export", "recent", "verify"]

logger = logging.getLogger(__name__)

GENESIS = "0" * 64


class AuditRow(SQLModel, table=True):
    """One audit entry. Never updated or deleted by the application."""

    __tablename__ = "audit_log"

    id: int | None = Field(default=None, primary_key=True)
    seq: int = Field(unique=True, index=True)
    at: float
    actor: str = Field(max_length=255, index=True)
    action: str = Field(max_length=64, index=True)
    detail: str = Field(default="{}")
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


_T = AuditRow.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """An audit entry as read back."""

    seq: int
    at: float
    actor: str
    action: str
    detail: dict[str, Any]
    hash: str


@dataclass(frozen=True, slots=True)
class Verification:
    """The result of checking the chain: ``ok``, rows checked, the head, the first problem."""

    ok: bool
    count: int
    head: str
    problem: str = ""


def _digest(seq: int, at: float, actor: str, action: str, detail: str, prev: str) -> str:
    body = orjson.dumps([seq, repr(at), actor, action, detail, prev])
    return hashlib.sha256(body).hexdigest()


def _engine(target: Any) -> AsyncEngine:
    """Accept an App, a Runtime, a SqlStore or an engine (features hold different ones)."""
    for attr in ("store", "engine"):
        if hasattr(target, attr) and not isinstance(target, AsyncEngine):
            target = getattr(target, attr)
    if not isinstance(target, AsyncEngine):
        raise TypeError(f"cannot find a database engine on {type(target).__name__}")
    return target


async def audit(target: Any, actor: str, action: str, detail: dict[str, Any] | None = None) -> int:
    """Append one entry; return its sequence number.

    ``target`` is the App, Runtime, SqlStore or engine at hand; ``actor`` is a user key
    (``platform:id``) or ``system``. Keep message text and secrets out of ``detail``.
    """
    engine = _engine(target)
    payload = orjson.dumps(detail or {}, option=orjson.OPT_SORT_KEYS, default=str).decode()
    for _attempt in range(20):
        async with engine.connect() as conn:
            head = (
                await conn.execute(select(_T.c.seq, _T.c.hash).order_by(_T.c.seq.desc()).limit(1))
            ).first()
        seq, prev = (int(head.seq) + 1, str(head.hash)) if head else (1, GENESIS)
        at = time.time()
        row = {
            "seq": seq,
            "at": at,
            "actor": actor,
            "action": action,
            "detail": payload,
            "prev_hash": prev,
            "hash": _digest(seq, at, actor, action, payload, prev),
        }
        try:
            async with engine.begin() as conn:
                await conn.execute(insert(_T).values(**row))
        except IntegrityError:
            continue  # another writer took this position; chain onto theirs
        logger.info("audit #%d %s by %s", seq, action, actor)
        return seq
    raise RuntimeError("could not append to the audit log (too much contention)")


async def _rows(engine: AsyncEngine) -> AsyncGenerator[Any, None]:
    async with engine.connect() as conn:
        result = await conn.stream(select(_T).order_by(_T.c.seq))
        async for row in result:
            yield row


async def verify(target: Any) -> Verification:
    """Walk the chain from the first row; report the first edited, missing or moved row."""
    async with contextlib.aclosing(_rows(_engine(target))) as rows:
        return await _walk(rows)


async def _walk(rows: AsyncIterator[Any]) -> Verification:
    prev, expected, count = GENESIS, 1, 0
    async for row in rows:
        if row.seq != expected:
            return Verification(False, count, prev, f"entry #{expected} is missing")
        if row.prev_hash != prev:
            return Verification(
                False, count, prev, f"entry #{row.seq} does not follow its predecessor"
            )
        digest = _digest(row.seq, row.at, row.actor, row.action, row.detail, row.prev_hash)
        if digest != row.hash:
            return Verification(False, count, prev, f"entry #{row.seq} was modified")
        prev, expected, count = row.hash, expected + 1, count + 1
    return Verification(True, count, prev)


def _entry(row: Any) -> AuditEntry:
    return AuditEntry(row.seq, row.at, row.actor, row.action, orjson.loads(row.detail), row.hash)


async def recent(target: Any, n: int = 20, *, actor: str | None = None) -> list[AuditEntry]:
    """The newest ``n`` entries, newest first (optionally one actor's)."""
    query = select(_T).order_by(_T.c.seq.desc()).limit(n)
    if actor is not None:
        query = query.where(_T.c.actor == actor)
    async with _engine(target).connect() as conn:
        return [_entry(row) for row in await conn.execute(query)]


async def export(target: Any) -> AsyncIterator[dict[str, Any]]:
    """Every entry, oldest first, as JSON-ready dicts (chain fields included)."""
    async for row in _rows(_engine(target)):
        yield {
            "seq": row.seq,
            "at": row.at,
            "actor": row.actor,
            "action": row.action,
            "detail": orjson.loads(row.detail),
            "prev_hash": row.prev_hash,
            "hash": row.hash,
        }
