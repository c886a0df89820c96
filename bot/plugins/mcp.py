"""MCP servers as a plugin source: each configured server's tools, namespaced ``server__tool``.

``OC_MCP_SERVERS`` is JSON: ``{"files": {"command": "npx", "args": [...], "env": {...}},
"search": {"url": "http://127.0.0.1:9000/mcp", "dangerous": ["delete_index"]}}``. A server's
tools belong to the plugin ``mcp:<name>`` for enable/disable, and ``dangerous`` (a list of tool
names, or true for all) routes them through approval like a plugin's dangerous tools.

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
from dataclasses import dataclass, field
from typing import Any

from bot.tools import Tool, ToolError

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
        servers.append(
            McpServer(
                name,
                spec.get("command"),
                list(spec.get("args") or []),
                spec.get("env"),
                spec.get("url"),
                spec.get("dangerous", False),
            )
        )
    return servers


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

    def __init__(self, servers: list[McpServer], *, timeout: float = 30.0) -> None:
        self.servers = servers
        self.timeout = timeout
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    def from_setting(cls, raw: str, *, timeout: float = 30.0) -> McpServers:
        """Build from ``OC_MCP_SERVERS`` (a bad setting is logged; no server is used)."""
        try:
            return cls(parse_servers(raw), timeout=timeout)
        except ValueError as exc:
            logger.error("%s", exc)
            return cls([], timeout=timeout)

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
                streams = await stack.enter_async_context(_transport(server))
                session = await stack.enter_async_context(ClientSession(streams[0], streams[1]))
                await session.initialize()
                listed = await session.list_tools()
                server.tools = [self._tool(server, session, t) for t in listed.tools]
                server.session = session
                ready.set()
                await self._stop.wait()
        except Exception as exc:
            server.error = f"{type(exc).__name__}: {exc}"
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


def _transport(server: McpServer) -> Any:
    if server.url:
        from mcp.client import streamable_http

        names = ("streamable_http_client", "streamablehttp_client")  # mcp 2, mcp 1
        connect = next(getattr(streamable_http, n) for n in names if hasattr(streamable_http, n))
        return connect(server.url)
    from mcp.client.stdio import StdioServerParameters, stdio_client

    # env=None gives the server only a minimal safe environment, never our secrets
    params = StdioServerParameters(command=str(server.command), args=server.args, env=server.env)
    return stdio_client(params)
