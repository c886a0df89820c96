# ruff: noqa: F811 (pytest fixtures imported from the Discord tests are parameters here)
"""Files out on Discord: a tool's files are posted as messages with attachments, through
discord.py's real multipart request (``payload_json`` + ``files[n]``), which the fake parses
as Discord does; the caption is the message's text.
"""

from __future__ import annotations

from typing import Any

from opencomputer.bot.config import Settings
from opencomputer.bot.outfiles import OutFile
from opencomputer.bot.testing import FakeOllama
from tests.discord import discord_payloads as p
from tests.discord.discord_helpers import fake  # noqa: F401 (fixture)
from tests.discord.fake_discord import FakeDiscord
from tests.discord.test_discord_e2e import app_settings, dm, start_app  # noqa: F401
from tests.media.outbound_helpers import CHART, CSV, TABLE, file_tool
from tests.media.samples import PNG

MESSAGES = rf"/channels/{p.DM_CHANNEL_ID}/messages"


async def test_files_a_tool_made_are_posted_as_attachments_after_the_answer(
    fake: FakeDiscord, fake_ollama: FakeOllama, app_settings: Settings, start_app: Any
) -> None:
    fake_ollama.call_tool("make_chart")
    fake_ollama.call_tool("make_chart")
    fake_ollama.reply("Here is your chart.")
    app = await start_app(app_settings)
    app.tools.add(file_tool(CHART, TABLE))
    await fake.dispatch("MESSAGE_CREATE", dm(fake, "chart my visits"))
    await fake.wait_until(lambda: sum(bool(r.files) for r in fake.requests) == 2, within=10)
    await app.runtime.wait_idle()

    posts = fake.calls("POST", MESSAGES)
    with_files = [r for r in posts if r.files]
    assert posts.index(with_files[0]) > 0  # the answer came first
    for rec, out, data in zip(with_files, (CHART, TABLE), (PNG, CSV), strict=True):
        [upload] = rec.files
        assert (upload.field, upload.filename, upload.data) == ("files[0]", out.name, data)
        assert rec.body["content"] == out.caption
        assert rec.body["attachments"] == [{"id": 0, "filename": out.name}]
    shown = fake.bot_messages(p.DM_CHANNEL_ID)
    assert shown[0]["content"] == "Here is your chart."
    assert [m["attachments"][0]["filename"] for m in shown[1:]] == ["chart.png", "visits.csv"]
    assert [m["attachments"][0]["size"] for m in shown[1:]] == [len(PNG), len(CSV)]
    assert fake.unexpected == []


async def test_a_file_over_discords_limit_is_one_line_after_the_answer(
    fake: FakeDiscord, fake_ollama: FakeOllama, app_settings: Settings, start_app: Any
) -> None:
    huge = OutFile("dump.bin", "application/octet-stream", bytes(10 * 1024 * 1024 + 1))
    fake_ollama.call_tool("make_chart")
    fake_ollama.reply("Done.")
    app = await start_app(app_settings)
    app.tools.add(file_tool(huge))
    await fake.dispatch("MESSAGE_CREATE", dm(fake, "dump it"))
    await fake.wait_until(lambda: len(fake.bot_messages(p.DM_CHANNEL_ID)) == 2, within=10)
    await app.runtime.wait_idle()
    assert [m["content"] for m in fake.bot_messages(p.DM_CHANNEL_ID)] == [
        "Done.",
        "I made the file dump.bin (10.5 MB), but Discord takes files up to 10.5 MB, "
        "so I could not send it.",
    ]
    assert not any(r.files for r in fake.requests)
