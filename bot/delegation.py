"""The ``delegate`` feature: the model hands a sub-task to a sub-agent with its own context.

The tool runs the task in the sub-agent graph (graphs/agent/subagent.py) with a fresh message
list, a subset of this turn's tools (never one the turn does not have), a step and token budget
(``OC_DELEGATE_MAX_STEPS``, ``OC_DELEGATE_MAX_TOKENS``: the defaults and the hard caps) and the
turn's model or one the admin allows (``OC_DELEGATE_MODELS``). Only the child's final answer
comes back, cut to :data:`RESULT_CHARS`; its tokens are never streamed to the chat.

The parent's rules hold in the child: it carries the turn's person, chat, approval policy and
the outside content the conversation has read (its taint), so an effectful call in the child
asks exactly as in the parent. Its approval pause surfaces to the parent's turn, which asks the
chat; the decision resumes the parent and, through it, the child. Outside content the child
read comes back as the parent's taint with its result. Nesting stops at
``OC_DELEGATE_MAX_DEPTH``: below it the tool is not offered.

Every delegation is counted (``oc_delegations{outcome}``) and logged on one line with the turn.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from typing import Any

from langgraph.errors import GraphBubbleUp
from langgraph.runtime import get_runtime

from opencomputer.bot.effects import OUTWARD, UNKNOWN, effects_of
from opencomputer.bot.events import Address
from opencomputer.bot.hooks import TOOL_STAGES, ToolLayer, ToolNext, compose, hookimpl
from opencomputer.bot.logs import current_turn_id
from opencomputer.bot.tools import Tool, ToolError, tool
from opencomputer.graphs.agent.nodes import run_tool_inprocess
from opencomputer.graphs.agent.prompts import compose_system_prompt
from opencomputer.graphs.agent.state import TurnContext
from opencomputer.graphs.agent.subagent import (
    SUBAGENT,
    SubagentLimits,
    build_subagent_graph,
    subagent_result,
)
from opencomputer.graphs.agent.toolscope import current_scope

__all__ = ["DELEGATE", "RESULT_CHARS", "SUBAGENT_PROMPT", "Delegator", "setup"]

logger = logging.getLogger(__name__)

DELEGATE = "delegate"
RESULT_CHARS = 4000
SHOWN_CHARS = 80
"""The most of a task the chat's progress line shows."""
"""The most of a child's answer the parent reads (its transcript never comes back)."""

ASKING = OUTWARD | {UNKNOWN}

SUBAGENT_PROMPT = (
    "You are a sub-agent: another assistant handed you one task. Do only that task, with the "
    "tools you were given. Your final message is returned to that assistant as the result, "
    "so state plainly what you found or did (or why you could not); no greetings, no "
    "questions back."
)


