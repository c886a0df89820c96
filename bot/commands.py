"""The command router every platform's commands reach (``/help``, ``/reset``, admin commands).

Handlers take one typed context and return the text to answer (or None when they answered
themselves). The first line of a handler's docstring is its help text.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from opencomputer.bot.connector import CommandSpec
from opencomputer.bot.events import Address, Command, User

__all__ = ["CommandContext", "CommandHandler", "CommandRouter", "CommandRuntime"]

logger = logging.getLogger(__name__)


class CommandRuntime(Protocol):
    """What commands use of the runtime (``bot.runtime.Runtime``), named here so the router
    does not depend on the runtime that owns it.
    """

    async def say(self, address: Address, text: str, *, reply_to: str | None = None) -> list[str]:
        """Send a plain message."""
        ...

    async def person_of(self, user: User) -> str:
        """The person an account belongs to."""
        ...


@dataclass(slots=True)
class CommandContext:
    """Everything a command handler gets: the event, the runtime, who is asking."""

    event: Command
    runtime: CommandRuntime
    is_admin: bool
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def args(self) -> str:
        """The text after the command name."""
        return self.event.args

    async def reply(self, text: str) -> None:
        """Answer in the chat the command came from."""
        await self.runtime.say(self.event.address, text, reply_to=self.event.message_id or None)


CommandHandler = Callable[[CommandContext], Awaitable[str | None]]


class CommandRouter:
    """Command specs and their handlers, by name (aliases included)."""

    def __init__(self) -> None:
        self._specs: dict[str, CommandSpec] = {}
        self._handlers: dict[str, CommandHandler] = {}
        self.on_denied: list[Callable[[CommandContext], Awaitable[None]]] = []

    def add(self, spec: CommandSpec, handler: CommandHandler) -> None:
        """Register a command (later registrations of a name replace earlier ones)."""
        for name in (spec.name, *spec.aliases):
            self._specs[name] = spec
            self._handlers[name] = handler

    def command(
        self, name: str, *, admin: bool = False, args: str = "", aliases: tuple[str, ...] = ()
    ) -> Callable[[CommandHandler], CommandHandler]:
        """Decorator form of :meth:`add`; help text is the docstring's first line."""

        def wrap(fn: CommandHandler) -> CommandHandler:
            doc = inspect.getdoc(fn) or name
            self.add(CommandSpec(name, doc.splitlines()[0], admin, args, aliases), fn)
            return fn

        return wrap

    def specs(self, *, admin: bool = True) -> list[CommandSpec]:
        """Distinct command specs, sorted, optionally without admin-only ones."""
        unique = {spec.name: spec for spec in self._specs.values()}
        return sorted((s for s in unique.values() if admin or not s.admin), key=lambda s: s.name)

    def get(self, name: str) -> CommandSpec | None:
        """The spec registered under ``name`` (or an alias)."""
        return self._specs.get(name.lower())

    async def dispatch(self, ctx: CommandContext) -> None:
        """Run the command, enforcing admin-only commands; unknown ones get a hint."""
        name = ctx.event.name.lower()
        spec = self._specs.get(name)
        if spec is None:
            await ctx.reply(f"Unknown command /{name}. Send /help to see what I can do.")
            return
        if spec.admin and not ctx.is_admin:
            logger.warning("refused admin command /%s from %s", name, ctx.event.user.key)
            for hook in self.on_denied:
                await hook(ctx)
            await ctx.reply(f"/{name} is for admins only.")
            return
        result = await self._handlers[name](ctx)
        if result:
            await ctx.reply(result)
