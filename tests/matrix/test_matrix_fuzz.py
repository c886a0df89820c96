"""Fuzzing the Matrix translation (raw room event -> nio event -> core event).

Whatever an event's source holds (lone surrogates, wrong types in ``content`` and
``m.relates_to``), matrix-nio's parser and our translator either give None, a core event whose
every text is storable (surrogates replaced), or raise the documented
:class:`~bot.quarantine.PoisonEvent`. 10,000 generated events. No homeserver needed.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nio import MatrixRoom

from opencomputer.bot.quarantine import PoisonEvent
from opencomputer.connectors.matrix.translate import Translator, parse_event
from tests.fuzzing import FUZZ, batches

surrogate = st.sampled_from(["\ud800", "\udfff", "\udbff"])
texts = st.one_of(
    st.text(max_size=20),
    st.lists(st.one_of(st.text(max_size=6), surrogate), max_size=5).map("".join),
    st.sampled_from(["!help", "!reset now", "@bot:x hi", "bot: hello", "$own", "$other"]),
)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 2**40), texts)
wrong = st.one_of(scalars, st.lists(scalars, max_size=2), st.just({}))


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(strategy, strategy, strategy, wrong)


relates = st.fixed_dictionaries(
    {},
    optional={
        "rel_type": maybe(st.sampled_from(["m.thread", "m.replace", "m.annotation"])),
        "event_id": maybe(st.sampled_from(["$own", "$other"])),
        "key": maybe(texts),
        "is_falling_back": maybe(st.booleans()),
        "m.in_reply_to": maybe(st.fixed_dictionaries({"event_id": maybe(texts)})),
    },
)
content = st.fixed_dictionaries(
    {},
    optional={
        "msgtype": maybe(st.sampled_from(["m.text", "m.notice", "m.emote"])),
        "body": maybe(texts),
        "format": maybe(st.just("org.matrix.custom.html")),
        "formatted_body": maybe(texts),
        "m.relates_to": maybe(relates),
        "m.mentions": maybe(st.fixed_dictionaries({"user_ids": maybe(st.lists(texts))})),
    },
)
sources = st.fixed_dictionaries(
    {
        "type": maybe(st.sampled_from(["m.room.message", "m.reaction", "m.room.redaction"])),
        "event_id": maybe(texts),
        "sender": maybe(st.sampled_from(["@alice:x", "@bot:x", "@e\ud800:x"])),
        "origin_server_ts": maybe(st.integers(0, 2**41)),
        "content": maybe(content),
    }
)


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


async def _is_own(room_id: str, event_id: str) -> bool:
    return event_id == "$own"


def _room(members: int) -> MatrixRoom:
    room = MatrixRoom("!room:x", "@bot:x")
    for i in range(members):
        room.add_member(f"@m{i}:x", f"M{i}\ud800", None)
    return room


ROOMS = [_room(2), _room(5)]
TRANSLATOR = Translator("@bot:x", _is_own, "!", "bot")


def _check(event: Any) -> None:
    for spec in dataclasses.fields(event):
        value = getattr(event, spec.name)
        if spec.name == "raw":
            continue
        if dataclasses.is_dataclass(value):
            _check(value)
        elif isinstance(value, str):
            value.encode("utf-8")  # storable: no lone surrogate left


@FUZZ
@given(batches(st.tuples(sources, st.sampled_from(ROOMS))))
def test_translation_returns_clean_events_or_poison(
    loop: asyncio.AbstractEventLoop, batch: list[tuple[dict[str, Any], MatrixRoom]]
) -> None:
    for source, room in batch:
        try:
            event = parse_event(source)
            core = loop.run_until_complete(TRANSLATOR.translate(room, event))
        except PoisonEvent:
            continue
        if core is not None:
            _check(core)
