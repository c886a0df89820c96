"""Secrets never reach a log line or a prompt, over a full run of the app."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator
from urllib.parse import quote

import orjson
import pytest

from opencomputer.bot.config import Settings
from opencomputer.bot.logs import setup_logging
from opencomputer.bot.testing import FakeOllama
from opencomputer.bot.testing.harness import Harness
from opencomputer.bot.tools import Tool, ToolError

TOKEN = "123456789:AAH-secret-telegram-token-value"
SIGNING = "slack-signing-secret-9f8e7d"


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    yield stream
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved[0]:
        root.addHandler(handler)
    root.setLevel(saved[1])


async def test_full_run_leaks_no_secret(
    admin_settings: Callable[..., Settings], fake_ollama: FakeOllama, log_stream: io.StringIO
) -> None:
    settings = admin_settings(
        OC_DM_POLICY="open",
        TELEGRAM_BOT_TOKEN=TOKEN,
        SLACK_SIGNING_SECRET=SIGNING,
        OC_SYSTEM_PROMPT=f"You are helpful. (internal: {SIGNING})",
    )
    setup_logging("DEBUG", settings.secret_values(), stream=log_stream)

    async def leaky(url: str) -> str:
        full = f"{url}/bot{TOKEN}/getMe"
        logging.getLogger("tests.leaky").info("fetching %s", full)
        if url.endswith("2"):
            raise ToolError(f"could not fetch {full}")
        raise RuntimeError(f"could not fetch {url}/bot{quote(TOKEN, safe='')}/getMe")

    params = {"type": "object", "properties": {"url": {"type": "string"}}, "required": ["url"]}
    async with Harness(settings) as h:
        # a test double with no real effect: its second call must not stop at an approval
        h.app.tools.add(Tool("leaky", "Fetch a URL.", params, leaky, effects=frozenset()))
        fake_ollama.call_tool("leaky", url="https://example.org/1")
        fake_ollama.call_tool("leaky", url="https://example.org/2")
        fake_ollama.reply("done")
        assert await h.say(f"my token is {TOKEN}, keep it safe") == "done"
        logging.getLogger("tests").warning("settings: %s", settings.secret_values())

    logs = log_stream.getvalue()
    assert "fetching" in logs and "leaky failed" in logs and "RuntimeError" in logs  # it did log
    for secret in (TOKEN, SIGNING, quote(TOKEN, safe="")):
        assert secret not in logs
    assert "***" in logs
    prompts = orjson.dumps(fake_ollama.chats).decode()
    assert "my token is ***" in prompts and "internal: ***" in prompts
    assert "could not fetch https://example.org/2/bot***/getMe" in prompts  # the tool error
    assert TOKEN not in prompts and SIGNING not in prompts
