"""The plugin feature: discovery, sandboxed execution and enablement wired into the app.

The ``plugins`` entry point of ``opencomputer.features``. Every tool comes from a plugin (or an
MCP server), the agent is offered only those enabled where it speaks (``oc_turn_tools``), and
tool calls go through :func:`make_executor` (the ``route`` tool layer).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from opencomputer.bot.commands import CommandContext, CommandRouter
from opencomputer.bot.connector import CommandSpec
from opencomputer.bot.events import Address, ChatKind, Message, Reaction, User
from opencomputer.bot.hooks import ToolLayer, ToolNext, hookimpl
from opencomputer.bot.logs import SecretRegistry, add_secrets, mask
from opencomputer.bot.middleware import Event, Handler, Middleware
from opencomputer.bot.outfiles import hand_over_files
from opencomputer.bot.plugins.api import chat_kind_of
from opencomputer.bot.plugins.discovery import discover, plugin_environ
from opencomputer.bot.plugins.enablement import Enablement
from opencomputer.bot.plugins.forget import register_forget
from opencomputer.bot.plugins.grants import server_secrets
from opencomputer.bot.plugins.loader import PluginHost
from opencomputer.bot.plugins.sandbox import CallLimits, Sandbox
from opencomputer.bot.tools import Tool, ToolError

if TYPE_CHECKING:
    from opencomputer.bot.features import Host as App
    from opencomputer.bot.plugins.mcp import McpServers

__all__ = ["PluginSystem", "make_executor", "setup"]

logger = logging.getLogger(__name__)

REFRESH_SECONDS = 15.0
Executor = Callable[[Tool, dict[str, Any]], Awaitable[str]]


def current_caller() -> tuple[User | None, Address | None, ChatKind | None]:
    """Who is speaking, where, and in what kind of chat, from the running turn's context.

    The kind travels to the plugin (``PluginContext.chat_kind``) so that a tool showing a
    person's own data can tell a DM from a group; a turn that names no kind counts as a group.
    """
    from langgraph.runtime import get_runtime

    try:
        ctx = get_runtime().context
    except (RuntimeError, KeyError, AttributeError):
        return None, None, None
    address = getattr(ctx, "address", None)
    kind = chat_kind_of(getattr(ctx, "chat_kind", None) or "group") if address else None
    return getattr(ctx, "user", None), address, kind


@dataclass(slots=True)
class PluginSystem:
    """What the plugin feature shares on ``app.extras["plugins"]``."""

    host: PluginHost
    enablement: Enablement
    mcp: McpServers | None = None
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    loops: set[asyncio.Task[Any]] = field(default_factory=set)
    hook_locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    def enabled(self, plugin: str, address: Address | None) -> bool:
        """Whether ``plugin`` is on in the chat of ``address`` (or globally)."""
        key = f"{address.platform}:{address.chat_id}" if address is not None else None
        return self.enablement.is_enabled(plugin, key)

    def tools_for(self, address: Address | None) -> list[Tool]:
        """Plugin and MCP tools enabled where the agent speaks."""
        tools: list[Tool] = []
        for name in list(self.host.plugins):
            if self.enabled(name, address):
                tools.extend(self.host.tools(name))
        if self.mcp is not None:
            tools.extend(t for t in self.mcp.tools() if self.enabled(t.plugin, address))
        return tools

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str, *, loop: bool = False) -> None:
        """Run a background call (or a periodic ``loop``), logging, not raising, its failure."""

        async def guarded() -> None:
            try:
                await coro
            except ToolError as exc:
                logger.warning("%s: %s", name, exc)
            except Exception:
                logger.exception("%s failed", name)
            finally:
                coro.close()  # cancelled before it started: close it quietly

        task = asyncio.create_task(guarded(), name=name)
        owner = self.loops if loop else self.tasks
        owner.add(task)
        task.add_done_callback(owner.discard)

    async def wait_idle(self) -> None:
        """Return once the hooks in flight have finished (tests, shutdown)."""
        while self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)

    async def stop(self) -> None:
        """Cancel jobs and hooks in flight, close MCP sessions."""
        running = [*self.tasks, *self.loops]
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        if self.mcp is not None:
            await self.mcp.stop()


def make_executor(app: App, timeout: float, secrets: Iterable[str] | None = None) -> Executor:
    """Run a tool: plugin tools go to their sandbox, MCP tools to their server.

    What the model reads back (result or error) is masked: URL passwords and ``secrets`` (by
    default every secret this process registered) become ``***``.

    Approval of dangerous tools happens in the graph before this is called; an extra gate can be
    plugged in as ``app.extras["approve_tool"]`` (``async (tool, arguments) -> bool | str``).
    """
    hidden: SecretRegistry | None = None
    if secrets is not None:
        hidden = SecretRegistry()
        hidden.add(secrets)

    async def execute(tool: Tool, arguments: dict[str, Any]) -> str:
        approve = app.extras.get("approve_tool")
        if tool.dangerous and approve is not None:
            verdict = await approve(tool, arguments)
            if verdict is not True:
                raise ToolError(
                    verdict
                    if isinstance(verdict, str)
                    else f"{tool.name} needs approval and was not approved"
                )
        try:
            result = await asyncio.wait_for(tool.call(arguments), timeout=timeout)
        except ToolError as exc:  # the model reads the error too: no secret in it either
            raise ToolError(mask(str(exc), hidden)) from None
        if (note := hand_over_files(result)) is not None:  # sent after the answer
            return mask(note, hidden)  # (bot/outfiles.py); what it printed is masked too
        text = result if isinstance(result, str) else orjson.dumps(result, default=str).decode()
        return mask(text, hidden)  # URL passwords and known secrets never enter the prompt

    return execute


def _protected(app: App) -> list[Path]:
    paths = [app.settings.data_dir, Path(".env").resolve()]
    url = app.settings.resolved_database_url
    if url.startswith("sqlite") and ":///" in url:
        paths.append(Path(url.split(":///", 1)[1]))
    return paths


async def setup(app: App) -> None:
    """Discover plugins, register their commands and hooks, choose tools per chat."""
    settings, runtime = app.settings, app.runtime
    environ = app.extras.get("plugin_environ") or plugin_environ()
    discovery = discover(settings.plugin_dirs, environ=environ)
    secrets = server_secrets(settings, {**plugin_environ(), **environ})
    add_secrets(secrets)  # masked in logs and in tool output the model reads
    sandbox = Sandbox(mode=settings.plugin_sandbox, protect=_protected(app))
    limits = CallLimits(
        settings.plugin_timeout, settings.plugin_memory_mb, settings.plugin_cpu_seconds
    )
    host = PluginHost(
        discovery,
        sandbox=sandbox,
        data_root=settings.data_dir / "plugins",
        limits=limits,
        caller=current_caller,
        server_secrets=secrets,
    )
    host.send = runtime.say
    # plugins from OC_PLUGIN_DIRS and pip stay off until an admin consents (`plugins enable`);
    # their secrets reach them once granted (`plugins grant`), built-ins' unless revoked
    defaults = {n: p.on_by_default for n, p in host.plugins.items()}
    builtin = {n: p.source == "builtin" for n, p in host.plugins.items()}
    enablement = Enablement(app.store.engine, defaults, builtin)
    await enablement.start()
    host.granted = enablement.is_granted
    system = PluginSystem(host, enablement)
    if settings.mcp_servers:
        from opencomputer.bot.plugins.mcp import McpServers

        system.mcp = McpServers.from_setting(
            settings.mcp_servers, timeout=settings.plugin_timeout, sandbox=sandbox
        )
        await system.mcp.start()
    app.extras["plugins"] = system
    execute = make_executor(app, settings.plugin_timeout + 5, [*secrets, *host.secret_values])
    app.on_stop.append(system.stop)
    app.hooks.register(_Plugins(app, system, execute), "plugins")
    register_forget(app, system)  # /forget reaches plugin data (bot/plugins/forget.py)
    _start_jobs(system)
    system.spawn(_refresh(enablement), "plugin-enablement-refresh", loop=True)
    if app.changes is not None:  # `opencomputer plugins enable|disable` announces its change
        app.changes.watch("plugins", enablement.refresh)


class _Plugins:
    """Plugins on the seam: their tools where enabled, where tool calls run, their commands
    (after every built-in one, which they cannot take), their message and reaction hooks.
    """

    def __init__(self, app: App, system: PluginSystem, execute: Executor) -> None:
        self.app, self.system, self.execute = app, system, execute
        self.fire = _hook_firer(system)
        hooks = {h for p in system.host.plugins.values() for h in p.manifest.hooks}
        self.rules: list[tuple[str, Middleware]] = (
            [("observe", self.on_message)] if "on_message" in hooks else []
        )
        self.wants_reactions = "on_reaction" in hooks

    @hookimpl
    def oc_turn_tools(self, address: Address) -> list[Tool]:
        return self.system.tools_for(address)

    @hookimpl
    def oc_tool_layers(self) -> list[tuple[str, ToolLayer]]:
        return [("route", self.run_tool)]

    async def run_tool(self, tool: Tool, arguments: dict[str, Any], _next: ToolNext) -> str:
        """Every tool call, plugin or core: sandboxed where it is a plugin's, bounded in time,
        its output masked (never the in-process default).
        """
        return str(await self.execute(tool, arguments))

    @hookimpl(trylast=True)  # after every built-in command: a plugin cannot take /approve
    def oc_commands(self, router: CommandRouter) -> None:
        _register_commands(router, self.system)

    @hookimpl
    def oc_inbound_rules(self) -> list[tuple[str, Middleware]]:
        return self.rules

    async def on_message(self, event: Event, call_next: Handler) -> None:
        await call_next(event)
        if isinstance(event, Message):
            self.fire("on_message", event)

    @hookimpl
    def oc_reaction(self, reaction: Reaction, reply_id: int | None) -> None:
        if self.wants_reactions:
            self.fire("on_reaction", reaction)


def _register_commands(router: CommandRouter, system: PluginSystem) -> None:
    host = system.host
    for name, plugin in host.plugins.items():
        for decl in plugin.manifest.commands:
            if router.get(decl.name) is not None:
                logger.error("plugin %s: command /%s is taken; not registered", name, decl.name)
                continue

            async def handler(
                ctx: CommandContext, plugin: str = name, cmd: str = decl.name
            ) -> str | None:
                if plugin not in host.plugins or not system.enabled(plugin, ctx.event.address):
                    return f"/{cmd} is not enabled here."
                try:
                    return await host.run_command(plugin, cmd, ctx.args, ctx.event)
                except ToolError as exc:
                    return f"/{cmd} failed: {exc}"

            spec = CommandSpec(
                decl.name, decl.description or f"from plugin {name}", decl.admin, decl.args
            )
            router.add(spec, handler)


def _event_dict(event: Message | Reaction) -> dict[str, Any]:
    data: dict[str, Any] = {
        "platform": event.platform,
        "chat_id": event.chat.id,
        "user_id": event.user.id,
        "user_name": event.user.name,
        "thread_id": event.thread_id,
        "chat_kind": str(event.chat.kind),
    }
    if isinstance(event, Message):
        data.update(type="message", text=event.text, message_id=event.message_id)
    else:
        data.update(
            type="reaction", emoji=event.emoji, message_id=event.message_id, added=event.added
        )
    return data


def _hook_firer(system: PluginSystem) -> Callable[[str, Message | Reaction], None]:
    """Run a manifest hook (``on_message``, ``on_reaction``) of every plugin enabled where the
    event happened, one call at a time per plugin and in event order, without waiting for it.
    """
    host = system.host

    def fire(hook: str, event: Message | Reaction) -> None:
        for name, plugin in list(host.plugins.items()):
            if hook in plugin.manifest.hooks and system.enabled(name, event.address):
                lock = system.hook_locks.setdefault(name, asyncio.Lock())
                system.spawn(
                    _in_order(
                        lock,
                        host.run_hook(
                            name,
                            hook,
                            _event_dict(event),
                            event.user,
                            event.address,
                            event.chat.kind,
                        ),
                    ),
                    f"plugin {name} {hook}",
                )

    return fire


async def _in_order(lock: asyncio.Lock, call: Coroutine[Any, Any, None]) -> None:
    """One hook call at a time per plugin, in event order (its store is not transactional)."""
    try:
        async with lock:
            await call
    finally:
        call.close()  # cancelled while waiting: never 'never awaited'


def _start_jobs(system: PluginSystem) -> None:
    for name, plugin in system.host.plugins.items():
        for job in plugin.manifest.jobs:
            system.spawn(_every(system, name, job.name, job.every), f"plugin {name} job", loop=True)


async def _every(system: PluginSystem, plugin: str, function: str, seconds: float) -> None:
    while True:
        await asyncio.sleep(seconds)
        if plugin not in system.host.plugins or not system.enabled(plugin, None):
            continue
        try:
            await system.host.run_job(plugin, function)
        except ToolError as exc:
            logger.warning("plugin %s job %s: %s", plugin, function, exc)


async def _refresh(enablement: Enablement) -> None:
    while True:
        await asyncio.sleep(REFRESH_SECONDS)
        with contextlib.suppress(Exception):
            await enablement.refresh()
