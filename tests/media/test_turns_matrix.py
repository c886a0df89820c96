# ruff: noqa: F811 (pytest fixtures imported from the Matrix tests are parameters here)
"""Voice messages, photos, PDFs and a tool's file end to end on Matrix, on a real Synapse.

The whole App runs with the Matrix connector (real matrix-nio); a person's nio client uploads
each file to the media repository and sends it as Element does (``m.audio`` with the voice
flag, ``m.image``, ``m.file``); the fake Ollama records what the model was sent, and the fake
speech server decodes the audio as a real one would.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
from nio import UploadResponse

from opencomputer.bot.config import Settings
from opencomputer.bot.testing import FakeOllama
from tests.matrix.conftest import (  # noqa: F401 (fixtures)
    bot_account,
    human,
    human_account,
    synapse,
)
from tests.matrix.matrix_helpers import Human
from tests.matrix.synapse_server import Account, SynapseServer
from tests.matrix.test_matrix_app import Running, start_app  # noqa: F401 (fixture)
from tests.media.test_images import _png_bomb
from tests.media.test_outbound_matrix import _download
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

pytestmark = pytest.mark.synapse


@pytest.fixture
def settings_with(
    make_settings: Callable[..., Settings],
    synapse: SynapseServer,
    bot_account: Account,
    human_account: Account,
) -> Callable[..., Settings]:
    def make(**extra: Any) -> Settings:
        return make_settings(
            MATRIX_HOMESERVER=synapse.url,
            MATRIX_USER_ID=bot_account.user_id,
            MATRIX_PASSWORD=bot_account.password,
            OC_ADMINS=f"matrix:{human_account.user_id}",
            OC_PLUGIN_SANDBOX=SANDBOX,
            **extra,
        )

    return make


async def _room(running: Running, human: Human) -> str:
    """A direct room with the bot, joined."""
    room = await human.create_room([running.bot.user_id], direct=True)
    await human.wait_membership(room, running.bot.user_id, "join")
    return room


async def _send_file(
    human: Human, room: str, msgtype: str, data: bytes, mime: str, name: str, **extra: Any
) -> str:
    """Upload ``data`` to the media repository, then send the event that shows it."""
    resp, _ = await human.client.upload(
        io.BytesIO(data), content_type=mime, filename=name, filesize=len(data)
    )
    assert isinstance(resp, UploadResponse), resp
    content = {
        "msgtype": msgtype,
        "body": name,
        "url": resp.content_uri,
        "info": {"mimetype": mime, "size": len(data)},
    }
    return await human.send(room, {**content, **extra})


def _texts(human: Human, room: str, bot_id: str) -> list[str]:
    """The bot's messages in the room as shown now: each one's latest edit."""
    texts: dict[str, str] = {}
    for r, e in human.seen:
        if r != room or e["sender"] != bot_id or e["type"] != "m.room.message":
            continue
        content = e["content"]
        relation = content.get("m.relates_to", {})
        if relation.get("rel_type") == "m.replace":
            texts[relation["event_id"]] = content["m.new_content"]["body"]
        else:
            texts.setdefault(e["event_id"], content.get("body", ""))
    return list(texts.values())


async def _shown(running: Running, human: Human, room: str, count: int) -> list[str]:
    """Wait for ``count`` bot messages and the end of the turn; what the room shows."""
    bot_id = running.bot.user_id
    await human.wait_for(lambda _r, _e: len(_texts(human, room, bot_id)) >= count)
    await running.app.runtime.wait_idle()
    await human.sync(0)  # the last edits
    return _texts(human, room, bot_id)


async def test_voice_message_is_answered_from_its_transcript(
    start_app: Any, settings_with: Any, human: Human, fake_ollama: FakeOllama
) -> None:
    async with speech_server() as speech:
        running = await start_app(settings_with(OC_STT_URL=speech.url))
        room = await _room(running, human)
        voice = {
            "org.matrix.msc1767.audio": {"duration": 1000, "waveform": [0, 512, 1024]},
            "org.matrix.msc3245.voice": {},
        }
        await _send_file(human, room, "m.audio", voice_note(), "audio/ogg", "Voice message.ogg",
                         **voice)  # fmt: skip
        assert await _shown(running, human, room, 2) == [HEARD, f"echo: {TRANSCRIPT}"]
    assert_heard(speech, fake_ollama)


async def test_photo_reaches_a_vision_model(
    start_app: Any, settings_with: Any, human: Human, fake_ollama: FakeOllama
) -> None:
    fake_ollama.capabilities.append("vision")
    running = await start_app(settings_with())
    room = await _room(running, human)
    await _send_file(human, room, "m.image", phone_photo(), "image/jpeg", "IMG_0001.jpg",
                     body="what is this?", filename="IMG_0001.jpg")  # fmt: skip
    await _shown(running, human, room, 1)
    assert_saw_photo(fake_ollama, "what is this?")


async def test_pdf_text_reaches_the_model_and_taints_the_turn(
    start_app: Any, settings_with: Any, human: Human, fake_ollama: FakeOllama
) -> None:
    posted: list[str] = []
    script_pdf_turn(fake_ollama)
    running = await start_app(settings_with())
    running.app.tools.add(post_note_tool(posted))
    room = await _room(running, human)
    await _send_file(human, room, "m.file", invoice_pdf(), "application/pdf", "invoice.pdf",
                     body="summarise this", filename="invoice.pdf")  # fmt: skip
    [question] = await _shown(running, human, room, 1)
    assert_read_pdf(fake_ollama, "summarise this")
    assert QUESTION in question and 'the attached file "invoice.pdf"' in question
    assert posted == []  # it waits for the owner


async def test_a_matplotlib_plot_the_code_tool_made_is_uploaded_and_shown_as_an_image(
    start_app: Any,
    settings_with: Any,
    human: Human,
    human_account: Account,
    synapse: SynapseServer,
    fake_ollama: FakeOllama,
) -> None:
    script_plot_turn(fake_ollama)
    running = await start_app(settings_with())
    room = await _room(running, human)
    await human.say(room, "plot my visits")
    assert await _shown(running, human, room, 2) == ["Here is your chart.", PLOT_CAPTION]
    [image] = [
        e for r, e in human.seen
        if r == room and e["type"] == "m.room.message" and e["content"].get("msgtype") == "m.image"
    ]  # fmt: skip
    assert (image["sender"], image["content"]["filename"]) == (running.bot.user_id, "plot.png")
    assert_plot(await _download(synapse, human_account, image["content"]["url"]))


async def test_an_image_bomb_named_jpg_is_one_line_and_the_bot_answers_on(
    start_app: Any, settings_with: Any, human: Human, fake_ollama: FakeOllama
) -> None:
    fake_ollama.capabilities.append("vision")
    running = await start_app(settings_with())
    room = await _room(running, human)
    bomb = _png_bomb(100_000, 100_000)  # a PNG (not the JPEG its name says) of 10 gigapixels
    await _send_file(human, room, "m.image", bomb, "image/jpeg", "holiday.jpg")
    [line] = await _shown(running, human, room, 1)
    await human.say(room, "still there?")
    shown = await _shown(running, human, room, 2)
    assert line == (
        'I could not read your message: "holiday.jpg" could not be read: the image has 10,000 '
        "megapixels, over the 40-megapixel limit; send a smaller one. Your message is saved: "
        "send /retry to try again."
    )
    assert shown[1] == "echo: still there?" and len(fake_ollama.chats) == 1
