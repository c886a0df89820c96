"""LangGraph's SQLite checkpoints written by the store's one writer thread, no aiosqlite.

The stock ``AsyncSqliteSaver`` keeps a second connection with its own thread: nine hops to it
per turn (six to read, three to write), and its commits compete with the store's for the disk.
This saver runs its SQL on :class:`~bot.storage.writer.SqliteWriter`'s connection, where the
checkpoints' file is attached under :data:`SCHEMA`:

* reading a thread's checkpoint with its pending writes is one statement, one hop
  (:meth:`~bot.storage.writer.SqliteWriter.read`);
* saving a checkpoint (``aput``, ``aput_writes``) costs no hop: the rows are serialised here
  and deferred into the writer's next transaction, which in a turn is the one that records
  the reply (``SqlStore.record_reply``): checkpoint and outbox rows in one commit. A reader
  (the next turn's ``aget_tuple``, a retry's ``aget_state``) sees them, since a read through
  the writer commits deferred rows first; a crash before that commit loses the checkpoint
  together with the reply, so the message runs again from the previous checkpoint, exactly as
  when the process dies before the graph finished (``durability="exit"``).

* the latest checkpoint of each recently used thread is kept, serialised, in memory
  (:class:`_Latest`, bounded by ``_CACHE_BYTES``): the read at the start of a warm
  conversation's turn, and the approval check's read at its end, take no hop at all. This
  process's saver is the only writer of the file (``opencomputer db upgrade`` only creates
  tables; a restore needs the service stopped), so what it wrote last is what is stored.

Tables, rows, version strings and serialisation are those of LangGraph's SQLite savers, so
either reads the other's checkpoints.
"""

from __future__ import annotations

import json
import random
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_checkpoint_metadata,
)
from langgraph.checkpoint.sqlite.utils import load_pending_writes, search_where

from opencomputer.bot.storage.writer import SqliteTx, SqliteWriter

__all__ = ["SCHEMA", "WriterSaver"]

SCHEMA = "ckpt"
"""The schema name the checkpoints' file is attached under on the writer's connection."""

_TABLES = """
CREATE TABLE IF NOT EXISTS {s}.checkpoints (
    thread_id TEXT NOT NULL,
    checkpoint_ns TEXT NOT NULL DEFAULT '',
    checkpoint_id TEXT NOT NULL,
    parent_checkpoint_id TEXT,
    type TEXT,
    checkpoint BLOB,
    metadata BLOB,
    PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id)
);
CREATE TABLE IF NOT EXISTS {s}.writes (
    thread_id TEXT NOT NULL,
    checkpoint_ns TEXT NOT NULL DEFAULT '',
    checkpoint_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    task_path TEXT NOT NULL DEFAULT '',
    idx INTEGER NOT NULL,
    channel TEXT NOT NULL,
    type TEXT,
    value BLOB,
    PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id, task_id, idx)
);
"""


_CACHE_BYTES = 32 << 20
"""Bytes of serialised checkpoints kept in memory (the most recently used threads')."""


@dataclass(slots=True)
class _Entry:
    """A thread's latest checkpoint row and its pending-write rows, as stored."""

    row: tuple[Any, ...]  # thread_id, checkpoint_id, parent_checkpoint_id, type, blob, metadata
    writes: dict[tuple[str, int], tuple[Any, ...]] = field(default_factory=dict)
    size: int = 0


class _Latest:
    """The latest checkpoint per (thread, namespace), least recently used dropped first."""

    def __init__(self, limit: int = _CACHE_BYTES) -> None:
        self.limit = limit
        self.size = 0
        self._items: OrderedDict[tuple[str, str], _Entry] = OrderedDict()

    def get(self, key: tuple[str, str]) -> _Entry | None:
        entry = self._items.get(key)
        if entry is not None:
            self._items.move_to_end(key)
        return entry

    def put(self, key: tuple[str, str], entry: _Entry) -> None:
        self.drop(key)
        entry.size = len(entry.row[4] or b"") + len(entry.row[5] or b"")
        entry.size += sum(len(w[3] or b"") for w in entry.writes.values())
        self._items[key] = entry
        self.size += entry.size
        while self.size > self.limit and self._items:
            _key, old = self._items.popitem(last=False)
            self.size -= old.size

    def add_writes(
        self, key: tuple[str, str], checkpoint_id: str, rows: list[Any], replace: bool
    ) -> None:
        """Apply ``aput_writes`` rows the way the SQL does (``OR REPLACE`` / ``OR IGNORE``)."""
        entry = self._items.get(key)
        if entry is None:
            return
        if entry.row[1] != checkpoint_id:  # writes for an older checkpoint: read it back
            self.drop(key)
            return
        for r in rows:  # thread, ns, checkpoint, task_id, task_path, idx, channel, type, value
            slot = (r[3], r[5])
            if replace or slot not in entry.writes:
                entry.writes[slot] = (r[3], r[6], r[7], r[8], r[4], r[5])
        self.put(key, entry)

    def drop(self, key: tuple[str, str]) -> None:
        old = self._items.pop(key, None)
        if old is not None:
            self.size -= old.size

    def drop_thread(self, thread_id: str) -> None:
        for key in [k for k in self._items if k[0] == thread_id]:
            self.drop(key)


