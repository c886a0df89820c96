"""LangGraph's SQLite checkpointer with fewer trips to aiosqlite's worker thread.

aiosqlite runs every call (``cursor()``, ``execute``, ``fetchone``, ``fetchall``, closing the
cursor, ``commit``) as a separate hop to its thread and back: the stock ``AsyncSqliteSaver``
makes six for ``aget_tuple`` and three for ``aput``, nine per turn, each a thread wake-up on
a busy machine. This subclass uses ``execute_fetchall`` (query and rows in one hop) on the
same connection, under the same lock: one hop to read (the checkpoint and its pending writes
in one statement, a left join) and two (insert, commit) to write. Tables, rows and
serialisation are the parent's, so either class reads the other's checkpoints.
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
from langgraph.checkpoint.sqlite.utils import load_pending_writes

__all__ = ["LeanSqliteSaver"]

_CHECKPOINT = (
    "SELECT thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, checkpoint, "
    "metadata FROM checkpoints WHERE thread_id = ? AND checkpoint_ns = ?"
)


def _read_sql(by_id: bool, task_path: bool) -> str:
    """One statement for a checkpoint and its pending writes (one row per write, or one)."""
    pick = " AND checkpoint_id = ?" if by_id else " ORDER BY checkpoint_id DESC LIMIT 1"
    path = "w.task_path" if task_path else "''"
    return (
        "SELECT c.thread_id, c.checkpoint_id, c.parent_checkpoint_id, c.type, c.checkpoint, "
        f"c.metadata, w.task_id, w.channel, w.type, w.value, {path}, w.idx "
        f"FROM ({_CHECKPOINT}{pick}) AS c LEFT JOIN writes AS w ON w.thread_id = c.thread_id "
        "AND w.checkpoint_ns = c.checkpoint_ns AND w.checkpoint_id = c.checkpoint_id"
    )


_INSERT = (
    "INSERT OR REPLACE INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, "
    "parent_checkpoint_id, type, checkpoint, metadata) VALUES (?, ?, ?, ?, ?, ?, ?)"
)


class LeanSqliteSaver(AsyncSqliteSaver):
    """``AsyncSqliteSaver`` whose per-turn read takes one thread hop, its write two."""

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint ``config`` names, or the thread's latest, with its pending writes."""
        await self.setup()
        configurable = config["configurable"]
        ns = configurable.get("checkpoint_ns", "")
        wanted = get_checkpoint_id(config)
        params = (str(configurable["thread_id"]), ns, *((wanted,) if wanted else ()))
        async with self.lock:
            rows = list(
                await self.conn.execute_fetchall(
                    _read_sql(bool(wanted), self._has_task_path), params
                )
            )
        if not rows:
            return None
        thread_id, checkpoint_id, parent_id, type_, blob, metadata = rows[0][:6]
        writes = [row[6:] for row in rows if row[6] is not None]
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
            cast(RunnableConfig | None, parent),
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
