"""Failures on a real Synapse: outages, refused credentials, a sink that fails, token login."""

from __future__ import annotations

import json
import logging
import socket

import aiohttp
import pytest

from opencomputer.bot.connector import ConnectorState
from opencomputer.bot.events import Message
from tests.matrix.matrix_helpers import BotFactory, Human, Sink, TcpProxy, wait_until
from tests.matrix.synapse_server import Account, SynapseServer


def _our_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("opencomputer.connectors.matrix") and r.levelno >= logging.WARNING
    ]


async def test_outage_is_survived_without_losing_messages(
    make_bot: BotFactory,
    human: Human,
    sink: Sink,
    synapse: SynapseServer,
    bot_account: Account,
    caplog: pytest.LogCaptureFixture,
) -> None:
    proxy = TcpProxy(synapse.port)
    await proxy.start()
    bot = await make_bot(MATRIX_HOMESERVER=proxy.url)
    room = await human.create_room([bot.user_id], direct=True)
    await human.wait_membership(room, bot.user_id, "join")
    one = await human.say(room, "one")
    await sink.wait_for(lambda e: isinstance(e, Message) and e.event_id == one)
    assert bot.state is ConnectorState.CONNECTED

    caplog.clear()
    await proxy.cut()
    during = await human.say(room, "sent during the outage")
    await wait_until(lambda: bot.state is ConnectorState.RECONNECTING)
    await wait_until(lambda: len(caplog.records) >= 1)
    await proxy.start()  # same port
    await sink.wait_for(lambda e: isinstance(e, Message) and e.event_id == during)
    await wait_until(lambda: bot.state is ConnectorState.CONNECTED)

    warnings = _our_warnings(caplog)
    assert len(warnings) == 1, warnings  # one clear line per outage, not one per retry
    assert f"connection to {proxy.url} failed" in warnings[0] and "retrying" in warnings[0]
    assert [m.text for m in sink.messages()] == ["one", "sent during the outage"]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert bot_account.password not in logged and "syt_" not in logged
    await proxy.cut()


async def test_unreachable_homeserver_does_not_block_start(
    make_bot: BotFactory, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    bot = await make_bot(start=False, MATRIX_HOMESERVER=f"http://127.0.0.1:{port}")
    bot.start_timeout = 0.3
    await bot.start()
    assert bot.state is ConnectorState.RECONNECTING
    await wait_until(lambda: len(_our_warnings(caplog)) >= 2)
    first, second = _our_warnings(caplog)[:2]
    assert f"connection to http://127.0.0.1:{port} failed" in first
    assert "still trying in the background" in second
    assert bot._backoff(1) <= bot.backoff_base and bot._backoff(30) <= bot.backoff_cap
    await bot.stop()
    assert bot.state is ConnectorState.STOPPED


async def test_refused_password_fails_clearly(
    make_bot: BotFactory, caplog: pytest.LogCaptureFixture
) -> None:
    bot = await make_bot(MATRIX_PASSWORD="not-the-password")
    assert bot.state is ConnectorState.FAILED
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("refused: M_FORBIDDEN" in e and "fix the credentials" in e for e in errors)
    assert "not-the-password" not in caplog.text
    assert not bot.files.session_path.exists()


async def test_access_token_instead_of_password(
    make_bot: BotFactory, human: Human, sink: Sink, bot_account: Account
) -> None:
    bot = await make_bot(MATRIX_PASSWORD=None, MATRIX_ACCESS_TOKEN=bot_account.access_token)
    room = await human.create_room([bot.user_id], direct=True)
    await human.wait_membership(room, bot.user_id, "join")
    hello = await human.say(room, "token bot?")
    await sink.wait_for(lambda e: isinstance(e, Message) and e.event_id == hello)
    stored = json.loads(bot.files.session_path.read_text())
    assert stored["device_id"] == bot_account.device_id == bot.client.device_id


async def test_failing_sink_gets_the_batch_again(
    make_bot: BotFactory, human: Human, sink: Sink
) -> None:
    bot = await make_bot()
    room = await human.create_room([bot.user_id], direct=True)
    await human.wait_membership(room, bot.user_id, "join")
    sink.fail_with = RuntimeError("database is down")
    first = await human.say(room, "first")
    await wait_until(lambda: bot.state is ConnectorState.RECONNECTING)
    sink.fail_with = None
    await sink.wait_for(lambda e: isinstance(e, Message) and e.event_id == first)
    second = await human.say(room, "second")
    await sink.wait_for(lambda e: isinstance(e, Message) and e.event_id == second)
    assert [m.event_id for m in sink.messages()] == [first, second]


async def test_logged_out_device_is_replaced_by_a_new_login(
    make_bot: BotFactory, human: Human, sink: Sink, synapse: SynapseServer
) -> None:
    first = await make_bot()
    await first.stop()
    old = json.loads(first.files.session_path.read_text())
    # Someone logs the bot's device out (Element's session list, an admin...).
    logout = f"{synapse.url}/_matrix/client/v3/logout"
    auth = {"Authorization": f"Bearer {old['access_token']}"}
    async with aiohttp.ClientSession() as http, http.post(logout, headers=auth, json={}) as resp:
        assert resp.status == 200

    second = await make_bot()
    room = await human.create_room([second.user_id], direct=True)
    await human.wait_membership(room, second.user_id, "join")
    hello = await human.say(room, "still working?")
    await sink.wait_for(lambda e: isinstance(e, Message) and e.event_id == hello)
    new = json.loads(second.files.session_path.read_text())
    assert new["access_token"] != old["access_token"]
    assert new["device_id"] == second.client.device_id != old["device_id"]
    assert second.state is ConnectorState.CONNECTED
