from __future__ import annotations

import asyncio
import itertools
import logging

import pytest

from opencomputer.bot.connector import ConnectorState
from opencomputer.bot.events import Message
from opencomputer.connectors.discord import DiscordConnector
from tests.discord import discord_payloads as p
from tests.discord.discord_helpers import Sink, make_connector
from tests.discord.fake_discord import FakeDiscord

CODES = [1000, 1001, 1005, 1006, 4000, 4001, 4002, 4005, 4007, 4008, 4009]


def dm(fake: FakeDiscord, text: str) -> dict:
    return p.message(
        message_id=fake.new_id(),
        channel_id=p.DM_CHANNEL_ID,
        content=text,
        author=p.human_user(),
    )


def echo(connector: DiscordConnector):
    async def reply(event):
        if isinstance(event, Message):
            await connector.send(event.address, f"echo: {event.text}", reply_to=event.message_id)

    return reply


async def test_heartbeats_are_acked(fake: FakeDiscord, connector: DiscordConnector):
    await fake.wait_until(lambda: fake.heartbeats >= 3, within=3)
    assert connector.state is ConnectorState.CONNECTED
    assert fake.connections == 1


async def test_forced_disconnects_lose_and_duplicate_nothing(
    fake: FakeDiscord, connector: DiscordConnector, sink: Sink
):
    sink.on_event = echo(connector)
    rounds = 24
    codes = itertools.cycle(CODES)
    sent: list[str] = []
    for i in range(rounds):
        await fake.dispatch("MESSAGE_CREATE", dm(fake, f"before-{i}"))
        await fake.disconnect(next(codes))
        # Said while the bot is away: Discord replays it on RESUME.
        await fake.dispatch("MESSAGE_CREATE", dm(fake, f"during-{i}"))
        sent += [f"before-{i}", f"during-{i}"]
        await fake.wait_until(lambda: fake.connected, within=5)
    events = await sink.wait_for(Message, len(sent), within=10)
    await fake.wait_until(lambda: len(fake.bot_messages()) >= len(sent), within=10)
    assert [e.text for e in events] == sent  # each exactly once, in order
    replies = [m["content"] for m in fake.bot_messages()]
    assert sorted(replies) == sorted(f"echo: {t}" for t in sent)  # no lost, no duplicate
    for msg in fake.bot_messages():
        question = msg["message_reference"]["message_id"]
        asked = next(e.text for e in events if e.message_id == str(question))
        assert msg["content"] == f"echo: {asked}"
    assert len(fake.identifies) == 1  # every reconnect was a RESUME
    assert len(fake.resumes) >= rounds
    assert connector.state is ConnectorState.CONNECTED
    assert fake.unexpected == []


async def test_reconnect_storm_backs_off_to_the_cap(
    fake: FakeDiscord, connector: DiscordConnector, sink: Sink
):
    policy = connector.reconnects
    states: set[ConnectorState] = set()
    for _ in range(12):
        await fake.disconnect(1006)
        states.add(connector.state)
        await fake.wait_until(lambda: fake.connected, within=5)
    assert ConnectorState.RECONNECTING in states or policy.delays
    delays = policy.delays[-12:]
    assert delays[0] == 0.0  # the first reconnect after a stable session goes at once
    assert all(0 < d <= policy.cap for d in delays[1:])
    assert min(delays[-4:]) >= policy.cap / 2  # grew to the cap and stayed there
    await asyncio.sleep(0)
    await fake.dispatch("MESSAGE_CREATE", dm(fake, "still here?"))
    (event,) = await sink.wait_for(Message)
    assert event.text == "still here?"
    assert connector.state is ConnectorState.CONNECTED


async def test_invalid_session_reidentifies(
    fake: FakeDiscord, connector: DiscordConnector, sink: Sink
):
    await fake.invalidate_session()
    await fake.disconnect(4009)
    await fake.wait_until(lambda: len(fake.identifies) == 2 and fake.connected, within=5)
    await connector.wait_connected()
    await fake.dispatch("MESSAGE_CREATE", dm(fake, "after re-identify"))
    (event,) = await sink.wait_for(Message)
    assert event.text == "after re-identify"


