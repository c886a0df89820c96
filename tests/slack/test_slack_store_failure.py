"""An event the runtime cannot store is not acknowledged, so Slack delivers it again (issue 19).

Over HTTP a non-2xx answer makes Slack retry; in Socket Mode an envelope that is not acked is
sent again. A full disk (``DiskFull``, or SQLite's own "database or disk is full") is a
refusal that passes: it is never counted toward quarantining the event.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

import pytest

from opencomputer.bot.config import Settings
from opencomputer.bot.events import Command, Message, Reaction
from opencomputer.bot.storage.disk import DiskFull
from opencomputer.connectors.slack import SlackConnector
from tests.slack.fake_slack_api import FakeSlackApi, event_envelope
from tests.slack.slack_helpers import Server

Serve = Callable[[list[Any]], Awaitable[Server]]


class RefusingSink:
    """Refuses every event with ``refusal`` while it is set (what ``Runtime.emit`` raises)."""

    def __init__(self) -> None:
        self.refusal: Exception | None = None
        self.events: list[Message | Reaction | Command] = []
        self.refused = 0

    async def __call__(self, event: Message | Reaction | Command) -> None:
        if self.refusal is not None:
            self.refused += 1
            raise self.refusal
        self.events.append(event)


def _dm(text: str) -> dict[str, Any]:
    event = {"type": "message", "channel": "D1", "channel_type": "im", "user": "U1"}
    return event_envelope({**event, "text": text, "ts": f"{time.time():.6f}"})


@pytest.mark.parametrize(
    "refusal",
    [DiskFull("the disk is full"), sqlite3.OperationalError("database or disk is full")],
    ids=["disk-full", "sqlite-full"],
)
async def test_unstorable_event_is_503_until_stored_then_acked_once(
    slack_settings: Callable[..., Settings], serve: Serve, refusal: Exception
) -> None:
    sink = RefusingSink()
    sink.refusal = refusal
    conn = SlackConnector(slack_settings(), sink)
    await conn.start()
    try:
        server = await serve(conn.routes())
        envelope = _dm("keep me")
        # Slack's first try and its retries: refused each time, never quarantined.
        statuses = [(await server.post_event(envelope, retry=n or None)).status for n in range(5)]
        assert statuses == [503] * 5
        assert conn.quarantine.entries() == []
        sink.refusal = None
        assert (await server.post_event(envelope, retry=5)).status == 200
        assert [e.event_id for e in sink.events] == [envelope["event_id"]]
    finally:
        await conn.stop()


async def test_unstorable_slash_command_is_not_acknowledged(
    slack_settings: Callable[..., Settings], serve: Serve
) -> None:
    sink = RefusingSink()
    sink.refusal = DiskFull("the disk is full")
    conn = SlackConnector(slack_settings(), sink)
    await conn.start()
    try:
        server = await serve(conn.routes())
        form = urlencode(
            {
                "command": "/oc",
                "text": "reset",
                "user_id": "U1",
                "channel_id": "D1",
                "channel_name": "directmessage",
                "team_id": "T0001",
                "trigger_id": "trig-full",
            }
        )
        refused = await server.post_form(form)
        assert refused.status >= 500 and sink.events == []
        sink.refusal = None
        assert (await server.post_form(form)).status == 200
        assert [type(e) for e in sink.events] == [Command]
    finally:
        await conn.stop()


async def test_socket_mode_envelope_is_not_acked_while_unstorable(
    fake_slack: FakeSlackApi, slack_settings: Callable[..., Settings]
) -> None:
    sink = RefusingSink()
    sink.refusal = DiskFull("the disk is full")
    settings = slack_settings(slack_signing_secret=None, slack_app_token=fake_slack.app_token)
    conn = SlackConnector(settings, sink)
    await conn.start()
    try:
        payload = _dm("over the socket")
        refused = await fake_slack.push_socket(payload)
        async with asyncio.timeout(10):
            while not sink.refused:
                await asyncio.sleep(0.02)
        sink.refusal = None
        later = await fake_slack.push_socket(_dm("after"))  # acks are in order: once it is acked
        await fake_slack.wait_for(
            lambda: any(a.get("envelope_id") == later for a in fake_slack.socket_acks)
        )
        assert not any(a.get("envelope_id") == refused for a in fake_slack.socket_acks)
        again = await fake_slack.push_socket(payload)  # Slack redelivers the unacked envelope
        await fake_slack.wait_for(
            lambda: any(a.get("envelope_id") == again for a in fake_slack.socket_acks)
        )
        assert [getattr(e, "text", "") for e in sink.events] == ["after", "over the socket"]
    finally:
        await conn.stop()
