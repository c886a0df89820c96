"""The connector against the fake Web API, events POSTed signed to the real route."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

import pytest
from slack_sdk.errors import SlackApiError

from opencomputer.bot.config import Settings
from opencomputer.bot.connector import Connector, ConnectorState
from opencomputer.bot.events import Address, Command, Message
from opencomputer.connectors.slack import SlackConnector
from tests.slack.fake_slack_api import FakeSlackApi, event_envelope, signed_headers
from tests.slack.slack_helpers import SECRET, Server, Sink

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


def _dm(text: str, **extra: Any) -> dict[str, Any]:
    event = {"type": "message", "channel": "D1", "channel_type": "im", "user": "U1"}
    return event_envelope({**event, "text": text, "ts": f"{time.time():.6f}", **extra})


async def test_signed_dm_is_acked_and_emitted(
    connector: SlackConnector, serve: Serve, sink: Sink, fake_slack: FakeSlackApi
) -> None:
    assert isinstance(connector, Connector)
    assert connector.state is ConnectorState.CONNECTED
    server = await serve(connector.routes())
    envelope = _dm("hello <@U2>")
    resp = await server.post_event(envelope)
    assert resp.status == 200
    (event,) = sink.events  # persisted (emitted) before the 200
    assert isinstance(event, Message)
    assert (event.event_id, event.text, event.user.id) == (envelope["event_id"], "hello @U2", "U1")
    assert event.address == Address("slack", "D1", None)
    assert [c.method for c in fake_slack.calls] == ["auth.test"]


async def test_forged_and_stale_requests_get_401_and_nothing_else(
    connector: SlackConnector, serve: Serve, sink: Sink, fake_slack: FakeSlackApi
) -> None:
    server = await serve(connector.routes())
    forged = await server.post_event(_dm("forged"), secret="not-the-secret")
    stale = await server.post_event(_dm("replayed"), timestamp=int(time.time()) - 6 * 60)
    unsigned = await server.session.post(
        server.url + "/slack/events", data=json.dumps(_dm("x")), headers={}
    )
    assert (forged.status, stale.status, unsigned.status) == (401, 401, 401)
    assert sink.events == []
    assert [c.method for c in fake_slack.calls] == ["auth.test"]  # no Web API call either


async def test_retried_delivery_keeps_slacks_event_id(
    connector: SlackConnector, serve: Serve, sink: Sink
) -> None:
    server = await serve(connector.routes())
    envelope = _dm("once please")
    first = await server.post_event(envelope)
    again = await server.post_event(envelope, retry=1)
    assert (first.status, again.status) == (200, 200)
    assert [e.event_id for e in sink.events] == [envelope["event_id"]] * 2  # runtime dedupes


async def test_url_verification_and_unsubscribed_events(
    connector: SlackConnector, serve: Serve, sink: Sink
) -> None:
    server = await serve(connector.routes())
    challenge = {"type": "url_verification", "token": "t", "challenge": "abc123"}
    body = json.dumps(challenge)
    async with server.session.post(
        server.url + "/slack/events", data=body, headers=signed_headers(SECRET, body)
    ) as resp:
        assert resp.status == 200
        assert await resp.json() == {"challenge": "abc123"}
    other = await server.post_event(event_envelope({"type": "app_home_opened", "user": "U1"}))
    assert other.status == 200
    assert sink.events == []


async def test_slash_command_becomes_command(
    connector: SlackConnector, serve: Serve, sink: Sink
) -> None:
    server = await serve(connector.routes())
    form = urlencode(
        {
            "command": "/oc",
            "text": "model qwen3:8b",
            "user_id": "U1",
            "user_name": "ann",
            "channel_id": "C1",
            "channel_name": "general",
            "team_id": "T0001",
            "trigger_id": "trig-1",
            "response_url": "https://hooks.invalid/x",
        }
    )
    resp = await server.post_form(form)
    assert resp.status == 200
    (cmd,) = sink.events
    assert isinstance(cmd, Command)
    assert (cmd.name, cmd.args, cmd.chat.id, cmd.user.id) == ("model", "qwen3:8b", "C1", "U1")


async def test_outbound_payloads(connector: SlackConnector, fake_slack: FakeSlackApi) -> None:
    thread = Address("slack", "C1", "100.000001")
    first = await connector.send(thread, "*hi*")
    await connector.edit(thread, first, "*hi there*")
    await connector.react(thread, first, "👍")
    await connector.react(thread, first, "👍")  # already_reacted is fine
    plain = await connector.send(Address("slack", "D1"), "x &lt; y")
    post = fake_slack.calls_of("chat.postMessage")
    assert post[0].args == {
        "channel": "C1",
        "text": "*hi*",
        "thread_ts": "100.000001",
        "mrkdwn": True,
        "unfurl_links": False,
        "unfurl_media": False,
    }
    assert "thread_ts" not in post[1].args and post[1].args["channel"] == "D1"
    assert fake_slack.calls_of("chat.update")[0].args == {
        "channel": "C1",
        "ts": first,
        "text": "*hi there*",
    }
    assert fake_slack.reactions == [{"channel": "C1", "timestamp": first, "name": "+1"}]
    assert fake_slack.messages[("C1", first)].edits == ["*hi there*"]
    assert fake_slack.messages[("D1", plain)].text == "x &lt; y"
    assert all(c.token == "xoxb-test-token" for c in fake_slack.calls)


async def test_ratelimited_call_waits_retry_after_and_lands(
    connector: SlackConnector, fake_slack: FakeSlackApi
) -> None:
    address = Address("slack", "D1")
    mid = await connector.send(address, "one")
    fake_slack.fail_next("chat.update", "ratelimited", retry_after=1)
    started = time.monotonic()
    await connector.edit(address, mid, "two")
    assert time.monotonic() - started >= 0.95
    updates = fake_slack.calls_of("chat.update")
    assert len(updates) == 2 and updates[1].at - updates[0].at >= 0.95
    assert fake_slack.messages[("D1", mid)].text == "two"
    assert connector.limiter.waits == [1.0]


async def test_rejected_token_retries_with_backoff_until_accepted(
    fake_slack: FakeSlackApi,
    slack_settings: Callable[..., Settings],
    serve: Serve,
    sink: Sink,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bad = "xoxb-revoked-secret-value"
    conn = SlackConnector(slack_settings(slack_bot_token=bad), sink, retry_initial=0.05)
    caplog.set_level(logging.INFO, logger="opencomputer.connectors.slack")
    await conn.start()
    try:
        assert conn.state is ConnectorState.FAILED
        assert conn.last_error == "invalid_auth"
        server = await serve(conn.routes())
        early = await server.post_event(_dm("too early"))
        assert early.status == 503  # not acked: Slack redelivers once we are connected
        assert sink.events == []
        await fake_slack.wait_for(lambda: len(fake_slack.calls_of("auth.test")) >= 3)
        fake_slack.tokens.add(bad)
        await asyncio.wait_for(conn.connected.wait(), 5)
        assert conn.state is ConnectorState.CONNECTED
        assert (await server.post_event(_dm("now"))).status == 200
        assert [e.text for e in sink.events if isinstance(e, Message)] == ["now"]
    finally:
        await conn.stop()
    failures = [r for r in caplog.records if "rejected by Slack (invalid_auth)" in r.getMessage()]
    assert len(failures) >= 3
    assert all(bad not in r.getMessage() for r in caplog.records)


async def test_unreachable_slack_is_reconnecting_not_fatal(
    slack_settings: Callable[..., Settings], sink: Sink
) -> None:
    settings = slack_settings(slack_api_url="http://127.0.0.1:9/api/")  # discard port: refused
    conn = SlackConnector(settings, sink, retry_initial=0.05)
    await conn.start()
    try:
        assert conn.state is ConnectorState.RECONNECTING
        assert conn.last_error and "ClientConnector" in conn.last_error
    finally:
        await conn.stop()
    assert conn.state is ConnectorState.STOPPED


async def test_route_refuses_forgery_before_start(
    slack_settings: Callable[..., Settings], sink: Sink, serve: Serve
) -> None:
    conn = SlackConnector(slack_settings(), sink)
    server = await serve(conn.routes())
    assert (await server.post_event(_dm("x"), secret="wrong")).status == 401
    assert (await server.post_event(_dm("x"))).status == 503
    assert sink.events == []


async def test_event_the_sink_refuses_is_not_acked(
    slack_settings: Callable[..., Settings], serve: Serve
) -> None:
    seen: list[str] = []

    async def refusing(event: Any) -> None:
        seen.append(event.event_id)
        raise RuntimeError("shutting down")

    conn = SlackConnector(slack_settings(), refusing)
    await conn.start()
    try:
        server = await serve(conn.routes())
        envelope = _dm("later")
        assert (await server.post_event(envelope)).status == 503  # Slack will redeliver
        assert seen == [envelope["event_id"]]
    finally:
        await conn.stop()


async def test_429_in_the_middle_of_a_stream_final_text_lands(
    connector: SlackConnector, fake_slack: FakeSlackApi
) -> None:
    from dataclasses import replace

    from opencomputer.bot.reply import ReplyStream

    connector.capabilities = replace(connector.capabilities, edit_interval=0.05)
    address = Address("slack", "C1", "1700000000.000500")
    stream = ReplyStream(connector, address)
    await stream.token("Counting: **one**")
    await fake_slack.wait_for(lambda: fake_slack.calls_of("chat.postMessage"))
    fake_slack.fail_next("chat.update", "ratelimited", retry_after=1)
    await asyncio.sleep(0.06)  # past the edit interval: the next token triggers an edit
    await stream.token(", two")
    await fake_slack.wait_for(lambda: fake_slack.calls_of("chat.update"))  # the refused edit
    await stream.token(", three")  # arrives while the edit waits out Retry-After
    ids = await stream.finish("Counting: **one**, two, three & done")
    (message,) = fake_slack.posted("C1")
    assert ids == [message.ts] and message.thread_ts == address.thread_id
    assert message.text == "Counting: *one*, two, three &amp; done"
    assert message.edits == ["Counting: *one*, two", "Counting: *one*, two, three &amp; done"]
    updates = fake_slack.calls_of("chat.update")
    assert [u.args["text"] for u in updates] == [
        "Counting: *one*, two",  # refused with 429
        "Counting: *one*, two",  # retried after Retry-After
        "Counting: *one*, two, three &amp; done",
    ]
    assert updates[1].at - updates[0].at >= 0.95
    assert connector.limiter.waits == [1.0]


async def test_token_revoked_later_sends_connector_back_to_connecting(
    fake_slack: FakeSlackApi, slack_settings: Callable[..., Settings], sink: Sink
) -> None:
    conn = SlackConnector(slack_settings(), sink, retry_initial=0.05)
    await conn.start()
    try:
        assert conn.state is ConnectorState.CONNECTED
        fake_slack.tokens.clear()  # an admin revoked the token
        with pytest.raises(SlackApiError):
            await conn.send(Address("slack", "D1"), "hello?")
        assert conn.state is ConnectorState.FAILED and not conn.connected.is_set()
        await fake_slack.wait_for(lambda: len(fake_slack.calls_of("auth.test")) >= 3)
        fake_slack.tokens.add("xoxb-test-token")  # a new install restores it
        await asyncio.wait_for(conn.connected.wait(), 5)
        assert conn.state is ConnectorState.CONNECTED
        assert fake_slack.messages == {}
    finally:
        await conn.stop()
