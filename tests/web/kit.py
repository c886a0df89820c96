"""The real app with the web chat on its HTTP server, and a visitor: an aiohttp client with its
own cookie jar that does what the page does (session, POSTs with the CSRF token, the event
stream read line by line as a browser's EventSource reads it).
"""

from __future__ import annotations

import asyncio
import io
import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from opencomputer.bot.app import App
from opencomputer.bot.config import Settings
from opencomputer.connectors.web.connector import WebConnector

WAIT = 10.0


@asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[tuple[App, str]]:
    """Start the whole app; the web channel comes through its entry point with the services."""
    app = App(settings)
    await app.start()
    try:
        assert [c.platform for c in app.connectors] == ["web"]
        assert isinstance(app.connectors[0], WebConnector)
        assert app.http is not None
        yield app, f"http://127.0.0.1:{app.http.port}"
    finally:
        await app.stop()


def settings_for(make_settings: Callable[..., Settings], **overrides: Any) -> Settings:
    return make_settings(OC_WEB_CHAT="true", OC_PLANNING="false", **overrides)


@dataclass
class Stream:
    """An open ``/chat/events`` stream: every event read so far, and a way to wait for more."""

    response: aiohttp.ClientResponse
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    """Each event's ``id`` ("" for none), beside ``events``."""
    last_id: str = ""
    """What an EventSource would send back as ``Last-Event-ID`` (ids persist across events)."""
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    async def _read(self) -> None:
        kind, data, eid = "message", "", ""
        async for raw in self.response.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("id: "):
                eid = self.last_id = line[4:]
            elif line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                data += line[6:]
            elif not line and data:
                self.events.append((kind, json.loads(data)))
                self.ids.append(eid)
                self._changed.set()
                kind, data, eid = "message", "", ""

    async def wait(
        self, check: Callable[[list[tuple[str, dict[str, Any]]]], Any], timeout: float = WAIT
    ) -> Any:
        """Wait until ``check(events)`` is truthy; return its value."""
        async with asyncio.timeout(timeout):
            while True:
                found = check(self.events)
                if found:
                    return found
                self._changed.clear()
                await self._changed.wait()

    def texts(self, message_id: str) -> list[str]:
        """Every text one message showed, in order (streaming edits included)."""
        return [d["text"] for k, d in self.events if k == "message" and d["id"] == message_id]


@dataclass
class Visitor:
    """One browser: its cookies, its CSRF token."""

    base: str
    http: aiohttp.ClientSession
    csrf: str = ""
    user: str = ""

    async def session(self) -> dict[str, Any]:
        async with self.http.get(f"{self.base}/chat/session") as r:
            assert r.status == 200, await r.text()
            body: dict[str, Any] = await r.json()
        self.csrf, self.user = body["csrf"], body["user"]
        return body

    async def post(
        self,
        path: str,
        body: Any,
        *,
        csrf: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        sent = {"X-CSRF-Token": self.csrf if csrf is None else csrf, **(headers or {})}
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        sent.setdefault("Content-Type", "application/json")
        sending: Any = io.BytesIO(data) if len(data) > 1024 * 1024 else data  # aiohttp's advice
        async with self.http.post(f"{self.base}{path}", data=sending, headers=sent) as r:
            text = await r.text()
            try:
                return r.status, json.loads(text)
            except ValueError:
                return r.status, {"text": text}

    async def say(self, text: str, message_id: str | None = None) -> tuple[int, dict[str, Any]]:
        return await self.post(
            "/chat/messages", {"id": message_id or uuid.uuid4().hex, "text": text}
        )

    async def vote(self, message_id: str, emoji: str, added: bool = True) -> int:
        status, _ = await self.post(
            "/chat/reactions", {"message_id": message_id, "emoji": emoji, "added": added}
        )
        return status

    async def history(self) -> list[dict[str, Any]]:
        async with self.http.get(f"{self.base}/chat/history") as r:
            assert r.status == 200, await r.text()
            messages: list[dict[str, Any]] = (await r.json())["messages"]
            return messages

    @asynccontextmanager
    async def stream(self, last_id: str | None = None) -> AsyncIterator[Stream]:
        headers = {"Last-Event-ID": last_id} if last_id is not None else {}
        async with self.http.get(f"{self.base}/chat/events", headers=headers) as r:
            assert r.status == 200, await r.text()
            assert r.headers["Content-Type"].startswith("text/event-stream")
            stream = Stream(r)
            stream._task = asyncio.create_task(stream._read())
            try:
                yield stream
            finally:
                stream._task.cancel()
                await asyncio.gather(stream._task, return_exceptions=True)


@asynccontextmanager
async def visitor(base: str, cookies: aiohttp.CookieJar | None = None) -> AsyncIterator[Visitor]:
    """A browser (cookies for 127.0.0.1 need the jar's ``unsafe``)."""
    jar = cookies or aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        yield Visitor(base, http)


def bot_messages(events: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    return [d for k, d in events if k == "message" and d["role"] == "bot"]
