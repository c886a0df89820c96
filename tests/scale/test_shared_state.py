"""State that crosses processes, with no restart in between.

Grants, account links and model choices changed on a worker reach the gateway at once; a
schedule made on a worker wakes the gateway's scheduler; a paused turn resumes on the worker
that owns its conversation, whichever process saw the decision; the CLI's plugin switches
reach running processes.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis
from typer.testing import CliRunner

from opencomputer.bot.cli import app as cli
from opencomputer.bot.events import Address, Chat, Command, Reaction, User
from opencomputer.bot.scale.bus import partition_of
from opencomputer.bot.scale.changes import Changes
from opencomputer.bot.testing import FakeOllama
from opencomputer.bot.tools import Tool
from tests.scale.cluster import Cluster, RedisServer


async def _until(check: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def _command(cluster: Cluster, chat: str, name: str, args: str = "") -> None:
    assert cluster.gateway is not None
    await cluster.gateway.runtime.emit(
        Command(
            platform="test",
            event_id=f"cmd-{name}-{time.monotonic_ns()}",
            chat=Chat("test", chat),
            user=User("test", chat),
            name=name,
            args=args,
        )
    )


async def test_allow_on_a_worker_lets_the_stranger_in_at_the_gateway(
    cluster: Cluster, fake_ollama: FakeOllama
) -> None:
    """The gateway decides who may talk; ``/allow`` runs on a worker. No restart in between."""
    cluster.env.update(OC_DM_POLICY="pairing", OC_ADMINS="test:boss")
    await cluster.start_gateway()
    worker = await cluster.start_worker()
    await cluster.say("stranger", "hello")
    await _until(lambda: "stranger" in cluster.answers())
    (notice,) = cluster.answers()["stranger"]
    code = re.search(r"/allow ([A-Z0-9]{6})", notice)
    assert code is not None, notice

    await _command(cluster, "boss", "allow", code.group(1))
    # Two chats, two deliveries: the stranger's welcome may land before the admin's answer.
    await _until(
        lambda: len(cluster.answers().get("stranger", [])) == 2 and "boss" in cluster.answers()
    )
    assert cluster.answers()["boss"] == ["Allowed test:stranger (test:stranger)."]
    assert cluster.answers()["stranger"][1].startswith("You're in")

    await cluster.say("stranger", "hi again")
    await _until(lambda: len(cluster.answers()["stranger"]) == 3)
    assert cluster.answers()["stranger"][2] == "echo: hi again"
    assert [c["messages"][-1]["content"] for c in fake_ollama.chats] == ["hi again"]

    # The other way round: a model chosen on the worker is what the gateway reports, and what
    # every worker uses.
    await _command(cluster, "boss", "model", "qwen3:8b global")
    await _until(lambda: len(cluster.answers()["boss"]) == 2)
    assert cluster.answers()["boss"][1] == "Model set to qwen3:8b everywhere."
    assert cluster.gateway is not None
    elsewhere = Address("test", "somewhere")
    gateway_models = cluster.gateway.extras["admin"].models
    await _until(lambda: gateway_models.scope_of(elsewhere) == "global")
    assert worker.extras["admin"].models.scope_of(elsewhere) == "global"


async def test_changes_announced_while_redis_was_down_are_caught_up(
    redis_server: RedisServer,
) -> None:
    reloads: list[str] = []

    async def reload() -> None:
        reloads.append("access")

    client = Redis.from_url(redis_server.url)
    changes = Changes(client, "t:changes", interval=3600)
    announce = changes.watch("access", reload)
    await changes.start()
    try:
        await asyncio.wait_for(changes.subscribed.wait(), 10)
        await announce()
        await _until(lambda: reloads == ["access"])
        redis_server.stop()
        await _until(lambda: not changes.subscribed.is_set())
        await announce()  # lost: Redis is down (logged, not raised)
        await redis_server.start()
        await asyncio.wait_for(changes.subscribed.wait(), 20)
        await _until(lambda: len(reloads) == 2)  # reloaded on resubscribing: nothing missed
    finally:
        await changes.stop()
        await client.aclose()


async def test_a_reminder_made_on_a_worker_fires_on_time_from_the_gateway(
    cluster: Cluster, fake_ollama: FakeOllama
) -> None:
    """The schedule tool runs on a worker; the scheduler runs in the gateway and must hear of
    the new schedule (it would otherwise sleep up to a minute before looking again)."""
    await cluster.start_gateway()
    await cluster.start_worker()
    await asyncio.sleep(0.5)  # the gateway's scheduler is asleep, with nothing due
    due = datetime.now(UTC) + timedelta(seconds=3)
    fake_ollama.call_tool("schedule", what="call mom", when=due.isoformat(), timezone="UTC")
    fake_ollama.reply("I'll remind you.")
    await cluster.say("family", "remind me in 3 seconds to call mom")
    await _until(lambda: len(cluster.answers().get("family", [])) == 2, timeout=30)
    fired_at = time.time()
    assert cluster.answers()["family"] == ["I'll remind you.", "⏰ Reminder: call mom"]
    assert due.timestamp() <= fired_at < due.timestamp() + 2.0


async def test_a_thumbs_up_at_the_gateway_resumes_the_paused_turn_on_a_worker(
    cluster: Cluster, fake_ollama: FakeOllama
) -> None:
    """The question comes from a worker's turn; the 👍 arrives at the gateway."""
    ran: list[str] = []

    async def wipe(path: str) -> str:
        ran.append(path)
        return f"wiped {path}"

    params = {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}
    await cluster.start_gateway()
    worker = await cluster.start_worker()
    worker.tools.add(Tool("wipe", "Delete a folder.", params, wipe, dangerous=True))
    fake_ollama.call_tool("wipe", path="/srv")
    await cluster.say("alice", "wipe /srv")
    await _until(lambda: "alice" in cluster.answers())
    assert "needs your approval" in cluster.answers()["alice"][0] and ran == []
    assert cluster.connector is not None and cluster.gateway is not None
    question = next(c for c in cluster.connector.calls if c.action == "send")
    approvals = cluster.gateway.extras["admin"].approvals
    async with asyncio.timeout(10):  # shown first, then marked sent and linked to the question
        while not any(row.reply_id for row in await approvals.find(status="pending")):
            await asyncio.sleep(0.05)
    fake_ollama.reply("Wiped.")
    await cluster.gateway.runtime.emit(
        Reaction(
            platform="test",
            event_id="r1",
            chat=Chat("test", "alice"),
            user=User("test", "alice"),
            message_id=question.message_id,
            emoji="👍",
        )
    )
    await _until(lambda: len(cluster.answers()["alice"]) == 2)
    assert cluster.answers()["alice"][1] == "Wiped."
    assert ran == ["/srv"]