async def test_resumes_stay_on_the_configured_gateway(
    fake: FakeDiscord, connector: DiscordConnector, sink: Sink
):
    # READY names a resume URL nobody listens on; with DISCORD_GATEWAY_URL set (a proxy or a
    # local gateway) resumes must still go there.
    fake.resume_gateway_url = "ws://127.0.0.1:9/gateway"
    await fake.invalidate_session()
    await fake.disconnect(4000)
    await fake.wait_until(lambda: len(fake.identifies) == 2 and fake.connected, within=5)
    await fake.dispatch("MESSAGE_CREATE", dm(fake, "after READY"))
    await sink.wait_for(Message)  # READY was handled before this message
    resumes = len(fake.resumes)
    await fake.disconnect(1001)
    await fake.wait_until(lambda: fake.connected, within=5)
    assert len(fake.identifies) == 2 and len(fake.resumes) == resumes + 1


async def test_bad_token_fails_with_one_clear_line(
    fake: FakeDiscord,
    discord_env: None,
    sink: Sink,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
):
    monkeypatch.setenv("DISCORD_BOT_TOKEN", "not-the-token")
    conn = make_connector(sink)
    caplog.set_level(logging.INFO)
    others = asyncio.create_task(asyncio.sleep(0.2))  # another part of the process
    await conn.start()  # does not raise: the rest of the process keeps running
    try:
        await conn.wait_state(ConnectorState.FAILED, within=5)
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1
        assert "DISCORD_BOT_TOKEN was rejected" in errors[0].getMessage()
        assert "not-the-token" not in caplog.text
        assert not fake.identifies  # no gateway attempt with a rejected token
        await others
    finally:
        await conn.stop()
    assert conn.state is ConnectorState.STOPPED


@pytest.mark.parametrize(("code", "words"), [(4004, "rejected"), (4014, "Message Content")])
async def test_gateway_refusal_fails(
    fake: FakeDiscord,
    discord_env: None,
    sink: Sink,
    caplog: pytest.LogCaptureFixture,
    code: int,
    words: str,
):
    fake.identify_close_code = code
    conn = make_connector(sink)
    await conn.start()
    try:
        await conn.wait_state(ConnectorState.FAILED, within=5)
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert any(words in e for e in errors), errors
        assert fake.connections == 1  # no reconnect storm against a refusing gateway
    finally:
        await conn.stop()


async def test_stop_while_reconnecting(fake: FakeDiscord, discord_env: None, sink: Sink):
    conn = make_connector(sink)
    await conn.start()
    await conn.wait_connected()
    await fake.disconnect(1006)
    await conn.stop()
    await conn.stop()  # twice is fine
    assert conn.state is ConnectorState.STOPPED
    conn2 = make_connector(sink)  # and a fresh start works against the same server
    await conn2.start()
    try:
        await conn2.wait_connected()
    finally:
        await conn2.stop()


async def test_transient_login_failure_is_retried(fake: FakeDiscord, discord_env: None, sink: Sink):
    fake.fail_next("GET", "/users/@me", status=503, count=2)
    conn = make_connector(sink)
    states: list[ConnectorState] = []
    await conn.start()
    try:
        states.append(await conn.wait_state(ConnectorState.RECONNECTING, within=5))
        await conn.wait_connected()
        assert len(fake.calls("GET", "/users/@me")) == 3
        assert len(fake.identifies) == 1
    finally:
        await conn.stop()


async def test_token_never_reaches_the_log(
    fake: FakeDiscord, discord_env: None, sink: Sink, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG)
    conn = make_connector(sink)
    await conn.start()
    try:
        await conn.wait_connected()
        await fake.dispatch("MESSAGE_CREATE", dm(fake, "hi"))
        await sink.wait_for(Message)
        await fake.disconnect(4000)
        await fake.wait_until(lambda: fake.connected)
    finally:
        await conn.stop()
    assert caplog.records  # discord.py did log at DEBUG
    assert fake.token not in caplog.text
