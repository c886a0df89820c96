"""Attachments in storage: stored with the inbound row, rebuilt from it (the restore path)."""

from __future__ import annotations

from pathlib import Path

from opencomputer.bot.events import Attachment, AttachmentKind, Chat, Message, User
from opencomputer.bot.runtime import message_from_row
from opencomputer.bot.scale.codec import decode_event, encode_event
from opencomputer.bot.storage import SqlStore
from opencomputer.bot.storage.attachments import attachments_from_json, attachments_from_row


def _message(event_id: str, *attachments: Attachment) -> Message:
    return Message(
        platform="telegram",
        event_id=event_id,
        chat=Chat("telegram", "1"),
        user=User("telegram", "2", "Ann"),
        text="",
        attachments=attachments,
    )


async def test_rows_keep_attachments_and_old_rows_have_none(tmp_path: Path) -> None:
    odd = Attachment(
        AttachmentKind.DOCUMENT, "id\ud800x", "bad\udc00name.pdf", "application/pdf", 7
    )
    files = (
        Attachment(AttachmentKind.AUDIO, "FILE1", "voice.ogg", "audio/ogg", 120),
        Attachment(AttachmentKind.IMAGE, '{"url": "mxc://hs/abc"}', "cat.jpg", "", None),
        odd,
    )
    assert odd.name == "bad\ufffdname.pdf"  # a lone surrogate from a client is replaced
    store = SqlStore(f"sqlite:///{tmp_path / 'store.db'}")
    await store.start()
    try:
        assert await store.accept_inbound(_message("e1", *files)) is not None
        assert await store.accept_inbound(_message("e2")) is not None
        with_files, without = await store.unfinished_inbound()
    finally:
        await store.stop()
    assert attachments_from_row(with_files) == files
    assert without.attachments is None and attachments_from_row(without) == ()
    # recovery rebuilds the whole message from its row, files included
    assert message_from_row(with_files).attachments == files
    assert message_from_row(without).attachments == ()


def test_attachments_cross_from_gateway_to_worker() -> None:
    """Scale-out: the stream entry a gateway publishes carries the handles to the worker."""
    files = (Attachment(AttachmentKind.AUDIO, "FILE1", "voice.ogg", "audio/ogg", 120),)
    decoded = decode_event(encode_event(_message("e3", *files)))
    assert isinstance(decoded, Message) and decoded.attachments == files
    plain = decode_event(encode_event(_message("e4")))
    assert isinstance(plain, Message) and plain.attachments == ()


def test_unreadable_stored_attachments_are_skipped() -> None:
    assert attachments_from_json("not json") == ()
    assert attachments_from_json('{"kind": "audio"}') == ()
    kept = attachments_from_json('[{"handle": "h", "kind": "hologram", "size": "9"}, {"x": 1}]')
    assert kept == (Attachment(AttachmentKind.OTHER, "h"),)
