"""The fault suite: workers killed, Redis restarted, PostgreSQL connections dropped, Ollama away.

Each test asserts every message is answered exactly once, in order per conversation.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import asyncpg
import pytest

from opencomputer.bot.testing import FakeOllama, Reply
from tests.scale.cluster import Cluster, RedisServer, assert_exactly_once_in_order


def _echo_after(delay: float):  # type: ignore[no-untyped-def]
    def respond(body: dict) -> Reply:
        return Reply(f"echo: {body['messages'][-1]['content']}", delay=delay)

    return respond


async def test_worker_killed_mid_turn(
    cluster: Cluster, fake_ollama: FakeOllama, tmp_path: Path
) -> None:
    """kill -9 of a worker while its turns wait on the model: another worker answers them."""
    fake_ollama.responder = _echo_after(0.4)
    cluster.env["OC_WORKER_LEASE"] = 1.5
    await cluster.start_gateway()
    victim = cluster.spawn_worker(tmp_path / "victim")
    await asyncio.sleep(3)  # the subprocess takes its partitions
    sent: dict[str, list[str]] = {}
    await cluster.send(8, 40, "k", sent)
    deadline = time.monotonic() + 20
    while len(fake_ollama.chats) < 3 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert victim.poll() is None, (tmp_path / "victim" / "worker.log").read_text()
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    await cluster.start_worker()  # the survivor claims the dead worker's partitions and entries
    answers = await cluster.wait_answers(40, timeout=90)
    assert_exactly_once_in_order(answers, sent)


async def test_redis_restarted(
    cluster: Cluster, fake_ollama: FakeOllama, redis_server: RedisServer
) -> None:
    """Redis loses everything mid-flow (no persistence): nothing is lost or answered twice."""
    fake_ollama.responder = _echo_after(0.05)
    await cluster.start_gateway()
    await cluster.start_worker()
    await cluster.start_worker()
    sent: dict[str, list[str]] = {}
    await cluster.send(6, 30, "a", sent, gap=0.01)
    redis_server.stop()
    await cluster.send(6, 12, "b", sent, gap=0.02)  # accepted while Redis is down
    await redis_server.start()
    await cluster.send(6, 18, "c", sent, gap=0.01)
    answers = await cluster.wait_answers(60, timeout=120)
    assert_exactly_once_in_order(answers, sent)


async def test_postgresql_connections_dropped(
    cluster: Cluster, fake_ollama: FakeOllama, postgres_url: str
) -> None:
    """Every server connection to the database is terminated mid-flow, twice."""
    fake_ollama.responder = _echo_after(0.05)
    await cluster.start_gateway()
    await cluster.start_worker()
    sent: dict[str, list[str]] = {}
    admin = await asyncpg.connect(postgres_url.rsplit("/", 1)[0] + "/postgres")
    name = postgres_url.rsplit("/", 1)[1]
    try:
        for round_ in range(2):
            await cluster.send(5, 15, f"r{round_}-", sent, gap=0.01)
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = $1 AND pid <> pg_backend_pid()",
                name,
            )
            assert killed > 0
    finally:
        await admin.close()
    answers = await cluster.wait_answers(30, timeout=120)
    assert_exactly_once_in_order(answers, sent)


@pytest.mark.timeout(180)
async def test_ollama_down_30_seconds(cluster: Cluster, fake_ollama: FakeOllama) -> None:
    """Ollama goes away for 30 s: turns wait for it and every message gets a real answer."""
    fake_ollama.responder = _echo_after(0.0)
    port = int(fake_ollama.url.rsplit(":", 1)[1])
    await cluster.start_gateway()
    await cluster.start_worker()
    sent: dict[str, list[str]] = {}
    await cluster.send(4, 8, "before", sent)
    await cluster.wait_answers(8, timeout=30)
    await fake_ollama.stop()
    await cluster.send(4, 8, "during", sent, gap=0.5)
    await asyncio.sleep(26)
    await fake_ollama.start(port)
    await cluster.send(4, 8, "after", sent)
    answers = await cluster.wait_answers(24, timeout=90)
    assert_exactly_once_in_order(answers, sent)
