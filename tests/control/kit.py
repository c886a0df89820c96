"""The real app with its HTTP server on (port 0), driven through the recording connector, and
a browser-like client: an aiohttp session with its own cookie jar that does what the page does.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from opencomputer.bot.config import Settings
from opencomputer.bot.testing.harness import Harness, RecordingConnector

ADMIN = "boss"
LINK = re.compile(r"(http://\S+)/ui/login#([A-Za-z0-9_-]+)")


class Served(Harness):
    """The harness, but with the shared HTTP app listening (the control room lives there)."""

    async def start(self) -> None:
        def factory(_settings: Settings, runtime: Any) -> list[Any]:
            self.connector = RecordingConnector(runtime.emit, **self._options)
            return [self.connector]

        await self.app.start(factory, http=True)

    @property
    def base(self) -> str:
        assert self.app.http is not None
        return f"http://127.0.0.1:{self.app.http.port}"

    async def link(self, user: str = ADMIN) -> str:
        """Ask for a login link with ``/web`` in a DM; the token it carries."""
        answer = await self.command("web", user=user)
        found = LINK.search(answer)
        assert found is not None, answer
        assert found.group(1) == self.base  # the port it really listens on
        return found.group(2)


def control_settings(make_settings: Callable[..., Settings], **overrides: Any) -> Settings:
    """Production access defaults (pairing) and one configured admin."""
    values: dict[str, Any] = {
        "OC_DM_POLICY": "pairing",
        "OC_ADMINS": f"test:{ADMIN}",
        "OC_PLANNING": "false",
    }
    values.update(overrides)
    return make_settings(**values)


@asynccontextmanager
async def served(settings: Settings) -> AsyncIterator[Served]:
    async with Served(settings) as h:
        yield h


@asynccontextmanager
async def browser() -> AsyncIterator[aiohttp.ClientSession]:
    """A client with its own cookie jar (``unsafe``: it accepts cookies from 127.0.0.1)."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        yield http


async def login(h: Served, http: aiohttp.ClientSession, token: str) -> tuple[int, dict[str, Any]]:
    """What the login page does with the token from its URL fragment."""
    async with http.post(f"{h.base}/ui/api/login", json={"token": token}) as r:
        return r.status, await r.json()


async def logged_in(h: Served, http: aiohttp.ClientSession, user: str = ADMIN) -> str:
    """Log ``http`` in as ``user``; the CSRF token its page would send."""
    status, body = await login(h, http, await h.link(user))
    assert status == 200, body
    return str(body["csrf"])
