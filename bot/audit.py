"""The audit log: an append-only, keyed hash chain of admin actions and approvals.

Each row stores the MAC of the row before it and an HMAC-SHA256 over its own content plus that
previous MAC. The key lives outside the database (``audit.key`` in the data directory, mode
0600, made on first use), so whoever can write the database but not read that file cannot
recompute the chain after editing, inserting or deleting rows. Deleting the newest rows leaves
a valid chain behind, so the newest sequence number and MAC are also written outside the
database after every append (``audit.head``, 0600, replaced atomically): :func:`verify` reports
a log shorter than its head, or whose newest row does not match it.

Rows written before the key existed (plain SHA-256, the old format) are kept as they were: when
the key is made, the existing chain's length and last hash are recorded in the head
(``legacy``), and :func:`verify` checks those rows with SHA-256 and their last hash against the
recorded one. So the old rows are anchored from that moment on; what happened to them before
cannot be known.

Writers from several processes are safe without locks: ``seq`` is unique, so two writers racing
for the same position cannot both win; the loser re-reads the head and tries again. The head file
is updated under an advisory lock and only ever moves forward.

Where the files live: the folder of the SQLite database (the data directory by default), or, for
other databases, ``OC_DATA_DIR`` (processes on several machines must share the same key file;
each machine's head then anchors the rows that machine wrote).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import os
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import Field, SQLModel

from opencomputer.bot.audit_anchor import GENESIS, Anchor, AuditAnchorError, Head

__all__ = [
    "AuditAnchorError",
    "AuditEntry",
    "AuditRow",
    "Verification",
    "anchor_of",
    "audit",
    "export",
    "recent",
    "verify",
]

logger = logging.getLogger(__name__)


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


def _body(seq: int, at: float, actor: str, action: str, detail: str, prev: str) -> bytes:
    return orjson.dumps([seq, repr(at), actor, action, detail, prev])


def _digest(seq: int, at: float, actor: str, action: str, detail: str, prev: str) -> str:
    """The old, unkeyed row hash (rows written before the key existed)."""
    return hashlib.sha256(_body(seq, at, actor, action, detail, prev)).hexdigest()


def _mac(key: bytes, seq: int, at: float, actor: str, action: str, detail: str, prev: str) -> str:
    """The keyed row MAC: HMAC-SHA256 under the key kept outside the database."""
    return hmac.new(key, _body(seq, at, actor, action, detail, prev), hashlib.sha256).hexdigest()


_ANCHORS: dict[str, Anchor] = {}


def anchor_of(engine: AsyncEngine) -> Anchor:
    """The anchor folder of this engine's audit log (see the module docstring)."""
    url = engine.url
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        folder = Path(str(url.database)).resolve().parent
    else:
        from opencomputer.bot.config import _default_data_dir

        folder = Path(os.environ.get("OC_DATA_DIR") or _default_data_dir()).resolve()
    found = _ANCHORS.get(str(folder))
    if found is None:
        found = _ANCHORS[str(folder)] = Anchor(folder)
    return found


def _engine(target: Any) -> AsyncEngine:
    """Accept an App, a Runtime, a SqlStore or an engine (features hold different ones)."""
    for attr in ("store", "engine"):
        if hasattr(target, attr) and not isinstance(target, AsyncEngine):
            target = getattr(target, attr)
    if not isinstance(target, AsyncEngine):
        raise TypeError(f"cannot find a database engine on {type(target).__name__}")
    return target


async def _newest(engine: AsyncEngine) -> Any:
    async with engine.connect() as conn:
        return (
            await conn.execute(select(_T.c.seq, _T.c.hash).order_by(_T.c.seq.desc()).limit(1))
        ).first()


async def _key(engine: AsyncEngine, anchor: Anchor) -> bytes:
    """The key; made on first use, anchoring the unkeyed rows already in the log."""
    key = await asyncio.to_thread(anchor.key)
    if key is not None:
        return key
    newest = await _newest(engine)
    legacy, legacy_hash = (int(newest.seq), str(newest.hash)) if newest else (0, GENESIS)
    if legacy:
        logger.warning(
            "audit key created; the %d existing entries are kept as unkeyed (SHA-256) entries, "
            "anchored from now on",
            legacy,
        )
    return await asyncio.to_thread(anchor.create, legacy, legacy_hash)


