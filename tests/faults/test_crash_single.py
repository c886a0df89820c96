"""Crash suite, single process on SQLite (the embedded defaults): ``opencomputer run`` killed
with SIGKILL at random moments, eight times, while 300 messages in 20 chats come in.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from opencomputer.bot.testing import FakeOllama
from tests.faults.crash_platform import CrashBotApi
from tests.faults.processes import ServerProcess, clean_environ
from tests.faults.scenario import Plan, Scenario

KILLS = ["now"] * 4 + ["sendMessage"] * 2 + ["editMessageText"] * 2


@pytest.mark.timeout(420)
async def test_single_process_survives_sigkill(
    crash_seed: int,
    crash_platform: CrashBotApi,
    crash_model: FakeOllama,
    crash_figures: Callable[[str], None],
    tmp_path: Path,
) -> None:
    """0 lost, 0 answered twice, 0 out of order, 0 partial answers left after eight kill -9."""
    scn = Scenario(Plan(seed=crash_seed), crash_platform)
    env = clean_environ(
        {
            "TELEGRAM_BOT_TOKEN": crash_platform.token,
            "TELEGRAM_BASE_URL": crash_platform.base_url,
            "OLLAMA_HOST": crash_model.url,
            "OC_DATA_DIR": tmp_path / "data",
            "OC_HTTP_PORT": 0,
            "OC_DM_POLICY": "open",
            "OC_RATE_LIMIT_USER": "0",
            "OC_RATE_LIMIT_CHAT": "0",
            "OC_MAX_IN_FLIGHT": 20,
            "OC_SHUTDOWN_GRACE": 5,
            "PTB_TIMEDELTA": "true",
        }
    )
    server = ServerProcess("run", "run", env, tmp_path)
    kills = list(KILLS)
    scn.rng("kinds").shuffle(kills)
    try:
        await server.start()
        scn.note(f"server ready ({server.ready_after:.1f} s)")
        feeding = asyncio.create_task(scn.feed())
        for n, kind in enumerate(kills):
            await server.prepare(min(2, len(kills) + 1 - n))  # the last start: the final one
            await scn.pause()
            if kind == "now":
                scn.kill_now(server.kill, "server")
            else:
                await scn.kill_after_post(server.kill, {kind}, "server")
            await server.exited()
            await server.start()
            scn.note(f"server ready ({server.ready_after:.1f} s)")
        await feeding
        await scn.until_answered(within=90)
        await scn.until_quiet()
        scn.note("graceful stop and one more start: recovery must find nothing to do")
        await scn.stop_all([server])
        await server.start()
        await scn.until_quiet()
        await scn.stop_all([server])
    finally:
        await server.close()
    fig = scn.figures()
    report = scn.report("single-sqlite", fig, server.errors(), tmp_path / "platform.json")
    crash_figures(report.splitlines()[0])
    print(report)
    assert fig.failures == 0 and not scn.stalled and not scn.hung, report
