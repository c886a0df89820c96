"""What a full turn adds on top of the model call.

Against one fake Ollama (instant answers) in one run: N bare chat calls with the stock `ollama`
client (streamed, as the runtime streams), then N full turns through the runtime — terminal
connector in-process, SQLite persistence (inbound, outbox, graph checkpoint) on. Prints p50/p99
of both and the overhead in ms and as a ratio.

    .venv/bin/python bench/turn_overhead.py [N]
"""

from __future__ import annotations

import asyncio
import io
import sys
import tempfile
import time
from pathlib import Path

import ollama

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import pct, quiet, summary
from opencomputer.bot.app import App
from opencomputer.bot.config import load_settings
from opencomputer.bot.testing import FakeOllama, Reply
from opencomputer.connectors.terminal import TerminalConnector

MESSAGES = [{"role": "user", "content": "hello"}]


async def bare_calls(url: str, n: int) -> list[float]:
    client = ollama.AsyncClient(host=url)
    times = []
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            async for _part in await client.chat("qwen3:8b", messages=MESSAGES, stream=True):
                pass
            times.append(time.perf_counter() - t0)
    finally:
        await client.close()
    return times


async def full_turns(url: str, n: int, data: Path) -> tuple[list[float], float]:
    settings = load_settings(OLLAMA_HOST=url, OC_DATA_DIR=data, OC_LOG_LEVEL="ERROR")
    app = App(settings)
    out = io.StringIO()
    holder: list[TerminalConnector] = []

    def factory(_s, rt):  # type: ignore[no-untyped-def]
        holder.append(
            TerminalConnector(
                rt.emit,
                wait_idle=rt.wait_idle,
                stdin=io.StringIO(),
                stdout=out,
                interactive=False,
                user="bench",
            )
        )
        return holder

    t0 = time.perf_counter()
    await app.start(factory, http=False)
    ready = time.perf_counter() - t0
    terminal = holder[0]
    times = []
    try:
        for i in range(n):
            event = terminal._event(f"hello {i}")
            terminal._mine.add(event.message_id)  # typed in this session, as run() records it
            t0 = time.perf_counter()
            await app.runtime.emit(event)
            await app.runtime.wait_idle(terminal.address)
            times.append(time.perf_counter() - t0)
            if i % 50 == 49:  # keep the thread short: this measures overhead, not history growth
                await app.store.reset(terminal.address.key)
    finally:
        await app.stop()
    assert out.getvalue().count("\n") >= n, "every turn printed its answer"
    return times, ready


async def main(n: int) -> None:
    quiet()
    async with FakeOllama() as fake:
        fake.responder = lambda body: Reply("Hello! How can I help?", chunks=3)
        with tempfile.TemporaryDirectory() as tmp:
            await bare_calls(fake.url, 50)  # warm-up
            await full_turns(fake.url, 30, Path(tmp) / "warm")
            bare = await bare_calls(fake.url, n)
            turns, ready = await full_turns(fake.url, n, Path(tmp) / "run")
    print(summary("bare ollama client chat", bare))
    print(summary("full turn (runtime+SQLite)", turns))
    for q in (50, 99):
        b, t = pct(bare, q), pct(turns, q)
        print(f"overhead p{q}: {t - b:+.2f} ms  (ratio {t / b:.2f}x)")
    print(f"app start (ready): {ready * 1000:.0f} ms")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 500))
