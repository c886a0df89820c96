"""Fuzzing the Slack translation (Events API envelope / slash command -> core event).

Whatever a payload holds, translation returns None, a core event whose every text is storable
(lone surrogates replaced), or raises the documented :class:`~bot.quarantine.PoisonEvent`.
10,000 generated payloads per test.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from opencomputer.bot.quarantine import PoisonEvent
from opencomputer.connectors.slack.translate import BotIdentity, translate_command, translate_event
from tests.fuzzing import FUZZ, batches

ME = BotIdentity(user_id="UBOT", bot_id="BBOT", team_id="T1")
THREADS = {("C1", "1.0")}

surrogate = st.sampled_from(["\ud800", "\udfff", "\udbff"])
texts = st.one_of(
    st.text(max_size=20),
    st.lists(st.one_of(st.text(max_size=6), surrogate), max_size=5).map("".join),
    st.sampled_from(["<@UBOT> hi", "<https://x.org|x>", "&lt;b&gt;", "<!here>", "1.0", "C1"]),
)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 2**40), st.floats(), texts)
wrong = st.one_of(scalars, st.lists(scalars, max_size=2), st.just({}))


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(strategy, strategy, strategy, wrong)


kinds = st.sampled_from(["message", "app_mention", "reaction_added", "reaction_removed", "other"])
events = st.fixed_dictionaries(
    {"type": maybe(kinds)},
    optional={
        "user": maybe(texts),
        "text": maybe(texts),
        "channel": maybe(st.sampled_from(["C1", "D1", "G1", ""])),
        "channel_type": maybe(st.sampled_from(["im", "channel", "group", "mpim"])),
        "ts": maybe(texts),
        "thread_ts": maybe(st.sampled_from(["1.0", "2.0"])),
        "subtype": maybe(st.sampled_from(["thread_broadcast", "bot_message", "file_share"])),
        "bot_id": maybe(texts),
        "parent_user_id": maybe(st.sampled_from(["UBOT", "U2"])),
        "reaction": maybe(texts),
        "item_user": maybe(st.sampled_from(["UBOT", "U2"])),
        "item": maybe(
            st.fixed_dictionaries(
                {"type": maybe(st.just("message"))},
                optional={"channel": maybe(texts), "ts": maybe(texts)},
            )
        ),
    },
)
envelopes = st.one_of(
    st.fixed_dictionaries({"event": maybe(events)}, optional={"event_id": maybe(texts)}),
    wrong,
)
commands = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "text": maybe(texts),
            "channel_id": maybe(texts),
            "channel_name": maybe(texts),
            "user_id": maybe(texts),
            "user_name": maybe(texts),
            "trigger_id": maybe(texts),
        },
    ),
    wrong,
)


def _check(event: Any) -> None:
    if event is None:
        return
    for spec in dataclasses.fields(event):
        value = getattr(event, spec.name)
        if spec.name == "raw":
            continue
        if dataclasses.is_dataclass(value):
            _check(value)
        elif isinstance(value, str):
            value.encode("utf-8")  # storable: no lone surrogate left
            assert "\x00" not in value


@FUZZ
@given(batches(envelopes))
def test_event_translation_returns_clean_events_or_poison(batch: list[Any]) -> None:
    for body in batch:
        try:
            event = translate_event(body, ME, THREADS)
        except PoisonEvent:
            continue
        _check(event)


@FUZZ
@given(batches(commands))
def test_command_translation_returns_clean_commands_or_poison(batch: list[Any]) -> None:
    for body in batch:
        try:
            command = translate_command(body)
        except PoisonEvent:
            continue
        _check(command)
