"""Machine-written candidates: the model reads rated exchanges and revises the prompt.

The candidate enters as a ``machine`` variant with the exploration share only; it has to earn
promotion like any other. The core appends its safety rules to every variant at turn time, so
a revision cannot remove them; the proposal is also told to leave rules to the core.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Protocol

from opencomputer.bot.feedback.models import Author
from opencomputer.bot.feedback.repo import Exchange, FeedbackRepo
from opencomputer.bot.feedback.selector import Pool
from opencomputer.bot.feedback.tuner import Tuner, TuningError

__all__ = ["ChatModel", "build_request", "propose_candidate"]

logger = logging.getLogger(__name__)

MAX_PROMPT_CHARS = 4000
_THINK = re.compile(r"<think>.*?</think>", re.S)

INSTRUCTIONS = (
    "You improve the system prompt of a chat assistant. Below are the current system prompt "
    "and real exchanges that users rated. Write a revised system prompt that keeps what users "
    "liked and fixes what they disliked (length, tone, format, accuracy). Keep it under 1500 "
    "characters. Do not include safety rules, dates or tool lists: the system adds those. "
    "Answer with the new system prompt only, no preamble and no quotes."
)


class ChatModel(Protocol):
    """The one method of the Ollama client the proposer needs."""

    async def chat(self, model: str, messages: list[dict[str, Any]], **kwargs: Any) -> Any:
        """One completion; the result has ``content``."""
        ...


def _clip(text: str, limit: int = 400) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def build_request(current: str, bad: list[Exchange], good: list[Exchange]) -> list[dict[str, str]]:
    """The chat messages asking for a revision."""
    parts = [f"Current system prompt:\n<<<\n{current}\n>>>"]
    for title, rows in (("Rated 👎 (disliked)", bad), ("Rated 👍 (liked)", good)):
        if rows:
            lines = [f"- User: {_clip(e.question)}\n  Assistant: {_clip(e.answer)}" for e in rows]
            parts.append(f"{title}:\n" + "\n".join(lines))
    return [
        {"role": "system", "content": INSTRUCTIONS},
        {"role": "user", "content": "\n\n".join(parts)},
    ]


def clean_proposal(text: str) -> str:
    """Strip reasoning blocks, fences and quotes a model may wrap its answer in."""
    text = _THINK.sub("", text).strip()
    if text.startswith("```"):
        text = text.strip("`").partition("\n")[2].strip()
    if len(text) > 1 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    return text[:MAX_PROMPT_CHARS].strip()


async def propose_candidate(
    *,
    tuner: Tuner,
    repo: FeedbackRepo,
    llm: ChatModel,
    model: str,
    pool: Pool,
    actor: str,
    examples: int = 8,
) -> Any:
    """Ask the model for a revision of the pool's incumbent; store it as a candidate."""
    base = pool.pinned or pool.incumbent
    if base is None:
        raise TuningError("There is no active prompt to improve.")
    ids = [int(m.id) for m in pool.members]
    bad = await repo.exchanges(ids, -1, examples)
    good = await repo.exchanges(ids, 1, examples // 2)
    if not bad and not good:
        raise TuningError("No rated exchanges yet: react with 👍/👎 to some answers first.")
    result = await llm.chat(model, build_request(base.template, bad, good))
    text = clean_proposal(str(getattr(result, "content", "")))
    if not text:
        raise TuningError("The model proposed an empty prompt; nothing was added.")
    if text == base.template.strip():
        raise TuningError("The model proposed no change.")
    note = f"machine-written from {len(bad)} disliked and {len(good)} liked exchanges"
    return await tuner.add(
        text,
        actor=actor,
        scope=base.scope,
        scope_key=base.scope_key,
        author=Author.MACHINE,
        parent_id=int(base.id),
        note=note,
    )
