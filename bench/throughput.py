"""Full turns per second: single-process mode vs. 1, 2 and 4 workers over Redis, in one run.

The model is the fake Ollama in its own process. Two scenarios:

* instant model: what is measured is opencomputer itself (accept + persist, lanes, the graph
  with its checkpoint, the reply); on a small machine every process shares the same cores, so
  this shows what each worker costs rather than how far workers scale;
* model answering in 200 ms with 8 turns in flight per process (``OC_MAX_IN_FLIGHT``, sized to
  what the model server runs in parallel): workers wait on the model, as they do in production,
  and each added worker adds its share of turns until the cores are busy.

Each mode gets the same burst of messages over many conversations; figures are turns/s, p50/p99
latency (message accepted -> reply posted), the CPU each of this benchmark's own processes used
per turn (this one, the workers it started, the fake model it started; never another process on
the machine, and not the shared PostgreSQL and Redis servers), and, for the single-process mode,
memory per 10,000 live conversations. Like is compared with like: the workers' rates are ratios
to the single process on the same database (PostgreSQL); the single process on SQLite (the
default) is shown beside it. An echo bot through the same fake platform (emit -> send, nothing
else) gives the in-run baseline a classic echo bot stands for.

    .venv/bin/python bench/throughput.py [messages] [conversations] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from redis.asyncio import Redis

from bench._common import (
    FakeModelProcess,
    add_run_options,
    pct,
    pid_cpu,
    spawn_workers,
    start,
    tune_gc_if_asked,
)
from opencomputer.bot.app import App
from opencomputer.bot.config import load_settings
from opencomputer.bot.events import Address, Chat, Message, User
from opencomputer.bot.testing.harness import RecordingConnector
from opencomputer.bot.testing.services import POSTGRES_URL, REDIS_URL, postgres_database

ROOT = Path(__file__).resolve().parent.parent
COMMON = {
    "OC_DM_POLICY": "open",
    "OC_RATE_LIMIT_USER": "0",
    "OC_RATE_LIMIT_CHAT": "0",
    "OC_LOG_LEVEL": "ERROR",
    "OC_MAX_IN_FLIGHT": "64",
    "OC_HTTP_PORT": "0",
}


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def recording(holder: list[RecordingConnector]) -> Any:
    """A connector factory for ``App.start`` that keeps the recording connector it built."""

    def factory(_settings: Any, runtime: Any) -> list[Any]:
        holder.append(RecordingConnector(runtime.emit))
        return holder

    return factory


STARTED: dict[str, set[int]] = {"workers": set(), "model": set()}
"""The processes this benchmark started, by group: only these (and itself) are counted."""


def cpu_seconds(pids: dict[str, set[int]]) -> dict[str, float]:
    """CPU time (user + system) used so far by each group of processes (this one precisely)."""
    used = {group: sum(pid_cpu(pid) for pid in members) for group, members in pids.items()}
    used["opencomputer"] = time.process_time()
    return used


def process_groups() -> dict[str, set[int]]:
    """This process (the gateway or the single process), its workers, its fake model."""
    return {"opencomputer": {os.getpid()}, **{k: set(v) for k, v in STARTED.items()}}


async def burst(
    app: App | None, conn_holder: list[RecordingConnector], n: int, chats: int
) -> dict[str, Any]:
    conn = conn_holder[0]
    emit = app.runtime.emit if app is not None else conn.emit
    run = uuid.uuid4().hex[:6]  # message ids unique across bursts (a repeat is a duplicate)
    sent_at: dict[str, float] = {}
    groups = process_groups()
    cpu_before = cpu_seconds(groups)
    start = time.perf_counter()
    for i in range(n):
        chat = f"c{i % chats}-{uuid.uuid4().hex[:4]}" if chats >= n else f"c{i % chats}"
        mid = f"u{i}-{run}"
        sent_at[mid] = time.perf_counter()
        await emit(
            Message(
                platform="test",
                event_id=f"b{i}-{uuid.uuid4().hex[:6]}",
                chat=Chat("test", chat),
                user=User("test", chat),
                text=f"m{i}",
                message_id=mid,
            )
        )
    while sum(1 for c in conn.calls if c.action == "send") < n:
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - start
    cpu_after = cpu_seconds(groups)
    cpu = {g: (cpu_after.get(g, 0) - cpu_before.get(g, 0)) * 1000 / n for g in groups}
    lat = [
        c.at - sent_at[c.reply_to]
        for c in conn.calls
        if c.action == "send" and c.reply_to in sent_at
    ]
    return {"turns_s": n / elapsed, "p50": pct(lat, 50), "p99": pct(lat, 99), "n": n, "cpu": cpu}


async def echo_bot(n: int, chats: int) -> dict[str, Any]:
    """The baseline: each message answered with its own text through the same fake platform."""
    holder: list[RecordingConnector] = []

    async def echo(message: Message) -> None:
        address = Address(message.platform, message.chat.id)
        await holder[0].send(address, message.text, reply_to=message.message_id)

    holder.append(RecordingConnector(echo))  # type: ignore[arg-type]
    await burst(None, holder, 200, 50)
    holder[0].calls.clear()
    return await burst(None, holder, n, chats)


async def single_process(
    ollama: str, n: int, chats: int, data: Path, in_flight: int = 64, database: str = ""
) -> dict[str, Any]:
    extra = {"OC_DATABASE_URL": database} if database else {}
    settings = load_settings(
        OLLAMA_HOST=ollama,
        OC_DATA_DIR=data,
        **{**COMMON, "OC_MAX_IN_FLIGHT": str(in_flight), **extra},
    )
    app = App(settings)
    holder: list[RecordingConnector] = []
    await app.start(recording(holder), http=False)
    try:
        await burst(app, holder, 200, 50)  # warm-up
        tune_gc_if_asked()
        holder[0].calls.clear()
        return await burst(app, holder, n, chats)
    finally:
        await app.stop()


async def live_conversations(ollama: str, data: Path, count: int = 10_000) -> float:
    settings = load_settings(OLLAMA_HOST=ollama, OC_DATA_DIR=data, **COMMON)
    app = App(settings)
    holder: list[RecordingConnector] = []
    await app.start(recording(holder), http=False)
    try:
        await burst(app, holder, 500, 500)
        holder[0].calls.clear()
        holder[0].messages.clear()
        before = rss_mb()
        await burst(app, holder, count, count)
        holder[0].calls.clear()
        holder[0].messages.clear()
        return rss_mb() - before
    finally:
        await app.stop()


async def balanced(prefix: str, workers: int, partitions: int, timeout: float = 60) -> None:
    """Wait until every worker has started and holds its share of the partitions."""
    redis = Redis.from_url(REDIS_URL)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            owners = await redis.mget([f"{prefix}:lease:{p}" for p in range(partitions)])
            counts = Counter(owners)
            if None not in counts and len(counts) == workers:
                if max(counts.values()) <= -(-partitions // workers):
                    return
            await asyncio.sleep(0.2)
        raise TimeoutError(f"{workers} workers did not share {partitions} partitions: {counts}")
    finally:
        await redis.aclose()


async def scale_out(
    ollama: str, workers: int, n: int, chats: int, data: Path, in_flight: int = 64
) -> dict[str, Any]:
    async with postgres_database(POSTGRES_URL) as db:
        env = {
            "OLLAMA_HOST": ollama,
            "OC_DATABASE_URL": db,
            "OC_REDIS_URL": REDIS_URL,
            "OC_REDIS_PREFIX": f"bench{uuid.uuid4().hex[:6]}",
            "OC_PARTITIONS": "16",
            **COMMON,
            "OC_MAX_IN_FLIGHT": str(in_flight),
        }
        gateway = App(load_settings(OC_DATA_DIR=data / "gw", **env), role="gateway")
        holder: list[RecordingConnector] = []
        await gateway.start(recording(holder), http=False)
        procs: list[subprocess.Popen[bytes]] = []
        try:
            spawn_workers(procs, workers, data, env)
            STARTED["workers"] = {p.pid for p in procs}
            await balanced(env["OC_REDIS_PREFIX"], workers, int(env["OC_PARTITIONS"]))
            await burst(gateway, holder, 200, 50)
            holder[0].calls.clear()
            return await burst(gateway, holder, n, chats)
        finally:
            for p in procs:
                p.terminate()
            for p in procs:  # the gateway must keep serving while workers finish their turns
                await asyncio.to_thread(p.wait, 60)
            STARTED["workers"] = set()
            await gateway.stop()


SCENARIOS = (
    # name, model delay (s), OC_MAX_IN_FLIGHT, share of the messages
    ("instant model", 0.0, 64, 1.0),
    ("model answering in 200 ms, 8 turns in flight per process", 0.2, 8, 0.4),
)


async def scenario(
    delay: float, in_flight: int, n: int, chats: int, tmp: Path, workers: tuple[int, ...]
) -> list[Any]:
    async with FakeModelProcess(delay=delay, echo=True) as fake:
        assert fake.proc is not None
        STARTED["model"] = {fake.proc.pid}
        rows = [
            ("single process (SQLite)", await single_process(fake.url, n, chats, tmp, in_flight))
        ]
        if not workers:
            STARTED["model"] = set()
            return rows
        async with postgres_database(POSTGRES_URL) as db:
            result = await single_process(fake.url, n, chats, tmp / "pg", in_flight, db)
        rows.append(("single process (PostgreSQL)", result))
        for count in workers:
            result = await scale_out(fake.url, count, n, chats, tmp / f"s{count}", in_flight)
            rows.append((f"{count} worker(s) over Redis (PG)", result))
        STARTED["model"] = set()
        return rows


def report(title: str, rows: list[Any], echo: dict[str, Any] | None = None) -> None:
    """Rates as ratios to the single process on the same database (PostgreSQL for workers)."""
    print(title)
    bases = {"SQLite": rows[0][1], "PG": rows[-1][1] if len(rows) < 2 else rows[1][1]}
    for name, r in rows:
        base = bases["SQLite"] if "SQLite" in name else bases["PG"]
        cpu = "  ".join(f"{g} {ms:.2f}" for g, ms in r["cpu"].items() if ms >= 0.005)
        print(
            f"  {name:<30} {r['turns_s']:7.0f} turns/s ({r['turns_s'] / base['turns_s']:.2f}x "
            f"the single process on its database)  p50={r['p50']:7.0f} ms  "
            f"p99={r['p99']:7.0f} ms  CPU ms/turn: {cpu}"
        )
    if echo is not None:
        ours = rows[0][1]["cpu"]["opencomputer"]
        print(
            f"  {'echo bot, same fake platform':<30} {echo['turns_s']:7.0f} turns/s  "
            f"CPU ms/message: {echo['cpu']['opencomputer']:.3f}  "
            f"(a full SQLite turn costs {ours / echo['cpu']['opencomputer']:.1f}x that)"
        )


async def main(n: int, chats: int, quick: bool, sqlite_only: bool) -> dict[str, float]:
    results = []
    workers = () if sqlite_only else (1, 2) if quick else (1, 2, 4)
    echo = await echo_bot(n, chats)
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, delay, in_flight, share) in enumerate(SCENARIOS):
            count = int(n * share)
            rows = await scenario(delay, in_flight, count, chats, Path(tmp) / f"sc{i}", workers)
            results.append((f"{name}: {count} turns over {chats} conversations", rows))
            report(*results[-1], echo if i == 0 else None)  # as it comes: a long run shows progress
        per_10k = None
        if not quick and not sqlite_only:
            async with FakeModelProcess(echo=True) as fake:
                per_10k = await live_conversations(fake.url, Path(tmp) / "live")
    if per_10k is not None:
        print(f"RSS growth per 10,000 live conversations (single process): {per_10k:.1f} MB")
    single = results[0][1][0][1]
    return {
        "turns_s_sqlite": single["turns_s"],
        "cpu_turn_ms_sqlite": single["cpu"]["opencomputer"],
        "echo_turns_s": echo["turns_s"],
        "echo_cpu_ms": echo["cpu"]["opencomputer"],
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("messages", type=int, nargs="?", default=2000)
    parser.add_argument("conversations", type=int, nargs="?", default=200)
    parser.add_argument(
        "--quick", action="store_true", help="1 and 2 workers, no 10,000-conversation memory run"
    )
    parser.add_argument(
        "--sqlite-only", action="store_true", help="the single process on SQLite and the echo bot"
    )
    add_run_options(parser)
    args = parser.parse_args()
    start(args, lambda: main(args.messages, args.conversations, args.quick, args.sqlite_only))
