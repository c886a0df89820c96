"""A malformed dispatch is skipped and kept, never a reason to log in again (issue 19).

The fake gateway sends a MESSAGE_CREATE discord.py cannot parse, then a good one: the good one
is answered in the same session (no second IDENTIFY, no new connection), the bad one is in the
quarantine with its raw payload. Lone surrogates come out cleaned.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from opencomputer.bot.config import Settings
from opencomputer.bot.events import Message
from opencomputer.connectors.discord import DiscordConnector
from opencomputer.connectors.discord.gateway import ReconnectPolicy
from tests.discord import discord_payloads as p
from tests.discord.discord_helpers import Sink
from tests.discord.fake_discord import FakeDiscord


@pytest.fixture
async def conn(discord_env: None, sink: Sink, tmp_path: Path) -> AsyncIterator[DiscordConnector]:
    settings = Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
    connector = DiscordConnector(
        settings,
        sink,
        guild_ready_timeout=0.05,
        identify_delay=0.0,
        reconnect=ReconnectPolicy(base=0.01, cap=0.05, stable_after=60),
    )
    await connector.start()
    try:
        await connector.wait_connected()
        yield connector
    finally:
        await connector.stop()


def _dm(fake: FakeDiscord, text: str) -> dict[str, Any]:
    return p.message(
        message_id=fake.new_id(), channel_id=p.DM_CHANNEL_ID, content=text, author=p.human_user()
    )


def _broken(fake: FakeDiscord, how: str) -> dict[str, Any]:
    msg = _dm(fake, "malformed")
    if how == "author-string":
        msg["author"] = "nobody"
    elif how == "id-not-a-number":
        msg["id"] = "not-a-snowflake"
    elif how == "mentions-string":
        msg["mentions"] = "everyone"
    return msg


@pytest.mark.parametrize("how", ["author-string", "id-not-a-number", "mentions-string"])
async def test_malformed_message_create_is_skipped_without_a_new_login(
    fake: FakeDiscord,
    conn: DiscordConnector,
    sink: Sink,
    how: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    identifies, connections = len(fake.identifies), fake.connections
    bad = _broken(fake, how)
    await fake.dispatch("MESSAGE_CREATE", bad)
    await fake.dispatch("MESSAGE_CREATE", _dm(fake, "the good one"))
    [event] = await sink.wait_for(Message, 1)
    assert event.text == "the good one"
    await fake.wait_until(lambda: bool(conn.quarantine.entries()), within=5)
    [held] = conn.quarantine.entries()
    assert held["raw"] == bad and held["key"].startswith("MESSAGE_CREATE:")
    assert (len(fake.identifies), fake.connections) == (identifies, connections)  # same session
    assert not fake.resumes
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


async def test_a_lone_surrogate_in_a_gateway_frame_is_cleaned_not_a_new_login(
    fake: FakeDiscord, conn: DiscordConnector, sink: Sink
) -> None:
    """JSON may escape half of a surrogate pair (``"\\ud83d"``); orjson, which discord.py uses
    when installed, refuses the whole frame, and the session started again (replaying it).
    """
    identifies, connections = len(fake.identifies), fake.connections
    await fake.dispatch("MESSAGE_CREATE", _dm(fake, "half \ud83d of a smile"))
    await fake.dispatch("MESSAGE_CREATE", _dm(fake, "the next one"))
    first, second = await sink.wait_for(Message, 2)
    assert first.text == "half \ufffd of a smile" and second.text == "the next one"
    assert (len(fake.identifies), fake.connections) == (identifies, connections)
    assert not fake.resumes
