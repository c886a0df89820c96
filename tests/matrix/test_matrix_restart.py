"""Restarts on a real Synapse: stored device and sync token, nothing answered twice or missed."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from nio import DevicesResponse

from opencomputer.bot.events import Message, Reaction
from tests.matrix.matrix_helpers import BotFactory, Human, Sink
from tests.matrix.synapse_server import Account


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_restart_mid_conversation(
    make_bot: BotFactory, human: Human, sink: Sink, bot_account: Account, tmp_path: Path
) -> None:
    first = await make_bot()
    first.timeline_limit = 3  # so the messages sent while it is down overflow one sync
    room = await human.create_room([first.user_id], direct=True)
    await human.wait_membership(room, first.user_id, "join")
    before = await human.say(room, "before the restart")
    msg = await sink.wait_for(lambda e: isinstance(e, Message) and e.event_id == before)
    reply_id = await first.send(msg.address, "answer before")
    thumbs = await human.send(
        room,
        {"m.relates_to": {"rel_type": "m.annotation", "event_id": reply_id, "key": "👍"}},
        "m.reaction",
    )
    await sink.wait_for(lambda e: isinstance(e, Reaction))
    device = first.client.device_id
    known = await first.client.devices()
    assert isinstance(known, DevicesResponse)
    await first.stop()

    files = first.files
    assert _mode(files.session_path) == 0o600 and _mode(files.sync_path) == 0o600
    session = json.loads(files.session_path.read_text())
    assert session["device_id"] == device and session["user_id"] == bot_account.user_id
    assert session["access_token"] and bot_account.password not in files.session_path.read_text()

    # While the bot is down: more messages than one sync timeline holds, and a redaction.
    missed = [await human.say(room, f"while down {i}") for i in range(7)]
    await human.client.room_redact(room, thumbs)

    second = await make_bot(start=False)
    second.timeline_limit = 3
    await second.start()
    assert second.client.device_id == device  # the stored device, no new login
    removed = await sink.wait_for(lambda e: isinstance(e, Reaction) and not e.added)
    assert (removed.message_id, removed.emoji) == (reply_id, "👍")
    await sink.wait_for(lambda e: isinstance(e, Message) and e.event_id == missed[-1])

    after = await human.say(room, "after the restart")
    await sink.wait_for(lambda e: isinstance(e, Message) and e.event_id == after)
    ids = [m.event_id for m in sink.messages()]
    assert ids == [before, *missed, after]  # each exactly once, in order

    devices = await second.client.devices()
    assert isinstance(devices, DevicesResponse)
    assert sorted(d.id for d in devices.devices) == sorted(d.id for d in known.devices)


async def test_first_start_ignores_history(make_bot: BotFactory, human: Human, sink: Sink) -> None:
    """Messages from before the bot's first start are history, not questions to answer."""
    bot = await make_bot()
    room = await human.create_room([bot.user_id], direct=True)
    early = await human.say(room, "sent before the bot joined")  # usually: before the join
    await human.wait_membership(room, bot.user_id, "join")
    old = await human.say(room, "old news")
    await sink.wait_for(lambda e: isinstance(e, Message) and e.event_id == old)
    await bot.stop()
    bot.files.sync_path.unlink()  # a new data directory: no sync token, no device
    bot.files.session_path.unlink()

    fresh = await make_bot()
    hello = await human.say(room, "hello again")
    await sink.wait_for(lambda e: isinstance(e, Message) and e.event_id == hello)
    texts = [m.text for m in sink.messages()]
    assert texts.count("old news") == 1  # the first bot saw it; the fresh start did not
    assert texts.count("sent before the bot joined") == 1 and early in [
        m.event_id for m in sink.messages()
    ]
    assert fresh.client.device_id != bot.client.device_id
