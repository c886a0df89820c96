"""The Telegram Bot API fake, extended for the crash suite.

It keeps every text each bot message ever showed (the edit history) and can run a hook right
after it *accepted* a post (``sendMessage`` / ``editMessageText``): the platform state already
changed, the HTTP answer has not left yet. A hook that kills the server there opens the one
window bookkeeping cannot close: "the platform accepted a post, the process never learnt it".
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.telegram.bot_api_wire import validate_html
from tests.telegram.fake_bot_api import FakeBotApi

__all__ = ["BotMessage", "CrashBotApi", "PostHook"]

PostHook = Callable[[str, int, int, str], None]
"""``hook(method, chat_id, message_id, visible_text)``, called after a post was accepted."""


@dataclass(slots=True)
class BotMessage:
    """One message the bot posted: its id, every text it showed (oldest first)."""

    chat_id: int
    message_id: int
    history: list[str]

    @property
    def text(self) -> str:
        """What the chat shows now."""
        return self.history[-1]


class CrashBotApi(FakeBotApi):
    """:class:`FakeBotApi` plus edit history, post hooks and change notification."""

    def __init__(self) -> None:
        super().__init__()
        self.posted: dict[tuple[int, int], BotMessage] = {}
        self.after_post: PostHook | None = None
        """Run once per accepted post; cleared by the hook itself if it wants one shot."""
        self.posts = 0
        self.timeline: list[tuple[float, str, int, int, str]] = []
        """(monotonic time, method, chat, message id, text) of every accepted post."""
        self.changed = asyncio.Event()
        """Set at every accepted post (waiters clear it)."""

    def _record(self, method: str, args: dict[str, Any], result: dict[str, Any]) -> None:
        chat_id, message_id = int(args["chat_id"]), int(result["message_id"])
        text = str(args["text"])
        visible = validate_html(text) if args.get("parse_mode") == "HTML" else text
        key = (chat_id, message_id)
        if key in self.posted:
            self.posted[key].history.append(visible)
        else:
            self.posted[key] = BotMessage(chat_id, message_id, [visible])
        self.posts += 1
        self.timeline.append((time.monotonic(), method, chat_id, message_id, visible))
        self.changed.set()
        if self.after_post is not None:
            self.after_post(method, chat_id, message_id, visible)

    async def _m_sendMessage(self, args: dict[str, Any]) -> Any:
        result = await super()._m_sendMessage(args)
        self._record("sendMessage", args, result)
        return result

    async def _m_editMessageText(self, args: dict[str, Any]) -> Any:
        result = await super()._m_editMessageText(args)
        self._record("editMessageText", args, result)
        return result

    def messages_in(self, chat_id: int) -> list[BotMessage]:
        """The bot's messages in one chat, in posting order (Telegram ids only grow)."""
        found = [m for (chat, _), m in self.posted.items() if chat == chat_id]
        return sorted(found, key=lambda m: m.message_id)
