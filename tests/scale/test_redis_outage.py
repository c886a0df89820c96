"""A Redis outage: one log line when it starts, one when it ends, and `/readyz` says so.

A private ``redis-server`` on a free port (the shared one cannot be stopped) is killed under a
real `python -m bot worker` and started again on the same port.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import sys
import time
import urllib.request
from pathlib import Path

import pytest

PREFIXES = ("OC_", "OLLAMA_", "TELEGRAM_", "DISCORD_", "SLACK_", "MATRIX_")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _redis(port: int, folder: Path) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
        "--appendonly", "no", "--dir", str(folder),
        stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            _r, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return proc
        except OSError:
            await asyncio.sleep(0.05)
    raise AssertionError("redis-server did not start")


def _readyz(port: int) -> dict[str, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as resp:
            return dict(json.loads(resp.read())["checks"])
    except urllib.error.HTTPError as exc:  # 503: not ready, same body
        return dict(json.loads(exc.read())["checks"])
    except OSError:
        return {}


async def _until(what: str, check, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await asyncio.to_thread(check):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
async def test_outage_logs_one_line_each_way_and_readyz_follows(tmp_path: Path) -> None:
    redis_port, http_port = _free_port(), _free_port()
    redis = await _redis(redis_port, tmp_path)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(PREFIXES)}
    env = {
        **clean,
        "OC_DATA_DIR": str(tmp_path / "data"),
        "OLLAMA_HOST": "http://127.0.0.1:9",
        "OC_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "OC_HTTP_HOST": "127.0.0.1",
        "OC_HTTP_PORT": str(http_port),
        "OC_LOG_LEVEL": "WARNING",
    }
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "opencomputer", "worker", env=env, cwd=tmp_path,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    lines: list[str] = []

    async def collect() -> None:
        assert worker.stderr is not None
        async for raw in worker.stderr:
            lines.append(raw.decode(errors="replace").rstrip())

    reader = asyncio.create_task(collect())

    def answers(word: str) -> list[str]:
        return [line for line in lines if "reading answers" in line and word in line]

    try:
        await _until("redis ok", lambda: _readyz(http_port).get("redis") == "ok")
        redis.kill()
        await redis.wait()
        await _until("redis down", lambda: _readyz(http_port).get("redis", "").startswith("error"))
        await _until("outage line", lambda: answers("retrying with backoff"))
        redis = await _redis(redis_port, tmp_path)
        await _until("recovered line", lambda: answers("recovered after"))
        await _until("redis ok again", lambda: _readyz(http_port).get("redis") == "ok")
        assert len(answers("retrying with backoff")) == 1
        assert len(answers("recovered after")) == 1
        assert not any("Traceback" in line for line in lines), lines
    finally:
        worker.terminate()
        await asyncio.wait_for(worker.wait(), 30)
        reader.cancel()
        redis.kill()
        await redis.wait()


def test_backoff_is_capped_jittered_and_logs_once_per_streak(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    from opencomputer.bot.scale.backoff import Outage

    outage = Outage("reading x", logging.getLogger("test.outage"), base=0.5, cap=30.0)
    with caplog.at_level(logging.WARNING, logger="test.outage"):
        delays = [outage.failed(ConnectionError("refused")) for _ in range(40)]
        outage.succeeded()
        outage.succeeded()
    assert all(0.25 <= d <= 30.0 for d in delays)
    assert max(delays[:2]) <= 1.0  # starts fast
    assert sum(delays[-20:]) > 20 * 5  # later retries are seconds apart, not 0.5 s
    assert len(set(delays)) > 30  # jittered: gateways and workers do not retry in step
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0] == "reading x failed (refused); retrying with backoff"
    assert messages[1].startswith("reading x recovered after 40 failed attempts (")
    assert len(messages) == 2