class WriterSaver(BaseCheckpointSaver[str]):
    """A checkpoint saver over :class:`~bot.storage.writer.SqliteWriter` (async only)."""

    def __init__(self, writer: SqliteWriter, schema: str = SCHEMA) -> None:
        super().__init__()
        self.writer = writer
        self.schema = schema
        self.latest = _Latest()
        s = schema
        checkpoint = (
            "SELECT thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, "
            f"checkpoint, metadata FROM {s}.checkpoints WHERE thread_id = ? AND checkpoint_ns = ?"
        )
        join = (
            "SELECT c.thread_id, c.checkpoint_id, c.parent_checkpoint_id, c.type, c.checkpoint, "
            "c.metadata, w.task_id, w.channel, w.type, w.value, w.task_path, w.idx FROM ({}) "
            f"AS c LEFT JOIN {s}.writes AS w ON w.thread_id = c.thread_id "
            "AND w.checkpoint_ns = c.checkpoint_ns AND w.checkpoint_id = c.checkpoint_id"
        )
        self._latest = join.format(checkpoint + " ORDER BY checkpoint_id DESC LIMIT 1")
        self._by_id = join.format(checkpoint + " AND checkpoint_id = ?")
        self._insert = (
            f"INSERT OR REPLACE INTO {s}.checkpoints (thread_id, checkpoint_ns, checkpoint_id, "
            "parent_checkpoint_id, type, checkpoint, metadata) VALUES (?, ?, ?, ?, ?, ?, ?)"
        )
        columns = (
            "(thread_id, checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel, type, "
            "value) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        self._replace_writes = f"INSERT OR REPLACE INTO {s}.writes {columns}"
        self._ignore_writes = f"INSERT OR IGNORE INTO {s}.writes {columns}"

    async def setup(self) -> None:
        """Create the tables (and ``task_path`` in files from before it existed)."""
        await self.writer.run(_setup, self.schema)

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint ``config`` names, or the thread's latest, with its pending writes."""
        configurable = config["configurable"]
        thread = str(configurable["thread_id"])
        ns = configurable.get("checkpoint_ns", "")
        wanted = get_checkpoint_id(config)
        entry = self.latest.get((thread, ns))
        if entry is None or (wanted and wanted != entry.row[1]):
            params = (thread, ns, *((wanted,) if wanted else ()))
            rows = await self.writer.read(_fetch, self._by_id if wanted else self._latest, params)
            if not rows:
                return None
            entry = _Entry(tuple(rows[0][:6]))
            entry.writes = {(r[6], r[11]): tuple(r[6:]) for r in rows if r[6] is not None}
            if not wanted:
                self.latest.put((thread, ns), entry)
        thread_id, checkpoint_id, parent_id, type_, blob, metadata = entry.row
        if not wanted:
            config = _config(thread_id, ns, checkpoint_id)
        return CheckpointTuple(
            config,
            self.serde.loads_typed((type_, blob)),
            cast(CheckpointMetadata, json.loads(metadata) if metadata is not None else {}),
            _config(thread_id, ns, parent_id) if parent_id else None,
            load_pending_writes(list(entry.writes.values()), self.serde),
        )

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """Checkpoints matching ``config`` and ``filter``, newest first."""
        where, params = search_where(config, filter, before)
        query = (
            "SELECT thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, "
            f"checkpoint, metadata FROM {self.schema}.checkpoints {where} "
            "ORDER BY checkpoint_id DESC"
        )
        if limit is not None:
            query += " LIMIT ?"
            params = (*params, limit)
        writes = (
            f"SELECT task_id, channel, type, value, task_path, idx FROM {self.schema}.writes "
            "WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ?"
        )
        found = await self.writer.read(_fetch_with_writes, query, tuple(params), writes)
        for row, pending in found:
            thread_id, ns, checkpoint_id, parent_id, type_, blob, metadata = row
            yield CheckpointTuple(
                _config(thread_id, ns, checkpoint_id),
                self.serde.loads_typed((type_, blob)),
                cast(CheckpointMetadata, json.loads(metadata) if metadata is not None else {}),
                _config(thread_id, ns, parent_id) if parent_id else None,
                load_pending_writes(pending, self.serde),
            )

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Save a checkpoint: serialised now, written with the writer's next transaction."""
        configurable = config["configurable"]
        thread_id = configurable["thread_id"]
        ns = configurable["checkpoint_ns"]
        type_, blob = self.serde.dumps_typed(checkpoint)
        meta = json.dumps(get_checkpoint_metadata(config, metadata), ensure_ascii=False)
        row = (
            str(thread_id),
            ns,
            checkpoint["id"],
            configurable.get("checkpoint_id"),
            type_,
            blob,
            meta.encode("utf-8", "ignore"),
        )
        self.writer.defer(_execute, self._insert, row)
        self.latest.put((str(thread_id), ns), _Entry((row[0], *row[2:])))
        return _config(thread_id, ns, checkpoint["id"])

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Save a task's pending writes, deferred like :meth:`aput` (and in order with it)."""
        configurable = config["configurable"]
        special = all(channel in WRITES_IDX_MAP for channel, _ in writes)
        rows = [
            (
                str(configurable["thread_id"]),
                str(configurable["checkpoint_ns"]),
                str(configurable["checkpoint_id"]),
                task_id,
                task_path,
                WRITES_IDX_MAP.get(channel, idx),
                channel,
                *self.serde.dumps_typed(value),
            )
            for idx, (channel, value) in enumerate(writes)
        ]
        sql = self._replace_writes if special else self._ignore_writes
        self.writer.defer(_execute_many, sql, rows)
        key = (str(configurable["thread_id"]), str(configurable["checkpoint_ns"]))
        self.latest.add_writes(key, str(configurable["checkpoint_id"]), rows, special)

    async def adelete_thread(self, thread_id: str) -> None:
        """Delete a thread's checkpoints and writes (``/forget``)."""
        self.latest.drop_thread(str(thread_id))
        await self.writer.run(_delete_thread, self.schema, str(thread_id))
        self.latest.drop_thread(str(thread_id))  # a turn may have saved one meanwhile

    def get_next_version(self, current: str | None, channel: None) -> str:
        """LangGraph's SQLite savers' version strings (a counter and a random tie-breaker)."""
        if current is None:
            current_v = 0
        elif isinstance(current, int):
            current_v = current
        else:
            current_v = int(current.split(".")[0])
        return f"{current_v + 1:032}.{random.random():016}"


def _config(thread_id: Any, ns: str, checkpoint_id: Any) -> RunnableConfig:
    return {
        "configurable": {
            "thread_id": thread_id,
            "checkpoint_ns": ns,
            "checkpoint_id": checkpoint_id,
        }
    }


# --- run in the writer thread ------------------------------------------------------------
def _setup(tx: SqliteTx, schema: str) -> None:
    for statement in _TABLES.format(s=schema).split(";"):
        if statement.strip():
            tx.conn.execute(statement)
    columns = [row[1] for row in tx.conn.execute(f"PRAGMA {schema}.table_info(writes)")]
    if "task_path" not in columns:  # a file from before LangGraph added the column
        tx.conn.execute(
            f"ALTER TABLE {schema}.writes ADD COLUMN task_path TEXT NOT NULL DEFAULT ''"
        )


def _fetch(tx: SqliteTx, sql: str, params: tuple[Any, ...]) -> list[Any]:
    return tx.conn.execute(sql, params).fetchall()


def _fetch_with_writes(
    tx: SqliteTx, sql: str, params: tuple[Any, ...], writes: str
) -> list[tuple[Any, list[Any]]]:
    rows = tx.conn.execute(sql, params).fetchall()
    return [
        (tuple(row), [tuple(w) for w in tx.conn.execute(writes, tuple(row[:3])).fetchall()])
        for row in rows
    ]


def _execute(tx: SqliteTx, sql: str, row: tuple[Any, ...]) -> None:
    tx.conn.execute(sql, row)


def _execute_many(tx: SqliteTx, sql: str, rows: list[tuple[Any, ...]]) -> None:
    tx.conn.executemany(sql, rows)


def _delete_thread(tx: SqliteTx, schema: str, thread_id: str) -> None:
    tx.conn.execute(f"DELETE FROM {schema}.checkpoints WHERE thread_id = ?", (thread_id,))
    tx.conn.execute(f"DELETE FROM {schema}.writes WHERE thread_id = ?", (thread_id,))
