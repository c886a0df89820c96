"""Socket Mode: the real slack-sdk Socket Mode client against the fake's WebSocket endpoint."""

from __future__ import annotations

import time
from collections.abc import Callable

from opencomputer.bot.config import Settings
from opencomputer.bot.connector import ConnectorState
from opencomputer.bot.events import Command, Message
from opencomputer.connectors.slack import SlackConnector
from tests.slack.fake_slack_api import FakeSlackApi, event_envelope
from tests.slack.slack_helpers import Sink


def acked(fake: FakeSlackApi, envelope_id: str) -> bool:
    return any(a.get("envelope_id") == envelope_id for a in fake.socket_acks)


async def test_socket_mode_delivers_and_acks(
    fake_slack: FakeSlackApi, slack_settings: Callable[..., Settings]
) -> None:
    sink = Sink()
    settings = slack_settings(slack_signing_secret=None, slack_app_token=fake_slack.app_token)
    conn = SlackConnector(settings, sink)
    assert conn.routes() == []  # nothing to mount: events come over the WebSocket
    await conn.start()
    try:
        assert conn.state is ConnectorState.CONNECTED
        opened = fake_slack.calls_of("apps.connections.open")
        assert len(opened) == 1 and opened[0].token == fake_slack.app_token
        event = {"type": "message", "channel": "D1", "channel_type": "im", "user": "U1"}
        payload = event_envelope({**event, "text": "over the socket", "ts": f"{time.time():.6f}"})
        envelope_id = await fake_slack.push_socket(payload)
        await fake_slack.wait_for(
            lambda: any(a.get("envelope_id") == envelope_id for a in fake_slack.socket_acks)
        )
        (message,) = sink.events
        assert isinstance(message, Message)
        assert (message.text, message.event_id) == ("over the socket", payload["event_id"])

        command = {
            "command": "/oc",
            "text": "reset",
            "user_id": "U1",
            "channel_id": "D1",
            "channel_name": "directmessage",
            "trigger_id": "trig-socket",
        }
        cmd_envelope = await fake_slack.push_socket(command, kind="slash_commands")
        await fake_slack.wait_for(
            lambda: any(a.get("envelope_id") == cmd_envelope for a in fake_slack.socket_acks)
        )
        assert isinstance(sink.events[1], Command) and sink.events[1].name == "reset"
    finally:
        await conn.stop()
    assert conn.state is ConnectorState.STOPPED


async def test_socket_mode_rejected_app_token_retries(
    fake_slack: FakeSlackApi, slack_settings: Callable[..., Settings]
) -> None:
    settings = slack_settings(slack_signing_secret=None, slack_app_token="xapp-wrong")
    conn = SlackConnector(settings, Sink(), retry_initial=0.05)
    await conn.start()
    try:
        assert conn.state is ConnectorState.FAILED and conn.last_error == "invalid_auth"
        await fake_slack.wait_for(lambda: len(fake_slack.calls_of("apps.connections.open")) >= 2)
    finally:
        await conn.stop()


async def test_dropped_socket_shows_reconnecting_then_recovers(
    fake_slack: FakeSlackApi, slack_settings: Callable[..., Settings]
) -> None:
    sink = Sink()
    settings = slack_settings(slack_signing_secret=None, slack_app_token=fake_slack.app_token)
    conn = SlackConnector(settings, sink, socket_ping_interval=0.3)
    await conn.start()
    try:
        assert conn.state is ConnectorState.CONNECTED
        fake_slack.fail_next("apps.connections.open", "internal_error")  # first reopen fails
        await fake_slack.drop_sockets()
        await fake_slack.wait_for(lambda: len(fake_slack.calls_of("apps.connections.open")) >= 2)
        assert conn.state is ConnectorState.RECONNECTING
        await fake_slack.wait_for(lambda: len(fake_slack.calls_of("apps.connections.open")) >= 3)
        await fake_slack.wait_for(lambda: fake_slack.socket_count == 1)
        event = {"type": "message", "channel": "D1", "channel_type": "im", "user": "U1"}
        payload = event_envelope({**event, "text": "still there?", "ts": f"{time.time():.6f}"})
        envelope_id = await fake_slack.push_socket(payload)
        await fake_slack.wait_for(lambda: acked(fake_slack, envelope_id))
        assert [e.text for e in sink.events if isinstance(e, Message)] == ["still there?"]
        assert conn.state is ConnectorState.CONNECTED
    finally:
        await conn.stop()
