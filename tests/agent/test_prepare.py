"""A simple turn is one model step; a turn with recall, compaction or planning due is prepared.

Runs the compiled graph against the fake Ollama server (real ``OllamaClient``), reading which
nodes ran from LangGraph's ``updates`` stream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from opencomputer.bot.events import User
from opencomputer.bot.memory.store import Memory
from opencomputer.bot.ollama import OllamaClient
from opencomputer.bot.testing import FakeOllama
from opencomputer.bot.testing.fake_ollama import Reply
from opencomputer.bot.tools import tool
from opencomputer.graphs.agent.compaction import SUMMARY_MARKER, CompactionConfig
from opencomputer.graphs.agent.graph import build_graph
from opencomputer.graphs.agent.planning import PLAN_MARKER, PlannerConfig
from opencomputer.graphs.agent.state import TurnContext

ALICE = User("test", "alice", "Alice")


class Memories:
    """A memory service with a settable store of facts (the graph asks ``count``/``recall``)."""

    def __init__(self) -> None:
        self.facts: list[Memory] = []
        self.recalls: list[str] = []

    async def count(self, person: str) -> int:
        return len(self.facts)

    async def recall(self, person: str, query: str, **_: Any) -> list[Memory]:
        self.recalls.append(query)
        return list(self.facts)


async def person_of(user: User) -> str:
    return f"person:{user.id}"


@pytest.fixture
async def llm(fake_ollama: FakeOllama) -> AsyncIterator[OllamaClient]:
    async with OllamaClient(fake_ollama.url) as client:
        yield client


def context(memory: Any = None, **services: Any) -> TurnContext:
    found: dict[str, Any] = {"person_of": person_of, **services}
    if memory is not None:
        found["memory"] = memory
    return TurnContext(
        model="qwen3:8b", system_prompt="BASE", num_ctx=4096, user=ALICE, services=found
    )


async def turn(graph: Any, text: str, ctx: TurnContext, thread: str = "t") -> list[str]:
    """Run one turn; return the steps that ran, in order.

    A step is its node's name, ``+prepared`` when the node prepared the turn first (recall
    always writes ``recalled`` when it runs; the plain model step writes only messages).
    """
    ran: list[str] = []
    async for chunk in graph.astream(
        {"messages": [{"role": "user", "content": text}], "tool_rounds": 0},
        {"configurable": {"thread_id": thread}},
        context=ctx,
        stream_mode="updates",
        durability="exit",
    ):
        for node, update in chunk.items():
            ran.append(node + ("+prepared" if "recalled" in (update or {}) else ""))
    return ran


def system(body: dict[str, Any]) -> str:
    return str(body["messages"][0]["content"])


async def test_simple_turn_is_one_model_step_with_every_feature_on(
    llm: OllamaClient, fake_ollama: FakeOllama
) -> None:
    memory = Memories()
    ctx = context(memory, compaction=CompactionConfig(), planner=PlannerConfig())
    graph = build_graph(llm=llm, checkpointer=InMemorySaver())
    assert await turn(graph, "hello there", ctx) == ["model"]
    assert await turn(graph, "and how are you today?", ctx) == ["model"]
    assert memory.recalls == []  # no memories: no recall, no embedding
    assert [system(c) for c in fake_ollama.chats] == ["BASE", "BASE"]
    state = (await graph.aget_state({"configurable": {"thread_id": "t"}})).values
    assert [m["content"] for m in state["messages"]] == [
        "hello there",
        "echo: hello there",
        "and how are you today?",
        "echo: and how are you today?",
    ]


async def test_memories_are_recalled_then_cleared_when_gone(
    llm: OllamaClient, fake_ollama: FakeOllama
) -> None:
    memory = Memories()
    memory.facts = [Memory(7, "person:alice", "Alice's cat is Zorro", 0.9)]
    ctx = context(memory)
    graph = build_graph(llm=llm, checkpointer=InMemorySaver())
    assert await turn(graph, "what is my cat called?", ctx) == ["model+prepared"]
    assert memory.recalls == ["what is my cat called?"]
    assert "[memory 7] Alice's cat is Zorro" in system(fake_ollama.chats[-1])
    memory.facts = []  # /forget: last turn's recall must not linger in the next prompt
    assert await turn(graph, "and my dog?", ctx) == ["model+prepared"]
    assert system(fake_ollama.chats[-1]) == "BASE"
    state = (await graph.aget_state({"configurable": {"thread_id": "t"}})).values
    assert state["recalled"] == []
    assert await turn(graph, "thanks", ctx) == ["model"]


async def test_tool_rounds_are_not_prepared_again(
    llm: OllamaClient, fake_ollama: FakeOllama
) -> None:
    @tool
    async def clock() -> str:
        """The time of day."""
        return "noon"

    memory = Memories()
    memory.facts = [Memory(3, "person:alice", "Alice lives in Lyon", 0.8)]
    ctx = context(memory)
    ctx.tools = [clock.__oc_tool__]  # type: ignore[attr-defined]
    fake_ollama.call_tool("clock")
    fake_ollama.reply("It is noon in Lyon.")
    graph = build_graph(llm=llm, checkpointer=InMemorySaver())
    assert await turn(graph, "what time is it?", ctx) == ["model+prepared", "tools", "model"]
    assert memory.recalls == ["what time is it?"]  # once per turn, not per model round
    assert all("[memory 3] Alice lives in Lyon" in system(c) for c in fake_ollama.chats)
    assert fake_ollama.chats[-1]["messages"][-1] == {
        "role": "tool",
        "tool_name": "clock",
        "content": "noon",
    }


async def test_a_failing_check_prepares_and_the_turn_still_answers(
    llm: OllamaClient, fake_ollama: FakeOllama
) -> None:
    async def broken_person_of(user: User) -> str:
        raise RuntimeError("identity store down")

    ctx = context(Memories(), person_of=broken_person_of)
    graph = build_graph(llm=llm, checkpointer=InMemorySaver())
    assert await turn(graph, "hi", ctx) == ["model+prepared"]
    assert fake_ollama.chats[-1]["messages"][-1]["content"] == "hi"


async def test_compaction_and_a_follow_up_question_in_one_prepare_step(
    llm: OllamaClient, fake_ollama: FakeOllama
) -> None:
    def respond(body: dict[str, Any]) -> Reply:
        prompt = system(body)
        if SUMMARY_MARKER in prompt:
            return Reply("Summary of the old turns.")
        if PLAN_MARKER in prompt:
            return Reply('{"steps": [], "question": "Which account do you mean?"}')
        return Reply("ok " + "w" * 300)

    fake_ollama.responder = respond
    ctx = context(compaction=CompactionConfig(), planner=PlannerConfig())
    ctx.num_ctx = 1024
    graph = build_graph(llm=llm, checkpointer=InMemorySaver())
    for i in range(3):  # below the threshold: straight to the model
        assert await turn(graph, f"turn {i} " + "z" * 300, ctx) == ["model"]
    ask = "first check my inbox, then archive the old mails, then tell me what is left"
    assert await turn(graph, ask, ctx) == ["model+prepared"]  # the question ends the turn
    state = (await graph.aget_state({"configurable": {"thread_id": "t"}})).values
    assert state["summary"] == "Summary of the old turns."
    assert state["plan"]["status"] == "asked"
    # Compaction dropped the old turns; the planner saw the kept history and asked.
    assert [m["content"] for m in state["messages"]][-2:] == [ask, "Which account do you mean?"]
    assert [m["content"][:6] for m in state["messages"]][:2] == ["turn 2", "ok www"]
    plan_call = next(c for c in fake_ollama.chats if PLAN_MARKER in system(c))
    assert plan_call["messages"][-1]["content"] == ask
    # ... from the state compaction left (the planner runs after it, in the same step).
    assert [m["content"][:6] for m in plan_call["messages"][1:]] == ["turn 2", "ok www", ask[:6]]
    # The answer to the question goes through prepare again (the planner resumes).
    assert await turn(graph, "the work one", ctx) == ["model+prepared"]


async def test_an_answered_question_without_a_plan_gets_a_real_answer(
    llm: OllamaClient, fake_ollama: FakeOllama
) -> None:
    plans = iter(
        [
            '{"steps": [], "question": "Which account do you mean?"}',
            '{"steps": [{"do": "look it up", "tool": null}]}',  # one step: nothing to plan
        ]
    )

    def respond(body: dict[str, Any]) -> Reply:
        if PLAN_MARKER in system(body):
            return Reply(next(plans))
        return Reply(f"answer to {body['messages'][-1]['content']}")

    fake_ollama.responder = respond
    ctx = context(planner=PlannerConfig())
    graph = build_graph(llm=llm, checkpointer=InMemorySaver())
    assert await turn(graph, "move the money, then close it, then tell me", ctx) == [
        "model+prepared"
    ]
    assert await turn(graph, "the savings one", ctx) == ["model+prepared"]
    state = (await graph.aget_state({"configurable": {"thread_id": "t"}})).values
    assert state["messages"][-1]["content"] == "answer to the savings one"
    assert state["plan"]["status"] == "answered"
    assert await turn(graph, "thanks", ctx) == ["model"]  # no planning call any more
    state = (await graph.aget_state({"configurable": {"thread_id": "t"}})).values
    assert state["messages"][-1]["content"] == "answer to thanks"
    assert sum(PLAN_MARKER in system(c) for c in fake_ollama.chats) == 2
