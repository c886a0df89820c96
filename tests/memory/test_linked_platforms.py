"""Done-when of issue 8: a fact told on one platform is used on another, linked one, later."""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import Callable
from typing import Any

from opencomputer.bot.app import App
from opencomputer.bot.config import Settings
from opencomputer.bot.events import Chat, ChatKind, Command, Message, User
from opencomputer.bot.testing import FakeOllama
from opencomputer.bot.testing.fake_ollama import Reply
from opencomputer.bot.testing.harness import RecordingConnector
from tests.memory.helpers import open_settings, system_prompt, topic_embedding

ACCOUNTS = {"telegram": "1001", "slack": "U42"}


class TwoPlatforms:
    """The real app with a Telegram-like and a Slack-like recording connector."""

    def __init__(self, settings: Settings, first_id: int = 1) -> None:
        self.app = App(settings)
        self.conns: dict[str, RecordingConnector] = {}
        self.first_id = first_id

    async def __aenter__(self) -> TwoPlatforms:
        def factory(_settings: Settings, runtime: Any) -> list[Any]:
            for platform in ACCOUNTS:
                conn = RecordingConnector(runtime.emit, platform=platform)
                conn._ids = itertools.count(self.first_id)  # a real platform never reuses ids
                self.conns[platform] = conn
            return list(self.conns.values())

        await self.app.start(factory, http=False)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.app.stop()

    def _who(self, platform: str) -> dict[str, Any]:
        uid = ACCOUNTS[platform]
        return {
            "platform": platform,
            "event_id": uuid.uuid4().hex,
            "user": User(platform, uid, "Alice"),
            "chat": Chat(platform, uid, ChatKind.DIRECT),
        }

    async def _answer(self, platform: str, event: Any) -> str:
        conn = self.conns[platform]
        before = len(conn.calls)
        await self.app.runtime.emit(event)
        await self.app.runtime.wait_idle()
        sent = [c for c in conn.calls[before:] if c.action == "send"]
        return "\n".join(conn.messages[c.message_id] for c in sent)

    async def say(self, platform: str, text: str) -> str:
        return await self._answer(platform, Message(**self._who(platform), text=text))

    async def command(self, platform: str, name: str, args: str = "") -> str:
        return await self._answer(platform, Command(**self._who(platform), name=name, args=args))


def _knows_mia(body: dict[str, Any]) -> Reply:
    if "Mia was born in 2019" in system_prompt(body):
        return Reply("Mia was born in 2019, so she turns 7 this year.")
    return Reply("I don't know that yet.")


async def test_fact_told_on_telegram_is_used_on_linked_slack_after_a_restart(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama
) -> None:
    fake_ollama.embedder = topic_embedding
    settings = make_settings(**open_settings())
    async with TwoPlatforms(settings) as bot:
        answer = await bot.command("telegram", "link")
        code = re.search(r"`/link (\w+)`", answer)
        assert code is not None, answer
        asked = await bot.command("slack", "link", code.group(1))
        assert "asked the account that made this code to confirm" in asked
        question = bot.conns["telegram"].messages[bot.conns["telegram"].calls[-1].message_id]
        assert "slack:U42, on slack" in question
        confirmed = await bot.command("telegram", "link", "confirm")
        assert confirmed.startswith("Linked: this account and slack:U42")
        told = bot.conns["slack"].messages[bot.conns["slack"].calls[-1].message_id]
        assert told.startswith("Linked: this account and telegram:1001")

        fake_ollama.call_tool("remember", fact="Their daughter Mia was born in 2019")
        fake_ollama.reply("I'll remember Mia's birth year.")
        await bot.say("telegram", "Remember: my daughter Mia was born in 2019")

    fake_ollama.responder = _knows_mia
    async with TwoPlatforms(settings, first_id=100) as bot:  # "a day later": a new process
        answer = await bot.say("slack", "How old will my daughter be this year?")
        assert answer == "Mia was born in 2019, so she turns 7 this year."
        assert bot.conns["telegram"].calls == []

        await bot.command("slack", "forget")
        done = await bot.command("slack", "forget", "confirm")
        assert "- 1 memories" in done
        assert await bot.say("telegram", "How old will my daughter be?") == "I don't know that yet."
