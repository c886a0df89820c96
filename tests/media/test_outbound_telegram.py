# ruff: noqa: F811 (pytest fixtures imported from the Telegram tests are parameters here)
"""Files and voice notes out on Telegram (the ``files`` and ``voice`` features).

The whole app runs against the fake Bot API, which parses the multipart uploads
python-telegram-bot makes (``sendPhoto``, ``sendDocument``, ``sendVoice``) as Telegram does and
keeps their bytes; a tool in the turn returns :class:`~bot.outfiles.OutFile` values, or the code
tool saves a matplotlib chart in its output folder.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest

from opencomputer.bot.config import Settings
from opencomputer.bot.outfiles import OutFile
from opencomputer.bot.testing import FakeOllama
from opencomputer.bot.testing.fake_speech import FakeSpeechServer
from tests.media.outbound_helpers import CSV, file_tool
from tests.media.samples import PNG
from tests.media.test_turns_with_attachments import CHAT, _settings, running
from tests.media.turn_kit import PLOT_CAPTION, assert_plot, script_plot_turn
from tests.plugins.conftest import enable_dir_plugins, make_plugin, tool_results
from tests.telegram.fake_bot_api import FakeBotApi, validate_html
from tests.telegram.telegram_helpers import _ptb_timedelta, tg  # noqa: F401 (fixtures)


async def test_files_a_tool_made_are_uploaded_after_the_answer_with_their_captions(
    tg: FakeBotApi, fake_ollama: FakeOllama, make_settings: Callable[..., Settings]
) -> None:
    chart = OutFile("chart.png", "image/png", PNG, caption="Visits this week")
    data = OutFile("visits.csv", "text/csv", CSV, caption="the numbers")
    fake_ollama.call_tool("make_chart")
    fake_ollama.call_tool("make_chart")
    fake_ollama.reply("Here is your chart.")
    async with running(_settings(make_settings, tg)) as app:
        app.tools.add(file_tool(chart, data))
        await tg.push(tg.message("chart my visits"))
        await tg.wait_for("sendDocument", within=10)
        await app.runtime.wait_idle()
        assert [validate_html(t) for t in tg.shown(CHAT)] == ["Here is your chart."]
    photo, doc = tg.uploads
    assert (photo.method, photo.filename, photo.data, photo.caption) == (
        "sendPhoto", "chart.png", PNG, "Visits this week",
    )  # fmt: skip
    assert (doc.method, doc.filename, doc.data, doc.caption) == (
        "sendDocument", "visits.csv", CSV, "the numbers",
    )  # fmt: skip
    assert photo.chat_id == doc.chat_id == CHAT
    # the model read a stand-in, never the bytes
    tool_turns = [m for m in fake_ollama.chats[-1]["messages"] if m["role"] == "tool"]
    assert [m["content"] for m in tool_turns] == [
        f"[sent file chart.png, {len(PNG)} bytes]",
        f"[sent file visits.csv, {len(CSV)} bytes]",
    ]
    # the answer came first, then the files
    order = [c.method for c in tg.calls if c.method in ("sendMessage", "sendPhoto", "sendDocument")]
    assert order == ["sendMessage", "sendPhoto", "sendDocument"]


async def test_a_file_over_the_limit_is_one_line_and_the_answer_still_arrives(
    tg: FakeBotApi, fake_ollama: FakeOllama, make_settings: Callable[..., Settings]
) -> None:
    huge = OutFile("dump.bin", "application/octet-stream", bytes(50 * 1024 * 1024 + 1))
    fake_ollama.call_tool("make_chart")
    fake_ollama.reply("Done.")
    async with running(_settings(make_settings, tg)) as app:
        app.tools.add(file_tool(huge))
        await tg.push(tg.message("dump it"))
        await tg.wait_for("sendMessage", count=2, within=10)
        await app.runtime.wait_idle()
        shown = [validate_html(t) for t in tg.shown(CHAT)]
    assert shown == [
        "Done.",
        "I made the file dump.bin (52.4 MB), but Telegram takes files up to 52.4 MB, "
        "so I could not send it.",
    ]
    assert tg.uploads == [] and tg.calls_to("sendDocument") == []


async def test_a_failed_upload_is_logged_in_one_line_and_the_answer_stands(
    tg: FakeBotApi,
    fake_ollama: FakeOllama,
    make_settings: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    tg.fail("sendDocument", status=500, description="Internal Server Error", times=5)
    fake_ollama.call_tool("make_chart")
    fake_ollama.reply("Here it is.")
    async with running(_settings(make_settings, tg)) as app:
        app.tools.add(file_tool(OutFile("visits.csv", "text/csv", CSV)))
        with caplog.at_level(logging.WARNING, logger="opencomputer.bot.outfiles"):
            await tg.push(tg.message("csv please"))
            await tg.wait_for("sendMessage", count=2, within=10)
            await app.runtime.wait_idle()
        shown = [validate_html(t) for t in tg.shown(CHAT)]
    assert shown == [
        "Here it is.",
        "I could not send the file visits.csv: the upload to Telegram failed.",
    ]
    [line] = [r.getMessage() for r in caplog.records if r.name == "opencomputer.bot.outfiles"]
    assert line.startswith(f"file visits.csv ({len(CSV)} bytes) to telegram:{CHAT} not sent: ")
    assert "\n" not in line


async def test_export_arrives_as_a_json_file(
    tg: FakeBotApi, fake_ollama: FakeOllama, make_settings: Callable[..., Settings]
) -> None:
    async with running(_settings(make_settings, tg)) as app:
        await tg.push(tg.message("remember the blue door"))
        await tg.wait_for("sendMessage", within=10)
        await app.runtime.wait_idle()
        await tg.push(tg.message("/export"))
        await tg.wait_for("sendDocument", within=10)
        await tg.wait_for("sendMessage", count=2, within=10)
        shown = [validate_html(t) for t in tg.shown(CHAT)]
    [upload] = tg.uploads
    name = f"export-{time.strftime('%Y-%m-%d', time.gmtime())}.json"
    assert (upload.method, upload.filename, upload.chat_id) == ("sendDocument", name, CHAT)
    data = json.loads(upload.data)
    assert [m["text"] for m in data["messages"]] == ["remember the blue door"]
    assert shown[-1] == f"Everything stored about you is in {name}."


async def test_voice_on_sends_each_answer_as_an_ogg_opus_voice_note(
    tg: FakeBotApi, fake_ollama: FakeOllama, make_settings: Callable[..., Settings]
) -> None:
    speech = FakeSpeechServer()
    url = await speech.start()
    fake_ollama.reply("**Paris** is the capital.")
    try:
        async with running(_settings(make_settings, tg, OC_TTS_URL=url)) as app:
            await tg.push(tg.message("/voice on"))
            await tg.wait_for("sendMessage", within=10)
            await app.runtime.wait_idle()
            await tg.push(tg.message("capital of France?"))
            await tg.wait_for("sendVoice", within=10)
            await app.runtime.wait_idle()
            await tg.push(tg.message("/voice off"))
            await tg.wait_for("sendMessage", count=3, within=10)
            await app.runtime.wait_idle()
            await tg.push(tg.message("and of Spain?"))
            await tg.wait_for("sendMessage", count=4, within=10)
            await app.runtime.wait_idle()
            shown = [validate_html(t) for t in tg.shown(CHAT)]
    finally:
        await speech.stop()
    assert shown[0].startswith("Spoken replies are on in this chat")
    assert shown[1] == "Paris is the capital."
    [note] = tg.uploads  # once: not after /voice off
    assert note.method == "sendVoice" and note.data.startswith(b"OggS")
    assert b"OpusHead" in note.data[:256]  # the fake refuses anything but OGG/Opus too
    [asked] = speech.speech_requests
    assert asked["input"] == "Paris is the capital." and asked["response_format"] == "opus"


PLOT_PLUGIN = """
import base64
from opencomputer import OutFile, tool

