"""Junk and poison on ``/slack/events``: rejected before parsing, quarantined, never a 500.

The attacker needs no secret to POST junk: anything unsigned must be a 401 before a parser sees
it (no 500, no traceback in the log). What Slack itself signs but cannot be read is a 400; an
event of the wrong shape is kept aside and acknowledged; lone surrogates are stored cleaned.
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from opencomputer.bot.config import Settings
from opencomputer.bot.events import Command, Message, Reaction
from opencomputer.bot.storage.store import SqlStore
from opencomputer.connectors.slack import SlackConnector
from tests.slack.fake_slack_api import event_envelope
from tests.slack.slack_helpers import SECRET, Server

Serve = Callable[[list[Any]], Awaitable[Server]]

JUNK: list[bytes] = [
    b"not json, not a form",
    b"{broken json",
    b'{"type": "url_verification", "challenge": ',
    b"\xff\xfe\xfa\x80 invalid utf-8 \xc3\x28",
    b"payload=%7Bnot-json",
    b"[1, 2, 3]",
    b"",
    b"{" * 200_000,  # deep nesting for a recursive parser
    b"x" * 900_000,  # big, within the 1 MiB body limit
]


class StoringSink:
    """Stores messages through the real SqlStore (SQLite), as the runtime does."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store
        self.events: list[Message | Reaction | Command] = []

    async def __call__(self, event: Message | Reaction | Command) -> None:
        if isinstance(event, Message):
            await self.store.accept_inbound(event)
        self.events.append(event)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    db = SqlStore(f"sqlite:///{tmp_path / 'oc.db'}")
    await db.start()
    yield db
    await db.stop()


@pytest.fixture
async def wired(
    slack_settings: Callable[..., Settings], store: SqlStore, serve: Serve
) -> AsyncIterator[tuple[SlackConnector, StoringSink, Server]]:
    sink = StoringSink(store)
    conn = SlackConnector(slack_settings(), sink)
    await conn.start()
    server = await serve(conn.routes())
    yield conn, sink, server
    await conn.stop()


async def _post(server: Server, body: bytes, headers: dict[str, str]) -> int:
    data: Any = io.BytesIO(body) if len(body) > 512 * 1024 else body  # aiohttp wants a stream
    async with server.session.post(server.url + "/slack/events", data=data, headers=headers) as r:
        await r.read()
        return r.status


def _signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    # signed_headers signs text; sign the exact bytes the way Slack does (v0:ts:body).
    import hashlib
    import hmac

    ts = str(int(time.time()))
    digest = hmac.new(secret.encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256)
    return {
        "Content-Type": "application/json",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": f"v0={digest.hexdigest()}",
    }


def _no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert bad == [], [r.getMessage()[:200] for r in bad]


@pytest.mark.parametrize("body", JUNK, ids=lambda b: repr(b[:20]))
async def test_unsigned_or_badly_signed_junk_is_401_before_parsing(
    wired: tuple[SlackConnector, StoringSink, Server],
    body: bytes,
    caplog: pytest.LogCaptureFixture,
) -> None:
    conn, sink, server = wired
    now = str(int(time.time()))
    attempts = [
        {},  # no signature at all
        {"X-Slack-Request-Timestamp": now, "X-Slack-Signature": "v0=" + "0" * 64},
        _signed(body, secret="not-the-secret"),
        {"X-Slack-Request-Timestamp": "abc", "X-Slack-Signature": "v0=00"},
        {"X-Slack-Request-Timestamp": "9" * 40, "X-Slack-Signature": "v0=00"},
        {"X-Slack-Request-Timestamp": "-5", "X-Slack-Signature": "v0=00"},
        {"X-Slack-Request-Timestamp": now},  # signature missing
    ]
    for headers in attempts:
        headers.setdefault("Content-Type", "application/json")
        assert await _post(server, body, headers) == 401, headers
    assert sink.events == [] and conn.quarantine.entries() == []
    _no_traceback(caplog)


