"""The sub-agent graph: a delegated task runs here, with its own context and a budget.

A lighter variant of the agent graph (graphs/agent/graph.py): model -> (tools -> model)* ->
end, without recall, compaction, planning or streaming. The child starts from a fresh message
list holding only its task and sees only the tools it was given. Its tool node is the agent's
own :class:`~graphs.agent.nodes.ToolNode`, so approvals and provenance work exactly as in the
parent: the child state's ``taint`` starts with the parent's, its effectful calls ask, and
what it reads taints it further.

It is compiled without a checkpointer of its own and invoked *inside* the parent's tool node
(by the ``delegate`` tool), which makes it a LangGraph subgraph of the parent's run: it is
checkpointed by the parent's checkpointer under the parent tool task's namespace (not a thread
of its own), so an approval ``interrupt`` in the child pauses the parent, the parent's turn
asks the chat, and resuming the parent's thread resumes the child where it stopped, after a
restart too. A separate thread id would lose that link.

The budget: ``TurnContext.max_tool_rounds`` is the child's step limit; :class:`SubagentLimits`
(in ``TurnContext.services``) holds its depth and token limit. The model node counts the tokens
the server reports in the state and caps each answer at what is left.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from langgraph.graph import START, StateGraph
from langgraph.runtime import Runtime

from opencomputer.bot.ollama import ModelClient
from opencomputer.graphs.agent.nodes import ToolNode, run_tool_inprocess
from opencomputer.graphs.agent.state import AgentState, ToolExecutor, TurnContext
from opencomputer.graphs.agent.trim import trim_history

__all__ = [
    "SUBAGENT",
    "SubagentLimits",
    "SubagentResult",
    "SubagentState",
    "build_subagent_graph",
    "subagent_result",
]

SUBAGENT = "subagent"
"""The key of :class:`SubagentLimits` in ``TurnContext.services`` (absent in a top-level turn)."""


@dataclass(frozen=True, slots=True)
class SubagentLimits:
    """How deep this sub-agent sits (1: the parent is the conversation's turn) and its tokens."""

    depth: int
    max_tokens: int


class SubagentState(AgentState, total=False):
    """The agent's state plus the tokens the child has used."""

    tokens: int


@dataclass(frozen=True, slots=True)
class SubagentResult:
    """How a child run ended: ``ok``, ``steps`` or ``tokens`` (budget spent), and its text."""

    outcome: Literal["ok", "steps", "tokens"]
    text: str
    tool_rounds: int
    tokens: int
    taint: list[str]


def _limits(ctx: TurnContext) -> SubagentLimits:
    limits = ctx.services.get(SUBAGENT)
    return limits if isinstance(limits, SubagentLimits) else SubagentLimits(1, 1 << 30)


class SubagentModelNode:
    """One model round of the child: no stream, no images, tokens counted against its limit."""

    def __init__(self, llm: ModelClient) -> None:
        self.llm = llm

    async def __call__(self, state: SubagentState, runtime: Runtime[TurnContext]) -> dict[str, Any]:
        """Ask the model; the answer is appended, the tokens it cost are added up."""
        ctx = runtime.context
        used = state.get("tokens", 0)
        left = max(1, _limits(ctx).max_tokens - used)
        reserve = max(256, ctx.num_ctx // 4)
        budget = ctx.num_ctx - reserve - len(ctx.system_prompt) // 3
        history = trim_history(state.get("messages", []), budget)
        options: dict[str, Any] = {"num_ctx": ctx.num_ctx, **ctx.options}
        options["num_predict"] = min(int(options.get("num_predict") or left), left)
        result = await self.llm.chat(
            ctx.model,
            [{"role": "system", "content": ctx.system_prompt}, *history],
            tools=[t.spec for t in ctx.tools] or None,
            options=options,
            keep_alive=ctx.keep_alive,
        )
        message: dict[str, Any] = {"role": "assistant", "content": result.content}
        if result.tool_calls:
            message["tool_calls"] = [
                {"function": {"name": c.name, "arguments": c.arguments}} for c in result.tool_calls
            ]
        spent = result.prompt_tokens + result.completion_tokens
        return {"messages": [message], "tokens": used + spent}


async def route_in_budget(
    state: SubagentState, runtime: Runtime[TurnContext]
) -> Literal["tools", "__end__"]:
    """Run the tools the child asked for while steps and tokens are left; else it stops."""
    last = state["messages"][-1]
    if not last.get("tool_calls"):
        return "__end__"
    if state.get("tool_rounds", 0) >= runtime.context.max_tool_rounds:
        return "__end__"
    if state.get("tokens", 0) >= _limits(runtime.context).max_tokens:
        return "__end__"
    return "tools"


def build_subagent_graph(*, llm: ModelClient, executor: ToolExecutor = run_tool_inprocess) -> Any:
    """Compile the child graph (no checkpointer: it uses its parent's, see the module doc)."""
    graph = StateGraph(SubagentState, context_schema=TurnContext)
    graph.add_node("model", SubagentModelNode(llm))
    graph.add_node("tools", ToolNode(executor))
    graph.add_edge(START, "model")
    graph.add_conditional_edges("model", route_in_budget, ["tools", "__end__"])
    graph.add_edge("tools", "model")
    return graph.compile(name="subagent")


def subagent_result(state: dict[str, Any], ctx: TurnContext) -> SubagentResult:
    """What the finished child run amounts to (its last answer, or why it stopped early)."""
    messages = state.get("messages") or []
    last = messages[-1] if messages else {}
    rounds, tokens = int(state.get("tool_rounds", 0)), int(state.get("tokens", 0))
    taint = list(state.get("taint") or [])
    text = str(last.get("content") or "").strip() if last.get("role") == "assistant" else ""
    if not last.get("tool_calls"):
        return SubagentResult("ok", text, rounds, tokens, taint)
    over: Literal["steps", "tokens"] = "steps" if rounds >= ctx.max_tool_rounds else "tokens"
    return SubagentResult(over, text, rounds, tokens, taint)
