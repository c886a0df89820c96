"""The extension seam: every stage a turn goes through, declared as pluggy hook specifications.

Features (this distribution's ``opencomputer.features`` entry points) and third-party packages
implement these hooks on an object they register; the runtime (``bot/runtime.py``) calls them in
the order a message meets them. Nothing replaces a runtime attribute.

Three kinds of hook:

* **Policies** answer a question (which prompt, which model, is this user an admin). The first
  implementation that gives an answer wins (``tryfirst``/``trylast`` order them; the core's
  default applies when none answers).
* **Chains** wrap a stage: inbound rules around accepting an event, turn layers around the agent
  call, tool layers around a tool call. Each hook returns ``(stage, callable)`` pairs and the
  stage names below fix their order, outermost first, whatever order features were loaded in.
* **Observers** hear about what happened (a reply was sent, a reaction arrived); all run.

pluggy is the library pytest and Datasette use for the same job; its hooks are synchronous, so an
async hook returns an awaitable (an ``async def`` implementation does) and :class:`Hooks` awaits it.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import pluggy

from opencomputer.bot.events import Address, Command, Message, Reaction, User

if TYPE_CHECKING:
    from opencomputer.bot.commands import CommandRouter
    from opencomputer.bot.reply import ReplySink
    from opencomputer.bot.tools import Tool
    from opencomputer.graphs.agent.state import TurnContext

__all__ = [
    "INBOUND_STAGES",
    "TOOL_STAGES",
    "TURN_STAGES",
    "DataRights",
    "Hooks",
    "Specs",
    "ToolLayer",
    "TurnCall",
    "TurnInputError",
    "TurnLayer",
    "compose",
    "hookimpl",
]

PROJECT = "opencomputer"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)
"""Mark a method of a registered object as the implementation of the hook of the same name."""

T = TypeVar("T")

INBOUND_STAGES = ("trace", "filter", "dedupe", "access", "rate_limit", "annotate", "observe")
"""Inbound rules, outermost first: turn ids for logs; the core's bot and mention filters;
replayed commands; allow-lists and pairing; rate limits; feedback notes ("why" answers);
observers of accepted messages (plugins' ``on_message``)."""

TURN_STAGES = ("observe", "input", "approvals")
"""Turn layers, outermost first: observers of the outcome (tool failures for the tuner); input
preparation (attachments become text or images); approvals, next to the agent (secrets
redacted, outside content marked, a paused effect asks the owner, a decided one resumes)."""

TOOL_STAGES = ("measure", "route")
"""Tool layers, outermost first: metrics; where a tool runs (a plugin's sandbox, MCP)."""


class TurnInputError(Exception):
    """Raised by a turn layer when the message cannot be read (a voice note the speech server
    could not transcribe): ``str()`` is one line for the user; the message stays failed, so
    ``/retry`` runs it again.
    """


@dataclass(slots=True)
class TurnCall:
    """One call of the agent, as turn layers see it (they may change ``text`` and ``ctx``)."""

    thread_id: str
    text: str
    ctx: TurnContext
    message: Message
    retry: bool = False


Event = Message | Reaction | Command
Handler = Callable[[Event], Awaitable[None]]
InboundRule = Callable[[Event, Handler], Awaitable[None]]
TurnNext = Callable[[TurnCall], Awaitable[Any]]
TurnLayer = Callable[[TurnCall, TurnNext], Awaitable[Any]]
"""``async def layer(call, call_next) -> outcome``; the outcome has ``text`` and ``run_id``."""
ToolNext = Callable[["Tool", dict[str, Any]], Awaitable[str]]
ToolLayer = Callable[["Tool", dict[str, Any], ToolNext], Awaitable[str]]


class Specs:
    """The hook specifications (the names features implement)."""

    # --- inbound -------------------------------------------------------------------------
    @hookspec
    def oc_inbound_rules(self) -> Sequence[tuple[str, InboundRule]]:  # type: ignore[empty-body]
        """Rules every inbound event passes before it is accepted, each with its stage
        (:data:`INBOUND_STAGES`). A rule calls ``call_next(event)`` to pass it on.
        """

    # --- policies (first answer wins) ----------------------------------------------------
    @hookspec(firstresult=True)
    def oc_is_admin(self, user: User) -> bool | None:
        """Whether ``user`` may run admin commands; None: no opinion."""

    @hookspec
    def oc_person_of(self, user: User) -> Awaitable[str | None] | None:
        """The person an account belongs to (linked identities); None: no opinion."""

    @hookspec
    def oc_choose_prompt(
        self, message: Message
    ) -> Awaitable[tuple[str | None, int | None] | None] | None:
        """The system prompt (and its variant id) for a turn; None: no opinion."""

    @hookspec(firstresult=True)
    def oc_choose_model(self, address: Address) -> str | None:
        """The model for a conversation; None: no opinion."""

    @hookspec
    def oc_turn_tools(self, address: Address) -> Iterable[Tool]:  # type: ignore[empty-body]
        """Tools offered in this conversation besides the core's (a name is offered once)."""

    @hookspec
    def oc_turn_services(self) -> dict[str, Any]:  # type: ignore[empty-body]
        """Services graph nodes reach through ``TurnContext.services`` (asked once at start)."""

    # --- chains --------------------------------------------------------------------------
    @hookspec
    def oc_turn_layers(self) -> Sequence[tuple[str, TurnLayer]]:  # type: ignore[empty-body]
        """Layers around the agent call, each with its stage (:data:`TURN_STAGES`)."""

    @hookspec
    def oc_tool_layers(self) -> Sequence[tuple[str, ToolLayer]]:  # type: ignore[empty-body]
        """Layers around a tool call, each with its stage (:data:`TOOL_STAGES`)."""

    # --- where work and answers go (scale-out roles) ---------------------------------------
    @hookspec(firstresult=True)
    def oc_route(self, job: Any) -> Awaitable[None] | None:
        """Take an accepted job instead of the local lanes (a gateway publishes it)."""

    @hookspec(firstresult=True)
    def oc_open_stream(
        self, address: Address, reply_to: str | None, key: str | None
    ) -> ReplySink | None:
        """Where a reply goes instead of the local connector (a worker relays it)."""

    # --- observers -----------------------------------------------------------------------
    @hookspec
    def oc_reply_sent(self, record: Any) -> Awaitable[None] | None:
        """A reply was recorded and delivered (``opencomputer.bot.runtime.ReplyRecord``)."""

    @hookspec
    def oc_reaction(self, reaction: Reaction, reply_id: int | None) -> Awaitable[None] | None:
        """A reaction was stored; ``reply_id`` is the bot reply it is on, if any."""

    # --- data rights (/forget, /export) ---------------------------------------------------
    @hookspec
    def oc_forget(self, person: str, accounts: list[str]) -> Awaitable[str | None] | None:
        """Delete what this feature or channel keeps about a person; return a line saying
        what was removed ("" or None: nothing). ``accounts`` are every linked account's key
        (``platform:id``). One failing implementation does not stop the others.
        """

    @hookspec
    def oc_export(self, person: str, accounts: list[str]) -> Awaitable[dict[str, Any]] | None:
        """What this feature or channel keeps about a person: sections of their export."""

    # --- the HTTP app --------------------------------------------------------------------
    @hookspec
    def oc_http_routes(self) -> Sequence[Any]:  # type: ignore[empty-body]
        """Route definitions (aiohttp) a feature serves on the shared HTTP app (a web UI),
        mounted once at start beside the channels' webhooks, ``/healthz`` and ``/metrics``.
        """

    # --- commands and jobs ---------------------------------------------------------------
    @hookspec
    def oc_commands(self, router: CommandRouter) -> None:
        """Register chat commands (called once, after every feature was set up)."""

    @hookspec
    def oc_ready(self) -> Awaitable[None] | None:
        """Everything is up and recovered: start background jobs (schedulers, refreshers)."""


class Hooks:
    """The plugin manager and the few ways the runtime calls it."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(PROJECT)
        self.pm.add_hookspecs(Specs)
        self.call: Any = self.pm.hook
        """``hooks.call.oc_choose_model(address=...)``: pluggy's typed-by-spec caller."""

    def register(self, plugin: object, name: str | None = None) -> None:
        """Add an object whose ``@hookimpl`` methods implement hooks (checked against Specs)."""
        self.pm.register(plugin, name)
        self.pm.check_pending()

    async def first(self, results: list[Any]) -> Any:
        """The first answer among the results of a non-``firstresult`` async policy hook.

        Results come in pluggy's call order; awaitables are awaited one by one until one gives
        a value, and the rest are closed unstarted (their features are not asked), also when
        one raises.
        """
        pending = list(results)
        try:
            while pending:
                result = pending.pop(0)
                answer = await result if inspect.isawaitable(result) else result
                if answer is not None:
                    return answer
            return None
        finally:
            for left in pending:
                if inspect.iscoroutine(left):
                    left.close()

    async def notify(self, results: list[Any]) -> None:
        """Await every observer's result, in call order. If one raises (or the caller is
        cancelled) the error goes on and the observers not yet run are closed unstarted.
        """
        pending = list(results)
        try:
            while pending:
                result = pending.pop(0)
                if inspect.isawaitable(result):
                    await result
        finally:
            for left in pending:
                if inspect.iscoroutine(left):
                    left.close()

    def staged(self, results: list[Sequence[tuple[str, T]]], stages: Sequence[str]) -> list[T]:
        """The chain links of every feature, ordered by their stage (outermost first)."""
        links = [link for result in results for link in result]
        for stage, _ in links:
            if stage not in stages:
                raise ValueError(f"unknown stage {stage!r}; one of {', '.join(stages)}")
        return [fn for _, fn in sorted(links, key=lambda link: stages.index(link[0]))]


ForgetFn = Callable[[str, list[str]], Awaitable[str | None]]
ExportFn = Callable[[str, list[str]], Awaitable[dict[str, Any]]]


class DataRights:
    """A feature's or channel's share of ``/forget`` and ``/export`` as hook implementations:
    ``hooks.register(DataRights(forget, export), "memory-data")``.
    """

    def __init__(self, forget: ForgetFn | None = None, export: ExportFn | None = None) -> None:
        self._forget = forget
        self._export = export

    @hookimpl
    def oc_forget(self, person: str, accounts: list[str]) -> Awaitable[str | None] | None:
        """The feature's ``forget``, if it has one."""
        return None if self._forget is None else self._forget(person, accounts)

    @hookimpl
    def oc_export(self, person: str, accounts: list[str]) -> Awaitable[dict[str, Any]] | None:
        """The feature's ``export``, if it has one."""
        return None if self._export is None else self._export(person, accounts)


def compose(
    layers: Sequence[Callable[..., Awaitable[T]]], final: Callable[..., Awaitable[T]]
) -> Any:
    """Wrap ``final`` in ``layers`` (the first is outermost): each gets its args + ``call_next``."""
    call = final
    for layer in reversed(layers):
        call = _bind(layer, call)
    return call


def _bind(layer: Callable[..., Awaitable[Any]], nxt: Callable[..., Awaitable[Any]]) -> Any:
    async def run(*args: Any) -> Any:
        return await layer(*args, nxt)

    return run
