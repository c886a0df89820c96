"""Planning: multi-step requests get a short plan, executed and reported step by step.

Whether to plan is decided by the text alone (numbered lists, "then ... then"), so a simple
request costs no extra model call. A plan is JSON from the model: steps (each naming the tool it
expects to use) or one follow-up question when the request is ambiguous. Each step is one model
round (with its tools); a step whose tools failed makes the model revise the remaining steps.
Progress is shown by editing the reply message, which the final answer then replaces.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from langgraph.runtime import Runtime

from opencomputer.bot.ollama import ModelClient
from opencomputer.graphs.agent.nodes import route_after_model
from opencomputer.graphs.agent.state import AgentState, TurnContext

__all__ = [
    "PLAN_MARKER",
    "AdvanceNode",
    "PlanNode",
    "PlannerConfig",
    "format_plan",
    "needs_plan",
    "plan_block",
    "plan_due",
    "route_after_advance",
    "route_after_plan",
    "route_after_planned_model",
]

logger = logging.getLogger(__name__)

PLAN_MARKER = "You plan multi-step requests"
_PLAN_PROMPT = (
    PLAN_MARKER + " for an assistant that has these tools:\n{tools}\n\nBreak the user's "
    "request into at most {max_steps} short steps, each naming the tool it needs (or null). "
    'Answer with JSON only: {{"steps": [{{"do": "...", "tool": "name or null"}}], '
    '"question": null}}. If the request is too ambiguous to act on, give no steps and put '
    'one short follow-up question in "question" instead.'
)
_REVISE_PROMPT = (
    PLAN_MARKER + " and one step failed. Tools:\n{tools}\n\nPlan so far:\n{plan}\n\nStep "
    "{number} failed with: {error}\nWrite the remaining steps again so the request can still "
    'be done (another tool, other arguments, or skip it). JSON only: {{"steps": [{{"do": '
    '"...", "tool": "name or null"}}]}}'
)
_SEQUENCE = re.compile(r"\b(then|after that|afterwards|next|finally|and also|as well as)\b", re.I)
_LIST_ITEM = re.compile(r"(?m)^\s*(?:\d+[.)]|[-*•])\s+\S")


@dataclass(frozen=True, slots=True)
class PlannerConfig:
    """Planning limits."""

    max_steps: int = 6
    max_revisions: int = 2


def needs_plan(text: str) -> bool:
    """Cheap test for a multi-step request: a list of items or two sequencing words."""
    if len(text) < 30:
        return False
    return len(_LIST_ITEM.findall(text)) >= 2 or len(_SEQUENCE.findall(text)) >= 2


def _parse(text: str) -> dict[str, Any]:
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        return {}
    try:
        data = orjson.loads(text[start : end + 1])
    except orjson.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def _steps(data: dict[str, Any], limit: int) -> list[dict[str, Any]]:
    steps = []
    for item in data.get("steps") or []:
        if isinstance(item, str):
            item = {"do": item}
        if isinstance(item, dict) and str(item.get("do", "")).strip():
            tool = item.get("tool")
            steps.append(
                {
                    "do": str(item["do"]).strip(),
                    "tool": str(tool) if tool and str(tool).lower() != "null" else None,
                    "status": "pending",
                    "result": "",
                }
            )
    return steps[:limit]


def format_plan(plan: dict[str, Any]) -> str:
    """The plan as a checklist (progress messages and ``/plan``)."""
    marks = {"done": "✅", "failed": "❌", "running": "▶️", "pending": "▫️"}
    lines = [f"Plan: {plan.get('goal', '')}".rstrip(": ")]
    for i, step in enumerate(plan.get("steps", []), 1):
        tool = f" ({step['tool']})" if step.get("tool") else ""
        result = f" — {step['result']}" if step.get("result") else ""
        lines.append(f"{marks.get(step.get('status', ''), '▫️')} {i}. {step['do']}{tool}{result}")
    if plan.get("question"):
        lines.append(f"Asked: {plan['question']}")
    lines.append(f"Status: {plan.get('status', '')}")
    return "\n".join(lines)


def plan_block(plan: dict[str, Any]) -> str:
    """System-prompt section telling the model which step to do now (or to finish)."""
    if not plan.get("active"):
        return ""
    checklist = format_plan(plan)
    if plan.get("status") == "running":
        step = plan["steps"][plan["current"]]
        tool = f" Use the tool `{step['tool']}` if it helps." if step.get("tool") else ""
        return (
            f"You are carrying out a plan, one step at a time.\n{checklist}\n\nDo step "
            f"{plan['current'] + 1} now: {step['do']}.{tool} Then reply with one short line "
            "giving the result of this step only."
        )
    return (
        f"The plan for this request has been carried out.\n{checklist}\n\nNow write the final "
        "answer to the user's request from these results. If a step failed, say so plainly."
    )


def _tool_list(ctx: TurnContext) -> str:
    return "\n".join(f"- {t.name}: {t.description}" for t in ctx.tools) or "- (none)"


async def _show(ctx: TurnContext, plan: dict[str, Any]) -> None:
    if ctx.stream is not None:
        await ctx.stream.restart()
        await ctx.stream.token(format_plan(plan))


def plan_due(state: AgentState, ctx: TurnContext) -> bool:
    """Whether :class:`PlanNode` has anything to do or say this turn (text tests only).

    True when a plan is to be made or answered, and also when the previous plan is still
    marked active or asked a question (the node closes it, and its status decides the route).
    """
    previous = state.get("plan") or {}
    if previous.get("active") or previous.get("status") == "asked":
        return True
    if ctx.services.get("planner") is None:
        return False
    messages = state.get("messages", [])
    return bool(messages) and needs_plan(str(messages[-1].get("content") or ""))


class PlanNode:
    """Decide cheaply whether to plan; if so ask the model for steps or a question."""

    def __init__(self, llm: ModelClient) -> None:
        self.llm = llm

    async def __call__(self, state: AgentState, runtime: Runtime[TurnContext]) -> dict[str, Any]:
        """Return the plan update (or nothing for a simple request)."""
        ctx = runtime.context
        cfg: PlannerConfig | None = ctx.services.get("planner")
        previous = state.get("plan") or {}
        idle = {"plan": {**previous, "active": False}} if previous.get("active") else {}
        messages = state.get("messages", [])
        text = str(messages[-1].get("content") or "") if messages else ""
        answering = previous.get("status") == "asked"  # the user answered our question
        if answering:  # answered, whatever comes next: the model answers if no plan follows
            idle = {"plan": {**previous, "active": False, "status": "answered"}}
        if cfg is None or not (answering or needs_plan(text)):
            return idle
        prompt = _PLAN_PROMPT.format(tools=_tool_list(ctx), max_steps=cfg.max_steps)
        try:
            result = await self.llm.chat(
                ctx.model,
                [{"role": "system", "content": prompt}, *messages[-6:]],
                options={"num_ctx": ctx.num_ctx, **ctx.options},
                keep_alive=ctx.keep_alive,
            )
        except Exception as exc:
            logger.warning("planning failed, answering directly: %s", exc)
            return idle
        data = _parse(result.content)
        steps = _steps(data, cfg.max_steps)
        question = str(data.get("question") or "").strip()
        goal = f"{previous.get('goal', '')} ({text})" if answering else text
        plan: dict[str, Any] = {
            "goal": goal[:300],
            "steps": steps,
            "current": 0,
            "revisions": 0,
            "created_at": time.time(),
            "question": None,
            "mark": len(messages),
        }
        if question and not steps:
            plan.update(status="asked", active=False, question=question)
            return {"plan": plan, "messages": [{"role": "assistant", "content": question}]}
        if len(steps) < 2:
            return idle  # nothing to sequence: answer directly
        steps[0]["status"] = "running"
        plan.update(status="running", active=True)
        await _show(ctx, plan)
        return {"plan": plan, "tool_rounds": 0}


def route_after_plan(state: AgentState) -> Literal["model", "__end__"]:
    """A follow-up question ends the turn; everything else goes to the model."""
    plan = state.get("plan") or {}
    return "__end__" if plan.get("status") == "asked" and not plan.get("active") else "model"


def route_after_planned_model(
    state: AgentState, runtime: Runtime[TurnContext]
) -> Literal["tools", "advance", "__end__"]:
    """Tools first; then, inside a plan, move to the next step instead of finishing."""
    if route_after_model(state, runtime) == "tools":
        return "tools"
    return "advance" if (state.get("plan") or {}).get("active") else "__end__"


def _step_error(messages: list[dict[str, Any]]) -> str | None:
    """The error of the step's last tool result, if it failed."""
    for message in reversed(messages):
        if message.get("role") == "tool":
            content = str(message.get("content") or "")
            return content if content.startswith("error:") else None
    return None