PNG = base64.b64decode("{png}")


@tool(effects=[])
def plot() -> OutFile:
    \"\"\"Draw the plot.\"\"\"
    return OutFile("plot.png", "image/png", PNG, caption="drawn in the sandbox")
"""


async def test_a_sandboxed_plugin_returns_a_file_across_the_sandbox(
    tg: FakeBotApi,
    fake_ollama: FakeOllama,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    plugins = tmp_path / "user-plugins"
    code = PLOT_PLUGIN.format(png=base64.b64encode(PNG).decode())
    make_plugin(plugins, "plotter", code, tools=[{"name": "plot"}])
    fake_ollama.call_tool("plot")
    fake_ollama.reply("Plotted.")
    settings = _settings(make_settings, tg, OC_PLUGIN_DIRS=str(plugins))
    async with running(settings) as app:
        await enable_dir_plugins(SimpleNamespace(app=app))
        await tg.push(tg.message("plot it"))
        await tg.wait_for("sendPhoto", within=15)
        await app.runtime.wait_idle()
    [upload] = tg.uploads
    assert (upload.filename, upload.data, upload.caption) == (
        "plot.png",
        PNG,
        "drawn in the sandbox",
    )
    [stand_in] = tool_results(fake_ollama)
    assert stand_in == f"[sent file plot.png, {len(PNG)} bytes]"


async def test_a_matplotlib_plot_the_code_tool_made_is_sent_as_a_photo_with_its_caption(
    tg: FakeBotApi, fake_ollama: FakeOllama, make_settings: Callable[..., Settings]
) -> None:
    script_plot_turn(fake_ollama)
    async with running(_settings(make_settings, tg)) as app:
        await tg.push(tg.message("plot my visits"))
        await tg.wait_for("sendPhoto", within=20)
        await app.runtime.wait_idle()
        assert [validate_html(t) for t in tg.shown(CHAT)] == ["Here is your chart."]
    [upload] = tg.uploads
    assert (upload.method, upload.filename, upload.caption, upload.chat_id) == (
        "sendPhoto", "plot.png", PLOT_CAPTION, CHAT,
    )  # fmt: skip
    assert_plot(upload.data)
    [stand_in] = tool_results(fake_ollama)  # the model read a note, never the bytes
    assert stand_in == f"[sent file plot.png, {len(upload.data)} bytes]"


async def test_a_failing_speech_server_costs_the_voice_note_only(
    tg: FakeBotApi,
    fake_ollama: FakeOllama,
    make_settings: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    speech = FakeSpeechServer()
    url = await speech.start()
    speech.status = 500
    try:
        async with running(_settings(make_settings, tg, OC_TTS_URL=url)) as app:
            await tg.push(tg.message("/voice on"))
            await tg.wait_for("sendMessage", within=10)
            await app.runtime.wait_idle()
            with caplog.at_level(logging.WARNING, logger="opencomputer.bot.voice"):
                await tg.push(tg.message("hello"))
                await tg.wait_for("sendMessage", count=2, within=10)
                await app.runtime.wait_idle()
            shown = [validate_html(t) for t in tg.shown(CHAT)]
    finally:
        await speech.stop()
    assert shown[1] == "echo: hello" and tg.uploads == []
    [line] = [r.getMessage() for r in caplog.records if r.name == "opencomputer.bot.voice"]
    assert line.startswith(f"spoken reply in telegram:{CHAT} not made: ") and "\n" not in line