async def audit(target: Any, actor: str, action: str, detail: dict[str, Any] | None = None) -> int:
    """Append one entry; return its sequence number.

    ``target`` is the App, Runtime, SqlStore or engine at hand; ``actor`` is a user key
    (``platform:id``) or ``system``. Keep message text and secrets out of ``detail``.
    """
    engine = _engine(target)
    anchor = anchor_of(engine)
    key = await _key(engine, anchor)
    payload = orjson.dumps(detail or {}, option=orjson.OPT_SORT_KEYS, default=str).decode()
    for _attempt in range(20):
        head = await _newest(engine)
        seq, prev = (int(head.seq) + 1, str(head.hash)) if head else (1, GENESIS)
        at = time.time()
        mac = _mac(key, seq, at, actor, action, payload, prev)
        row = {
            "seq": seq,
            "at": at,
            "actor": actor,
            "action": action,
            "detail": payload,
            "prev_hash": prev,
            "hash": mac,
        }
        try:
            async with engine.begin() as conn:
                await conn.execute(insert(_T).values(**row))
        except IntegrityError:
            continue  # another writer took this position; chain onto theirs
        await asyncio.to_thread(anchor.advance, seq, mac)
        logger.info("audit #%d %s by %s", seq, action, actor)
        return seq
    raise RuntimeError("could not append to the audit log (too much contention)")


async def _rows(engine: AsyncEngine) -> AsyncGenerator[Any, None]:
    async with engine.connect() as conn:
        result = await conn.stream(select(_T).order_by(_T.c.seq))
        async for row in result:
            yield row


async def verify(target: Any) -> Verification:
    """Walk the chain from the first row and compare its end with the head outside the
    database; report the first edited, missing, inserted or moved row, or a truncation.
    """
    engine = _engine(target)
    anchor = anchor_of(engine)
    try:
        key, head = await asyncio.to_thread(lambda: (anchor.key(), anchor.head()))
    except (AuditAnchorError, OSError) as exc:
        return Verification(False, 0, GENESIS, f"cannot read the audit anchor: {exc}")
    if key is None or head is None:
        if await _newest(engine) is None:
            return Verification(True, 0, GENESIS)
        missing = anchor.key_path if key is None else anchor.head_path
        return Verification(
            False, 0, GENESIS, f"{missing} is missing: the log cannot be checked against it"
        )
    async with contextlib.aclosing(_rows(engine)) as rows:
        result = await _walk(rows, key, head)
    if not result.ok:
        return result
    if result.count < head.seq:
        first = result.count + 1
        gone = f"entry #{first} is" if first == head.seq else f"entries #{first}-#{head.seq} are"
        return Verification(
            False,
            result.count,
            result.head,
            f"{gone} missing "
            f"(the log ends at #{result.count}, its head outside the database says #{head.seq})",
        )
    return result


async def _walk(rows: AsyncIterator[Any], key: bytes, head: Head) -> Verification:
    prev, expected, count = GENESIS, 1, 0
    async for row in rows:
        if row.seq != expected:
            return Verification(False, count, prev, f"entry #{expected} is missing")
        if row.prev_hash != prev:
            return Verification(
                False, count, prev, f"entry #{row.seq} does not follow its predecessor"
            )
        fields = (row.seq, row.at, row.actor, row.action, row.detail, row.prev_hash)
        if row.seq <= head.legacy:
            digest = _digest(*fields)
            if row.seq == head.legacy and digest != head.legacy_hash:
                digest = ""  # the unkeyed rows were rewritten after the key was made
        else:
            digest = _mac(key, *fields)
        if not hmac.compare_digest(digest, row.hash):
            return Verification(False, count, prev, f"entry #{row.seq} was modified")
        if row.seq == head.seq and row.hash != head.mac:
            return Verification(
                False, count, prev, f"entry #{row.seq} does not match the head outside the database"
            )
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
