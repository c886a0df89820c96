"""The interface every platform connector implements.

A connector owns one platform connection: it turns platform events into core events (handed to
the ``emit`` sink it was constructed with) and performs outbound actions the core asks for.
Formatting and splitting are the connector's job because only it knows its platform's markup
and limits; streaming logic (when to edit, when to start a new message) is the core's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from aiohttp import web

    from opencomputer.bot.events import Address, Command, Message, Reaction

__all__ = [
    "Capabilities",
    "CommandSpec",
    "Connector",
    "ConnectorState",
    "Emit",
    "Formatting",
    "RuntimeStopped",
]

Emit = Callable[["Message | Reaction | Command"], Awaitable[None]]
"""The inbound sink. It returns once the event is accepted (persisted), so a connector may ack."""


class RuntimeStopped(Exception):
    """Raised by ``emit`` while the server is shutting down: do not acknowledge the event, so
    the platform delivers it again (it lives here so connectors need not import the runtime).
    """


class Formatting(StrEnum):
    """The markup flavour a platform renders."""

    PLAIN = "plain"
    MARKDOWN = "markdown"
    HTML = "html"
    MRKDWN = "mrkdwn"


class ConnectorState(StrEnum):
    """Connection health, shown by ``/readyz``, ``/status`` and ``doctor``."""

    STOPPED = "stopped"
    STARTING = "starting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a platform can do; the core adapts streaming and splitting to it."""

    max_length: int = 4000
    can_edit: bool = True
    can_react: bool = True
    can_type: bool = True
    formatting: Formatting = Formatting.MARKDOWN
    edit_interval: float = 1.0
    """Minimum seconds between two edits of one streamed message (platform rate limits)."""
    keeps_messages: bool = True
    """Posted messages outlive this process, so a restarted turn edits them (``bot/reply.py``);
    false where a new process cannot reach them (the terminal prints and forgets)."""
    max_file_bytes: int = 0
    """The largest file ``send_file`` may upload (0: no stated limit); larger ones become a
    line in the chat (``bot/outfiles.py``)."""
    voice_notes: bool = False
    """Whether ``send_file`` sends a ``voice=True`` file as a native voice note (else it goes
    as an audio file)."""


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """A chat command as platforms register it natively (Telegram menu, Discord/Slack slash)."""

    name: str
    help: str
    admin: bool = False
    args: str = ""
    aliases: tuple[str, ...] = field(default=())


@runtime_checkable
class Connector(Protocol):
    """One platform connection. No I/O in ``__init__``; ``start`` opens, ``stop`` closes."""

    platform: str
    capabilities: Capabilities
    state: ConnectorState

    async def start(self) -> None:
        """Connect and begin delivering events to the sink. Must not block forever."""

    async def stop(self) -> None:
        """Disconnect and release every resource. Safe to call twice."""

    def render(self, markdown: str) -> list[str]:
        """Convert model Markdown to platform markup, split into chunks within the limit."""
        ...

    async def send(self, address: Address, text: str, *, reply_to: str | None = None) -> str:
        """Post one already-rendered chunk; return the platform message id."""
        ...

    async def edit(self, address: Address, message_id: str, text: str) -> None:
        """Replace the text of a message the bot sent (one rendered chunk)."""

    async def react(self, address: Address, message_id: str, emoji: str) -> None:
        """Put an emoji reaction on a message."""

    async def typing(self, address: Address) -> None:
        """Show that the bot is working (best effort)."""

    async def register_commands(self, commands: Sequence[CommandSpec]) -> None:
        """Publish the command list natively where the platform supports it."""

    def routes(self) -> list[web.RouteDef]:
        """HTTP routes (webhooks) to mount on the shared app before it starts."""
        ...