class AdvanceNode:
    """Close the step that just ran: next step, a revised plan, or the final answer."""

    def __init__(self, llm: ModelClient) -> None:
        self.llm = llm

    async def __call__(self, state: AgentState, runtime: Runtime[TurnContext]) -> dict[str, Any]:
        """Return the plan update after the step that just ran."""
        ctx = runtime.context
        cfg: PlannerConfig = ctx.services.get("planner") or PlannerConfig()
        plan = orjson.loads(orjson.dumps(state.get("plan") or {}))
        messages = state.get("messages", [])
        if plan.get("status") != "running":  # the final answer was written
            plan.update(
                status="failed" if plan.get("status") == "failing" else "done", active=False
            )
            return {"plan": plan}
        index = plan["current"]
        step = plan["steps"][index]
        error = _step_error(messages[plan.get("mark", 0) :])
        step["result"] = (
            str(messages[-1].get("content") or "").strip().splitlines()[0][:200]
            if (str(messages[-1].get("content") or "").strip())
            else ""
        )
        if error is None:
            step["status"] = "done"
            plan["current"] = index + 1
        else:
            step.update(status="failed", result=error[:200])
            revised = (
                await self._revise(ctx, plan, index, error)
                if plan["revisions"] < cfg.max_revisions
                else None
            )
            if revised:
                plan["revisions"] += 1
                plan["steps"] = plan["steps"][: index + 1] + revised[: cfg.max_steps]
                plan["current"] = index + 1
            else:
                plan["current"] = len(plan["steps"])
                plan["status"] = "failing"
        plan["mark"] = len(messages)
        if plan["current"] < len(plan["steps"]) and plan["status"] == "running":
            plan["steps"][plan["current"]]["status"] = "running"
        elif plan["status"] == "running":
            plan["status"] = "finishing"
        await _show(ctx, plan)
        if plan["status"] != "running" and ctx.stream is not None:
            await ctx.stream.restart()  # the final answer replaces the checklist
        return {"plan": plan, "tool_rounds": 0}

    async def _revise(
        self, ctx: TurnContext, plan: dict[str, Any], index: int, error: str
    ) -> list[dict[str, Any]]:
        prompt = _REVISE_PROMPT.format(
            tools=_tool_list(ctx), plan=format_plan(plan), number=index + 1, error=error[:300]
        )
        try:
            result = await self.llm.chat(
                ctx.model,
                [{"role": "system", "content": prompt}, {"role": "user", "content": plan["goal"]}],
                options={"num_ctx": ctx.num_ctx, **ctx.options},
                keep_alive=ctx.keep_alive,
            )
        except Exception as exc:
            logger.warning("plan revision failed: %s", exc)
            return []
        return _steps(_parse(result.content), 10)


def route_after_advance(state: AgentState) -> Literal["model", "__end__"]:
    """Back to the model for the next step or the final answer; end once that is written."""
    plan = state.get("plan") or {}
    if plan.get("active") and plan.get("status") in ("running", "finishing", "failing"):
        return "model"
    return "__end__"
