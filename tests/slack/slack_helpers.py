from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from opencomputer.bot.config import Settings
from opencomputer.bot.events import Command, Message, Reaction
from tests.slack.fake_slack_api import FakeSlackApi, signed_headers

SECRET = "test-signing-secret"
TOKEN = "xoxb-test-token"


class Sink:
    """An ``emit`` that appends events and lets a test await them."""

    def __init__(self) -> None:
        self.events: list[Message | Reaction | Command] = []
        self._changed = asyncio.Condition()

    async def __call__(self, event: Message | Reaction | Command) -> None:
        async with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    async def wait(self, count: int, within: float = 5.0) -> list[Message | Reaction | Command]:
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: len(self.events) >= count)
        return self.events


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlackApi]:
    fake = await FakeSlackApi(TOKEN).start()
    yield fake
    await fake.stop()


@pytest.fixture
def slack_settings(fake_slack: FakeSlackApi, tmp_path: Path) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "slack_bot_token": TOKEN,
            "slack_signing_secret": SECRET,
            "slack_api_url": fake_slack.url,
            "data_dir": tmp_path,
            **overrides,
        }
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    return make


class Server:
    """Routes served on loopback the way the shared HTTP app serves them."""

    def __init__(self, runner: web.AppRunner, session: aiohttp.ClientSession) -> None:
        self.runner = runner
        self.session = session
        self.url = f"http://127.0.0.1:{runner.addresses[0][1]}"

    async def post_event(
        self,
        envelope: dict[str, Any],
        *,
        secret: str = SECRET,
        timestamp: int | None = None,
        retry: int | None = None,
        path: str = "/slack/events",
    ) -> aiohttp.ClientResponse:
        body = json.dumps(envelope)
        headers = signed_headers(secret, body, timestamp=timestamp, retry=retry)
        async with self.session.post(self.url + path, data=body, headers=headers) as resp:
            await resp.read()
            return resp

    async def post_form(self, form: str, *, secret: str = SECRET) -> aiohttp.ClientResponse:
        headers = signed_headers(secret, form)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        async with self.session.post(self.url + "/slack/events", data=form, headers=headers) as r:
            await r.read()
            return r


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[list[web.RouteDef]], Awaitable[Server]]]:
    runners: list[web.AppRunner] = []
    session = aiohttp.ClientSession()

    async def start(routes: list[web.RouteDef]) -> Server:
        app = web.Application()
        app.add_routes(routes)
        runner = web.AppRunner(app, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        return Server(runner, session)

    yield start
    await session.close()
    for runner in runners:
        await runner.cleanup()
