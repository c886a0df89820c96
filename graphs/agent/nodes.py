"""Graph nodes: call the model, run the tools it asked for, decide where to go next."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Literal

import orjson
from langgraph.errors import GraphBubbleUp
from langgraph.runtime import Runtime

from opencomputer.bot.ollama import ModelClient
from opencomputer.bot.outfiles import hand_over_files
from opencomputer.bot.tools import Tool, ToolError
from opencomputer.graphs.agent.approval import review_calls
from opencomputer.graphs.agent.images import VisionCache, attach_images
from opencomputer.graphs.agent.reducer import merge_taint
from opencomputer.graphs.agent.state import AgentState, ToolExecutor, TurnContext
from opencomputer.graphs.agent.toolscope import tool_scope
from opencomputer.graphs.agent.trim import trim_history

__all__ = ["ModelNode", "ToolNode", "route_after_model", "run_tool_inprocess"]

logger = logging.getLogger(__name__)


class ModelNode:
    """Calls Ollama with the system prompt, the trimmed history and the turn's tools."""

    def __init__(self, llm: ModelClient) -> None:
        self.llm = llm
        self.vision = VisionCache()

    async def __call__(self, state: AgentState, runtime: Runtime[TurnContext]) -> dict[str, Any]:
        """One model round; the reply (text and tool calls) is appended to the history."""
        ctx = runtime.context
        reserve = max(256, ctx.num_ctx // 4)  # room for the answer
        system = {"role": "system", "content": ctx.system_prompt}
        budget = ctx.num_ctx - reserve - len(ctx.system_prompt) // 3
        history = trim_history(state.get("messages", []), budget)
        if ctx.images:  # this turn's images ride on its message in the request only
            vision = await self.vision.supports(self.llm, ctx.model)
            history = attach_images(history, ctx.images, vision=vision, model=ctx.model)
        if ctx.stream is not None and state.get("tool_rounds"):
            await ctx.stream.restart()
        result = await self.llm.chat(
            ctx.model,
            [system, *history],
            tools=[t.spec for t in ctx.tools] or None,
            options={"num_ctx": ctx.num_ctx, **ctx.options},
            keep_alive=ctx.keep_alive,
            on_token=ctx.stream.token if ctx.stream is not None else None,
        )
        message: dict[str, Any] = {"role": "assistant", "content": result.content}
        if result.tool_calls:
            message["tool_calls"] = [
                {"function": {"name": c.name, "arguments": c.arguments}} for c in result.tool_calls
            ]
        return {"messages": [message]}


async def run_tool_inprocess(tool: Tool, arguments: dict[str, Any]) -> str:
    """Default executor: run in this process with a time limit (plugins may isolate instead)."""
    result = await asyncio.wait_for(tool.call(arguments), timeout=30)
    if isinstance(result, str):
        return result
    if (note := hand_over_files(result)) is not None:  # sent after the answer; the model
        return note  # reads a note for each file
    return orjson.dumps(result, default=str).decode()


class ToolNode:
    """Runs every tool call of the last model message; failures become messages, not crashes."""

    def __init__(self, executor: ToolExecutor = run_tool_inprocess) -> None:
        self.executor = executor

    async def __call__(self, state: AgentState, runtime: Runtime[TurnContext]) -> dict[str, Any]:
        """Run the calls (in parallel, after any approval); results become tool messages."""
        ctx = runtime.context
        calls = state["messages"][-1].get("tool_calls") or []
        available = {t.name: t for t in ctx.tools}
        fns = [call.get("function") or {} for call in calls]
        taint = merge_taint(state.get("taint"), ctx.taint)
        # may pause the graph for a person's approval
        refused = review_calls(
            fns, available, taint=taint, messages=state["messages"], policy=ctx.approval_policy
        )
        # A sub-agent (``delegate``) starts from, and reports, outside content through the scope.
        with tool_scope(taint, len(fns)) as scope:
            results = await asyncio.gather(
                *(
                    _refuse(fn, refused[i]) if i in refused else self._run(available, fn)
                    for i, fn in enumerate(fns)
                )
            )
        # Output of a tool that read outside content taints the rest of the conversation.
        read = [
            name
            for i, (name, _content) in enumerate(results)
            if i not in refused
            and (tool := available.get(name)) is not None
            and not tool.trusted_output
        ]
        update: dict[str, Any] = {
            "messages": [
                {"role": "tool", "tool_name": name, "content": content} for name, content in results
            ],
            "tool_rounds": state.get("tool_rounds", 0) + 1,
        }
        if read or ctx.taint or scope.read:
            update["taint"] = [*ctx.taint, *(f"tool {name}" for name in read), *scope.read]
        return update

    async def _run(self, available: dict[str, Tool], fn: dict[str, Any]) -> tuple[str, str]:
        name = str(fn.get("name", ""))
        tool = available.get(name)
        if tool is None:
            return name, f"error: no tool named {name!r} is available here"
        args = fn.get("arguments") or {}
        try:
            return name, await self.executor(tool, args)
        except GraphBubbleUp:  # a sub-agent paused for approval: the whole graph pauses
            raise
        except ToolError as exc:
            return name, f"error: {exc}"
        except TimeoutError:
            return name, f"error: {name} took too long and was stopped"
        except TypeError as exc:
            return name, f"error: bad arguments for {name}: {exc}"
        except Exception as exc:  # a tool bug must not end the turn
            logger.exception("tool %s failed", name)
            return name, f"error: {name} failed ({type(exc).__name__})"


async def _refuse(fn: dict[str, Any], reason: str) -> tuple[str, str]:
    return str(fn.get("name", "")), reason


def route_after_model(
    state: AgentState, runtime: Runtime[TurnContext]
) -> Literal["tools", "__end__"]:
    """Run tools if the model asked for some (and the round limit allows), else finish."""
    last = state["messages"][-1]
    if last.get("tool_calls") and state.get("tool_rounds", 0) < runtime.context.max_tool_rounds:
        return "tools"
    return "__end__"
