# ruff: noqa: F811 (pytest fixtures imported from the Matrix tests are parameters here)
"""Matrix media in, on a real Synapse: ``m.audio``/``m.image``/``m.file`` become attachments
downloaded from the media repository (authenticated media); media sent in an encrypted room is
decrypted with the key in the event, and a tampered file is refused.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from nio import UploadResponse

from opencomputer.bot.attachments import AttachmentError, AttachmentTooLarge, fetch
from opencomputer.bot.events import AttachmentKind, Message
from tests.matrix.conftest import (  # noqa: F401
    bot_account,
    human,
    human_account,
    make_bot,
    sink,
    synapse,
)
from tests.matrix.matrix_helpers import BotFactory, Human, Sink
from tests.matrix.synapse_server import Account, SynapseServer
from tests.media.samples import EXE, JPEG, OGG_OPUS, PDF, big

pytestmark = pytest.mark.synapse

MB = 1024 * 1024
ENCRYPTION = {
    "type": "m.room.encryption",
    "state_key": "",
    "content": {"algorithm": "m.megolm.v1.aes-sha2"},
}


async def _upload(
    human: Human, data: bytes, mime: str, name: str, *, encrypt: bool = False
) -> tuple[str, dict[str, Any] | None]:
    resp, keys = await human.client.upload(
        io.BytesIO(data), content_type=mime, filename=name, encrypt=encrypt, filesize=len(data)
    )
    assert isinstance(resp, UploadResponse), resp
    return resp.content_uri, keys


async def _media(
    human: Human, room: str, msgtype: str, data: bytes, mime: str, name: str, **extra: Any
) -> str:
    size = extra.pop("claimed_size", len(data))
    uri, _ = await _upload(human, data, mime, name)
    content = {
        "msgtype": msgtype,
        "body": name,
        "url": uri,
        "info": {"mimetype": mime, "size": size},
    }
    return await human.send(room, {**content, **extra})


async def _message(sink: Sink, event_id: str) -> Message:
    msg: Message = await sink.wait_for(lambda e: isinstance(e, Message) and e.event_id == event_id)
    return msg


async def test_voice_photo_and_pdf_from_the_media_repository(
    make_bot: BotFactory, human: Human, sink: Sink
) -> None:
    bot = await make_bot()
    room = await human.create_room([bot.user_id], direct=True)
    await human.wait_membership(room, bot.user_id, "join")
    voice_id = await _media(human, room, "m.audio", OGG_OPUS, "audio/ogg", "Voice message.ogg",
                            **{"org.matrix.msc3245.voice": {}})  # fmt: skip
    photo_id = await _media(human, room, "m.image", JPEG, "image/jpeg", "cat.jpg",
                            filename="cat.jpg", body="what is this?")  # fmt: skip
    doc_id = await _media(human, room, "m.file", PDF, "application/pdf", "report.pdf")
    huge_id = await _media(human, room, "m.file", big(2 * MB), "application/pdf", "tiny.pdf",
                           claimed_size=900)  # fmt: skip
    exe_id = await _media(human, room, "m.file", EXE, "application/pdf", "invoice.pdf")

    voice, photo, doc = [await _message(sink, i) for i in (voice_id, photo_id, doc_id)]
    assert (voice.text, photo.text, doc.text) == ("", "what is this?", "")
    [a_voice], [a_photo], [a_doc] = voice.attachments, photo.attachments, doc.attachments
    assert [a.kind for a in (a_voice, a_photo, a_doc)] == [
        AttachmentKind.AUDIO, AttachmentKind.IMAGE, AttachmentKind.DOCUMENT]  # fmt: skip
    assert (a_photo.name, a_doc.size) == ("cat.jpg", len(PDF))
    assert json.loads(a_doc.handle)["url"].startswith("mxc://")
    for att, data, mime in ((a_voice, OGG_OPUS, "audio/ogg"), (a_photo, JPEG, "image/jpeg"),
                            (a_doc, PDF, "application/pdf")):  # fmt: skip
        got = await fetch(bot, att, 20 * MB)
        assert got.data == data and got.attachment.mime == mime

    huge = await _message(sink, huge_id)
    with pytest.raises(AttachmentTooLarge, match=r"^tiny\.pdf is larger than the 1 MB limit"):
        await fetch(bot, huge.attachments[0], 1 * MB)
    program = await _message(sink, exe_id)
    got = await fetch(bot, program.attachments[0], 1 * MB)
    assert (got.attachment.mime, got.attachment.kind) == (
        "application/x-msdownload", AttachmentKind.OTHER)  # fmt: skip


async def test_encrypted_room_media_is_decrypted_and_tampering_refused(
    make_bot: BotFactory,
    sink: Sink,
    synapse: SynapseServer,
    human_account: Account,
    tmp_path: Path,
) -> None:
    pytest.importorskip("vodozemac", reason="matrix-nio[e2e] is not installed")
    bot = await make_bot()
    human = Human(synapse.url, human_account, store=tmp_path / "human-store")
    try:
        await human.sync(0)
        room = await human.create_room([bot.user_id], direct=True, initial_state=[ENCRYPTION])
        await human.wait_membership(room, bot.user_id, "join")
        await human.sync(0)  # learn the bot's device keys
        uri, keys = await _upload(human, PDF, "application/pdf", "secret.pdf", encrypt=True)
        assert keys is not None
        content = {
            "msgtype": "m.file",
            "body": "secret.pdf",
            "info": {"mimetype": "application/pdf", "size": len(PDF)},
            "file": {"url": uri, **keys},
        }
        good_id = await human.send(room, content)
        forged = {**keys, "hashes": {"sha256": "A" * 43}}
        bad_id = await human.send(room, {**content, "file": {"url": uri, **forged}})

        good = await _message(sink, good_id)
        [att] = good.attachments
        assert att.kind is AttachmentKind.DOCUMENT and "key" in json.loads(att.handle)
        got = await fetch(bot, att, 20 * MB)
        assert got.data == PDF and got.attachment.mime == "application/pdf"
        bad = await _message(sink, bad_id)
        with pytest.raises(AttachmentError, match="could not be decrypted"):
            await fetch(bot, bad.attachments[0], 20 * MB)
    finally:
        await human.client.close()
