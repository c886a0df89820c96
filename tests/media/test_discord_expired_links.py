# ruff: noqa: F811 (pytest fixtures imported from the Discord tests are parameters here)
"""Discord's signed CDN links expire (about a day): a refused link is renewed once through the
message it came with (``channel.fetch_message``), so a file of a stored message still downloads
on ``/retry`` or after a restart the next day; anything else is one clear line.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from opencomputer.bot.attachments import AttachmentError, DownloadRefused, fetch
from opencomputer.bot.events import Attachment, AttachmentKind, Message
from opencomputer.connectors.discord import DiscordConnector
from tests.discord import discord_payloads as p
from tests.discord.discord_helpers import Sink, connector, discord_env, fake, sink  # noqa: F401
from tests.discord.fake_discord import FakeDiscord
from tests.media.samples import PDF

MB = 1024 * 1024


async def _deliver(
    fake: FakeDiscord, sink: Sink, attachments: list[dict[str, Any]]
) -> tuple[Message, dict[str, Any]]:
    """A person's message with files, through the gateway; also kept as Discord keeps it."""
    msg = p.message(
        message_id=fake.new_id(), channel_id=p.DM_CHANNEL_ID, content="", author=p.human_user()
    )
    msg["attachments"] = attachments
    before = len(sink.of(Message))
    await fake.dispatch("MESSAGE_CREATE", msg)
    events = await sink.wait_for(Message, before + 1)
    fake.messages[msg["id"]] = msg
    return events[before], msg


def _message_fetches(fake: FakeDiscord) -> list[str]:
    return [r.path for r in fake.requests if r.method == "GET" and "/messages/" in r.path]


async def test_an_expired_link_is_renewed_through_its_message(
    fake: FakeDiscord, connector: DiscordConnector, sink: Sink
) -> None:
    doc = fake.attachment(p.DM_CHANNEL_ID, "report.pdf", PDF, content_type="application/pdf")
    event, stored = await _deliver(fake, sink, [doc])
    handle = json.loads(event.attachments[0].handle)
    assert handle == {"url": doc["url"], "channel": p.DM_CHANNEL_ID, "message": stored["id"]}

    stored["attachments"] = [fake.expire(doc)]  # a day later: the old link answers 404
    got = await fetch(connector, event.attachments[0], 20 * MB)
    assert got.data == PDF
    assert _message_fetches(fake) == [f"/channels/{p.DM_CHANNEL_ID}/messages/{stored['id']}"]
    first, second = fake.cdn_requests
    assert first.query["hm"] == "ab12cd" and second.query["hm"] != "ab12cd"
    assert all("Authorization" not in r.headers for r in fake.cdn_requests)


async def test_a_deleted_message_says_so_in_one_line(
    fake: FakeDiscord, connector: DiscordConnector, sink: Sink
) -> None:
    doc = fake.attachment(p.DM_CHANNEL_ID, "gone.pdf", PDF, content_type="application/pdf")
    event, stored = await _deliver(fake, sink, [doc])
    fake.expire(doc)
    del fake.messages[stored["id"]]
    with pytest.raises(AttachmentError) as info:
        await fetch(connector, event.attachments[0], 20 * MB)
    assert str(info.value) == (
        "could not download gone.pdf: its link expired and Discord would not renew it "
        "(HTTP 404; was the message deleted?)"
    )


async def test_a_file_removed_from_its_message_is_not_swapped_for_another(
    fake: FakeDiscord, connector: DiscordConnector, sink: Sink
) -> None:
    doc = fake.attachment(p.DM_CHANNEL_ID, "a.pdf", PDF, content_type="application/pdf")
    other = fake.attachment(p.DM_CHANNEL_ID, "b.pdf", PDF, content_type="application/pdf")
    event, stored = await _deliver(fake, sink, [doc])
    fake.expire(doc)
    stored["attachments"] = [other]  # edited: a.pdf removed, another file there
    with pytest.raises(AttachmentError, match=r"^could not download a\.pdf: it is no longer on"):
        await fetch(connector, event.attachments[0], 20 * MB)


async def test_renewal_happens_once_and_old_or_damaged_handles_do_not_renew(
    fake: FakeDiscord, connector: DiscordConnector, sink: Sink
) -> None:
    doc = fake.attachment(p.DM_CHANNEL_ID, "x.pdf", PDF, content_type="application/pdf")
    event, stored = await _deliver(fake, sink, [doc])
    renewed = fake.expire(doc)
    stored["attachments"] = [renewed]
    fake.expire(renewed)  # the renewed link refused too: no loop
    with pytest.raises(DownloadRefused, match="HTTP 404"):
        await fetch(connector, event.attachments[0], 20 * MB)
    assert len(_message_fetches(fake)) == 1 and len(fake.cdn_requests) == 2

    bare = Attachment(AttachmentKind.DOCUMENT, doc["url"], "x.pdf")  # stored before handles
    with pytest.raises(DownloadRefused, match="HTTP 404"):
        await fetch(connector, bare, 20 * MB)
    damaged = Attachment(AttachmentKind.DOCUMENT, '{"url": 5}', "x.pdf")
    with pytest.raises(AttachmentError, match="stored handle is damaged"):
        await fetch(connector, damaged, 20 * MB)
    assert len(_message_fetches(fake)) == 1
