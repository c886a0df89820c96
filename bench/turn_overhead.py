"""What a full turn adds on top of the model call.

The fake Ollama runs in its own process (instant answers, 3 streamed pieces, no request bodies
kept). The baseline is a bare chat call with the very HTTP client our model pool uses
(``OllamaClient``: one aiohttp session, streamed), so the difference is what the server adds:
terminal connector in-process, runtime, graph, SQLite persistence (inbound, outbox, checkpoint).
Bare calls and turns alternate in blocks of 50 in the same process, so drift in the machine's
load hits both. Prints p50/p99 of both, the overhead, CPU per call and per turn, and every
garbage-collector pause (generation, count, length) during the turns.

    .venv/bin/python bench/turn_overhead.py [N] [--loop uvloop|asyncio] [--gc tuned|default]
    .venv/bin/python bench/turn_overhead.py 300 --ab loop --reps 3   # interleaved A/B
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (
    FakeModelProcess,
    GcPauses,
    add_run_options,
    pct,
    process_cpu,
    start,
    summary,
    tune_gc_if_asked,
)
from opencomputer.bot.app import App
from opencomputer.bot.config import load_settings
from opencomputer.bot.ollama import OllamaClient
from opencomputer.connectors.terminal import TerminalConnector

MESSAGES = [{"role": "user", "content": "hello"}]
BLOCK = 50


async def bare_block(client: OllamaClient, n: int, times: list[float]) -> float:
    """``n`` bare streamed calls; returns their CPU seconds."""
    cpu = process_cpu()
    for _ in range(n):
        t0 = time.perf_counter()
        await client.chat("qwen3:8b", MESSAGES, on_token=_drop)
        times.append(time.perf_counter() - t0)
    return process_cpu() - cpu


async def _drop(_token: str) -> None:
    return None


class Turns:
    """The app with the terminal connector, driven one typed line at a time."""

    def __init__(self, url: str, data: Path) -> None:
        self.settings = load_settings(OLLAMA_HOST=url, OC_DATA_DIR=data, OC_LOG_LEVEL="ERROR")
        self.app = App(self.settings)
        self.out = io.StringIO()
        self.holder: list[TerminalConnector] = []
        self.sent = 0

    async def start(self) -> float:
        def factory(_s, rt):  # type: ignore[no-untyped-def]
            self.holder.append(
                TerminalConnector(
                    rt.emit,
                    wait_idle=rt.wait_idle,
                    stdin=io.StringIO(),
                    stdout=self.out,
                    interactive=False,
                    user="bench",
                )
            )
            return self.holder

        t0 = time.perf_counter()
        await self.app.start(factory, http=False)
        return time.perf_counter() - t0

    async def block(self, n: int, times: list[float]) -> float:
        """``n`` turns on a fresh thread (overhead, not history growth); returns CPU seconds."""
        terminal = self.holder[0]
        await self.app.store.reset(terminal.address.key)
        cpu = process_cpu()
        for _ in range(n):
            event = terminal._event(f"hello {self.sent}")
            terminal._mine.add(event.message_id)  # typed in this session, as run() records it
            self.sent += 1
            t0 = time.perf_counter()
            await self.app.runtime.emit(event)
            await self.app.runtime.wait_idle(terminal.address)
            times.append(time.perf_counter() - t0)
        return process_cpu() - cpu


async def main(n: int) -> dict[str, float]:
    async with FakeModelProcess() as fake:
        with tempfile.TemporaryDirectory() as tmp:
            turns = Turns(fake.url, Path(tmp))
            ready = await turns.start()
            try:
                async with OllamaClient(fake.url) as client:
                    await bare_block(client, BLOCK, [])  # warm-up: connections, caches
                    await turns.block(BLOCK, [])
                    tune_gc_if_asked()  # after start-up, as the CLI does
                    bare: list[float] = []
                    full: list[float] = []
                    cpu_bare = cpu_full = 0.0
                    with GcPauses() as pauses:
                        for done in range(0, n, BLOCK):
                            size = min(BLOCK, n - done)
                            cpu_bare += await bare_block(client, size, bare)
                            cpu_full += await turns.block(size, full)
            finally:
                await turns.app.stop()
    assert turns.out.getvalue().count("\n") >= n, "every turn printed its answer"
    print(summary("bare OllamaClient chat", bare))
    print(summary("full turn (runtime+SQLite)", full))
    figures: dict[str, float] = {}
    for q in (50, 99):
        b, t = pct(bare, q), pct(full, q)
        figures[f"overhead_p{q}_ms"] = t - b
        print(f"overhead p{q}: {t - b:+.2f} ms  (ratio {t / b:.2f}x)")
    figures["turn_p50_ms"], figures["turn_p99_ms"] = pct(full, 50), pct(full, 99)
    figures["cpu_bare_ms"] = cpu_bare * 1000 / len(bare)
    figures["cpu_turn_ms"] = cpu_full * 1000 / len(full)
    print(
        f"CPU per bare call {figures['cpu_bare_ms']:.2f} ms, per full turn "
        f"{figures['cpu_turn_ms']:.2f} ms (this process, all threads)"
    )
    print(pauses.report(len(full) + len(bare)))
    figures["gc_max_ms"] = max(pauses.max_ms(1), pauses.max_ms(2))
    print(f"app start (ready): {ready * 1000:.0f} ms")
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int, nargs="?", default=500)
    add_run_options(parser)
    args = parser.parse_args()
    start(args, lambda: main(args.n))