class Delegator:
    """Runs delegated tasks in the sub-agent graph within the limits of the settings."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.settings = app.settings
        self._graph: Any = None
        self.tool = _delegate_tool(self)

    def graph(self) -> Any:
        """The child graph, built on first use: its tools run through every feature's tool
        layers (metrics, the plugin sandbox), which exist only once all features are set up.
        """
        if self._graph is None:
            hooks = self.app.hooks
            layers = hooks.staged(hooks.call.oc_tool_layers(), TOOL_STAGES)
            executor = compose(layers, run_tool_inprocess)
            self._graph = build_subagent_graph(llm=self.app.llm, executor=executor)
        return self._graph

    def offered(self, ctx: TurnContext | None) -> bool:
        """Whether a turn at this depth may delegate."""
        depth = _depth(ctx) if ctx is not None else 0
        return depth < int(self.settings.delegate_max_depth)

    async def delegate(
        self,
        task: str,
        tools: list[str] | str | None = None,
        max_steps: int | None = None,
        max_tokens: int | None = None,
        model: str | None = None,
    ) -> str:
        """Run ``task`` in a child graph; its answer (or why it stopped) is the result."""
        ctx = _turn()
        depth = _depth(ctx)
        if not self.offered(ctx):
            self._count("refused")
            raise ToolError(f"sub-agents may not delegate further (depth {depth})")
        task = str(task or "").strip()
        if not task:
            self._count("refused")
            raise ToolError("task is empty: say what the sub-agent should do")
        try:
            child = self._child_context(ctx, depth, tools, max_steps, max_tokens, model)
        except ToolError:
            self._count("refused")
            raise
        scope = current_scope()
        if scope is not None and scope.calls > 1 and _may_pause(child):
            # A pause re-runs the whole tool round when the decision comes: the other calls
            # of this message would run twice. Alone, nothing else runs again.
            self._count("refused")
            raise ToolError(
                "a sub-agent with tools that may ask for approval must be the only tool call "
                "of its message: call delegate again on its own"
            )
        taint = list(scope.taint if scope is not None else ctx.taint)
        fresh: dict[str, Any] = {
            "messages": [{"role": "user", "content": task}],
            "tool_rounds": 0,
            "tokens": 0,
        }
        if taint:
            fresh["taint"] = taint
        started = time.perf_counter()
        label = uuid.uuid4().hex[:8]
        await _show(ctx, task)
        try:
            state = await asyncio.wait_for(
                self.graph().ainvoke(fresh, context=child), timeout=self.settings.delegate_timeout
            )
        except GraphBubbleUp:
            self._log(label, ctx, child, "paused", 0, 0, started)
            self._count("paused")
            raise  # the child asks for approval: the parent's turn asks the chat
        except TimeoutError:
            self._log(label, ctx, child, "timeout", 0, 0, started)
            self._count("timeout")
            raise ToolError(
                f"the sub-agent ran out of time ({self.settings.delegate_timeout:g} s) and was "
                "stopped; do the task yourself or delegate a smaller part"
            ) from None
        except Exception:
            self._count("error")
            raise
        result = subagent_result(state, child)
        # What the child read taints the parent (its answer may carry instructions from it).
        if scope is not None:
            scope.read += [f"{DELEGATE}: {t}" for t in result.taint if t not in taint]
        self._log(label, ctx, child, result.outcome, result.tool_rounds, result.tokens, started)
        self._count(result.outcome)
        return _result_text(result.outcome, result.text, child.max_tool_rounds, result.tokens)

    def _child_context(
        self,
        ctx: TurnContext,
        depth: int,
        tools: list[str] | str | None,
        max_steps: int | None,
        max_tokens: int | None,
        model: str | None,
    ) -> TurnContext:
        """The child's turn context: the parent's person, chat, policy and services; its own
        prompt, tools, budget and (maybe) model; no stream, no images.
        """
        settings = self.settings
        available = {t.name: t for t in ctx.tools}
        names = _names(tools)
        if names is None:
            names = list(available)
        missing = [n for n in names if n not in available]
        if missing:
            have = ", ".join(sorted(n for n in available if n != DELEGATE)) or "none"
            raise ToolError(
                f"this turn has no tool named {', '.join(map(repr, missing))}; "
                f"a sub-agent may be given only these: {have}"
            )
        child_depth = depth + 1
        granted = [
            available[n]
            for n in dict.fromkeys(names)
            if n != DELEGATE or child_depth < settings.delegate_max_depth
        ]
        chosen = (model or "").strip() or ctx.model
        if chosen != ctx.model and chosen not in settings.delegate_models:
            allowed = ", ".join([ctx.model, *settings.delegate_models])
            raise ToolError(f"model {chosen!r} is not allowed for sub-agents (allowed: {allowed})")
        steps = _bounded(max_steps, settings.delegate_max_steps)
        tokens = _bounded(max_tokens, settings.delegate_max_tokens)
        return dataclasses.replace(
            ctx,
            model=chosen,
            system_prompt=compose_system_prompt(SUBAGENT_PROMPT),  # date and safety rules too
            tools=granted,
            stream=None,
            max_tool_rounds=steps,
            services={**ctx.services, SUBAGENT: SubagentLimits(child_depth, tokens)},
            taint=[],  # the child's state carries the parent's taint (see delegate)
            turn_key=None,
            images=[],
        )

    def _count(self, outcome: str) -> None:
        self.app.metrics.delegations.labels(outcome).inc()

    @staticmethod
    def _log(
        label: str,
        ctx: TurnContext,
        child: TurnContext,
        outcome: str,
        rounds: int,
        tokens: int,
        started: float,
    ) -> None:
        logger.info(
            "delegation %s turn=%s depth=%d model=%s tools=%s outcome=%s steps=%d/%d "
            "tokens=%d seconds=%.2f",
            label,
            current_turn_id() or ctx.turn_key or "-",
            _depth(child),
            child.model,
            ",".join(t.name for t in child.tools) or "-",
            outcome,
            rounds,
            child.max_tool_rounds,
            tokens,
            time.perf_counter() - started,
        )


def _turn() -> TurnContext:
    try:
        ctx = get_runtime(TurnContext).context
    except Exception as exc:  # called outside a graph run
        raise ToolError("delegate can only be used during a conversation") from exc
    if not isinstance(ctx, TurnContext):
        raise ToolError("delegate can only be used during a conversation")
    return ctx


async def _show(ctx: TurnContext, task: str) -> None:
    """A progress line in the chat (under the plan's checklist when there is one); the next
    model round's text replaces it. The child's own tokens are never shown.
    """
    if ctx.stream is None:
        return
    line = " ".join(task.split())
    line = line if len(line) <= SHOWN_CHARS else line[: SHOWN_CHARS - 1] + "…"
    try:
        await ctx.stream.token(f"\n↳ delegated: {line}\n")
    except Exception as exc:  # progress is a courtesy: a failed edit must not stop the task
        logger.debug("could not show the delegation: %s", exc)


def _may_pause(child: TurnContext) -> bool:
    """Whether a call of the child could wait for approval (any tool with an outward effect,
    undeclared effects, or marked dangerous; a nested child has a subset of these tools).
    """
    return any(t.dangerous or effects_of(t) & ASKING for t in child.tools)


def _depth(ctx: TurnContext) -> int:
    limits = ctx.services.get(SUBAGENT)
    return limits.depth if isinstance(limits, SubagentLimits) else 0


def _names(tools: list[str] | str | None) -> list[str] | None:
    """Tool names as the model sent them (a list, or one comma-separated string)."""
    if tools is None:
        return None
    items = tools.split(",") if isinstance(tools, str) else [str(t) for t in tools]
    return [name.strip() for name in items if name.strip()]


def _bounded(asked: int | None, cap: int) -> int:
    """The model's ask within 1..cap; the cap when it asked nothing (or nonsense)."""
    try:
        value = int(asked) if asked is not None else cap
    except (TypeError, ValueError):
        value = cap
    return max(1, min(value, cap))


def _result_text(outcome: str, text: str, steps: int, tokens: int) -> str:
    """The tool result the parent reads."""
    if len(text) > RESULT_CHARS:
        text = text[:RESULT_CHARS] + f"\n[… cut: the sub-agent's answer was {len(text)} characters]"
    if outcome == "ok":
        return text or "(the sub-agent finished without an answer)"
    spent = f"its {steps} tool rounds" if outcome == "steps" else f"its token budget ({tokens})"
    note = (
        f"note: the sub-agent stopped before finishing: it used {spent}. "
        "Its task is NOT done; do the rest yourself or delegate a smaller part."
    )
    return f"{note}\nIts last words: {text}" if text else note


def _delegate_tool(delegator: Delegator) -> Tool:
    # effects=[]: delegating does nothing outside by itself; each call the child makes is
    # reviewed in the child. trusted_output: the answer is outside content only when the
    # child read some, which comes back through the tool scope instead.
    @tool(name=DELEGATE, effects=[], trusted_output=True)
    async def delegate(
        task: str,
        tools: list[str] | None = None,
        max_steps: int | None = None,
        max_tokens: int | None = None,
        model: str | None = None,
    ) -> str:
        """Hand a self-contained sub-task to a sub-agent that works on it with its own context
        and returns only its result (use it for research or multi-step work whose details you
        do not need).

        Args:
            task: Everything the sub-agent needs to know: it sees nothing of this conversation.
            tools: Names of your tools it may use (default: all of yours).
            max_steps: Most tool rounds it may take (capped by the server).
            max_tokens: Most tokens it may use (capped by the server).
            model: Another model for it, if the server allows one (default: yours).
        """
        return await delegator.delegate(task, tools, max_steps, max_tokens, model)

    return delegate.__oc_tool__  # type: ignore[attr-defined,no-any-return]


class _Delegation:
    """Delegation on the seam: the tool where delegation is allowed, and its route."""

    def __init__(self, delegator: Delegator) -> None:
        self.delegator = delegator

    @hookimpl
    def oc_turn_tools(self, address: Address) -> list[Tool]:
        return [self.delegator.tool] if self.delegator.offered(None) else []

    @hookimpl(tryfirst=True)  # ahead of the plugins' route, which bounds every call to 30 s
    def oc_tool_layers(self) -> list[tuple[str, ToolLayer]]:
        return [("route", self.route)]

    async def route(self, tool: Tool, arguments: dict[str, Any], call_next: ToolNext) -> str:
        """Run ``delegate`` here under its own time limit; every other tool goes on.

        Matched by its parameter schema's identity: the approvals layer may hand the graph a
        copy of the tool (secrets redacted), which shares it; a plugin's ``delegate`` cannot.
        """
        if tool.parameters is not self.delegator.tool.parameters:
            return await call_next(tool, arguments)
        return str(await tool.call(arguments))


async def setup(app: Any) -> None:
    """Feature entry point: offer ``delegate`` (unless ``OC_DELEGATE_MAX_DEPTH`` is 0)."""
    app.hooks.register(_Delegation(Delegator(app)), DELEGATE)
