"""The streaming model of the crash suite, and the answer each user message must get.

A user message is a tag (``c07m012``: chat 7, its 12th message). The model streams an answer
that starts and ends with that tag over 0.2-0.5 s, so every bot message on the platform can be
traced back to the message it answers, and a truncated one is recognisable.
"""

from __future__ import annotations

import random
import re
import zlib
from typing import Any

from opencomputer.bot.testing import Reply

__all__ = ["TAG", "answer_for", "respond", "tag_for"]

TAG = re.compile(r"\bc\d{2}m\d{3}\b")
_WORDS = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima".split()


def tag_for(chat: int, n: int) -> str:
    """The text of chat ``chat``'s ``n``-th message."""
    return f"c{chat:02d}m{n:03d}"


def answer_for(tag: str) -> str:
    """The complete answer to one message (deterministic: the same on every retry)."""
    rng = random.Random(zlib.crc32(tag.encode()))
    middle = " ".join(rng.choice(_WORDS) for _ in range(10))
    return f"answer {tag} {middle} end {tag}"


def respond(body: dict[str, Any]) -> Reply:
    """The fake Ollama's responder: stream the answer to the newest user message."""
    users = [m for m in body.get("messages", []) if m.get("role") == "user"]
    found = TAG.findall(str(users[-1].get("content", ""))) if users else []
    if not found:  # some other model call (a summary, a title...): short and unrelated
        return Reply("noted")
    tag = found[-1]
    rng = random.Random(f"pace:{tag}:{len(body.get('messages', []))}")
    chunks = 6
    return Reply(answer_for(tag), chunks=chunks, pace=rng.uniform(0.2, 0.5) / (chunks - 1))
