"""The writer's SQLite saver reads and writes exactly what LangGraph's own saver does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from opencomputer.bot.ollama import OllamaClient, OllamaError
from opencomputer.bot.testing import FakeOllama
from opencomputer.bot.testing.fake_ollama import Reply
from opencomputer.graphs.agent.checkpointer import open_checkpointer
from opencomputer.graphs.agent.graph import build_graph
from opencomputer.graphs.agent.runner import GraphAgent
from opencomputer.graphs.agent.sqlite_saver import WriterSaver
from opencomputer.graphs.agent.state import TurnContext

CTX = TurnContext(model="qwen3:8b", system_prompt="BASE", num_ctx=4096)


def config(thread: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}}


async def test_turns_saved_by_the_lean_saver_read_the_same_with_the_stock_one(
    tmp_path: Path, fake_ollama: FakeOllama
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/bot.db"
    async with OllamaClient(fake_ollama.url) as llm:
        async with open_checkpointer(url) as saver:
            assert isinstance(saver, WriterSaver)
            agent = GraphAgent(build_graph(llm=llm, checkpointer=saver))
            for i in range(3):
                outcome = await agent.run_turn("a", f"hello {i}", CTX)
                assert outcome.text == f"echo: hello {i}"
            await agent.run_turn("b", "other thread", CTX)
            lean = await saver.aget_tuple(config("a"))
            older = await saver.aget_tuple(lean.parent_config)  # by checkpoint id
        async with aiosqlite.connect(tmp_path / "bot-checkpoints.db") as conn:
            stock = await AsyncSqliteSaver(conn).aget_tuple(config("a"))
    assert lean is not None and stock is not None and older is not None
    assert lean.config == stock.config
    assert lean.parent_config == stock.parent_config
    assert lean.metadata == stock.metadata
    assert lean.checkpoint == stock.checkpoint
    assert [m["content"] for m in lean.checkpoint["channel_values"]["messages"]] == [
        "hello 0",
        "echo: hello 0",
        "hello 1",
        "echo: hello 1",
        "hello 2",
        "echo: hello 2",
    ]
    assert len(older.checkpoint["channel_values"]["messages"]) == 4
    assert (
        older.config["configurable"]["checkpoint_id"]
        == (lean.parent_config["configurable"]["checkpoint_id"])
    )


async def test_a_failed_turn_is_resumed_on_retry_through_the_lean_saver(
    tmp_path: Path, fake_ollama: FakeOllama
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/bot.db"
    fake_ollama.responder = lambda body: Reply(error="model crashed", status=500)
    async with OllamaClient(fake_ollama.url) as llm, open_checkpointer(url) as saver:
        agent = GraphAgent(build_graph(llm=llm, checkpointer=saver))
        with pytest.raises(OllamaError):
            await agent.run_turn("a", "hello", CTX)
        snapshot = await agent.graph.aget_state(config("a"))
        assert snapshot.next == ("model",)
        # The failure was saved as a pending write; both savers read it back alike.
        lean = await saver.aget_tuple(config("a"))
        assert isinstance(saver, WriterSaver)
        await saver.writer.flush()  # the rows wait for the writer's next transaction
        async with aiosqlite.connect(tmp_path / "bot-checkpoints.db") as conn:
            stock = await AsyncSqliteSaver(conn).aget_tuple(config("a"))
        assert lean is not None and stock is not None
        assert lean.pending_writes == stock.pending_writes
        assert [(channel, str(value)) for _, channel, value in lean.pending_writes] == [
            ("__error__", str(stock.pending_writes[0][2]))
        ]
        assert "model crashed" in str(lean.pending_writes[0][2])
        fake_ollama.responder = lambda body: Reply("recovered")
        outcome = await agent.run_turn("a", "hello", CTX, retry=True)
        assert outcome.text == "recovered"
        assert [m["content"] for m in await agent.history("a")] == ["hello", "recovered"]
    async with aiosqlite.connect(tmp_path / "bot-checkpoints.db") as conn:
        stock = await AsyncSqliteSaver(conn).aget_tuple(config("a"))
    assert stock is not None
    assert [m["content"] for m in stock.checkpoint["channel_values"]["messages"]] == [
        "hello",
        "recovered",
    ]
