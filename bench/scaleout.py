"""Scale-out CPU per turn: gateway and workers apart, against one single-process turn, one run.

What runs: the fake Ollama in its own process (instant, then answering in 200 ms); a
single-process app on SQLite and one on PostgreSQL (the baselines); then a gateway (this
process) with 1, 2 and 4 worker processes (``python -m opencomputer worker``) over a fresh
PostgreSQL database and a fresh Redis key prefix each. Turns go in through the gateway's
runtime (``emit``, as a connector hands them over) over many warm conversations; a turn ends
when the recording connector has posted its answer.

Figures: turns/s, CPU per turn of the gateway and of the workers (``utime + stime`` deltas from
``/proc/<pid>/stat``: only our own processes, not PostgreSQL, Redis or the model), the worker's
CPU per turn as a multiple of the single-process turn (goal ≤ 1.5×), the gateway's as a share
of a worker's (goal ≤ 0.25×), and 2 ÷ 1 and 4 ÷ 1 worker throughput (goal ≥ 1.8× for two).
The load average and a fixed CPU loop's time come first: compare figures within one run.

    .venv/bin/python bench/scaleout.py [turns] [conversations]
"""

from __future__ import annotations

import asyncio
import os
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

from bench._common import pct, quiet, spawn_workers
from opencomputer.bot.app import App
from opencomputer.bot.config import load_settings
from opencomputer.bot.eventloop import loop_kind, run
from opencomputer.bot.events import Chat, Message, User
from opencomputer.bot.testing.harness import RecordingConnector
from opencomputer.bot.testing.services import POSTGRES_URL, REDIS_URL, postgres_database

ROOT = Path(__file__).resolve().parent.parent
PARTITIONS = 16
COMMON = {
    "OC_DM_POLICY": "open",
    "OC_RATE_LIMIT_USER": "0",
    "OC_RATE_LIMIT_CHAT": "0",
    "OC_LOG_LEVEL": "ERROR",
    "OC_HTTP_PORT": "0",
}


def calibration() -> float:
    """CPU seconds of a fixed pure-Python loop: how fast this machine is right now."""
    t0 = time.process_time()
    total = 0
    for i in range(2_000_000):
        total += i * i
    return time.process_time() - t0


def cpu_of(pids: list[int]) -> float:
    """CPU seconds (user + system) used so far by these processes."""
    tick = os.sysconf("SC_CLK_TCK")
    used = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        used += (int(fields[11]) + int(fields[12])) / tick
    return used


def start_model(delay: float) -> tuple[subprocess.Popen[bytes], str]:
    """The fake Ollama in its own process, on a port it picks."""
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "fake_ollama.py"), "0", str(delay)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()  # "fake Ollama on http://127.0.0.1:PORT"
    return proc, line.rsplit(" ", 1)[1].strip()


def recording(holder: list[RecordingConnector]) -> Any:
    def factory(_settings: Any, runtime: Any) -> list[Any]:
        holder.append(RecordingConnector(runtime.emit, edit_interval=0.0))
        return holder

    return factory


async def burst(
    app: App, conn: RecordingConnector, n: int, chats: int, tag: str, workers: list[int]
) -> dict[str, Any]:
    """``n`` turns round-robin over ``chats`` conversations; CPU per turn of each side."""
    conn.calls.clear()
    sent_at: dict[str, float] = {}
    gw0, wk0 = cpu_of([os.getpid()]), cpu_of(workers)
    start = time.perf_counter()
    for i in range(n):
        chat = f"c{i % chats}"
        mid = f"{tag}{i}"
        sent_at[mid] = time.perf_counter()
        await app.runtime.emit(
            Message(
                platform="test",
                event_id=f"{tag}{i}-{uuid.uuid4().hex[:6]}",
                chat=Chat("test", chat),
                user=User("test", chat),
                text=f"m{i}",
                message_id=mid,
            )
        )
    deadline = time.monotonic() + 120
    while sum(1 for c in conn.calls if c.action == "send") < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{tag}: answered {len(conn.calls)} of {n}")
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - start
    gw, wk = (cpu_of([os.getpid()]) - gw0) / n * 1000, (cpu_of(workers) - wk0) / n * 1000
    lat = [c.at - sent_at[c.reply_to] for c in conn.calls if c.action == "send" and c.reply_to]
    return {"turns_s": n / elapsed, "p50": pct(lat, 50), "p99": pct(lat, 99), "gw": gw, "wk": wk}


async def single(
    model: str, db: str | None, n: int, chats: int, data: Path, in_flight: int
) -> dict[str, Any]:
    """One process doing everything (the baseline): its whole CPU counts as the 'worker'."""
    env = {**COMMON, "OC_MAX_IN_FLIGHT": str(in_flight)}
    if db is not None:
        env["OC_DATABASE_URL"] = db
    app = App(load_settings(OLLAMA_HOST=model, OC_DATA_DIR=data, **env))
    holder: list[RecordingConnector] = []
    await app.start(recording(holder), http=False)
    try:
        await burst(app, holder[0], chats, chats, "w", [])
        r = await burst(app, holder[0], n, chats, "m", [])
        r["wk"], r["gw"] = r["gw"], 0.0
        return r
    finally:
        await app.stop()


