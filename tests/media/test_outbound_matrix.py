# ruff: noqa: F811 (pytest fixtures imported from the Matrix tests are parameters here)
"""Files out on Matrix, on a real Synapse: uploaded to the media repository, then shown by an
``m.image`` / ``m.file`` / ``m.audio`` event with the caption as its body; in an encrypted room
the bytes are encrypted before the upload and the keys travel inside the (encrypted) event.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from nio.crypto.attachments import decrypt_attachment

from opencomputer.bot.config import Settings
from opencomputer.bot.events import Address
from opencomputer.bot.outfiles import OutFile
from opencomputer.bot.testing import FakeOllama
from tests.matrix.conftest import (  # noqa: F401 (fixtures)
    bot_account,
    human,
    human_account,
    make_bot,
    sink,
    synapse,
)
from tests.matrix.matrix_helpers import BotFactory, Human
from tests.matrix.synapse_server import Account, SynapseServer
from tests.matrix.test_matrix_app import app_settings, start_app  # noqa: F401 (fixtures)
from tests.media.outbound_helpers import CHART, CSV, TABLE, file_tool
from tests.media.samples import OGG_OPUS, PNG

pytestmark = pytest.mark.synapse

ENCRYPTION = {
    "type": "m.room.encryption",
    "state_key": "",
    "content": {"algorithm": "m.megolm.v1.aes-sha2"},
}


async def _download(synapse: SynapseServer, account: Account, mxc: str) -> bytes:
    """What the media repository holds under ``mxc`` (authenticated media, as clients ask)."""
    parts = urlsplit(mxc)
    url = f"{synapse.url}/_matrix/client/v1/media/download/{parts.netloc}{parts.path}"
    auth = {"Authorization": f"Bearer {account.access_token}"}
    async with aiohttp.ClientSession() as http, http.get(url, headers=auth) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.read()


def _files_from(bot_id: str) -> Any:
    return lambda _r, e: (
        e["sender"] == bot_id
        and e["type"] == "m.room.message"
        and e["content"].get("msgtype") in ("m.image", "m.file", "m.audio")
    )


async def test_files_a_tool_made_are_uploaded_and_posted_after_the_answer(
    start_app: Any,
    app_settings: Settings,
    human: Human,
    human_account: Account,
    synapse: SynapseServer,
    fake_ollama: FakeOllama,
) -> None:
    fake_ollama.call_tool("make_chart")
    fake_ollama.call_tool("make_chart")
    fake_ollama.reply("Here is your chart.")
    running = await start_app(app_settings)
    running.app.tools.add(file_tool(CHART, TABLE))
    bot_id = running.bot.user_id
    room = await human.create_room([bot_id], direct=True)
    await human.wait_membership(room, bot_id, "join")
    await human.say(room, "chart my visits")
    await human.wait_for(lambda _r, e: e["content"].get("filename") == "visits.csv")
    await running.app.runtime.wait_idle()

    image, table = [e for r, e in human.seen if r == room and _files_from(bot_id)(r, e)]
    assert image["content"]["msgtype"] == "m.image"
    assert (image["content"]["body"], image["content"]["filename"]) == (
        "Visits this week", "chart.png",
    )  # fmt: skip
    assert image["content"]["info"] == {"mimetype": "image/png", "size": len(PNG)}
    assert table["content"]["msgtype"] == "m.file"
    assert table["content"]["body"] == "the numbers"
    assert await _download(synapse, human_account, image["content"]["url"]) == PNG
    assert await _download(synapse, human_account, table["content"]["url"]) == CSV
    texts = [
        e["content"].get("m.new_content", e["content"]).get("body")
        for r, e in human.seen
        if r == room and e["sender"] == bot_id and e["type"] == "m.room.message"
    ]
    assert texts.index("Here is your chart.") < texts.index("Visits this week")


async def test_a_voice_note_in_an_encrypted_room_is_encrypted_media(
    make_bot: BotFactory,
    synapse: SynapseServer,
    human_account: Account,
    tmp_path: Any,
) -> None:
    pytest.importorskip("vodozemac", reason="matrix-nio[e2e] is not installed")
    bot = await make_bot()
    person = Human(synapse.url, human_account, store=tmp_path / "human-store")
    try:
        await person.sync(0)
        room = await person.create_room([bot.user_id], direct=True, initial_state=[ENCRYPTION])
        await person.wait_membership(room, bot.user_id, "join")
        await person.sync(0)
        await person.say(room, "say something")  # the bot learns our device on its sync
        note = OutFile("reply.ogg", "audio/ogg", OGG_OPUS, voice=True)
        event_id = await bot.send_file(Address("matrix", room), note)
        event = await person.wait_for(lambda _r, e: e.get("event_id") == event_id)
    finally:
        await person.client.close()
    content = event["content"]  # decrypted by the person's client
    assert content["msgtype"] == "m.audio" and "org.matrix.msc3245.voice" in content
    assert "url" not in content and content["file"]["url"].startswith("mxc://")
    stored = await _download(synapse, human_account, content["file"]["url"])
    assert stored != OGG_OPUS  # the homeserver holds ciphertext only
    keys = content["file"]
    plain = decrypt_attachment(stored, keys["key"]["k"], keys["hashes"]["sha256"], keys["iv"])
    assert plain == OGG_OPUS
