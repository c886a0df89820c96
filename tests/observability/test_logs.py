"""Turn ids in logs: set by ``turn_context``, the same in every process, JSON or text lines."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest

from opencomputer.bot.config import Settings
from opencomputer.bot.events import Chat, ChatKind, Message, User
from opencomputer.bot.logs import current_turn_id, setup_logging, turn_context, turn_id_for
from opencomputer.bot.testing import FakeOllama
from opencomputer.bot.testing.harness import Harness


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """A stream the root logger writes to; the previous logging setup is restored after."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    yield stream
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved[0]:
        root.addHandler(handler)
    root.setLevel(saved[1])


def _records(stream: io.StringIO) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_turn_id_is_stable_and_distinct() -> None:
    a = turn_id_for("telegram", "1001")
    assert a == turn_id_for("telegram", "1001")  # what a gateway and a worker both compute
    assert a.startswith("t-") and len(a) == 14
    assert a != turn_id_for("telegram", "1002")
    assert a != turn_id_for("slack", "1001")
    assert turn_id_for("a", "b:c") != turn_id_for("a:b", "c")  # no ambiguity at the separator


async def test_turn_context_nests_and_follows_tasks() -> None:
    assert current_turn_id() is None
    with turn_context("t-outer"):
        with turn_context("t-inner"):
            assert current_turn_id() == "t-inner"
        assert current_turn_id() == "t-outer"

        async def child() -> str | None:
            await asyncio.sleep(0)
            return current_turn_id()

        assert await asyncio.create_task(child()) == "t-outer"  # a task the turn starts
    assert current_turn_id() is None


def test_json_lines_carry_turn_id_extras_and_masked_secrets(log_stream: io.StringIO) -> None:
    secret = "sk-very-secret-value"
    setup_logging("INFO", [secret], stream=log_stream, fmt="json")
    log = logging.getLogger("tests.logs")
    with turn_context("t-abc"):
        log.info("calling with %s", secret, extra={"chat": "c1"})
        try:
            raise ValueError(f"bad {secret}")
        except ValueError:
            log.exception("failed")
    log.warning("outside")

    first, second, third = _records(log_stream)
    assert first["msg"] == "calling with ***"
    assert first["turn_id"] == "t-abc" and first["chat"] == "c1"
    assert first["level"] == "INFO" and first["logger"] == "tests.logs"
    assert first["ts"].endswith("Z") and isinstance(first["pid"], int)
    assert second["turn_id"] == "t-abc" and "ValueError: bad ***" in second["exc"]
    assert third["turn_id"] is None and third["level"] == "WARNING"
    assert secret not in log_stream.getvalue()


def test_text_lines_show_the_turn_id(log_stream: io.StringIO) -> None:
    setup_logging("INFO", stream=log_stream)
    log = logging.getLogger("tests.logs")
    with turn_context("t-123"):
        log.info("inside")
    log.info("outside")
    inside, outside = log_stream.getvalue().splitlines()
    assert inside.endswith("tests.logs [t-123]: inside")
    assert outside.endswith("tests.logs: outside")


def test_log_format_setting(make_settings: Callable[..., Settings]) -> None:
    from opencomputer.bot.config import ConfigError

    assert make_settings().log_format == "text"
    assert make_settings(OC_LOG_FORMAT="json").log_format == "json"
    with pytest.raises(ConfigError, match="OC_LOG_FORMAT"):
        make_settings(OC_LOG_FORMAT="xml")


async def test_a_turn_logs_json_with_its_message_turn_id(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama, log_stream: io.StringIO
) -> None:
    settings = make_settings(OC_LOG_FORMAT="json")
    setup_logging("DEBUG", settings.secret_values(), stream=log_stream, fmt=settings.log_format)
    async with Harness(settings) as h:
        fake_ollama.reply("hi there")
        assert await h.say("hello", event_id="evt-42") == "hi there"
        await h.say("hello again", event_id="evt-42")  # a platform redelivery: deduplicated

    turn = turn_id_for("test", "evt-42")
    records = _records(log_stream)
    mine = [r for r in records if r["turn_id"] == turn]
    model_lines = [r for r in mine if r["logger"] == "opencomputer.bot.observability"]
    assert model_lines and "answered in" in model_lines[0]["msg"]  # logged inside the turn
    assert any("duplicate test event evt-42 ignored" in r["msg"] for r in mine)  # at accept
    # lines outside any turn (start-up, shutdown) carry no id
    assert any(r["turn_id"] is None for r in records)
    assert {r["turn_id"] for r in records} <= {turn, None}


async def test_queued_turns_in_one_conversation_log_under_their_own_ids(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama, log_stream: io.StringIO
) -> None:
    settings = make_settings()
    setup_logging("DEBUG", stream=log_stream, fmt="json")
    async with Harness(settings) as h:
        fake_ollama.reply("one")
        fake_ollama.reply("two")
        chat, user = Chat("test", "alice", ChatKind.DIRECT), User("test", "alice", "Alice")
        for event_id, text in (("evt-a", "first"), ("evt-b", "second")):
            # both accepted before the lane ran either: one lane task runs both turns
            await h.app.runtime.emit(
                Message(
                    platform="test",
                    event_id=event_id,
                    chat=chat,
                    user=user,
                    text=text,
                    message_id=f"u-{event_id}",
                )
            )
        await h.app.runtime.wait_idle()
        posts = [c.message_id for c in h.conn.calls if c.action == "send"]
        assert [h.conn.messages[m] for m in posts] == ["one", "two"]

    model_lines = [
        r for r in _records(log_stream) if r["logger"] == "opencomputer.bot.observability"
    ]
    assert [r["turn_id"] for r in model_lines] == [
        turn_id_for("test", "evt-a"),
        turn_id_for("test", "evt-b"),
    ]
