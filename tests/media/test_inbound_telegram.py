# ruff: noqa: F811 (pytest fixtures imported from the Telegram tests are parameters here)
"""Telegram media in: voice notes, photos and documents become attachments fetched with
``getFile`` and the file URL under ``TELEGRAM_BASE_URL``; the bytes decide the type, the cap holds
whatever size Telegram claims, and a stored message fetches its files after a restart.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from opencomputer.bot.attachments import AttachmentTooLarge, fetch
from opencomputer.bot.config import Settings
from opencomputer.bot.events import AttachmentKind, Message
from opencomputer.bot.storage import SqlStore
from opencomputer.bot.storage.attachments import attachments_from_row
from opencomputer.connectors.telegram import TelegramConnector
from tests.media.samples import EXE, JPEG, OGG_OPUS, PDF, big
from tests.telegram.fake_bot_api import FakeBotApi
from tests.telegram.telegram_helpers import (  # noqa: F401 (fixtures)
    FAST,
    Sink,
    _ptb_timedelta,
    connector,
    sink,
    tg,
    tg_settings,
)

MB = 1024 * 1024


def _media(tg: FakeBotApi, caption: str | None = None, **media: Any) -> dict[str, Any]:
    msg = tg.message("", **media)
    del msg["text"]
    if caption is not None:
        msg["caption"] = caption
    return msg


def _file(tg: FakeBotApi, data: bytes, path: str, **extra: Any) -> dict[str, Any]:
    file_id = tg.add_file(data, path=path, claimed_size=extra.pop("claimed_size", None))
    entry = tg.files[file_id]
    return {
        "file_id": file_id,
        "file_unique_id": entry["file_unique_id"],
        "file_size": entry["file_size"],
        **extra,
    }


async def _message(tg: FakeBotApi, sink: Sink, payload: dict[str, Any]) -> Message:
    before = len(sink.events)
    await tg.push(payload)
    events = await sink.wait(before + 1)
    event = events[before]
    assert isinstance(event, Message)
    return event


async def test_voice_photo_and_pdf_arrive_as_attachments_with_their_bytes(
    tg: FakeBotApi, connector: TelegramConnector, sink: Sink
) -> None:
    voice = _file(tg, OGG_OPUS, "voice/file_1.oga", duration=2, mime_type="audio/ogg")
    small = _file(tg, b"\xff\xd8\xffthumb", "photos/s.jpg", width=90, height=60)
    large = _file(tg, JPEG, "photos/l.jpg", width=1280, height=960)
    doc = _file(tg, PDF, "documents/r.pdf", file_name="report.pdf", mime_type="application/pdf")

    said = await _message(tg, sink, _media(tg, voice=voice))
    shown = await _message(tg, sink, _media(tg, "what is this?", photo=[small, large]))
    filed = await _message(tg, sink, _media(tg, document=doc))

    assert said.text == "" and filed.text == ""  # media alone is a message too
    assert shown.text == "what is this?"
    [a_voice], [a_photo], [a_doc] = said.attachments, shown.attachments, filed.attachments
    assert (a_voice.kind, a_voice.mime, a_voice.size) == (
        AttachmentKind.AUDIO,
        "audio/ogg",
        len(OGG_OPUS),
    )
    assert a_photo.kind is AttachmentKind.IMAGE and a_photo.handle == large["file_id"]
    assert (a_doc.kind, a_doc.name) == (AttachmentKind.DOCUMENT, "report.pdf")
    assert not any(a.sniffed for a in (a_voice, a_photo, a_doc))

    for att, data, mime in (
        (a_voice, OGG_OPUS, "audio/ogg"),
        (a_photo, JPEG, "image/jpeg"),
        (a_doc, PDF, "application/pdf"),
    ):
        got = await fetch(connector, att, 20 * MB)
        assert got.data == data
        assert got.attachment.mime == mime and got.attachment.sniffed
    assert tg.file_requests == ["voice/file_1.oga", "photos/l.jpg", "documents/r.pdf"]
    assert [c["file_id"] for c in tg.calls_to("getFile")] == [
        voice["file_id"],
        large["file_id"],
        doc["file_id"],
    ]


async def test_file_bigger_than_claimed_is_cut_off_at_the_cap(
    tg: FakeBotApi, connector: TelegramConnector, sink: Sink
) -> None:
    doc = _file(
        tg,
        big(3 * MB),
        "documents/huge.pdf",
        file_name="small.pdf",
        mime_type="application/pdf",
        claimed_size=2048,
    )
    msg = await _message(tg, sink, _media(tg, document=doc))
    [att] = msg.attachments
    assert att.size == 2048  # the claim, believed by nobody
    with pytest.raises(AttachmentTooLarge) as caught:
        await fetch(connector, att, 1 * MB)
    assert str(caught.value) == (
        "small.pdf is larger than the 1 MB limit for attachments (OC_MAX_ATTACHMENT_MB)"
    )


async def test_honest_size_over_the_cap_fails_without_downloading(
    tg: FakeBotApi, connector: TelegramConnector, sink: Sink
) -> None:
    doc = _file(tg, big(2 * MB), "documents/honest.pdf", file_name="honest.pdf")
    msg = await _message(tg, sink, _media(tg, document=doc))
    with pytest.raises(AttachmentTooLarge):
        await fetch(connector, msg.attachments[0], 1 * MB)
    assert tg.file_requests == [] and tg.calls_to("getFile") == []


async def test_program_named_pdf_is_sniffed_as_a_program(
    tg: FakeBotApi, connector: TelegramConnector, sink: Sink
) -> None:
    doc = _file(tg, EXE, "documents/x.pdf", file_name="invoice.pdf", mime_type="application/pdf")
    msg = await _message(tg, sink, _media(tg, "please open", document=doc))
    [att] = msg.attachments
    assert att.mime == "application/pdf"  # what the sender claimed
    got = await fetch(connector, att, 20 * MB)
    assert got.attachment.mime == "application/x-msdownload"
    assert got.attachment.kind is AttachmentKind.OTHER


async def test_stored_message_fetches_its_files_after_a_restart(
    tg: FakeBotApi, tg_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    voice = _file(tg, OGG_OPUS, "voice/file_9.oga", duration=1, mime_type="audio/ogg")
    doc = _file(tg, PDF, "documents/keep.pdf", file_name="keep.pdf")
    settings = tg_settings()
    store = SqlStore(f"sqlite:///{tmp_path / 'store.db'}")
    await store.start()
    first = Sink()
    conn = TelegramConnector(settings, first, options=FAST)
    await conn.start()
    try:
        msg = await _message(tg, first, _media(tg, voice=voice))
        msg2 = await _message(tg, first, _media(tg, "keep this", document=doc))
        assert await store.accept_inbound(msg) is not None
        assert await store.accept_inbound(msg2) is not None
    finally:
        await conn.stop()  # the "crash": nothing but the rows survives

    again = TelegramConnector(settings, Sink(), options=FAST)
    await again.start()
    try:
        rows = await store.unfinished_inbound()
        restored = [attachments_from_row(row) for row in rows]
        assert restored == [msg.attachments, msg2.attachments]
        assert (await fetch(again, restored[0][0], 20 * MB)).data == OGG_OPUS
        assert (await fetch(again, restored[1][0], 20 * MB)).data == PDF
    finally:
        await again.stop()
        await store.stop()
