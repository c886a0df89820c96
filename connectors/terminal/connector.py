"""Chat with the agent in a terminal.

Interactive (a TTY): a prompt, answers streamed as they are written. Scripted (stdin is a pipe
or file): each line is one message, each answer is printed once complete, and the session ends
at end of input, so ``echo "hi" | opencomputer chat`` works in scripts and tests.
``/good`` and ``/bad`` rate the last answer (the terminal has no emoji reactions).
"""

from __future__ import annotations

import asyncio
import getpass
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TextIO

from bot.connector import Capabilities, CommandSpec, ConnectorState, Emit, Formatting
from bot.events import Address, Chat, ChatKind, Command, Message, Reaction, User

__all__ = ["TerminalConnector"]

logger = logging.getLogger(__name__)

PLATFORM = "terminal"
_RATINGS = {"good": "👍", "bad": "👎"}


class TerminalConnector:
    """One local user talking to the agent through stdin/stdout."""

    platform = PLATFORM

    def __init__(
        self,
        emit: Emit,
        *,
        wait_idle: Callable[[Address], Awaitable[None]],
        stdin: TextIO | None = None,
        stdout: TextIO | None = None,
        interactive: bool | None = None,
        user: str | None = None,
    ) -> None:
        self._emit = emit
        self._wait_idle = wait_idle
        self._in = stdin or sys.stdin
        self._out = stdout or sys.stdout
        self.interactive = self._in.isatty() if interactive is None else interactive
        name = user or getpass.getuser()
        self.user = User(PLATFORM, name, name)
        self.chat = Chat(PLATFORM, name, ChatKind.DIRECT, "terminal")
        self.capabilities = Capabilities(
            max_length=1_000_000,
            can_edit=self.interactive,
            can_react=False,
            can_type=False,
            formatting=Formatting.MARKDOWN,
            edit_interval=0.03,
        )
        self.state = ConnectorState.STOPPED
        self._shown: dict[str, str] = {}
        self._last_sent: str | None = None
        self._counter = 0

    @property
    def address(self) -> Address:
        """The single conversation of this terminal."""
        return Address(PLATFORM, self.chat.id)

    async def start(self) -> None:
        """Nothing to connect to; :meth:`run` drives the session."""
        self.state = ConnectorState.CONNECTED

    async def stop(self) -> None:
        """Mark the channel closed."""
        self.state = ConnectorState.STOPPED

    async def run(self) -> None:
        """Read lines until end of input (or ``/quit``), one message per line."""
        if self.interactive:
            self._write("opencomputer — type a message, /help for commands, Ctrl-D to quit.\n")
        while True:
            if self.interactive:
                self._write("\n› ")
            line = await asyncio.to_thread(self._in.readline)
            if not line:
                break
            text = line.strip()
            if not text:
                continue
            if text in ("/quit", "/exit"):
                break
            await self._emit(self._event(text))
            await self._wait_idle(self.address)

    def _event(self, text: str) -> Message | Command | Reaction:
        self._counter += 1
        event_id = f"{time.time_ns()}-{self._counter}"
        chat, user = self.chat, self.user
        if text.startswith("/") and len(text) > 1:
            name, _, args = text[1:].partition(" ")
            if name in _RATINGS and self._last_sent:
                return Reaction(
                    platform=PLATFORM,
                    event_id=event_id,
                    chat=chat,
                    user=user,
                    message_id=self._last_sent,
                    emoji=_RATINGS[name],
                )
            return Command(
                platform=PLATFORM,
                event_id=event_id,
                chat=chat,
                user=user,
                name=name.lower(),
                args=args.strip(),
                message_id=event_id,
            )
        return Message(
            platform=PLATFORM,
            event_id=event_id,
            chat=chat,
            user=user,
            text=text,
            message_id=event_id,
        )

    # --- outbound ----------------------------------------------------------------------
    def render(self, markdown: str) -> list[str]:
        """The terminal shows Markdown as written."""
        return [markdown] if markdown else []

    async def send(self, address: Address, text: str, *, reply_to: str | None = None) -> str:
        """Print a new answer (streamed answers continue through :meth:`edit`)."""
        self._counter += 1
        mid = f"out-{time.time_ns()}-{self._counter}"
        self._shown[mid] = text
        self._last_sent = mid
        self._write(text if self.interactive else text + "\n")
        return mid

    async def edit(self, address: Address, message_id: str, text: str) -> None:
        """Print what was added since the last version (streaming appends)."""
        shown = self._shown.get(message_id, "")
        self._write(text[len(shown) :] if text.startswith(shown) else "\n" + text)
        self._shown[message_id] = text

    async def react(self, address: Address, message_id: str, emoji: str) -> None:
        """The terminal has no reactions."""

    async def typing(self, address: Address) -> None:
        """No typing indicator in a terminal."""

    async def register_commands(self, commands: Sequence[CommandSpec]) -> None:
        """Commands are typed as ``/name``; nothing to register."""

    def routes(self) -> list[object]:
        """No webhooks."""
        return []

    def _write(self, text: str) -> None:
        self._out.write(text)
        self._out.flush()
