"""MCP servers as a plugin source: each configured server's tools, namespaced ``server__tool``.

``OC_MCP_SERVERS`` is JSON: ``{"files": {"command": "npx", "args": [...], "env": {...},
"permissions": {"network": ["registry.npmjs.org"], "process": true}}, "search": {"url":
"http://127.0.0.1:9000/mcp", "dangerous": ["delete_index"]}}``. A server's tools belong to the
plugin ``mcp:<name>`` for enable/disable, and ``dangerous`` (a list of tool names, or true for
all) routes them through approval like a plugin's dangerous tools.

A stdio server runs in the plugin sandbox (:mod:`bot.plugins.sandbox`): no server environment
(only its own ``env``), no server working directory, no ``.env`` or database, no network and no
new processes unless its ``permissions`` (the manifest's shape: ``network``, ``files.read``,
``files.write``, ``process``) grant them. Files named in ``command``/``args`` are shown
read-only, one by one; a folder it needs must be granted in ``files.read``.

Each connection lives in its own task (the MCP SDK's transports are anyio task groups that must
be entered and left by the same task); tool calls from turns go through the open session. A
server that cannot be reached is logged in one line and skipped; the others work.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opencomputer.bot.plugins.pids import pids_limit
from opencomputer.bot.plugins.sandbox import CallLimits, Sandbox, SandboxPolicy, egress_proxy
from opencomputer.bot.tools import Tool, ToolError

__all__ = ["McpServer", "McpServers", "parse_servers"]

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class McpServer:
    """One configured MCP server and, once connected, its session and tools."""

    name: str
    command: str | None = None
    args: list[str] = field(default_factory=list)
    env: dict[str, str] | None = None
    url: str | None = None
    dangerous: list[str] | bool = False
    permissions: dict[str, Any] = field(default_factory=dict)
    tools: list[Tool] = field(default_factory=list)
    error: str | None = None
    session: Any = None

    @property
    def plugin(self) -> str:
        """The plugin name enable/disable uses."""
        return f"mcp:{self.name}"


def parse_servers(raw: str) -> list[McpServer]:
    """Read ``OC_MCP_SERVERS``; raise ``ValueError`` with one line on a bad entry."""
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"OC_MCP_SERVERS is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("OC_MCP_SERVERS must be a JSON object of servers")
    servers = []
    for name, spec in data.items():
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,30}", name) or not isinstance(spec, dict):
            raise ValueError(f"OC_MCP_SERVERS: bad entry {name!r}")
        if bool(spec.get("command")) == bool(spec.get("url")):
            raise ValueError(f"OC_MCP_SERVERS: {name} needs either 'command' or 'url'")
        permissions = spec.get("permissions") or {}
        if not isinstance(permissions, dict) or not _valid_permissions(permissions):
            raise ValueError(
                f"OC_MCP_SERVERS: {name}: 'permissions' must look like "
                '{"network": ["host"], "files": {"read": [], "write": []}, "process": false}'
            )
        servers.append(
            McpServer(
                name,
                spec.get("command"),
                list(spec.get("args") or []),
                spec.get("env"),
                spec.get("url"),
                spec.get("dangerous", False),
                permissions,
            )
        )
    return servers


def _valid_permissions(permissions: dict[str, Any]) -> bool:
    files = permissions.get("files") or {}
    lists = [permissions.get("network") or [], files.get("read") or [], files.get("write") or []]
    return (
        set(permissions) <= {"network", "files", "process"}
        and isinstance(files, dict)
        and set(files) <= {"read", "write"}
        and all(isinstance(v, list) and all(isinstance(x, str) for x in v) for v in lists)
        and isinstance(permissions.get("process", False), bool)
    )


def _field(obj: Any, *names: str) -> Any:
    """A field under its mcp 2 (snake_case) or mcp 1 (camelCase) name."""
    for name in names:
        value = getattr(obj, name, None)
        if value is not None:
            return value
    return None


def _text(result: Any) -> str:
    parts = []
    for item in getattr(result, "content", None) or []:
        text = getattr(item, "text", None)
        parts.append(text if text is not None else f"[{getattr(item, 'type', 'content')}]")
    structured = _field(result, "structured_content", "structuredContent")
    if not parts and structured is not None:
        parts.append(json.dumps(structured))
    return "\n".join(parts)


class McpServers:
    """Every configured server; :meth:`tools` lists what the connected ones offer."""

    def __init__(
        self,
        servers: list[McpServer],
        *,
        timeout: float = 30.0,
        sandbox: Sandbox | None = None,
        limits: CallLimits | None = None,
    ) -> None:
        self.servers = servers
        self.timeout = timeout
        self.sandbox = sandbox or Sandbox(mode="on")
        self.limits = limits or CallLimits()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    def from_setting(
        cls, raw: str, *, timeout: float = 30.0, sandbox: Sandbox | None = None
    ) -> McpServers:
        """Build from ``OC_MCP_SERVERS`` (a bad setting is logged; no server is used)."""
        try:
            return cls(parse_servers(raw), timeout=timeout, sandbox=sandbox)
        except ValueError as exc:
            logger.error("%s", exc)
            return cls([], timeout=timeout, sandbox=sandbox)

    def tools(self) -> list[Tool]:
        """Tools of every connected server."""
        return [t for s in self.servers if s.session is not None for t in s.tools]

    async def start(self) -> None:
        """Connect every server (each in its own task); wait until each is ready or failed."""
        readies = []
        for server in self.servers:
            ready = asyncio.Event()
            readies.append(ready)
            self._tasks.append(
                asyncio.create_task(self._serve(server, ready), name=f"mcp:{server.name}")
            )
        waits = [asyncio.wait_for(r.wait(), self.timeout) for r in readies]
        for server, outcome in zip(
            self.servers, await asyncio.gather(*waits, return_exceptions=True), strict=True
        ):
            if isinstance(outcome, BaseException) and server.error is None:
                server.error = "did not answer in time"
            if server.error:
                logger.error("MCP server %s unavailable: %s", server.name, server.error)

    async def stop(self) -> None:
        """Close every session."""
        self._stop.set()
        for task in self._tasks:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 5)

    async def _serve(self, server: McpServer, ready: asyncio.Event) -> None:
        from mcp import ClientSession

        try:
            async with contextlib.AsyncExitStack() as stack:
                transport = await stack.enter_async_context(self._confined(server))
                streams = await stack.enter_async_context(transport)
                session = await stack.enter_async_context(ClientSession(streams[0], streams[1]))
                await session.initialize()
                listed = await session.list_tools()
                server.tools = [self._tool(server, session, t) for t in listed.tools]
                server.session = session
                ready.set()
                await self._stop.wait()
        except Exception as exc:
            leaf: BaseException = exc
            while isinstance(leaf, BaseExceptionGroup) and leaf.exceptions:
                leaf = leaf.exceptions[0]  # the SDK's task groups wrap the real reason
            server.error = f"{type(leaf).__name__}: {leaf}"
        finally:
            server.session = None
            ready.set()

    def _tool(self, server: McpServer, session: Any, spec: Any) -> Tool:
        remote = str(spec.name)
        dangerous = server.dangerous is True or (
            isinstance(server.dangerous, list) and remote in server.dangerous
        )

        async def call(**arguments: Any) -> str:
            if server.session is None:
                raise ToolError(f"MCP server {server.name} is not connected")
            try:
                result = await asyncio.wait_for(session.call_tool(remote, arguments), self.timeout)
            except TimeoutError:
                raise ToolError(f"{remote} on {server.name} took too long") from None
            text = _text(result)
            if _field(result, "is_error", "isError"):
                raise ToolError(text or f"{remote} failed")
            return text

        schema = _field(spec, "input_schema", "inputSchema") or {"type": "object", "properties": {}}
        return Tool(
            f"{server.name}__{remote}",
            str(spec.description or remote),
            dict(schema),
            call,
            dangerous=dangerous,
            plugin=server.plugin,
        )

    @contextlib.asynccontextmanager
    async def _confined(self, server: McpServer) -> Any:
        """The server's transport; a stdio server's command wrapped in the sandbox."""
        if server.url or not self.sandbox.isolated:  # OC_PLUGIN_SANDBOX=off: as configured
            yield _transport(server, [str(server.command), *server.args], server.env)
            return
        refusal = self.sandbox.refusal()
        if refusal:
            raise RuntimeError(refusal)
        grants = server.permissions
        files = grants.get("files") or {}
        network = list(grants.get("network") or [])
        home = Path(tempfile.mkdtemp(prefix=f"oc-mcp-{server.name}-"))
        policy = SandboxPolicy(
            server.plugin,
            Path(sys.prefix),
            home,
            network=network,
            read=list(files.get("read") or []),
            write=list(files.get("write") or []),
            process=bool(grants.get("process")),
        )
        try:
            async with (
                egress_proxy(network) as socket_path,
                pids_limit(self.limits.processes) as pids,
            ):
                argv = self._argv(server, policy, socket_path)
                yield _transport(server, pids.wrap(argv) if pids else argv, {})
        finally:
            shutil.rmtree(home, ignore_errors=True)

    def _argv(self, server: McpServer, policy: SandboxPolicy, egress: Path | None) -> list[str]:
        """``bwrap ... python -m opencomputer.bot.plugins.seccomp [limits] -- command args``."""
        from opencomputer.bot.plugins.sandbox import EGRESS_SOCKET

        command = [str(server.command), *server.args]
        launcher = [sys.executable, "-X", "utf8", "-B", "-m", "opencomputer.bot.plugins.seccomp"]
        launcher += ["--memory-mb", str(self.limits.memory_mb)]
        launcher += ["--nproc", str(self.limits.processes)]
        if not policy.process:
            launcher.append("--no-process")
        if egress is not None:
            launcher += ["--egress", EGRESS_SOCKET]
        named = [Path(a) for a in command if a.startswith("/") and Path(a).is_file()]
        resolved = shutil.which(command[0])
        if resolved:
            named.append(Path(resolved))
        return self.sandbox.argv(
            policy,
            command=[*launcher, "--", *command],
            env={"HOME": str(policy.data_dir), **(server.env or {})},
            egress=egress,
            memory_mb=self.limits.memory_mb,
            files=named,
        )


def _transport(server: McpServer, argv: list[str], env: dict[str, str] | None) -> Any:
    if server.url:
        from mcp.client import streamable_http

        names = ("streamable_http_client", "streamablehttp_client")  # mcp 2, mcp 1
        connect = next(getattr(streamable_http, n) for n in names if hasattr(streamable_http, n))
        return connect(server.url)
    from mcp.client.stdio import StdioServerParameters, stdio_client

    # the SDK adds only a few safe variables (HOME, PATH, USER...) to ``env``; in the sandbox
    # bubblewrap clears even those, and the server sees just what argv sets
    params = StdioServerParameters(command=argv[0], args=argv[1:], env=env, cwd="/")
    return stdio_client(params)
