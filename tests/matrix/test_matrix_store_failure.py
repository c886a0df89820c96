"""An event the runtime cannot store holds the sync token back, however long (issue 19).

On a real Synapse: while every emit is refused with ``DiskFull`` (or SQLite's own "database or
disk is full"), the stored sync token does not move past the message, the message is offered
again on every sync, and it is never quarantined (a full disk is not the event's fault, so the
three-strikes rule does not count it). Once storage is back it is taken exactly once, within
seconds (the wait between tries is capped by ``refusal_cap``, not only the minute-long
``backoff_cap``).
"""

from __future__ import annotations

import sqlite3
import time

import pytest

from opencomputer.bot.connector import ConnectorState
from opencomputer.bot.events import Command, Message, Reaction
from opencomputer.bot.quarantine import Quarantine
from opencomputer.bot.storage.disk import DiskFull
from tests.matrix.matrix_helpers import BotFactory, Human, Sink, wait_until


class CountingSink(Sink):
    """A sink that counts its refusals."""

    def __init__(self) -> None:
        super().__init__()
        self.refused = 0

    async def __call__(self, event: Message | Reaction | Command) -> None:
        if self.fail_with is not None:
            self.refused += 1
        await super().__call__(event)


@pytest.mark.parametrize(
    "refusal",
    [DiskFull("the disk is full"), sqlite3.OperationalError("database or disk is full")],
    ids=["disk-full", "sqlite-full"],
)
async def test_refused_event_keeps_the_sync_token_and_is_never_quarantined(
    make_bot: BotFactory, human: Human, refusal: Exception
) -> None:
    sink = CountingSink()
    bot = await make_bot(sink)
    bot.backoff_cap = 60.0  # as in production: the refusal cap alone keeps recovery quick
    bot.refusal_cap = 0.3
    room = await human.create_room([bot.user_id], direct=True)
    await human.wait_membership(room, bot.user_id, "join")
    warm = await human.say(room, "warm up")
    await sink.wait_for(lambda e: isinstance(e, Message) and e.event_id == warm)
    token_before = bot.files.load_sync().next_batch
    quarantine = Quarantine(bot.settings.data_dir, "matrix")

    sink.fail_with = refusal
    first = await human.say(room, "stored later")
    # Past the three-strikes limit; uncapped, the 10th wait would be about 25 s.
    await wait_until(lambda: sink.refused >= 10, within=30)
    assert bot.state is ConnectorState.RECONNECTING
    assert bot.files.load_sync().next_batch == token_before  # not advanced past the event
    assert not quarantine.entries()

    sink.fail_with = None
    freed = time.monotonic()
    await sink.wait_for(lambda e: isinstance(e, Message) and e.event_id == first)
    assert time.monotonic() - freed < 3.0
    second = await human.say(room, "next")
    await sink.wait_for(lambda e: isinstance(e, Message) and e.event_id == second)
    ids = [m.event_id for m in sink.messages()]
    assert ids == [warm, first, second]  # each once, in order
    await wait_until(lambda: bot.files.load_sync().next_batch != token_before)
    assert not quarantine.entries()