async def test_approve_from_another_partition_resumes_on_the_conversations_worker(
    cluster: Cluster, fake_ollama: FakeOllama
) -> None:
    """``/approve`` runs on the worker of the admin's chat; the paused turn must resume on the
    worker that owns the asker's conversation (one turn at a time per conversation)."""
    admins = [f"boss{i}" for i in range(24)]
    cluster.env["OC_ADMINS"] = ",".join(f"test:{name}" for name in admins)
    ran: list[tuple[str, str]] = []
    params = {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}
    await cluster.start_gateway()
    workers = [await cluster.start_worker(), await cluster.start_worker()]
    for app in workers:

        async def wipe(path: str, name: str = app.extras["worker"].id) -> str:
            ran.append((name, path))
            return f"wiped {path}"

        app.tools.add(Tool("wipe", "Delete a folder.", params, wipe, dangerous=True))
    await _until(lambda: all(len(w.extras["worker"].reading) == 4 for w in workers), timeout=30)

    def owner(chat: str) -> str:
        p = partition_of(Address("test", chat).key, 8)
        return next(w.extras["worker"].id for w in workers if p in w.extras["worker"].held)

    boss = next(name for name in admins if owner(name) != owner("alice"))
    fake_ollama.call_tool("wipe", path="/srv")
    await cluster.say("alice", "wipe /srv")
    await _until(lambda: "alice" in cluster.answers())
    found = re.search(r"/approve (\d+)", cluster.answers()["alice"][0])
    assert found is not None and ran == []
    fake_ollama.reply("Wiped.")
    await _command(cluster, boss, "approve", found.group(1))
    await _until(lambda: len(cluster.answers()["alice"]) == 2)
    assert cluster.answers()["alice"][1] == "Wiped."
    assert ran == [(owner("alice"), "/srv")]


async def test_plugins_disable_on_the_cli_applies_at_once_everywhere(cluster: Cluster) -> None:
    """The CLI announces its change: running processes need not wait for their 15 s refresh."""
    await cluster.start_gateway()
    worker = await cluster.start_worker()
    assert cluster.gateway is not None
    systems = [app.extras["plugins"] for app in (cluster.gateway, worker)]
    assert all(system.enabled("web", None) for system in systems)
    env = {k: str(v) for k, v in cluster.env.items()}
    result = await asyncio.to_thread(
        CliRunner().invoke, cli, ["plugins", "disable", "web"], env=env
    )
    assert result.exit_code == 0, result.output
    assert "web disabled everywhere (running servers apply this at once)" in result.output
    await _until(lambda: not any(system.enabled("web", None) for system in systems), timeout=3)


async def test_an_account_linked_on_a_worker_is_let_in_at_the_gateway(
    cluster: Cluster, fake_ollama: FakeOllama
) -> None:
    """Linking proves one person: the gateway must know the new link to let the account in."""
    cluster.env.update(OC_DM_POLICY="allowlist", OC_ADMINS="test:boss")
    await cluster.start_gateway()
    await cluster.start_worker()
    await _command(cluster, "boss", "allow", "test:ann")
    await _until(lambda: "boss" in cluster.answers())
    await _command(cluster, "ann", "link")
    await _until(lambda: "ann" in cluster.answers())
    code = re.search(r"/link (\w+)`", cluster.answers()["ann"][0])
    assert code is not None, cluster.answers()["ann"]
    await _command(cluster, "ann-phone", "link", code.group(1))
    await _until(lambda: "ann-phone" in cluster.answers() and len(cluster.answers()["ann"]) == 2)
    assert "asked the account that made this code" in cluster.answers()["ann-phone"][0]
    assert "test:ann-phone, on test" in cluster.answers()["ann"][1]  # ann is asked to confirm
    await _command(cluster, "ann", "link", "confirm")
    await _until(lambda: len(cluster.answers()["ann-phone"]) == 2)
    assert cluster.answers()["ann-phone"][1].startswith("Linked:")
    await cluster.say("ann-phone", "hello from my phone")
    await _until(lambda: len(cluster.answers()["ann-phone"]) == 3)
    assert cluster.answers()["ann-phone"][2] == "echo: hello from my phone"
