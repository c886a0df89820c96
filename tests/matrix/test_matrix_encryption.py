"""Encrypted rooms on a real Synapse: without matrix-nio[e2e] one clear notice; with it, an
encrypted conversation both ways."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest

from opencomputer.bot.events import Message
from opencomputer.connectors.matrix.connector import ENCRYPTED_NOTICE
from opencomputer.connectors.matrix.render import HTML_FORMAT
from tests.matrix.matrix_helpers import BotFactory, Human, Sink
from tests.matrix.synapse_server import Account, SynapseServer

ENCRYPTION = {
    "type": "m.room.encryption",
    "state_key": "",
    "content": {"algorithm": "m.megolm.v1.aes-sha2"},
}


async def test_encrypted_room_gets_one_clear_notice(
    make_bot: BotFactory, human: Human, sink: Sink, caplog: pytest.LogCaptureFixture
) -> None:
    bot = await make_bot(start=False)
    bot.e2e = False  # as installed without matrix-nio[e2e]
    await bot.start()
    room = await human.create_room([bot.user_id], direct=True, initial_state=[ENCRYPTION])
    await human.wait_membership(room, bot.user_id, "join")
    ciphertext = {
        "algorithm": "m.megolm.v1.aes-sha2",
        "ciphertext": "AwgAEnACgAkLmt6qF84IK++J7UDH2Za1YVchHyprqTqsg2yyOwAtHaZTwyNg37afzg8f",
        "sender_key": "IlRMeOPX2e0MurIyfWEucYBRVOEEUMrOHqn/8mLqMjA",
        "session_id": "X3lUlvLELLYxeTx4yOVu6UDpasGEVO0Jbu+QFnm0cKQ",
        "device_id": "RJYKSTBOIE",
    }
    # nio (without e2e) would refuse to encrypt, so the ciphertext goes out as a raw event.
    await human.send(room, ciphertext, "m.room.encrypted")
    await human.send(room, ciphertext | {"session_id": "another"}, "m.room.encrypted")
    marker = await human.say(room, "plain text still arrives")
    await sink.wait_for(lambda e: isinstance(e, Message) and e.event_id == marker)

    await human.wait_for(lambda _r, e: e["sender"] == bot.user_id and e["type"] == "m.room.message")
    notices = [
        e
        for r, e in human.seen
        if r == room and e["sender"] == bot.user_id and e["type"] == "m.room.message"
    ]
    assert len(notices) == 1
    assert notices[0]["content"]["msgtype"] == "m.notice"
    assert notices[0]["content"]["body"] == ENCRYPTED_NOTICE
    assert "pip install 'opencomputer[e2e]'" in ENCRYPTED_NOTICE
    lines = [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("opencomputer.connectors.matrix") and r.levelno == logging.WARNING
    ]
    assert len(lines) == 1 and room in lines[0] and "opencomputer[e2e]" in lines[0]
    assert room in bot.sync_state.encrypted_notified


async def test_encrypted_conversation_with_e2e_installed(
    make_bot: BotFactory,
    sink: Sink,
    synapse: SynapseServer,
    human_account: Account,
    tmp_path: Path,
) -> None:
    pytest.importorskip("vodozemac", reason="matrix-nio[e2e] is not installed")
    bot = await make_bot()
    assert bot.e2e
    human = Human(synapse.url, human_account, store=tmp_path / "human-store")
    try:
        await human.sync(0)
        room = await human.create_room([bot.user_id], direct=True, initial_state=[ENCRYPTION])
        await human.wait_membership(room, bot.user_id, "join")
        await human.sync(0)  # learn the bot's device keys
        secret = await human.say(room, "a **secret** question")
        raw = await human.wait_for(lambda _r, e: e.get("event_id") == secret)
        msg = await sink.wait_for(lambda e: isinstance(e, Message) and e.event_id == secret)
        assert msg.text == "a **secret** question" and msg.addressed

        reply_id = await bot.send(msg.address, "an *encrypted* answer")
        reply = await human.wait_for(lambda _r, e: e.get("event_id") == reply_id)
        # The human's client decrypted it: the plaintext is the bot's formatted message.
        assert reply["type"] == "m.room.message"
        assert reply["content"]["body"] == "an *encrypted* answer"
        assert reply["content"]["format"] == HTML_FORMAT
        assert reply["content"]["formatted_body"] == "<p>an <em>encrypted</em> answer</p>"
        assert raw["type"] == "m.room.message"
        # What the homeserver stores is ciphertext, both ways.
        for event_id in (secret, reply_id):
            url = f"{synapse.url}/_matrix/client/v3/rooms/{quote(room)}/event/{quote(event_id)}"
            auth = {"Authorization": f"Bearer {human_account.access_token}"}
            async with aiohttp.ClientSession() as http, http.get(url, headers=auth) as resp:
                stored = await resp.json()
            assert stored["type"] == "m.room.encrypted"
            assert "secret" not in json.dumps(stored) and "answer" not in json.dumps(stored)

        # After a restart the same device (and its keys, in the nio store) keeps decrypting.
        await bot.stop()
        again = await make_bot()
        assert again.client.device_id == bot.client.device_id
        later = await human.say(room, "still secret after the restart")
        await sink.wait_for(lambda e: isinstance(e, Message) and e.event_id == later)
        assert [m.event_id for m in sink.messages()] == [secret, later]
    finally:
        await human.client.close()
