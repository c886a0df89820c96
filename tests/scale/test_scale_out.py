"""Gateway + workers over Redis Streams and PostgreSQL: answers exactly once, in order."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from opencomputer.bot.events import Chat, Message, User
from opencomputer.bot.scale.codec import decode_event, encode_event
from opencomputer.bot.testing import FakeOllama, Reply
from tests.scale.cluster import Cluster, assert_exactly_once_in_order


def test_codec_round_trip() -> None:
    msg = Message(
        platform="tg",
        event_id="1",
        chat=Chat("tg", "c"),
        user=User("tg", "u", "Ann"),
        thread_id="t",
        text="hé",
        message_id="m",
        reply_to="r",
        addressed=False,
    )
    assert decode_event(encode_event(msg)) == msg
    back = decode_event(encode_event(msg))
    assert isinstance(back, Message) and back.text == "hé" and back.user.name == "Ann"


async def test_message_goes_through_a_worker_and_back(
    cluster: Cluster, fake_ollama: FakeOllama
) -> None:
    fake_ollama.reply("streamed " * 30, chunks=10, delay=0.05)
    await cluster.start_gateway()
    await cluster.start_worker()
    await cluster.say("c1", "hello")
    answers = await cluster.wait_answers(1, timeout=30)
    assert answers == {"c1": [("streamed " * 30).strip()]}
    assert cluster.connector is not None
    first = next(c for c in cluster.connector.calls if c.action == "send")
    assert first.reply_to == "u1"  # the reply quotes the user's message


@pytest.mark.timeout(400)
async def test_burst_of_1000_messages_two_workers(
    cluster: Cluster, fake_ollama: FakeOllama
) -> None:
    await cluster.start_gateway()
    await cluster.start_worker()
    await cluster.start_worker()
    sent: dict[str, list[str]] = {}
    await cluster.send(40, 1000, "m", sent)
    answers = await cluster.wait_answers(1000, timeout=240)
    assert_exactly_once_in_order(answers, sent)
    assert len(fake_ollama.chats) == 1000


async def test_commands_run_on_a_worker(cluster: Cluster) -> None:
    await cluster.start_gateway()
    await cluster.start_worker()
    assert cluster.gateway is not None
    from opencomputer.bot.events import Command

    await cluster.gateway.runtime.emit(
        Command(
            platform="test",
            event_id="cmd1",
            chat=Chat("test", "c9"),
            user=User("test", "c9"),
            name="reset",
        )
    )
    answers = await cluster.wait_answers(1, timeout=30)
    assert answers == {"c9": ["Started a new conversation."]}


async def test_a_message_accepted_while_no_worker_runs_is_answered_later(
    cluster: Cluster,
) -> None:
    await cluster.start_gateway()
    await cluster.say("c1", "early")
    await asyncio.sleep(0.3)
    assert cluster.answers() == {}
    await cluster.start_worker()
    assert_exactly_once_in_order(await cluster.wait_answers(1, timeout=30), {"c1": ["early"]})


async def test_slow_model_while_a_second_worker_joins(
    cluster: Cluster, fake_ollama: FakeOllama
) -> None:
    fake_ollama.responder = lambda body: Reply(
        f"echo: {body['messages'][-1]['content']}", delay=0.02
    )
    await cluster.start_gateway()
    await cluster.start_worker()
    sent: dict[str, list[str]] = {}
    await cluster.send(10, 31, "x", sent)
    await cluster.start_worker()  # partitions are rebalanced mid-stream
    await cluster.send(10, 69, "y", sent)
    assert_exactly_once_in_order(await cluster.wait_answers(100, timeout=120), sent)


async def test_a_worker_joining_under_load_gets_its_share(
    cluster: Cluster, fake_ollama: FakeOllama
) -> None:
    """Every partition has a backlog, so none is ever idle: the busy worker still hands half
    of them to the newcomer (it stops reading them and lets go once their turns are done)."""
    fake_ollama.responder = lambda body: Reply(
        f"echo: {body['messages'][-1]['content']}", delay=0.3
    )
    cluster.env["OC_MAX_IN_FLIGHT"] = 2  # a short read-ahead: most of the backlog stays queued
    await cluster.start_gateway()
    await cluster.start_worker()
    sent: dict[str, list[str]] = {}
    await cluster.send(16, 240, "x", sent)
    newcomer = await cluster.start_worker()
    worker = newcomer.extras["worker"]
    while len(worker.held) < 4:  # half of OC_PARTITIONS=8
        await asyncio.sleep(0.05)
    answered = sum(len(texts) for texts in cluster.answers().values())
    assert answered < 120, f"the newcomer got its share only after {answered} answers"
    assert_exactly_once_in_order(await cluster.wait_answers(240, timeout=120), sent)
    async with newcomer.store.engine.connect() as conn:
        query = text("SELECT owner, count(*) FROM inbound_messages GROUP BY owner")
        owners = {owner: count for owner, count in await conn.execute(query)}
    assert owners.get(worker.id, 0) >= 60, owners


async def test_typing_shows_only_when_the_answer_takes_a_moment(
    cluster: Cluster, fake_ollama: FakeOllama
) -> None:
    await cluster.start_gateway()
    await cluster.start_worker()
    assert cluster.connector is not None
    fake_ollama.reply("quick")
    await cluster.say("fast", "hi")
    await cluster.wait_answers(1, timeout=30)
    fake_ollama.reply("slow", delay=1.0)
    await cluster.say("slow", "hi")
    await cluster.wait_answers(2, timeout=30)
    typing = [c.address.chat_id for c in cluster.connector.calls if c.action == "typing"]
    assert typing == ["slow"]
