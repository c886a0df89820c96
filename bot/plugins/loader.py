"""The plugin host: turns discovered plugins into tools and handlers, and runs their calls.

Code is looked at on first use: a plugin's source is parsed (not imported) the first time its
tools are offered, and imported only inside the worker that runs a call (or, for trusted
built-ins, in the server on their first call). A plugin that fails to import or whose code
does not match its manifest is disabled with one line; the others are untouched.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from opencomputer.bot.effects import derived_effects
from opencomputer.bot.events import Address, ChatKind, User
from opencomputer.bot.logs import add_secrets
from opencomputer.bot.plugins.discovery import Broken, Discovery, Plugin
from opencomputer.bot.plugins.grants import SERVER_SECRET, Granted, Received, receives
from opencomputer.bot.plugins.sandbox import CallLimits, Sandbox, SandboxError, SandboxPolicy
from opencomputer.bot.tools import Tool, ToolError

__all__ = ["PluginHost", "Sender"]

logger = logging.getLogger(__name__)

Sender = Callable[[Address, str], Awaitable[Any]]
# Who is speaking, where, and in what kind of chat (None outside a conversation).
Caller = Callable[[], tuple[User | None, Address | None, ChatKind | None]]


class PluginHost:
    """Every usable plugin, its tools, and the way to call into it."""

    def __init__(
        self,
        discovery: Discovery,
        *,
        sandbox: Sandbox,
        data_root: Path,
        limits: CallLimits,
        caller: Caller = lambda: (None, None, None),
        granted: Granted | None = None,
        server_secrets: Iterable[str] = (),
    ) -> None:
        self.plugins: dict[str, Plugin] = dict(discovery.plugins)
        # Who may have which secret; until told (the plugin feature hands over the admin's
        # grants), only built-ins get theirs.
        self.granted: Granted = granted or self._builtin_grants
        self.server_secrets = frozenset(server_secrets)
        self._told: set[tuple[str, str, str]] = set()
        self.broken: list[Broken] = list(discovery.broken)
        self.sandbox = sandbox
        self.data_root = data_root
        self.limits = limits
        self.caller = caller
        self.send: Sender | None = None
        self._tools: dict[str, list[Tool]] = {}
        self._tool_owner: dict[str, str] = {}
        self.secret_values = [  # a plugin's secrets never reach a log line, granted or not
            v
            for p in self.plugins.values()
            for n, v in p.settings.items()
            if n in p.manifest.secret_names
        ]
        add_secrets(self.secret_values)
        for plugin in list(self.plugins.values()):
            withheld = self.received(plugin.name).withheld
            for setting, spec in plugin.manifest.settings.items():
                if spec.required and SERVER_SECRET in withheld.get(setting, ""):
                    self.disable(plugin.name, f"setting {setting} {withheld[setting]}")
                    break
        refusal = sandbox.refusal()
        if refusal:
            for plugin in [p for p in self.plugins.values() if not p.in_process]:
                self.disable(plugin.name, refusal)
        elif not sandbox.isolated:
            logger.warning("OC_PLUGIN_SANDBOX=off: plugins run WITHOUT isolation")

    # --- state -------------------------------------------------------------------------
    def _builtin_grants(self, plugin: str, secret: str) -> bool:
        found = self.plugins.get(plugin)
        return found is not None and found.source == "builtin"

    def received(self, name: str) -> Received:
        """What plugin ``name`` is handed now; each withheld setting is logged once, by name."""
        plugin = self.plugins[name]
        got = receives(plugin, self.granted, self.server_secrets)
        for setting, why in got.withheld.items():
            if (name, setting, why) not in self._told:
                self._told.add((name, setting, why))
                logger.warning("plugin %s: setting %s %s", name, setting, why)
        return got

    def disable(self, name: str, reason: str) -> None:
        """Set a plugin aside for the rest of this run, with one line saying why."""
        plugin = self.plugins.pop(name, None)
        if plugin is None:
            return
        broken = Broken(name, str(plugin.folder), reason)
        self.broken.append(broken)
        for tool in self._tools.pop(name, []):
            self._tool_owner.pop(tool.name, None)
        logger.error("%s", broken)

    def tools(self, name: str) -> list[Tool]:
        """Return the plugin's tools (its source is parsed the first time)."""
        if name in self._tools:
            return self._tools[name]
        plugin = self.plugins.get(name)
        if plugin is None:
            return []
        try:
            described = plugin.describe()
        except (OSError, SyntaxError, ValueError) as exc:
            self.disable(name, f"cannot read its code: {exc}")
            return []
        tools: list[Tool] = []
        for decl in plugin.manifest.tools:
            found = described.tools.get(decl.name)
            if found is None:
                self.disable(
                    name,
                    f"manifest lists tool {decl.name} but the code has no @tool "
                    "function by that name",
                )
                return []
            owner = self._tool_owner.get(decl.name)
            if owner is not None and owner != name:
                self.disable(name, f"tool name {decl.name} is already used by plugin {owner}")
                return []
            tools.append(
                Tool(
                    decl.name,
                    decl.description or found.description,
                    found.parameters,
                    self._caller(name, decl.name),
                    dangerous=decl.dangerous or found.dangerous,
                    plugin=name,
                    effects=_effects(plugin, decl, self.sandbox.isolated),
                    trusted_output=decl.trusted_output,
                )
            )
        for tool in tools:
            self._tool_owner[tool.name] = name
        self._tools[name] = tools
        return tools

    def _caller(self, plugin: str, tool: str) -> Callable[..., Awaitable[Any]]:
        async def call(**arguments: Any) -> Any:
            user, address, kind = self.caller()
            return await self.call_tool(
                plugin, tool, arguments, user=user, address=address, chat_kind=kind
            )

        return call

    # --- calls -------------------------------------------------------------------------
    async def call_tool(
        self,
        plugin: str,
        tool: str,
        arguments: dict[str, Any],
        *,
        user: User | None = None,
        address: Address | None = None,
        chat_kind: ChatKind | None = None,
    ) -> Any:
        """Run a tool; every failure becomes a :class:`ToolError` the model can read."""
        known = {t.name: t for t in self._tools.get(plugin, [])}
        if tool in known:
            arguments = coerce_arguments(arguments, known[tool].parameters)
        return await self.invoke(
            plugin,
            "tool",
            tool,
            user=user,
            address=address,
            chat_kind=chat_kind,
            arguments=arguments,
        )

    async def run_command(self, plugin: str, name: str, args: str, event: Any) -> str | None:
        """Run a plugin command for a :class:`~bot.events.Command` event."""
        result = await self.invoke(
            plugin,
            "command",
            name,
            user=event.user,
            address=event.address,
            chat_kind=event.chat.kind,
            args=args,
        )
        return None if result is None else str(result)

    async def run_hook(
        self,
        plugin: str,
        hook: str,
        event: dict[str, Any],
        user: User | None,
        address: Address | None,
        chat_kind: ChatKind | None = None,
    ) -> None:
        """Run every function of ``plugin`` registered for ``hook``."""
        for function in self.plugins[plugin].describe().hooks.get(hook, []):
            await self.invoke(
                plugin,
                "hook",
                function,
                user=user,
                address=address,
                chat_kind=chat_kind,
                event=event,
            )

    async def check(self, plugin: str) -> str | None:
        """Import the plugin's code where it would run; the reason it is broken, or None."""
        if not self.tools(plugin) and plugin not in self.plugins:
            return next((b.reason for b in self.broken if b.name == plugin), "not available")
        try:
            await self.invoke(plugin, "check", "")
        except ToolError as exc:
            return next((b.reason for b in self.broken if b.name == plugin), str(exc))
        return None

    async def run_job(self, plugin: str, function: str) -> None:
        """Run one scheduled job."""
        await self.invoke(plugin, "job", function)

    async def invoke(
        self,
        name: str,
        kind: str,
        target: str,
        *,
        user: User | None = None,
        address: Address | None = None,
        chat_kind: ChatKind | None = None,
        **payload: Any,
    ) -> Any:
        """Call into a plugin and deliver what it asked to send; raise ToolError on failure.

        The request carries the chat's kind beside its address (``PluginContext.chat_kind``):
        an address cannot tell a DM from a group, and a plugin holding a person's data must
        know whether everyone in the chat would read its answer.
        """
        plugin = self.plugins.get(name)
        if plugin is None:
            raise ToolError(f"plugin {name} is not available")
        received = self.received(name)
        if kind != "check" and (missing := received.missing(plugin)):
            raise ToolError(missing)
        request = {
            "plugin": name,
            "package": plugin.package,
            "path": str(plugin.folder),
            "module": plugin.manifest.module,
            "kind": kind,
            "target": target,
            "settings": received.settings,
            "data_dir": str(self.data_dir(name)),
            "network": plugin.manifest.network_hosts(received.settings),
            "process": plugin.manifest.permissions.process,
            "user": {"platform": user.platform, "id": user.id, "name": user.name} if user else None,
            "address": address.key if address else None,
            "chat_kind": str(chat_kind) if chat_kind is not None else None,
            **payload,
        }
        limits = self._limits(plugin)
        try:
            if plugin.in_process:
                answer = await asyncio.wait_for(_run_in_process(request), limits.timeout)
            else:
                answer = await self.sandbox.run(request, self._policy(plugin, request), limits)
        except TimeoutError:
            stopped = f"{target} was stopped after {limits.timeout:g} s (time limit)"
            raise ToolError(stopped) from None
        except SandboxError as exc:
            raise ToolError(f"{target} failed: {exc}") from None
        refused = await self._deliver(name, answer.get("outbox") or [], kind, target, address)
        if answer.get("import_error"):
            self.disable(name, f"its code failed to import: {answer.get('error')}")
            raise ToolError(f"plugin {name} is broken and was disabled")
        if not answer.get("ok"):
            raise ToolError(str(answer.get("error") or "the plugin failed"))
        result = answer.get("result")
        if refused and isinstance(result, str):  # the model hears that the message did not go
            result += "\n(" + "; ".join(refused) + ")"
        return result

    def data_dir(self, name: str) -> Path:
        """Return the plugin's own writable folder."""
        return self.data_root / name

    def _limits(self, plugin: Plugin) -> CallLimits:
        own = plugin.manifest.limits
        return CallLimits(
            timeout=min(own.timeout or self.limits.timeout, self.limits.timeout),
            memory_mb=min(own.memory_mb or self.limits.memory_mb, self.limits.memory_mb),
            cpu_seconds=min(own.cpu_seconds or self.limits.cpu_seconds, self.limits.cpu_seconds),
        )

    def _policy(self, plugin: Plugin, request: dict[str, Any]) -> SandboxPolicy:
        perms = plugin.manifest.permissions
        return SandboxPolicy(
            plugin.name,
            plugin.folder,
            self.data_dir(plugin.name),
            network=list(request["network"]),
            read=list(perms.files.read),
            write=list(perms.files.write),
            process=perms.process,
        )

    def may_send_elsewhere(self, name: str, kind: str, target: str) -> bool:
        """Whether a call may message chats other than its own conversation.

        A tool may if it declares the ``send`` effect (so a tainted turn asks the owner before
        it runs); a scheduled job may (it has no conversation of its own and no model chose
        its arguments); commands and hooks answer only where they were called.
        """
        if kind == "job":
            return True
        if kind != "tool":
            return False
        tool = next((t for t in self._tools.get(name, []) if t.name == target), None)
        return tool is not None and "send" in (tool.effects or ())

    async def _deliver(
        self,
        name: str,
        outbox: list[dict[str, Any]],
        kind: str = "job",
        target: str = "",
        origin: Address | None = None,
    ) -> list[str]:
        refused: list[str] = []
        for item in outbox:
            if self.send is None:
                logger.warning("plugin %s sent a message but no chat is connected", name)
                return refused
            where = str(item["address"])
            if not _same_chat(where, origin) and not self.may_send_elsewhere(name, kind, target):
                logger.warning("plugin %s: message to %s refused (another chat)", name, where)
                refused.append(
                    f"the message to {where} was not sent: {target or name} may only message "
                    "this conversation (declare the send effect to message other chats)"
                )
                continue
            try:
                await self.send(Address.parse(str(item["address"])), str(item["text"]))
            except Exception as exc:
                logger.warning("plugin %s: message to %s failed: %s", name, item["address"], exc)
        return refused


