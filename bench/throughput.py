"""Full turns per second: single-process mode vs. 1, 2 and 4 workers over Redis, in one run.

The model is the fake Ollama in its own process. Two scenarios:

* instant model: what is measured is opencomputer itself (accept + persist, lanes, the graph
  with its checkpoint, the reply); on a small machine every process shares the same cores, so
  this shows what each worker costs rather than how far workers scale;
* model answering in 200 ms with 8 turns in flight per process (``OC_MAX_IN_FLIGHT``, sized to
  what the model server runs in parallel): workers wait on the model, as they do in production,
  and each added worker adds its share of turns until the cores are busy.

Each mode gets the same burst of messages over many conversations; figures are turns/s, p50/p99
latency (message accepted -> reply posted), the CPU each process group used per turn, and, for
the single-process mode, memory per 10,000 live conversations. Scale-out modes use PostgreSQL (as
deployed); single-process uses SQLite.

    .venv/bin/python bench/throughput.py [messages] [conversations]
"""

from __future__ import annotations

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

from bench._common import pct, quiet
from opencomputer.bot.app import App
from opencomputer.bot.config import load_settings
from opencomputer.bot.events import Chat, Message, User
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


def start_fake_ollama(port: int, delay: float = 0.0) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "fake_ollama.py"), str(port), str(delay)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    proc.stdout.readline()  # "fake Ollama on ..."
    return proc


def cpu_seconds(pids: dict[str, set[int]]) -> dict[str, float]:
    """CPU time (user + system) used so far by each group of processes."""
    tick = os.sysconf("SC_CLK_TCK")
    used: dict[str, float] = {}
    for group, members in pids.items():
        for pid in members:
            try:
                with open(f"/proc/{pid}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            used[group] = used.get(group, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return used


def process_groups() -> dict[str, set[int]]:
    """This process (the gateway or the single process), workers, the fake model, databases."""
    groups: dict[str, set[int]] = {
        "opencomputer": {os.getpid()},
        "workers": set(),
        "postgres+redis": set(),
        "model": set(),
    }
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmd = fh.read().replace(b"\0", b" ")
        except OSError:
            continue
        if b"bot worker" in cmd:
            groups["workers"].add(int(entry))
        elif b"fake_ollama.py" in cmd:
            groups["model"].add(int(entry))
        elif cmd.startswith((b"postgres", b"/usr/lib/postgresql", b"redis-server")):
            groups["postgres+redis"].add(int(entry))
    return groups


async def burst(
    app: App, conn_holder: list[RecordingConnector], n: int, chats: int
) -> dict[str, Any]:
    conn = conn_holder[0]
    sent_at: dict[str, float] = {}
    groups = process_groups()
    cpu_before = cpu_seconds(groups)
    start = time.perf_counter()
    for i in range(n):
        chat = f"c{i % chats}-{uuid.uuid4().hex[:4]}" if chats >= n else f"c{i % chats}"
        mid = f"u{i}"
        sent_at[mid] = time.perf_counter()
        await app.runtime.emit(
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


async def single_process(
    ollama: str, n: int, chats: int, data: Path, in_flight: int = 64
) -> dict[str, Any]:
    settings = load_settings(
        OLLAMA_HOST=ollama, OC_DATA_DIR=data, **{**COMMON, "OC_MAX_IN_FLIGHT": str(in_flight)}
    )
    app = App(settings)
    holder: list[RecordingConnector] = []
    await app.start(recording(holder), http=False)
    try:
        await burst(app, holder, 200, 50)  # warm-up
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
        base = {k: v for k, v in os.environ.items() if not k.startswith(("OC_", "OLLAMA_"))}
        data.mkdir(parents=True, exist_ok=True)
        try:
            for w in range(workers):
                with open(data / f"w{w}.log", "wb") as log:
                    procs.append(
                        subprocess.Popen(
                            [sys.executable, "-m", "opencomputer", "worker"],
                            cwd=ROOT,
                            env={**base, **env, "OC_DATA_DIR": str(data / f"w{w}")},
                            stdout=subprocess.DEVNULL,
                            stderr=log,
                        )
                    )
            await balanced(env["OC_REDIS_PREFIX"], workers, int(env["OC_PARTITIONS"]))
            await burst(gateway, holder, 200, 50)
            holder[0].calls.clear()
            return await burst(gateway, holder, n, chats)
        finally:
            for p in procs:
                p.terminate()
            for p in procs:  # the gateway must keep serving while workers finish their turns
                await asyncio.to_thread(p.wait, 60)
            await gateway.stop()


SCENARIOS = (
    # name, model delay (s), OC_MAX_IN_FLIGHT, share of the messages
    ("instant model", 0.0, 64, 1.0),
    ("model answering in 200 ms, 8 turns in flight per process", 0.2, 8, 0.4),
)


async def scenario(delay: float, in_flight: int, n: int, chats: int, tmp: Path) -> list[Any]:
    port = 20000 + (os.getpid() + int(delay * 1000)) % 20000
    fake = start_fake_ollama(port, delay)
    ollama = f"http://127.0.0.1:{port}"
    try:
        rows = [("single process (SQLite)", await single_process(ollama, n, chats, tmp, in_flight))]
        for workers in (1, 2, 4):
            result = await scale_out(ollama, workers, n, chats, tmp / f"s{workers}", in_flight)
            rows.append((f"{workers} worker(s) over Redis (PG)", result))
        return rows
    finally:
        fake.terminate()
        fake.wait()


def report(title: str, rows: list[Any]) -> None:
    print(title)
    base = rows[0][1]
    for name, r in rows:
        cpu = "  ".join(f"{g} {ms:.2f}" for g, ms in r["cpu"].items() if ms >= 0.005)
        print(
            f"  {name:<30} {r['turns_s']:7.0f} turns/s ({r['turns_s'] / base['turns_s']:.2f}x)  "
            f"p50={r['p50']:7.0f} ms  p99={r['p99']:7.0f} ms  CPU ms/turn: {cpu}"
        )


async def main(n: int, chats: int) -> None:
    quiet()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, delay, in_flight, share) in enumerate(SCENARIOS):
            count = int(n * share)
            rows = await scenario(delay, in_flight, count, chats, Path(tmp) / f"sc{i}")
            results.append((f"{name}: {count} turns over {chats} conversations", rows))
        port = 20000 + (os.getpid() + 7) % 20000
        fake = start_fake_ollama(port)
        try:
            per_10k = await live_conversations(f"http://127.0.0.1:{port}", Path(tmp) / "live")
        finally:
            fake.terminate()
            fake.wait()
    print(f"{os.cpu_count()} CPUs")
    for title, rows in results:
        report(title, rows)
    print(f"RSS growth per 10,000 live conversations (single process): {per_10k:.1f} MB")


if __name__ == "__main__":
    asyncio.run(
        main(
            int(sys.argv[1]) if len(sys.argv) > 1 else 2000,
            int(sys.argv[2]) if len(sys.argv) > 2 else 200,
        )
    )
