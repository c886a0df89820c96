# ruff: noqa: F811 (pytest fixtures imported from the Discord tests are parameters here)
"""Voice notes, photos, PDFs and a tool's file end to end on Discord.

The whole App runs with the Discord connector (real discord.py) against the fake gateway and
REST API, whose CDN serves each attachment at its signed URL; the fake Ollama records what the
model was sent, and the fake speech server decodes the uploaded audio as a real one would.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opencomputer.bot.app import App
from opencomputer.bot.config import Settings
from opencomputer.bot.testing import FakeOllama
from tests.discord import discord_payloads as p
from tests.discord.discord_helpers import fake  # noqa: F401 (fixture)
from tests.discord.fake_discord import FakeDiscord
from tests.discord.test_discord_e2e import dm, start_app  # noqa: F401 (fixture)
from tests.media.samples import big
from tests.media.turn_kit import (
    HEARD,
    PLOT_CAPTION,
    QUESTION,
    SANDBOX,
    TRANSCRIPT,
    assert_heard,
    assert_plot,
    assert_read_pdf,
    assert_saw_photo,
    invoice_pdf,
    phone_photo,
    post_note_tool,
    script_pdf_turn,
    script_plot_turn,
    speech_server,
    voice_note,
)

CHANNEL = p.DM_CHANNEL_ID
IS_VOICE_MESSAGE = 8192
MB = 1024 * 1024


def _settings(make: Callable[..., Settings], fake: FakeDiscord, **extra: Any) -> Settings:
    return make(
        DISCORD_BOT_TOKEN=fake.token,
        DISCORD_API_BASE_URL=fake.api_url,
        DISCORD_GATEWAY_URL=fake.gateway_url,
        OC_PLUGIN_SANDBOX=SANDBOX,
        **extra,
    )


def _with(fake: FakeDiscord, text: str, *attachments: dict[str, Any], **kw: Any) -> dict[str, Any]:
    msg = dm(fake, text)
    msg["attachments"] = list(attachments)
    msg.update(kw)
    return msg


def _voice(fake: FakeDiscord, data: bytes, **kw: Any) -> dict[str, Any]:
    """A voice message as the Discord apps send it: no text, one OGG attachment, a flag."""
    att = fake.attachment(
        CHANNEL, "voice-message.ogg", data, content_type="audio/ogg",
        duration_secs=1.0, waveform="AAAA", **kw,
    )  # fmt: skip
    return _with(fake, "", att, flags=IS_VOICE_MESSAGE)


async def _shown(fake: FakeDiscord, app: App, count: int) -> list[str]:
    """Wait for ``count`` bot messages and the end of the turn; their texts."""
    await fake.wait_until(lambda: len(fake.bot_messages(CHANNEL)) >= count, within=10)
    await app.runtime.wait_idle()
    return [m["content"] for m in fake.bot_messages(CHANNEL)]


async def test_voice_message_is_answered_from_its_transcript(
    fake: FakeDiscord, fake_ollama: FakeOllama, make_settings: Any, start_app: Any
) -> None:
    async with speech_server() as speech:
        app = await start_app(_settings(make_settings, fake, OC_STT_URL=speech.url))
        await fake.dispatch("MESSAGE_CREATE", _voice(fake, voice_note()))
        assert await _shown(fake, app, 2) == [HEARD, f"echo: {TRANSCRIPT}"]
    assert_heard(speech, fake_ollama)
    assert len(fake.cdn_requests) == 1 and fake.unexpected == []


async def test_photo_reaches_a_vision_model(
    fake: FakeDiscord, fake_ollama: FakeOllama, make_settings: Any, start_app: Any
) -> None:
    fake_ollama.capabilities.append("vision")
    app = await start_app(_settings(make_settings, fake))
    photo = fake.attachment(CHANNEL, "IMG_0001.jpg", phone_photo(), content_type="image/jpeg",
                            width=2000, height=1000)  # fmt: skip
    await fake.dispatch("MESSAGE_CREATE", _with(fake, "what is this?", photo))
    await _shown(fake, app, 1)
    assert_saw_photo(fake_ollama, "what is this?")


async def test_pdf_text_reaches_the_model_and_taints_the_turn(
    fake: FakeDiscord, fake_ollama: FakeOllama, make_settings: Any, start_app: Any
) -> None:
    posted: list[str] = []
    script_pdf_turn(fake_ollama)
    app = await start_app(_settings(make_settings, fake))
    app.tools.add(post_note_tool(posted))
    doc = fake.attachment(CHANNEL, "invoice.pdf", invoice_pdf(), content_type="application/pdf")
    await fake.dispatch("MESSAGE_CREATE", _with(fake, "summarise this", doc))
    [question] = await _shown(fake, app, 1)
    assert_read_pdf(fake_ollama, "summarise this")
    assert QUESTION in question and 'the attached file "invoice.pdf"' in question
    assert posted == []  # it waits for the owner


async def test_a_matplotlib_plot_the_code_tool_made_is_uploaded_with_its_caption(
    fake: FakeDiscord, fake_ollama: FakeOllama, make_settings: Any, start_app: Any
) -> None:
    script_plot_turn(fake_ollama)
    app = await start_app(_settings(make_settings, fake))
    await fake.dispatch("MESSAGE_CREATE", dm(fake, "plot my visits"))
    shown = await _shown(fake, app, 2)
    assert shown == ["Here is your chart.", PLOT_CAPTION]
    [upload] = [r for r in fake.calls("POST", rf"/channels/{CHANNEL}/messages") if r.files]
    [(field, name, data)] = [(f.field, f.filename, f.data) for f in upload.files]
    assert (field, name) == ("files[0]", "plot.png")
    assert_plot(data)
    assert fake.bot_messages(CHANNEL)[1]["attachments"][0]["filename"] == "plot.png"


async def test_an_oversized_voice_message_is_one_line_and_the_bot_answers_on(
    fake: FakeDiscord, fake_ollama: FakeOllama, make_settings: Any, start_app: Any
) -> None:
    async with speech_server() as speech:
        settings = _settings(make_settings, fake, OC_STT_URL=speech.url, OC_MAX_ATTACHMENT_MB="1")
        app = await start_app(settings)
        # It claims 1,000 bytes; the CDN sends 3 MB: the download stops at the cap.
        await fake.dispatch("MESSAGE_CREATE", _voice(fake, big(3 * MB), claimed_size=1000))
        [line] = await _shown(fake, app, 1)
        await fake.dispatch("MESSAGE_CREATE", dm(fake, "still there?"))
        shown = await _shown(fake, app, 2)
    assert line == (
        "I could not read your message: voice-message.ogg is larger than the 1 MB limit for "
        "attachments (OC_MAX_ATTACHMENT_MB). Your message is saved: send /retry to try again."
    )
    assert shown[1] == "echo: still there?"
    assert speech.heard == [] and len(fake_ollama.chats) == 1
