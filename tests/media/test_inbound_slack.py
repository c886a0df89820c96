# ruff: noqa: F811 (pytest fixtures imported from the Slack tests are parameters here)
"""Slack media in: ``file_share`` messages carry ``files``, fetched from ``url_private`` with the
bot token, which never leaves Slack's hosts (not even through a redirect).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from opencomputer.bot.attachments import AttachmentError, AttachmentTooLarge, fetch
from opencomputer.bot.config import Settings
from opencomputer.bot.events import Attachment, AttachmentKind, Message
from opencomputer.connectors.slack import SlackConnector
from tests.media.samples import EXE, JPEG, OGG_OPUS, PDF, big
from tests.slack.fake_slack_api import FakeSlackApi, event_envelope
from tests.slack.slack_helpers import (  # noqa: F401
    TOKEN,
    Server,
    Sink,
    fake_slack,
    serve,
    slack_settings,
)

MB = 1024 * 1024
Serve = Callable[[list[Any]], Awaitable[Server]]


@pytest.fixture
async def sink() -> Sink:
    return Sink()


@pytest.fixture
async def connector(
    slack_settings: Callable[..., Settings], sink: Sink
) -> AsyncIterator[SlackConnector]:
    conn = SlackConnector(slack_settings(), sink)
    await conn.start()
    yield conn
    await conn.stop()


class OtherHost:
    """A server on another loopback address: it records what it was sent."""

    def __init__(self) -> None:
        self.headers: list[dict[str, str]] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _serve(self, request: web.Request) -> web.Response:
        self.headers.append(dict(request.headers))
        return web.Response(body=PDF)

    async def __aenter__(self) -> OtherHost:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._serve)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.2", 0).start()
        self.url = f"http://127.0.0.2:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


async def _share(
    server: Server, sink: Sink, files: list[dict[str, Any]], text: str = ""
) -> Message:
    event = {
        "type": "message",
        "subtype": "file_share",
        "channel": "D1",
        "channel_type": "im",
        "user": "U1",
        "text": text,
        "ts": f"{time.time():.6f}",
        "files": files,
        "upload": False,
        "display_as_bot": False,
    }
    before = len(sink.events)
    resp = await server.post_event(event_envelope(event))
    assert resp.status == 200
    message = sink.events[before]  # emitted before the ack
    assert isinstance(message, Message)
    return message


async def test_voice_photo_and_pdf_arrive_as_attachments_with_their_bytes(
    connector: SlackConnector, serve: Serve, sink: Sink, fake_slack: FakeSlackApi
) -> None:
    server = await serve(connector.routes())
    voice = fake_slack.file(
        "audio_message.ogg", OGG_OPUS, mimetype="audio/ogg", subtype="slack_audio"
    )
    photo = fake_slack.file("image.jpg", JPEG, mimetype="image/jpeg")
    doc = fake_slack.file("report.pdf", PDF, mimetype="application/pdf")
    said = await _share(server, sink, [voice])
    shown = await _share(server, sink, [photo, doc], "look at these")
    assert said.text == "" and shown.text == "look at these"
    [a_voice] = said.attachments
    a_photo, a_doc = shown.attachments
    assert [a.kind for a in (a_voice, a_photo, a_doc)] == [
        AttachmentKind.AUDIO,
        AttachmentKind.IMAGE,
        AttachmentKind.DOCUMENT,
    ]
    assert a_doc.handle == doc["url_private_download"] and a_doc.size == len(PDF)
    for att, data, mime in (
        (a_voice, OGG_OPUS, "audio/ogg"),
        (a_photo, JPEG, "image/jpeg"),
        (a_doc, PDF, "application/pdf"),
    ):
        got = await fetch(connector, att, 20 * MB)
        assert got.data == data and got.attachment.mime == mime
    assert [h["Authorization"] for _, h in fake_slack.file_requests] == [f"Bearer {TOKEN}"] * 3


async def test_redirect_to_another_host_does_not_carry_the_token(
    connector: SlackConnector, serve: Serve, sink: Sink, fake_slack: FakeSlackApi
) -> None:
    server = await serve(connector.routes())
    async with OtherHost() as other:
        doc = fake_slack.file(
            "report.pdf",
            b"",
            mimetype="application/pdf",
            redirect_to=f"{other.url}/steal?f=report.pdf",
        )
        msg = await _share(server, sink, [doc])
        got = await fetch(connector, msg.attachments[0], 20 * MB)
    assert got.data == PDF
    [(_, asked)] = fake_slack.file_requests
    assert asked["Authorization"] == f"Bearer {TOKEN}"
    [leaked] = other.headers
    assert "Authorization" not in leaked and TOKEN not in str(leaked)


async def test_file_address_off_slack_is_refused_without_a_request(
    connector: SlackConnector, fake_slack: FakeSlackApi
) -> None:
    async with OtherHost() as other:
        att = Attachment(AttachmentKind.DOCUMENT, f"{other.url}/files-pri/T1-F1/x.pdf", "x.pdf")
        with pytest.raises(AttachmentError, match=r"^x\.pdf: not a Slack file address"):
            await fetch(connector, att, 20 * MB)
    assert other.headers == []


async def test_file_bigger_than_claimed_is_cut_off_and_programs_are_named(
    connector: SlackConnector, serve: Serve, sink: Sink, fake_slack: FakeSlackApi
) -> None:
    server = await serve(connector.routes())
    huge = fake_slack.file("notes.pdf", big(3 * MB), mimetype="application/pdf", claimed_size=4096)
    fake_pdf = fake_slack.file("invoice.pdf", EXE, mimetype="application/pdf")
    msg = await _share(server, sink, [huge, fake_pdf])
    with pytest.raises(AttachmentTooLarge, match=r"^notes\.pdf is larger than the 1 MB limit"):
        await fetch(connector, msg.attachments[0], 1 * MB)
    got = await fetch(connector, msg.attachments[1], 1 * MB)
    assert got.attachment.mime == "application/x-msdownload"
    assert got.attachment.kind is AttachmentKind.OTHER