def _same_chat(key: str, origin: Address | None) -> bool:
    """Whether an outbox address is the chat of the call (any thread of it)."""
    if origin is None:
        return False
    try:
        target = Address.parse(key)
    except ValueError:
        return False
    return (target.platform, target.chat_id) == (origin.platform, origin.chat_id)


def _effects(plugin: Plugin, decl: Any, isolated: bool) -> frozenset[str] | None:
    """A tool's effects: declared, or what its plugin's grants make possible."""
    perms = plugin.manifest.permissions
    return derived_effects(
        decl.effects,
        network=bool(perms.network),
        write=bool(perms.files.write),
        process=perms.process,
        isolated=isolated and not plugin.in_process,
    )


def coerce_arguments(arguments: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Fix what small models often get wrong in tool arguments.

    Numbers and booleans sent as strings are converted; arguments the tool does not take are
    dropped rather than failing the call.
    """
    props: dict[str, Any] = schema.get("properties") or {}
    fixed: dict[str, Any] = {}
    for key, value in (arguments or {}).items():
        if key not in props:
            continue
        kind = props[key].get("type")
        try:
            if kind == "integer" and isinstance(value, str | float) and float(value).is_integer():
                value = int(float(value))
            elif kind == "number" and isinstance(value, str):
                value = float(value)
            elif kind == "boolean" and isinstance(value, str) and value.lower() in _BOOLS:
                value = _BOOLS[value.lower()]
        except ValueError:
            pass  # leave it: the tool's own error says what is wrong
        fixed[key] = value
    return fixed


_BOOLS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


async def _run_in_process(request: dict[str, Any]) -> dict[str, Any]:
    """Run the worker's dispatch in this process (trusted built-ins only)."""
    from opencomputer.bot.plugins.worker import dispatch

    return await dispatch(request)
