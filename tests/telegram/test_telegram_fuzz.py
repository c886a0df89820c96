"""Fuzzing the Telegram translation (raw update -> core events) with hypothesis.

Whatever an update holds (lone surrogates, wrong types, missing or extra fields), translation
either returns events whose every text is storable (UTF-8, surrogates replaced) or raises the
documented :class:`~bot.quarantine.PoisonEvent` (the connector quarantines it). 10,000
generated updates per run.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from opencomputer.bot.quarantine import PoisonEvent
from opencomputer.connectors.telegram.parsing import parse_update
from opencomputer.connectors.telegram.translate import BotIdentity, translate_update
from tests.fuzzing import FUZZ, batches

ME = BotIdentity(123456789, "oc_test_bot")

# Text with a good share of lone surrogates, mentions and command-like starts.
surrogate = st.sampled_from(["\ud800", "\udfff", "\udbff", "\udc00"])
texts = st.one_of(
    st.text(max_size=30),
    st.lists(st.one_of(st.text(max_size=6), surrogate), max_size=6).map("".join),
    st.sampled_from(["/start", "/help@oc_test_bot x", "@oc_test_bot hi", "/x@other", ""]),
)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(allow_nan=False), texts
)
junk = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(texts, inner, max_size=3)),
    max_leaves=4,
)


wrong = st.one_of(scalars, st.lists(scalars, max_size=2), st.just({}))


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Usually the well-formed value, sometimes a value of the wrong type."""
    return st.one_of(strategy, strategy, strategy, wrong)


users = st.fixed_dictionaries(
    {
        "id": maybe(st.integers(1, 2**40)),
        "is_bot": maybe(st.booleans()),
        "first_name": maybe(texts),
    },
    optional={"username": maybe(texts), "last_name": maybe(texts)},
)
chats = st.fixed_dictionaries(
    {
        "id": maybe(st.integers(-(2**40), 2**40)),
        "type": maybe(st.sampled_from(["private", "group", "supergroup", "channel"])),
    },
    optional={"title": maybe(texts), "first_name": maybe(texts), "is_forum": maybe(st.booleans())},
)
entities = st.lists(
    st.fixed_dictionaries(
        {
            "type": maybe(st.sampled_from(["mention", "bold", "text_mention", "bot_command"])),
            "offset": maybe(st.integers(0, 40)),
            "length": maybe(st.integers(0, 40)),
        },
        optional={"user": users},
    ),
    max_size=3,
)
messages = st.fixed_dictionaries(
    {
        "message_id": maybe(st.integers(1, 2**31)),
        "date": maybe(st.integers(0, 2**31)),
        "chat": maybe(chats),
        "text": maybe(texts),
    },
    optional={
        "from": maybe(users),
        "entities": maybe(entities),
        "caption": maybe(texts),
        "message_thread_id": maybe(st.integers(1, 99)),
        "is_topic_message": maybe(st.booleans()),
    },
)
reaction_types = st.lists(
    st.one_of(
        st.fixed_dictionaries({"type": st.just("emoji"), "emoji": maybe(texts)}),
        st.fixed_dictionaries({"type": st.just("custom_emoji"), "custom_emoji_id": maybe(texts)}),
        st.fixed_dictionaries({"type": st.just("paid")}),
        junk,
    ),
    max_size=3,
)
reactions = st.fixed_dictionaries(
    {
        "chat": maybe(chats),
        "message_id": maybe(st.integers(1, 2**31)),
        "date": maybe(st.integers(0, 2**31)),
        "old_reaction": maybe(reaction_types),
        "new_reaction": maybe(reaction_types),
    },
    optional={"user": maybe(users), "actor_chat": maybe(chats)},
)
updates = st.one_of(
    st.builds(
        lambda uid, m: {"update_id": uid, "message": m}, maybe(st.integers(1, 2**31)), messages
    ),
    st.builds(
        lambda uid, r: {"update_id": uid, "message_reaction": r},
        maybe(st.integers(1, 2**31)),
        reactions,
    ),
    junk,
)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        found: list[str] = []
        for spec in dataclasses.fields(value):
            if spec.name != "raw":
                found += _strings(getattr(value, spec.name))
        return found
    return []


@FUZZ
@given(batches(updates))
def test_translation_returns_clean_events_or_poison(batch: list[Any]) -> None:
    for raw in batch:
        try:
            events = translate_update(parse_update(raw, None), ME)
        except PoisonEvent:
            continue
        for event in events:
            for text in _strings(event):
                text.encode("utf-8")  # no lone surrogate survives: storable anywhere
                assert "\x00" not in text