async def balanced(redis: Redis, prefix: str, workers: int, timeout: float = 120) -> None:
    """Wait until every worker has started and holds its share of the partitions."""
    deadline = time.monotonic() + timeout
    counts: Counter[Any] = Counter()
    while time.monotonic() < deadline:
        owners = await redis.mget([f"{prefix}:lease:{p}" for p in range(PARTITIONS)])
        counts = Counter(owners)
        if None not in counts and len(counts) == workers:
            if max(counts.values()) <= -(-PARTITIONS // workers):
                return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{workers} workers did not share {PARTITIONS} partitions in {timeout} s")


async def scale_out(
    model: str, workers: int, n: int, chats: int, data: Path, in_flight: int
) -> dict[str, Any]:
    async with postgres_database(POSTGRES_URL) as db:
        prefix = f"bench{uuid.uuid4().hex[:8]}"
        env = {
            **COMMON,
            "OLLAMA_HOST": model,
            "OC_DATABASE_URL": db,
            "OC_REDIS_URL": REDIS_URL,
            "OC_REDIS_PREFIX": prefix,
            "OC_PARTITIONS": str(PARTITIONS),
            "OC_MAX_IN_FLIGHT": str(in_flight),
        }
        gateway = App(load_settings(OC_DATA_DIR=data / "gw", **env), role="gateway")
        holder: list[RecordingConnector] = []
        await gateway.start(recording(holder), http=False)
        procs: list[subprocess.Popen[bytes]] = []
        redis = Redis.from_url(REDIS_URL)
        try:
            spawn_workers(procs, workers, data, env)
            await balanced(redis, prefix, workers)
            pids = [p.pid for p in procs]
            await burst(gateway, holder[0], chats, chats, "w", pids)  # warm conversations
            return await burst(gateway, holder[0], n, chats, "m", pids)
        finally:
            for p in procs:
                p.terminate()
            for p in procs:  # the gateway keeps serving while workers finish their turns
                await asyncio.to_thread(p.wait, 60)
            await gateway.stop()
            keys = [k async for k in redis.scan_iter(f"{prefix}:*")]
            if keys:
                await redis.delete(*keys)
            await redis.aclose()


async def scenario(
    name: str, delay: float, in_flight: int, n: int, chats: int, tmp: Path, singles: bool
) -> None:
    proc, model = start_model(delay)
    rows: list[tuple[str, dict[str, Any]]] = []
    try:
        if singles:
            sqlite = await single(model, None, n, chats, tmp / "s", in_flight)
            rows.append(("single process, SQLite", sqlite))
            async with postgres_database(POSTGRES_URL) as db:
                pg = await single(model, db, n, chats, tmp / "p", in_flight)
                rows.append(("single process, PostgreSQL", pg))
        for w in (1, 2, 4):
            try:
                r = await scale_out(model, w, n, chats, tmp / f"w{w}", in_flight)
            except TimeoutError as exc:  # an overloaded machine: say so, measure the rest
                print(f"  gateway + {w} worker(s): no figures ({exc})")
                continue
            rows.append((f"gateway + {w} worker(s)", r))
    finally:
        proc.terminate()
        proc.wait()
    print(f"{name}: {n} turns over {chats} conversations, {in_flight} turns in flight per process")
    print(f"  {'':<28} {'turns/s':>8} {'p50 ms':>7} {'p99 ms':>7}   CPU ms/turn: gateway  workers")
    for label, r in rows:
        print(
            f"  {label:<28} {r['turns_s']:8.0f} {r['p50']:7.0f} {r['p99']:7.0f}"
            f"   {r['gw']:20.2f} {r['wk']:8.2f}"
        )
    by = dict(rows)
    one = by.get("gateway + 1 worker(s)")
    if one is None:
        return
    if singles:
        sqlite, pg = by["single process, SQLite"]["wk"], by["single process, PostgreSQL"]["wk"]
        print(
            f"  worker CPU/turn ÷ single-process turn: {one['wk'] / sqlite:.2f}× SQLite, "
            f"{one['wk'] / pg:.2f}× PostgreSQL (goal ≤ 1.5×)"
        )
        print(f"  gateway ÷ worker CPU/turn: {one['gw'] / one['wk']:.2f}× (goal ≤ 0.25×)")
    for w in (2, 4):
        if f"gateway + {w} worker(s)" not in by:
            continue
        ratio = by[f"gateway + {w} worker(s)"]["turns_s"] / one["turns_s"]
        print(f"  {w} workers ÷ 1 worker: {ratio:.2f}×" + (" (goal ≥ 1.8×)" if w == 2 else ""))


async def main(n: int, chats: int) -> None:
    quiet()
    load = os.getloadavg()
    print(
        f"{os.cpu_count()} CPUs; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
        f"calibration loop {calibration() * 1000:.0f} ms CPU; {loop_kind()} event loop "
        "(as the CLI's worker processes)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        await scenario("instant model", 0.0, 64, n, chats, Path(tmp) / "i", True)
        await scenario("model answering in 200 ms", 0.2, 8, n // 2, chats, Path(tmp) / "d", False)
    load = os.getloadavg()
    print(f"load average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    run(
        main(
            int(sys.argv[1]) if len(sys.argv) > 1 else 120,
            int(sys.argv[2]) if len(sys.argv) > 2 else 16,
        )
    )
