# ruff: noqa: F811 (pytest fixtures imported from the Slack tests are parameters here)
"""Voice clips, photos, PDFs and a tool's file end to end on Slack.

The whole App runs with the Slack connector (real slack-bolt and slack-sdk): signed
``file_share`` events are posted to its HTTP app, the fake Web API serves each file's
``url_private`` to the bot token and takes uploads through ``files_upload_v2``; the fake Ollama
records what the model was sent, and the fake speech server decodes the audio as a real one would.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from opencomputer.bot.config import Settings
from opencomputer.bot.testing import FakeOllama
from opencomputer.bot.testing.fake_speech import sine_audio
from tests.media.samples import EXE
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
)
from tests.slack.fake_slack_api import FakeSlackApi, event_envelope
from tests.slack.slack_helpers import SECRET, TOKEN, fake_slack  # noqa: F401 (fixture)
from tests.slack.test_slack_e2e import Running, dm, start_app  # noqa: F401 (fixture)


def _settings(make: Callable[..., Settings], fake: FakeSlackApi, **extra: Any) -> Settings:
    return make(
        SLACK_BOT_TOKEN=TOKEN,
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_API_URL=fake.url,
        OC_PLUGIN_SANDBOX=SANDBOX,
        **extra,
    )


def _share(text: str, *files: dict[str, Any]) -> dict[str, Any]:
    """A ``file_share`` message in the DM, as Slack's Events API delivers it."""
    event = {
        "type": "message",
        "subtype": "file_share",
        "channel": "D1",
        "channel_type": "im",
        "user": "U1",
        "text": text,
        "ts": f"{time.time():.6f}",
        "files": list(files),
        "upload": False,
        "display_as_bot": False,
    }
    return event_envelope(event)


def _texts(fake: FakeSlackApi) -> list[str]:
    """What the DM shows: each message's latest text."""
    return [m.edits[-1] if m.edits else m.text for m in fake.posted("D1")]


async def _shown(fake: FakeSlackApi, running: Running, count: int) -> list[str]:
    await fake.wait_for(lambda: len(fake.posted("D1")) >= count, within=10)
    await running.app.runtime.wait_idle()
    return _texts(fake)


@pytest.mark.parametrize("label", ["audio/mp4", "video/mp4"])
async def test_audio_clip_is_answered_from_its_transcript(
    fake_slack: FakeSlackApi,
    fake_ollama: FakeOllama,
    make_settings: Any,
    start_app: Any,
    label: str,
) -> None:
    # Slack's recorded audio clips are AAC in an MP4 container, named audio_message.mp4, and
    # labelled audio/mp4 or at times video/mp4: the bytes' first box reads as video either way.
    clip = fake_slack.file(
        "audio_message.mp4", sine_audio(1.0, fmt="mp4", codec="aac", rate=44100),
        mimetype=label, subtype="slack_audio",
    )  # fmt: skip
    async with speech_server() as speech:
        running = await start_app(_settings(make_settings, fake_slack, OC_STT_URL=speech.url))
        assert await running.post(_share("", clip)) == 200
        assert await _shown(fake_slack, running, 2) == [HEARD, f"echo: {TRANSCRIPT}"]
    assert_heard(speech, fake_ollama)
    assert [h["Authorization"] for _, h in fake_slack.file_requests] == [f"Bearer {TOKEN}"]


async def test_photo_reaches_a_vision_model(
    fake_slack: FakeSlackApi, fake_ollama: FakeOllama, make_settings: Any, start_app: Any
) -> None:
    fake_ollama.capabilities.append("vision")
    photo = fake_slack.file("IMG_0001.jpg", phone_photo(), mimetype="image/jpeg")
    running = await start_app(_settings(make_settings, fake_slack))
    assert await running.post(_share("what is this?", photo)) == 200
    await _shown(fake_slack, running, 1)
    assert_saw_photo(fake_ollama, "what is this?")


async def test_pdf_text_reaches_the_model_and_taints_the_turn(
    fake_slack: FakeSlackApi, fake_ollama: FakeOllama, make_settings: Any, start_app: Any
) -> None:
    posted: list[str] = []
    script_pdf_turn(fake_ollama)
    doc = fake_slack.file("invoice.pdf", invoice_pdf(), mimetype="application/pdf")
    running = await start_app(_settings(make_settings, fake_slack))
    running.app.tools.add(post_note_tool(posted))
    assert await running.post(_share("summarise this", doc)) == 200
    [question] = await _shown(fake_slack, running, 1)
    assert_read_pdf(fake_ollama, "summarise this")
    assert QUESTION in question and 'the attached file "invoice.pdf"' in question
    assert posted == []  # it waits for the owner


async def test_a_matplotlib_plot_the_code_tool_made_is_uploaded_and_shared_with_its_caption(
    fake_slack: FakeSlackApi, fake_ollama: FakeOllama, make_settings: Any, start_app: Any
) -> None:
    script_plot_turn(fake_ollama)
    running = await start_app(_settings(make_settings, fake_slack))
    await running.post_and_wait(dm("plot my visits"))
    await fake_slack.wait_for(lambda: fake_slack.shared, within=10)
    [chart] = fake_slack.shared
    assert (chart.filename, chart.initial_comment, chart.channel) == (
        "plot.png", PLOT_CAPTION, "D1",
    )  # fmt: skip
    assert_plot(chart.data)
    assert _texts(fake_slack) == ["Here is your chart."]
    assert len(fake_slack.calls_of("files.completeUploadExternal")) == 1


async def test_a_program_named_pdf_is_one_line_and_the_bot_answers_on(
    fake_slack: FakeSlackApi, fake_ollama: FakeOllama, make_settings: Any, start_app: Any
) -> None:
    fake = fake_slack.file("invoice.pdf", EXE, mimetype="application/pdf")
    running = await start_app(_settings(make_settings, fake_slack))
    assert await running.post(_share("", fake)) == 200
    [line] = await _shown(fake_slack, running, 1)
    await running.post_and_wait(dm("still there?"))
    shown = await _shown(fake_slack, running, 2)
    assert line == (
        'I could not read your message: "invoice.pdf" is not a file I can read '
        "(application/x-msdownload). Your message is saved: send /retry to try again."
    )
    assert shown[1] == "echo: still there?" and len(fake_ollama.chats) == 1
