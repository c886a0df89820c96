"""LangGraph's SQLite checkpointer with fewer trips to aiosqlite's worker thread.

aiosqlite runs every call (``cursor()``, ``execute``, ``fetchone``, ``fetchall``, closing the
cursor, ``commit``) as a separate hop to its thread and back: the stock ``AsyncSqliteSaver``
makes six for ``aget_tuple`` and three for ``aput``, nine per turn, each a thread wake-up on
a busy machine. This subclass issues the same SQL on the same connection, under the same lock,
with ``execute_fetchall`` (query and rows in one hop): two hops to read, two (insert, commit)
to write. Rows, tables and serialisation are the parent's, so either class reads the other's
checkpoints.
"""

from __future__ import annotations

import json
from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_checkpoint_metadata,
)
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.checkpoint.sqlite.utils import load_pending_writes, pending_writes_sql

__all__ = ["LeanSqliteSaver"]

_COLUMNS = "thread_id, checkpoint_id, parent_checkpoint_id, type, checkpoint, metadata"
_BY_ID = (
    f"SELECT {_COLUMNS} FROM checkpoints "
    "WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ?"
)
_LATEST = (
    f"SELECT {_COLUMNS} FROM checkpoints WHERE thread_id = ? AND checkpoint_ns = ? "
    "ORDER BY checkpoint_id DESC LIMIT 1"
)
_INSERT = (
    "INSERT OR REPLACE INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, "
    "parent_checkpoint_id, type, checkpoint, metadata) VALUES (?, ?, ?, ?, ?, ?, ?)"
)


class LeanSqliteSaver(AsyncSqliteSaver):
    """``AsyncSqliteSaver`` whose per-turn read and write take two thread hops each."""

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint ``config`` names, or the thread's latest, with its pending writes."""
        await self.setup()
        configurable = config["configurable"]
        ns = configurable.get("checkpoint_ns", "")
        wanted = get_checkpoint_id(config)
        async with self.lock:
            if wanted:
                rows = await self.conn.execute_fetchall(
                    _BY_ID, (str(configurable["thread_id"]), ns, wanted)
                )
            else:
                rows = await self.conn.execute_fetchall(
                    _LATEST, (str(configurable["thread_id"]), ns)
                )
            found = next(iter(rows), None)
            if found is None:
                return None
            thread_id, checkpoint_id, parent_id, type_, blob, metadata = found
            writes = await self.conn.execute_fetchall(
                pending_writes_sql(self._has_task_path), (str(thread_id), ns, str(checkpoint_id))
            )
        if not wanted:
            config = {
                "configurable": {
                    "thread_id": thread_id,
                    "checkpoint_ns": ns,
                    "checkpoint_id": checkpoint_id,
                }
            }
        parent = (
            {
                "configurable": {
                    "thread_id": thread_id,
                    "checkpoint_ns": ns,
                    "checkpoint_id": parent_id,
                }
            }
            if parent_id
            else None
        )
        return CheckpointTuple(
            config,
            self.serde.loads_typed((type_, blob)),
            cast(CheckpointMetadata, json.loads(metadata) if metadata is not None else {}),
            parent,
            load_pending_writes(writes, self.serde),
        )

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Save a checkpoint: one insert, one commit."""
        await self.setup()
        configurable = config["configurable"]
        thread_id = configurable["thread_id"]
        ns = configurable["checkpoint_ns"]
        type_, blob = self.serde.dumps_typed(checkpoint)
        meta = json.dumps(get_checkpoint_metadata(config, metadata), ensure_ascii=False)
        row: tuple[Any, ...] = (
            str(thread_id),
            ns,
            checkpoint["id"],
            configurable.get("checkpoint_id"),
            type_,
            blob,
            meta.encode("utf-8", "ignore"),
        )
        async with self.lock:
            await self.conn.execute_fetchall(_INSERT, row)
            await self.conn.commit()
        return {
            "configurable": {
                "thread_id": thread_id,
                "checkpoint_ns": ns,
                "checkpoint_id": checkpoint["id"],
            }
        }
