"""Crash suite, scale-out: ``opencomputer gateway`` and two ``opencomputer worker`` processes on
real PostgreSQL and a private Redis. Gateways and workers are killed with SIGKILL at random
moments (some right after the platform accepted a post), Redis loses everything once,
while 300 messages in 20 chats come in.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from opencomputer.bot.testing import FakeOllama
from tests.faults.crash_platform import CrashBotApi
from tests.faults.processes import RedisProcess, ServerProcess, clean_environ, prepare_spares
from tests.faults.scenario import Plan, Scenario

POSTS = {"sendMessage", "editMessageText"}
EVENTS = [
    ("gateway", "now"),
    ("gateway", "sendMessage"),
    ("gateway", "sendMessage"),
    ("gateway", "editMessageText"),
    ("worker", "now"),
    ("worker", "now"),
    ("worker", "post"),
    ("redis", "restart"),
]


@pytest.fixture
async def private_redis() -> AsyncIterator[RedisProcess]:
    """A Redis of this test alone (it is restarted), on a unix socket: no port to collide."""
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed (the scale-out crash suite needs it)")
    directory = Path(tempfile.mkdtemp(prefix="oc-crash-"))  # short: socket paths are limited
    server = RedisProcess(directory)
    await server.start()
    yield server
    await server.stop()
    shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.timeout(420)
async def test_gateway_and_workers_survive_sigkill(
    crash_seed: int,
    crash_platform: CrashBotApi,
    crash_model: FakeOllama,
    crash_figures: Callable[[str], None],
    postgres_url: str,
    private_redis: RedisProcess,
    tmp_path: Path,
) -> None:
    """0 lost, 0 answered twice, 0 out of order, 0 partial answers left after eight faults."""
    scn = Scenario(Plan(seed=crash_seed), crash_platform)
    common = {
        "TELEGRAM_BOT_TOKEN": crash_platform.token,
        "TELEGRAM_BASE_URL": crash_platform.base_url,
        "OLLAMA_HOST": crash_model.url,
        "OC_DATABASE_URL": postgres_url,
        "OC_REDIS_URL": private_redis.url,
        "OC_REDIS_PREFIX": f"crash{uuid.uuid4().hex[:8]}",
        "OC_PARTITIONS": 8,
        "OC_WORKER_LEASE": 3,  # 1.5 s: leases churn on a loaded two-core machine
        "OC_REPUBLISH_AFTER": 2,
        "OC_HTTP_PORT": 0,
        "OC_DM_POLICY": "open",
        "OC_RATE_LIMIT_USER": "0",
        "OC_RATE_LIMIT_CHAT": "0",
        "OC_MAX_IN_FLIGHT": 20,
        "OC_SHUTDOWN_GRACE": 5,
        "PTB_TIMEDELTA": "true",
    }

    def process(name: str, role: str) -> ServerProcess:
        env = clean_environ({**common, "OC_DATA_DIR": tmp_path / name})
        return ServerProcess(name, role, env, tmp_path)

    gateway = process("gateway", "gateway")
    workers = [process("worker1", "worker"), process("worker2", "worker")]
    everyone = [gateway, *workers]
    events = list(EVENTS)
    scn.rng("kinds").shuffle(events)
    pick = scn.rng("victims")
    targets = [gateway if v == "gateway" else pick.choice(workers) for v, _kind in events]
    upcoming = [t for t, (v, _k) in zip(targets, events, strict=True) if v != "redis"]
    upcoming += everyone  # the final restart
    try:
        # All at once on the empty database, as a compose file starts them (they raced on
        # creating the schema before migrations ran under a lock).
        await asyncio.gather(*(p.start() for p in everyone))
        scn.note("gateway and workers ready")
        feeding = asyncio.create_task(scn.feed())
        for target, (victim, kind) in zip(targets, events, strict=True):
            await prepare_spares(upcoming)
            await scn.pause()
            if victim == "redis":
                scn.note("redis restart (every key lost)")
                await private_redis.restart()
                scn.kills += 1
                continue
            if kind == "now":
                scn.kill_now(target.kill, target.name)
            else:
                methods = POSTS if kind == "post" else {kind}
                await scn.kill_after_post(target.kill, methods, target.name)
            await target.exited()
            await target.start()
            upcoming.pop(0)
            scn.note(f"{target.name} ready ({target.ready_after:.1f} s)")
        await feeding
        await scn.until_answered(within=90)
        await prepare_spares(upcoming, ahead=len(upcoming))
        await scn.until_quiet()
        scn.note("graceful stop and one more start: recovery must find nothing to do")
        await scn.stop_all(everyone)
        await asyncio.gather(*(p.start() for p in everyone))
        await scn.until_quiet()
        await scn.stop_all(everyone)
    finally:
        await asyncio.gather(*(p.close() for p in everyone))
    fig = scn.figures()
    report = scn.report(
        "gateway+2workers-postgres",
        fig,
        [e for p in everyone for e in p.errors()],
        tmp_path / "platform.json",
    )
    crash_figures(report.splitlines()[0])
    print(report)
    assert fig.failures == 0 and not scn.stalled and not scn.hung, report
