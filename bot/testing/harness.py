"""An in-process harness: push an event in, read what the bot sent out.

``RecordingConnector`` is a connector for a pretend platform that records every outbound call;
``Harness`` runs the real :class:`~bot.app.App` (storage, graph, runtime) with it, against an
Ollama-compatible server (usually :class:`~bot.testing.FakeOllama`).
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from opencomputer.bot.app import App
from opencomputer.bot.config import Settings
from opencomputer.bot.connector import Capabilities, CommandSpec, ConnectorState, Emit, Formatting
from opencomputer.bot.events import Address, Chat, ChatKind, Command, Message, Reaction, User
from opencomputer.bot.text import split_markdown

__all__ = ["Harness", "Outbound", "RecordingConnector"]


@dataclass(slots=True)
class Outbound:
    """One outbound platform call."""

    action: str  # send | edit | react | typing
    address: Address
    message_id: str = ""
    text: str = ""
    reply_to: str | None = None
    at: float = field(default_factory=time.perf_counter)


class RecordingConnector:
    """A connector whose 'platform' is a list of recorded calls."""

    def __init__(
        self,
        emit: Emit,
        *,
        platform: str = "test",
        max_length: int = 4000,
        can_edit: bool = True,
        edit_interval: float = 0.0,
    ) -> None:
        self.platform = platform
        self.emit = emit
        self.capabilities = Capabilities(
            max_length=max_length,
            can_edit=can_edit,
            formatting=Formatting.MARKDOWN,
            edit_interval=edit_interval,
        )
        self.state = ConnectorState.STOPPED
        self.calls: list[Outbound] = []
        self.messages: dict[str, str] = {}
        self.commands: list[CommandSpec] = []
        self._ids = itertools.count(1)

    async def start(self) -> None:
        self.state = ConnectorState.CONNECTED

    async def stop(self) -> None:
        self.state = ConnectorState.STOPPED

    def render(self, markdown: str) -> list[str]:
        return split_markdown(markdown, self.capabilities.max_length)

    async def send(self, address: Address, text: str, *, reply_to: str | None = None) -> str:
        mid = f"m{next(self._ids)}"
        self.messages[mid] = text
        self.calls.append(Outbound("send", address, mid, text, reply_to))
        return mid

    async def edit(self, address: Address, message_id: str, text: str) -> None:
        self.messages[message_id] = text
        self.calls.append(Outbound("edit", address, message_id, text))

    async def react(self, address: Address, message_id: str, emoji: str) -> None:
        self.calls.append(Outbound("react", address, message_id, emoji))

    async def typing(self, address: Address) -> None:
        self.calls.append(Outbound("typing", address))

    async def register_commands(self, commands: Sequence[CommandSpec]) -> None:
        self.commands = list(commands)

    def routes(self) -> list[Any]:
        return []


class Harness:
    """Drive the real app through a :class:`RecordingConnector`."""

    def __init__(self, settings: Settings, **connector_options: Any) -> None:
        self.settings = settings
        self.app = App(settings)
        self._options = connector_options
        self.connector: RecordingConnector | None = None
        self._events = itertools.count(1)

    async def __aenter__(self) -> Harness:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        def factory(_settings: Settings, runtime: Any) -> list[Any]:
            self.connector = RecordingConnector(runtime.emit, **self._options)
            return [self.connector]

        await self.app.start(factory, http=False)

    async def stop(self) -> None:
        await self.app.stop()

    @property
    def conn(self) -> RecordingConnector:
        assert self.connector is not None, "Harness.start() first"
        return self.connector

    def _who(self, user: str, chat: str | None, group: bool) -> dict[str, Any]:
        platform = self.conn.platform
        kind = ChatKind.GROUP if group else ChatKind.DIRECT
        return {
            "platform": platform,
            "event_id": f"e{next(self._events)}-{uuid.uuid4().hex[:8]}",
            "user": User(platform, user, user.title()),
            "chat": Chat(platform, chat or user, kind),
        }

    async def say(
        self,
        text: str,
        *,
        user: str = "alice",
        chat: str | None = None,
        group: bool = False,
        addressed: bool = True,
        thread: str | None = None,
        event_id: str | None = None,
    ) -> str:
        """Send a message, wait for the turn, return the text of the newest bot message."""
        who = self._who(user, chat, group)
        if event_id:
            who["event_id"] = event_id
        before = len(self.conn.calls)
        msg = Message(
            **who,
            text=text,
            message_id=f"u{who['event_id']}",
            addressed=addressed,
            thread_id=thread,
        )
        await self.app.runtime.emit(msg)
        await self.app.runtime.wait_idle()
        return self.last_text(since=before)

    async def command(
        self,
        name: str,
        args: str = "",
        *,
        user: str = "alice",
        chat: str | None = None,
        group: bool = False,
    ) -> str:
        """Run a command, return what the bot answered."""
        who = self._who(user, chat, group)
        before = len(self.conn.calls)
        await self.app.runtime.emit(Command(**who, name=name, args=args))
        await self.app.runtime.wait_idle()
        return self.last_text(since=before)

    async def react(
        self,
        message_id: str,
        emoji: str,
        *,
        user: str = "alice",
        chat: str | None = None,
        added: bool = True,
    ) -> None:
        """React to a message (usually one of the bot's)."""
        who = self._who(user, chat, False)
        await self.app.runtime.emit(
            Reaction(**who, message_id=message_id, emoji=emoji, added=added)
        )

    def last_text(self, since: int = 0) -> str:
        """Final text of the newest message the bot sent after call index ``since``."""
        sent = [c for c in self.conn.calls[since:] if c.action == "send"]
        return "\n".join(self.conn.messages[c.message_id] for c in sent)

    @property
    def last_message_id(self) -> str:
        """Id of the newest message the bot sent."""
        return [c for c in self.conn.calls if c.action == "send"][-1].message_id
