"""The model drafts a ``SKILL.md`` from a liked turn; the draft must pass the skill parser.

The request reuses the prompt tuner's pieces (``bot/feedback/proposer.py``): the same model
client protocol, the same clipping of exchanges and the same cleaning of the answer (reasoning
blocks and fences stripped). A draft that is not a valid ``SKILL.md`` is dropped, never fixed up:
what is stored is exactly what the parser accepted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opencomputer.bot.feedback.proposer import ChatModel, clean_proposal
from opencomputer.bot.skills.format import Skill, parse_skill

__all__ = ["Turn", "draft_skill", "parse_draft", "transcript"]

INSTRUCTIONS = (
    "You write reusable skills for a chat assistant. Below is one conversation turn in which "
    "the assistant used several tools and the user liked the result. Write a SKILL.md that "
    "teaches the assistant to do this kind of task again: YAML front matter between two '---' "
    "lines with 'name' (lowercase letters, digits and hyphens, at most 40 characters) and "
    "'description' (one sentence: what the skill does and when to use it), then Markdown "
    "numbered steps naming the tools to call. Keep it general: no names, addresses, numbers "
    "or other details of this user. Answer with the SKILL.md only."
)
_NAME = re.compile(r"^name:\s*['\"]?([^'\"\s]+)", re.M)
_CLIP = 300


@dataclass(slots=True)
class Turn:
    """What the skills feature remembers of one answered turn."""

    run_id: str
    text: str  # the user's message
    answer: str
    tool_calls: int
    tool_errors: int
    steps: list[str]  # "tool name(arguments) -> result", clipped
    used: list[str]  # skills loaded with use_skill
    missing_tool: bool  # a call named a tool that is not there
    tainted: bool  # the thread had read outside content
    offered: dict[str, bool]  # learned skill -> offered (False: held back) in this turn
    person: str = ""
    user: Any = None  # opencomputer.bot.events.User of the asker
    account: str = ""
    conversation: str = ""
    direct: bool = True


def _clip(text: str, limit: int = _CLIP) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def transcript(messages: list[dict[str, Any]]) -> tuple[list[str], list[str], bool]:
    """The steps of the newest turn (since the user spoke), the skills it used, and whether it
    called a tool that does not exist.
    """
    turn: list[dict[str, Any]] = []
    for message in reversed(messages):
        if message.get("role") == "user":
            break
        turn.append(message)
    turn.reverse()
    steps: list[str] = []
    used: list[str] = []
    calls: list[str] = []
    missing = False
    for message in turn:
        role = message.get("role")
        if role == "assistant":
            for call in message.get("tool_calls") or []:
                fn = call.get("function") or {}
                name, args = str(fn.get("name", "")), fn.get("arguments") or {}
                calls.append(f"{name}({_clip(str(args), 120)})")
                if name == "use_skill" and isinstance(args, dict):
                    used.append(str(args.get("skill", "")))
        elif role == "tool":
            content = str(message.get("content", ""))
            missing = missing or content.startswith("error: no tool named")
            call = calls.pop(0) if calls else str(message.get("tool_name", "tool"))
            steps.append(f"{call} -> {_clip(content, 160)}")
    return steps, used, missing


def build_request(turn: Turn) -> list[dict[str, str]]:
    """The chat messages asking for a draft."""
    lines = [f"User: {_clip(turn.text)}", "Tool calls, in order:"]
    lines += [f"{i}. {step}" for i, step in enumerate(turn.steps, 1)]
    lines.append(f"Assistant's answer: {_clip(turn.answer)}")
    return [
        {"role": "system", "content": INSTRUCTIONS},
        {"role": "user", "content": "\n".join(lines)},
    ]


def parse_draft(text: str) -> Skill:
    """Validate a drafted ``SKILL.md`` with the skill parser (SkillError when invalid)."""
    text = clean_proposal(text)
    match = _NAME.search(text)
    folder = Path("learned") / (match.group(1) if match else "unnamed")
    return parse_skill(text, folder, source="learned")


async def draft_skill(llm: ChatModel, model: str, turn: Turn) -> Skill:
    """Ask the model for a skill drafted from ``turn`` (SkillError when the draft is invalid)."""
    result = await llm.chat(model, build_request(turn))
    return parse_draft(str(getattr(result, "content", "")))
