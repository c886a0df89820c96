"""The ``memory`` feature: memory, compaction and planning on the agent graph.

``setup`` opens the memory index (the tables come with the schema), offers the services the
graph nodes use (``oc_turn_services``), registers the core tool ``remember`` and the commands
(``/memory``, ``/plan``) and the data-rights hooks. Schedules are their own feature
(``bot/schedules/feature.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Any

from sqlalchemy import func, select

from opencomputer.bot.commands import CommandContext, CommandRouter
from opencomputer.bot.hooks import DataRights, hookimpl
from opencomputer.bot.memory.commands import register_memory_commands
from opencomputer.bot.memory.models import MemoryRow
from opencomputer.bot.memory.store import MemoryStore
from opencomputer.bot.memory.tools import make_memory_tools
from opencomputer.bot.memory.vectors import SqliteVecIndex, open_index
from opencomputer.graphs.agent.compaction import CompactionConfig, WindowProbe
from opencomputer.graphs.agent.planning import PlannerConfig, format_plan

__all__ = ["setup"]

logger = logging.getLogger(__name__)

_MEM = MemoryRow.__table__  # type: ignore[attr-defined]


async def setup(app: Any) -> None:
    """Feature entry point: wire memory, compaction and planning into the running app."""
    settings = app.settings
    store = MemoryStore(
        app.store.engine,
        app.llm,
        embed_model=settings.embed_model,
        top_k=settings.memory_top_k,
        token_budget=settings.memory_token_budget,
        min_score=settings.memory_min_score,
    )
    store.index = open_index(
        settings.memory_backend, settings.resolved_database_url, store.vectors_of
    )
    await _sync_index(store)
    app.on_stop.append(store.index.close)
    app.extras["memory"] = store

    services: dict[str, Any] = {
        "memory": store,
        "person_of": app.runtime.person_of,
        "compaction": CompactionConfig(compact_at=settings.compact_at),
        "window": WindowProbe(app.llm, explicit="num_ctx" in settings.model_fields_set),
    }
    if settings.planning:
        services["planner"] = PlannerConfig()
    app.hooks.register(_Memory(services, _citer(app, store)), "memory")
    for item in make_memory_tools(store):
        app.tools.add(item, plugin="core")
    register_memory_commands(app.commands, store)
    _register_plan_command(app)

    async def forget_memories(person: str, _accounts: list[str]) -> str:
        count = await store.forget(person)
        return f"{count} memories" if count else ""

    async def export_memories(person: str, _accounts: list[str]) -> dict[str, Any]:
        items = await store.list_of(person)
        return {
            "memories": [
                {"id": m.id, "text": m.text, "created_at": m.created_at, "learned_in": m.learned_in}
                for m in items
            ]
        }

    app.hooks.register(DataRights(forget_memories, export_memories), "memory-data")


class _Memory:
    """Memory on the seam: the services graph nodes use, and citing what a reply recalled."""

    def __init__(self, services: dict[str, Any], cite: Any) -> None:
        self.services = services
        self.cite = cite

    @hookimpl
    def oc_turn_services(self) -> dict[str, Any]:
        return self.services

    @hookimpl
    def oc_reply_sent(self, record: Any) -> Awaitable[None]:
        return self.cite(record)  # type: ignore[no-any-return]


async def _sync_index(store: MemoryStore) -> None:
    """Rebuild the sqlite-vec file when it lags the table (deleted, or a new install)."""
    if not isinstance(store.index, SqliteVecIndex):
        return
    async with store.engine.connect() as conn:
        rows = int(await conn.scalar(select(func.count()).select_from(_MEM)) or 0)
    if store.index.count() != rows:
        logger.info("rebuilding the memory vector index (%d memories)", rows)
        await store.rebuild()


def _citer(app: Any, store: MemoryStore) -> Any:
    """A reply observer storing which memories the run's prompt used, under its run id."""

    async def cite(record: Any) -> None:
        if not record.meta.run_id:
            return
        user = getattr(record.message, "user", None)
        if user is not None and await store.count(str(await app.runtime.person_of(user))) == 0:
            return  # nothing to recall, so nothing recalled: spare the epoch and state reads
        recalled = await _state_value(app, record.address, "recalled")
        if recalled:
            from opencomputer.bot.memory.store import Memory

            await store.cite(
                record.meta.run_id,
                [Memory(int(m["id"]), "", m["text"], float(m.get("score", 0))) for m in recalled],
            )

    return cite


async def _state_value(app: Any, address: Any, key: str) -> Any:
    runtime = app.runtime
    thread = runtime.thread_id(address, await runtime.store.epoch(address.key))
    graph = getattr(runtime.agent, "graph", None)
    if graph is None:
        return None
    snapshot = await graph.aget_state({"configurable": {"thread_id": thread}})
    return snapshot.values.get(key) if snapshot else None


def _register_plan_command(app: Any) -> None:
    router: CommandRouter = app.commands

    @router.command("plan")
    async def plan(ctx: CommandContext) -> str:
        """Show the last plan I made in this chat and how far it got."""
        value = await _state_value(app, ctx.event.address, "plan")
        if not value or not (value.get("steps") or value.get("question")):
            return "I have not made a plan in this conversation yet."
        return format_plan(value)
