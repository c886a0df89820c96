"""The plugin author's API: decorators and the one context object every handler gets.

Handlers run inside the plugin's sandbox (or, for trusted built-ins, in the server). They get a
:class:`PluginContext` when their signature has a ``ctx`` parameter. Effects that need the
server (messages to chats) are collected in ``ctx.outbox`` and carried out by the server after
the call, so the sandbox never needs a channel back into the server.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from opencomputer.bot.events import Address, ChatKind, User
from opencomputer.bot.plugins.guard import host_allowed
from opencomputer.bot.tools import ToolError, tool

__all__ = [
    "HttpResponse",
    "KeyValueStore",
    "PermissionDenied",
    "PluginContext",
    "PluginHttp",
    "ToolError",
    "chat_kind_of",
    "command",
    "every",
    "on_forget",
    "on_message",
    "on_reaction",
    "tool",
]

F = TypeVar("F", bound=Callable[..., Any])


class PermissionDenied(ToolError):
    """The plugin tried something its manifest does not grant."""


def command(name: str) -> Callable[[F], F]:
    """Mark ``async def handler(args: str, ctx) -> str | None`` as the chat command ``/name``."""

    def wrap(fn: F) -> F:
        fn.__oc_command__ = name  # type: ignore[attr-defined]
        return fn

    return wrap


def on_message(fn: F) -> F:
    """Call ``fn(event: dict, ctx)`` for every message in chats where the plugin is enabled."""
    fn.__oc_hook__ = "on_message"  # type: ignore[attr-defined]
    return fn


def on_reaction(fn: F) -> F:
    """Call ``fn(event: dict, ctx)`` for every reaction in chats where the plugin is enabled."""
    fn.__oc_hook__ = "on_reaction"  # type: ignore[attr-defined]
    return fn


def on_forget(fn: F) -> F:
    """Call ``fn(event: dict, ctx)`` when a person asks ``/forget``: delete their data.

    Called once per linked account of the person, with ``ctx.user`` that account;
    ``event`` is ``{"type": "forget", "person": ..., "accounts": [...]}``. It runs whether or
    not the plugin is enabled in any chat (data outlives enablement). Keys of ``ctx.store``
    that name an account (``...:platform:id...``) are swept afterwards anyway.
    """
    fn.__oc_hook__ = "on_forget"  # type: ignore[attr-defined]
    return fn


def every(seconds: float) -> Callable[[F], F]:
    """Run ``fn(ctx)`` every ``seconds`` (the manifest's ``jobs`` entry sets the real period)."""

    def wrap(fn: F) -> F:
        fn.__oc_job__ = seconds  # type: ignore[attr-defined]
        return fn

    return wrap


class KeyValueStore:
    """A per-plugin store of JSON values in a SQLite file in the plugin's data folder.

    It lives in the data folder (the only place a sandboxed plugin may write), so the server's
    database is never reachable from plugin code.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path)
            self._db.execute("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT)")
        return self._db

    async def get(self, key: str, default: Any = None) -> Any:
        """Return the value stored under ``key``, or ``default``."""
        row = self._conn().execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    async def set(self, key: str, value: Any) -> None:
        """Store a JSON-serialisable value."""
        with self._conn() as db:
            db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (key, json.dumps(value)))

    async def delete(self, key: str) -> None:
        """Forget ``key``."""
        with self._conn() as db:
            db.execute("DELETE FROM kv WHERE key = ?", (key,))

    async def keys(self, prefix: str = "") -> list[str]:
        """Keys starting with ``prefix``, sorted."""
        rows = self._conn().execute(
            "SELECT key FROM kv WHERE substr(key, 1, ?) = ? ORDER BY key", (len(prefix), prefix)
        )
        return [r[0] for r in rows]

    def close(self) -> None:
        """Close the file."""
        if self._db is not None:
            self._db.close()
            self._db = None


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """What :class:`PluginHttp` returns."""

    status: int
    text: str
    headers: dict[str, str]
    url: str

    def json(self) -> Any:
        """Parse the body as JSON."""
        return json.loads(self.text)


class PluginHttp:
    """An HTTP client that refuses hosts the manifest does not grant (one session per call).

    It honours ``HTTP_PROXY``/``HTTPS_PROXY`` (``trust_env``): in the sandbox they lead to the
    egress proxy, which is what really enforces the grants (after resolving names itself, on
    every redirect too). The host check here is only a friendly early error, and the proxy's
    refusals come back as :class:`PermissionDenied` with its one-line reason.
    """

    def __init__(self, hosts: list[str], timeout: float = 20.0) -> None:
        self.hosts = hosts
        self.timeout = timeout
        self._session: Any = None

    async def request(self, method: str, url: str, **kwargs: Any) -> HttpResponse:
        """Send a request; raise :class:`PermissionDenied` for hosts not granted."""
        import aiohttp
        from yarl import URL

        from opencomputer.bot.plugins.egress import refusal_from_headers

        target = URL(url)
        if target.scheme not in ("http", "https") or not target.host:
            raise PermissionDenied(f"only http(s) URLs can be fetched, not {url!r}")
        if not host_allowed(self.hosts, target.host, target.port):
            raise PermissionDenied(f"this plugin has no network permission for {target.host}")
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout), trust_env=True
            )
        try:
            async with self._session.request(method, target, **kwargs) as resp:
                refused = refusal_from_headers(resp.headers) if resp.status == 403 else None
                if refused is not None:  # plain http: the egress proxy answered, not the site
                    raise PermissionDenied(f"the egress proxy refused: {refused}")
                text = await resp.text(errors="replace")
                return HttpResponse(resp.status, text, dict(resp.headers), str(resp.url))
        except aiohttp.ClientHttpProxyError as exc:  # https: the proxy refused the CONNECT
            refused = refusal_from_headers(exc.headers) if exc.status == 403 else None
            if refused is not None:
                raise PermissionDenied(f"the egress proxy refused: {refused}") from None
            raise
        except aiohttp.ClientConnectorError as exc:
            refused = _permission_error(exc)
            if refused is not None:  # the sandbox's guard said no: say why, not 'cannot connect'
                raise PermissionDenied(refused) from None
            raise

    async def get(self, url: str, **kwargs: Any) -> HttpResponse:
        """``GET url``."""
        return await self.request("GET", url, **kwargs)

    async def post(self, url: str, **kwargs: Any) -> HttpResponse:
        """``POST url`` (``json=`` or ``data=``)."""
        return await self.request("POST", url, **kwargs)

    async def aclose(self) -> None:
        """Close the session if one was opened."""
        if self._session is not None:
            await self._session.close()
            self._session = None


def _permission_error(exc: BaseException) -> str | None:
    seen: BaseException | None = exc
    while seen is not None:
        for candidate in (seen, getattr(seen, "os_error", None)):
            if isinstance(candidate, PermissionError) and candidate.args:
                return str(candidate.args[-1] if candidate.errno else candidate.args[0])
        seen = seen.__cause__ or seen.__context__
    return None


def chat_kind_of(value: object) -> ChatKind | None:
    """The request's chat kind; a value this version does not know counts as a group.

    ``None`` (a job, a hook outside any chat) stays ``None``; anything but ``"direct"`` that
    is not a known kind is read the stricter way, so a plugin never shows private data to it.
    """
    if value is None:
        return None
    try:
        return ChatKind(str(value))
    except ValueError:
        return ChatKind.GROUP


@dataclass(slots=True)
class PluginContext:
    """Everything a plugin handler may use. One per call.

    ``chat_kind`` says where the call was made: :attr:`ChatKind.DIRECT` (the person and the
    bot alone), :attr:`ChatKind.GROUP` (everyone in the chat reads the answer), or ``None``
    outside any chat (a scheduled job, the ``/forget`` hook). A handler that shows a person's
    own data must check :attr:`private` first: the address alone cannot tell a DM from a group.
    """

    plugin: str
    settings: Mapping[str, str]
    data_dir: Path
    store: KeyValueStore
    http: PluginHttp
    log: logging.Logger
    user: User | None = None
    address: Address | None = None
    outbox: list[dict[str, Any]] = field(default_factory=list)
    chat_kind: ChatKind | None = None

    @property
    def private(self) -> bool:
        """Whether only the caller reads the answer (a direct chat); unknown counts as not."""
        return self.chat_kind is ChatKind.DIRECT

    @property
    def chat(self) -> str:
        """``platform:chat_id`` of the call's chat (threads of one chat are one place), or ''."""
        return f"{self.address.platform}:{self.address.chat_id}" if self.address else ""

    async def send(self, text: str, address: Address | None = None) -> None:
        """Message a chat (this conversation's unless ``address`` is given) after the call."""
        target = address or self.address
        if target is None:
            raise ToolError("no chat to send to: pass an address")
        self.outbox.append({"address": target.key, "text": text})

    async def aclose(self) -> None:
        """Release what the call opened."""
        await self.http.aclose()
        self.store.close()
