"""Shared pieces of the privacy attack tests: the real app, a victim, a stranger, a group.

The harness drives the real runtime (storage, graph, access control, commands) through a
recording connector; the fake model server records every request, so a test can read the
exact prompt a group turn produced. Under ``OC_DM_POLICY=open`` the stranger is *allowed* to
talk to the bot: access control cannot be what stops the attacks, only the privacy rules can.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from opencomputer.bot.audit import recent
from opencomputer.bot.config import Settings
from opencomputer.bot.testing import FakeOllama
from opencomputer.bot.testing.harness import Harness
from opencomputer.bot.tools import Tool

ADMIN = "boss"
VICTIM = "alice"
STRANGER = "mallory"
GROUP = "lobby"
CODE = re.compile(r"\b[A-HJ-NP-Z2-9]{8}\b")


def privacy_settings(make_settings: Any, **extra: Any) -> Settings:
    """Open DMs (the stranger is allowed), one admin, no rate limits."""
    values: dict[str, Any] = {"OC_DM_POLICY": "open", "OC_ADMINS": f"test:{ADMIN}"}
    values.update(extra)
    return make_settings(**values)  # type: ignore[no-any-return]


@pytest.fixture
async def bot(make_settings: Any, fake_ollama: FakeOllama) -> AsyncIterator[Harness]:
    """The real app; the model answers "ok" unless a test queues something else."""
    fake_ollama.embedder = topic_embedding
    async with Harness(privacy_settings(make_settings)) as h:
        yield h


TOPICS: dict[str, tuple[str, ...]] = {
    "money": ("salary", "money", "earn", "pay", "bank"),
    "food": ("pizza", "food", "eat", "dinner", "lunch"),
    "health": ("doctor", "health", "diagnosis", "clinic"),
}


def topic_embedding(text: str) -> list[float]:
    """One dimension per topic whose keyword the text contains, plus a small constant."""
    low = text.lower()
    return [1.0 if any(w in low for w in words) else 0.0 for words in TOPICS.values()] + [0.1]


def everything_sent_to_model(fake: FakeOllama, since: int = 0) -> str:
    """The chat requests the model server received (from index ``since``), as one text."""
    return "\n".join(orjson.dumps(body).decode() for body in fake.chats[since:])


def sent_to(h: Harness, chat: str) -> str:
    """Every text the bot sent or edited into ``chat``."""
    return "\n".join(
        c.text for c in h.conn.calls if c.action in ("send", "edit") and c.address.chat_id == chat
    )


async def actions(h: Harness, actor: str) -> list[str]:
    """The audit actions of one account, oldest first."""
    return [e.action for e in reversed(await recent(h.app.store, 1000, actor=actor))]


def add_wipe_tool(h: Harness, ran: list[str]) -> None:
    """A dangerous tool: it runs only after the account that asked approves."""

    async def wipe(path: str) -> str:
        ran.append(path)
        return f"wiped {path}"

    params = {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}
    h.app.tools.add(Tool("wipe", "Delete a folder.", params, wipe, dangerous=True))
