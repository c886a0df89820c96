"""Compaction: when a conversation nears the context window, summarise its older turns.

The summary goes into the state (``summary``) and the summarised messages are removed from it
with a drop marker (see :mod:`graphs.agent.reducer`), so the checkpoint and every later prompt
really shrink. The system prompt and the recent turns stay as they were. Compaction runs inside
the conversation's own turn, so it never holds up another conversation.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from langgraph.runtime import Runtime

from opencomputer.bot.ollama import ModelClient
from opencomputer.graphs.agent.reducer import drop_marker
from opencomputer.graphs.agent.state import AgentState, TurnContext
from opencomputer.graphs.agent.trim import estimate_tokens

__all__ = [
    "SUMMARY_MARKER",
    "CompactNode",
    "CompactionConfig",
    "WindowProbe",
    "compaction_due",
    "effective_window",
    "summary_block",
]

logger = logging.getLogger(__name__)

SUMMARY_MARKER = "You compact a chat conversation"
_SUMMARY_PROMPT = (
    SUMMARY_MARKER + " so that it can continue later without its older turns. Merge the "
    "previous summary (if any) with the transcript below into one concise summary. Keep every "
    "fact the user told about themselves, names, numbers, dates, decisions, preferences and "
    "open tasks; drop small talk. At most {words} words. Answer with the summary only."
)


@dataclass(frozen=True, slots=True)
class CompactionConfig:
    """When to compact (share of the usable window) and how much recent history to keep."""

    compact_at: float = 0.7
    keep_share: float = 0.35


class WindowProbe:
    """The effective context window of a model: ``OC_NUM_CTX`` if set, else ``/api/show``.

    When ``OC_NUM_CTX`` is not set explicitly, the window is the smaller of its default and the
    model's own ``context_length`` (asked once per model): a larger value would make Ollama
    reserve memory the model cannot use.
    """

    def __init__(self, llm: ModelClient, *, explicit: bool) -> None:
        self.llm = llm
        self.explicit = explicit
        self._known: dict[str, int | None] = {}

    async def __call__(self, model: str, configured: int) -> int:
        """The window for ``model`` given the configured ``num_ctx``."""
        if self.explicit:
            return configured
        if model not in self._known:
            try:
                check = await self.llm.check_model(model, needs_tools=False)
                self._known[model] = check.context_length
            except Exception as exc:
                logger.debug("context length of %s unknown: %s", model, exc)
                return configured
        known = self._known[model]
        return min(configured, known) if known else configured


async def effective_window(ctx: TurnContext) -> int:
    """The window this turn works with (``num_ctx`` unless a probe knows better)."""
    probe = ctx.services.get("window")
    return int(await probe(ctx.model, ctx.num_ctx)) if probe is not None else ctx.num_ctx


def summary_block(summary: str) -> str:
    """The system-prompt section holding the summary of compacted turns."""
    if not summary:
        return ""
    return (
        f"Summary of the earlier part of this conversation (older turns were condensed):\n{summary}"
    )


def _tokens(text: str) -> int:
    return int(len(text) / 3.5) + 6


def choose_cut(messages: list[dict[str, Any]], keep_budget: int) -> int:
    """Index of the first kept message: a user turn, recent turns within ``keep_budget``.

    The newest user turn (the one being answered) is always kept.
    """
    starts = [i for i, m in enumerate(messages) if m.get("role") == "user"]
    if len(starts) < 2:
        return 0
    sizes = [estimate_tokens(m) for m in messages]
    for start in starts[1:]:
        if sum(sizes[start:]) <= keep_budget:
            return start
    return starts[-1]


def _transcript(messages: list[dict[str, Any]]) -> list[str]:
    lines = []
    for m in messages:
        role = m.get("role")
        text = str(m.get("content") or "").strip()
        if role == "tool":
            lines.append(f"Tool {m.get('tool_name', '')}: {text[:500]}")
        elif role == "assistant" and m.get("tool_calls"):
            names = ", ".join(c.get("function", {}).get("name", "") for c in m["tool_calls"])
            lines.append(f"Assistant (called {names}): {text}".rstrip(": "))
        elif text:
            lines.append(f"{'User' if role == 'user' else 'Assistant'}: {text}")
    return lines


async def _due(state: AgentState, ctx: TurnContext) -> tuple[CompactionConfig, int, int] | None:
    """``(config, window, usable)`` when the prompt is near the window, else None."""
    cfg: CompactionConfig | None = ctx.services.get("compaction")
    if cfg is None:
        return None
    window = await effective_window(ctx)
    usable = window - max(256, window // 4)
    fixed = (
        _tokens(ctx.system_prompt)
        + _tokens(state.get("summary", ""))
        + sum(_tokens(m.get("text", "")) for m in state.get("recalled", []))
    )
    total = fixed + sum(estimate_tokens(m) for m in state.get("messages", []))
    return (cfg, window, usable) if total > cfg.compact_at * usable else None


async def compaction_due(state: AgentState, ctx: TurnContext) -> bool:
    """Whether :class:`CompactNode` has work this turn: a token estimate, no model call.

    The window probe asks the model server once per model, then answers from memory.
    """
    return await _due(state, ctx) is not None


class CompactNode:
    """Summarise older turns into the state when the prompt nears the window."""

    def __init__(self, llm: ModelClient) -> None:
        self.llm = llm

    async def __call__(self, state: AgentState, runtime: Runtime[TurnContext]) -> dict[str, Any]:
        """Compact if needed; return the state update (empty when not)."""
        ctx = runtime.context
        due = await _due(state, ctx)
        if due is None:
            return {}
        cfg, window, usable = due
        messages = state.get("messages", [])
        summary = state.get("summary", "")
        cut = choose_cut(messages, int(usable * cfg.keep_share))
        if cut <= 0:
            return {}
        try:
            new_summary = await self._summarise(ctx, summary, messages[:cut], window, usable)
        except Exception as exc:  # the model node still trims; compaction can wait a turn
            logger.warning("compaction failed, history is trimmed instead: %s", exc)
            return {}
        logger.info("compacted %d messages into a %d-character summary", cut, len(new_summary))
        return {"summary": new_summary, "messages": [drop_marker(cut)]}

    async def _summarise(
        self, ctx: TurnContext, summary: str, old: list[dict[str, Any]], window: int, usable: int
    ) -> str:
        words = max(60, int(usable * 0.15 / 1.4))
        cap = words * 8  # characters, if the model writes more than asked
        room = max(200, usable - _tokens(_SUMMARY_PROMPT) - words * 2)
        chunk: list[str] = []
        size = 0
        for line in [*_transcript(old), None]:
            if line is not None and (not chunk or size + _tokens(line) <= room):
                chunk.append(line[: int(room * 3.5)])
                size += _tokens(line)
                continue
            if chunk:
                summary = await self._fold(ctx, summary, chunk, words, window)
                summary = summary[:cap]
            if line is not None:
                chunk, size = [line[: int(room * 3.5)]], _tokens(line)
        return summary

    async def _fold(
        self, ctx: TurnContext, summary: str, lines: list[str], words: int, window: int
    ) -> str:
        body = f"Previous summary:\n{summary or '(none)'}\n\nTranscript:\n" + "\n".join(lines)
        result = await self.llm.chat(
            ctx.model,
            [
                {"role": "system", "content": _SUMMARY_PROMPT.format(words=words)},
                {"role": "user", "content": body},
            ],
            options={"num_ctx": window, **ctx.options},
            keep_alive=ctx.keep_alive,
        )
        return result.content.strip() or summary