@pytest.mark.parametrize("body", JUNK[:7], ids=lambda b: repr(b[:20]))
async def test_signed_junk_is_400_or_ignored_never_500(
    wired: tuple[SlackConnector, StoringSink, Server],
    body: bytes,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _conn, sink, server = wired
    status = await _post(server, body, _signed(body))
    assert status in (200, 400, 404), status  # Bolt answers 404 to a body it has no route for
    assert sink.events == []
    _no_traceback(caplog)


async def test_body_over_the_limit_is_refused_without_a_traceback(
    wired: tuple[SlackConnector, StoringSink, Server], caplog: pytest.LogCaptureFixture
) -> None:
    _conn, _sink, server = wired
    body = b"x" * (3 * 1024 * 1024)
    assert await _post(server, body, {"Content-Type": "application/json"}) in (401, 413)
    _no_traceback(caplog)


async def test_lone_surrogates_are_stored_cleaned(
    wired: tuple[SlackConnector, StoringSink, Server],
) -> None:
    _conn, sink, server = wired
    event = {"type": "message", "channel": "D1", "channel_type": "im", "user": "U\ud800"}
    envelope = event_envelope({**event, "text": "hi \udfff there", "ts": f"{time.time():.6f}"})
    body = json.dumps(envelope).encode()  # ensure_ascii: the surrogates travel as \\udXXX
    assert b"\\ud800" in body
    assert await _post(server, body, _signed(body)) == 200
    [msg] = sink.events
    assert isinstance(msg, Message)
    assert (msg.text, msg.user.id) == ("hi \ufffd there", "U\ufffd")
    rows = await sink.store.unfinished_inbound()
    assert [r.text for r in rows] == ["hi \ufffd there"]  # SQLite took it


@pytest.mark.parametrize(
    "event",
    [
        "just a string",
        ["a", "list"],
        {"type": "reaction_added", "user": "U1", "item": "not-an-object", "reaction": "+1"},
        {"type": "reaction_added", "user": "U1", "item": ["x"], "reaction": "+1"},
    ],
    ids=["event-string", "event-list", "item-string", "item-list"],
)
async def test_wrong_shapes_are_quarantined_and_acknowledged(
    wired: tuple[SlackConnector, StoringSink, Server],
    event: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    conn, sink, server = wired
    envelope = event_envelope({"type": "message"})
    envelope["event"] = event
    body = json.dumps(envelope).encode()
    status = await _post(server, body, _signed(body))
    assert status == 200  # acknowledged: Slack does not retry it
    held = conn.quarantine.entries()
    if held:  # Bolt may drop a non-object event before our listener; either way: no 500
        assert held[0]["key"] == envelope["event_id"] and held[0]["raw"]["event"] == event
    ok = event_envelope(
        {"type": "message", "channel": "D2", "channel_type": "im", "user": "U2", "text": "next"}
        | {"ts": f"{time.time():.6f}"}
    )
    ok_body = json.dumps(ok).encode()
    assert await _post(server, ok_body, _signed(ok_body)) == 200
    assert [getattr(e, "text", "") for e in sink.events] == ["next"]
    _no_traceback(caplog)


async def test_event_refused_three_times_is_quarantined_on_the_third(
    slack_settings: Callable[..., Settings], serve: Serve
) -> None:
    async def refusing(event: Any) -> None:
        raise ValueError("a handler bug this event always triggers")

    conn = SlackConnector(slack_settings(), refusing)
    await conn.start()
    try:
        server = await serve(conn.routes())
        envelope = event_envelope(
            {"type": "message", "channel": "D1", "channel_type": "im", "user": "U1"}
            | {"text": "poison", "ts": f"{time.time():.6f}"}
        )
        body = json.dumps(envelope).encode()
        statuses = [await _post(server, body, _signed(body)) for _ in range(3)]
        assert statuses == [503, 503, 200]  # Slack's retries, then acknowledged
        [held] = conn.quarantine.entries()
        assert held["key"] == envelope["event_id"] and "not taken 3 times" in held["reason"]
    finally:
        await conn.stop()
