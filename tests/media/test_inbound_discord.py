# ruff: noqa: F811 (pytest fixtures imported from the Discord tests are parameters here)
"""Discord media in: a message's attachments (voice messages included) become attachments
fetched from their signed CDN URL, sniffed, and capped whatever size the payload claims.
"""

from __future__ import annotations

from typing import Any

import pytest

from opencomputer.bot.attachments import AttachmentTooLarge, fetch
from opencomputer.bot.events import AttachmentKind, Message
from opencomputer.connectors.discord import DiscordConnector
from tests.discord import discord_payloads as p
from tests.discord.discord_helpers import Sink, connector, discord_env, fake, sink  # noqa: F401
from tests.discord.fake_discord import FakeDiscord
from tests.media.samples import EXE, JPEG, OGG_OPUS, PDF, big

MB = 1024 * 1024


async def _deliver(
    fake: FakeDiscord, sink: Sink, attachments: list[dict[str, Any]], content: str = "", **kw: Any
) -> Message:
    msg = p.message(
        message_id=fake.new_id(),
        channel_id=p.DM_CHANNEL_ID,
        content=content,
        author=p.human_user(),
    )
    msg["attachments"] = attachments
    msg.update(kw)
    before = len(sink.of(Message))
    await fake.dispatch("MESSAGE_CREATE", msg)
    events = await sink.wait_for(Message, before + 1)
    return events[before]  # type: ignore[no-any-return]


async def test_voice_photo_and_pdf_arrive_as_attachments_with_their_bytes(
    fake: FakeDiscord, connector: DiscordConnector, sink: Sink
) -> None:
    voice = fake.attachment(
        p.DM_CHANNEL_ID,
        "voice-message.ogg",
        OGG_OPUS,
        content_type="audio/ogg",
        duration_secs=2.5,
        waveform="AAAA",
    )
    photo = fake.attachment(
        p.DM_CHANNEL_ID, "cat.jpg", JPEG, content_type="image/jpeg", width=640, height=480
    )
    doc = fake.attachment(p.DM_CHANNEL_ID, "report.pdf", PDF, content_type="application/pdf")

    said = await _deliver(fake, sink, [voice], flags=8192)  # IS_VOICE_MESSAGE, no text
    shown = await _deliver(fake, sink, [photo, doc], "what are these?")

    assert said.text == "" and shown.text == "what are these?"
    [a_voice] = said.attachments
    a_photo, a_doc = shown.attachments
    assert (a_voice.kind, a_voice.name, a_voice.size) == (
        AttachmentKind.AUDIO,
        "voice-message.ogg",
        len(OGG_OPUS),
    )
    assert (a_photo.kind, a_doc.kind) == (AttachmentKind.IMAGE, AttachmentKind.DOCUMENT)

    for att, data, mime in (
        (a_voice, OGG_OPUS, "audio/ogg"),
        (a_photo, JPEG, "image/jpeg"),
        (a_doc, PDF, "application/pdf"),
    ):
        got = await fetch(connector, att, 20 * MB)
        assert got.data == data and got.attachment.mime == mime
    # the CDN is asked without the bot token: its URLs are signed
    assert all("Authorization" not in r.headers for r in fake.cdn_requests)
    assert len(fake.cdn_requests) == 3


async def test_file_bigger_than_claimed_is_cut_off_at_the_cap(
    fake: FakeDiscord, connector: DiscordConnector, sink: Sink
) -> None:
    doc = fake.attachment(
        p.DM_CHANNEL_ID, "tiny.pdf", big(3 * MB), content_type="application/pdf", claimed_size=1000
    )
    msg = await _deliver(fake, sink, [doc])
    with pytest.raises(AttachmentTooLarge, match=r"^tiny\.pdf is larger than the 1 MB limit"):
        await fetch(connector, msg.attachments[0], 1 * MB)


async def test_program_named_pdf_is_sniffed_as_a_program(
    fake: FakeDiscord, connector: DiscordConnector, sink: Sink
) -> None:
    doc = fake.attachment(p.DM_CHANNEL_ID, "invoice.pdf", EXE, content_type="application/pdf")
    msg = await _deliver(fake, sink, [doc], "open me")
    got = await fetch(connector, msg.attachments[0], 20 * MB)
    assert msg.attachments[0].kind is AttachmentKind.DOCUMENT  # the claim
    assert (got.attachment.mime, got.attachment.kind) == (
        "application/x-msdownload",
        AttachmentKind.OTHER,
    )
