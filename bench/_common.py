"""Shared bits of the benchmarks: percentiles, the conditions of a run, the fake model in its own
process, garbage-collector pauses, and interleaved A/B runs (uvloop against the standard loop,
tuned collector against the default).

Every benchmark prints :func:`conditions` at its start and end: the load average and the time of
a fixed CPU loop, so figures from a busy machine read as such (this machine's 2 cores are shared).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, Self

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RESULT = "BENCH-RESULT "
"""Prefix of the one JSON line a benchmark run prints for an A/B parent to read."""


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) of ``values`` in milliseconds if they are seconds."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[k] * 1000


def summary(name: str, values: list[float]) -> str:
    return (
        f"{name:<28} n={len(values):<5} p50={pct(values, 50):7.2f} ms  "
        f"p99={pct(values, 99):7.2f} ms  mean={statistics.fmean(values) * 1000:7.2f} ms"
    )


def spread(values: list[float], fmt: str = "{:.2f}") -> str:
    """Median and [min-max] of repeated figures."""
    if not values:
        return "n/a"
    med = statistics.median(values)
    return f"{fmt.format(med)} [{fmt.format(min(values))}-{fmt.format(max(values))}]"


def quiet() -> None:
    logging.basicConfig(level=logging.ERROR)


# --- the conditions of a run ---------------------------------------------------------------
def calibration_ms(rounds: int = 5) -> float:
    """Best-of-``rounds`` time of a fixed pure-Python loop (a busy or slow CPU shows here)."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        total = 0
        for i in range(300_000):
            total += i * i % 7
        best = min(best, time.perf_counter() - start)
    return best * 1000


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def conditions(when: str = "start") -> str:
    """One line: load average, calibration loop, CPUs, event loop, collector thresholds."""
    from opencomputer.bot.eventloop import loop_kind

    gcs = "frozen " if gc.get_freeze_count() else ""
    return (
        f"[{when}] load {load_average()}  calibration {calibration_ms():.1f} ms  "
        f"{os.cpu_count()} CPUs  loop {loop_kind(os.environ.get('OC_EVENT_LOOP', 'auto'))}  "
        f"gc {gcs}{gc.get_threshold()}"
    )


def process_cpu() -> float:
    """CPU seconds (user + system) this process has used, all its threads included."""
    t = os.times()
    return t.user + t.system


def pid_cpu(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- the fake model in another process ------------------------------------------------------
class FakeModelProcess:
    """The fake Ollama in a child process: its CPU is not ours, and it shares no event loop.

    It answers every chat with ``text`` in ``chunks`` streamed pieces after ``delay`` seconds
    and keeps no request bodies (a recording fake inflates memory and GC over thousands of
    turns). ``echo=True`` answers with the user's last message instead.
    """

    def __init__(
        self,
        *,
        delay: float = 0.0,
        chunks: int = 3,
        text: str = "Hello! How can I help?",
        echo: bool = False,
    ) -> None:
        self.args = [str(delay), str(chunks), text, "1" if echo else "0"]
        self.url = ""
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--serve-fake-model", *self.args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=ROOT,
        )
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().decode().strip()
        if not self.url.startswith("http"):
            raise RuntimeError("the fake model process did not start")
        return self.url

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait()
            self.proc = None

    async def __aenter__(self) -> Self:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)


async def _serve_fake_model(delay: float, chunks: int, text: str, echo: bool) -> None:
    from aiohttp import web

    from opencomputer.bot.testing.fake_ollama import FakeOllama, Reply, _echo

    class Unrecorded(FakeOllama):
        async def _body(self, request: web.Request) -> dict[str, Any]:
            import orjson

            raw = await request.read()
            return dict(orjson.loads(raw)) if raw else {}

    def respond(body: dict[str, Any]) -> Reply:
        reply = _echo(body) if echo else Reply(text)
        reply.chunks, reply.delay = chunks, delay
        return reply

    fake = Unrecorded()
    fake.responder = respond
    parent = os.getppid()
    print(await fake.start(0), flush=True)
    while os.getppid() == parent:  # the benchmark was killed: do not linger
        await asyncio.sleep(1)


# --- garbage-collector pauses ---------------------------------------------------------------
class GcPauses:
    """Every collection while installed (``gc.callbacks``): generation, start, length."""

    def __init__(self) -> None:
        self.pauses: list[tuple[int, float, float]] = []
        self.cpu: list[tuple[int, float]] = []
        """(generation, CPU seconds): the pause without the time the OS ran something else."""
        self._started = 0.0
        self._cpu = 0.0

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        now, cpu = time.perf_counter(), time.thread_time()
        if phase == "start":
            self._started, self._cpu = now, cpu
        else:
            self.pauses.append((info["generation"], self._started, now - self._started))
            self.cpu.append((info["generation"], cpu - self._cpu))

    def __enter__(self) -> Self:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)

    def report(self, turns: int) -> str:
        parts = []
        for gen in (0, 1, 2):
            lengths = [d for g, _, d in self.pauses if g == gen]
            cpu = [d for g, d in self.cpu if g == gen]
            if lengths:
                parts.append(
                    f"gen{gen} {len(lengths)} (1 per {turns / len(lengths):.0f} turns, "
                    f"mean {statistics.fmean(lengths) * 1000:.2f} ms, "
                    f"max {max(lengths) * 1000:.2f} ms wall / {max(cpu) * 1000:.2f} ms CPU)"
                )
            else:
                parts.append(f"gen{gen} 0")
        return "GC pauses: " + "; ".join(parts)

    def max_ms(self, gen: int) -> float:
        return max((d for g, _, d in self.pauses if g == gen), default=0.0) * 1000


# --- running: one configuration, or interleaved A/B --------------------------------------
def add_run_options(parser: argparse.ArgumentParser) -> None:
    """``--loop``, ``--gc`` (this run's configuration) and ``--ab`` (interleaved comparison)."""
    parser.add_argument(
        "--loop", choices=["uvloop", "asyncio"], help="event loop (default: as the CLI picks)"
    )
    parser.add_argument(
        "--gc",
        choices=["tuned", "default"],
        default="default",
        help="collector: CPython's thresholds (the CLI's default) or tuned (OC_GC=tuned)",
    )
    parser.add_argument(
        "--ab",
        choices=["loop", "gc"],
        help="run this benchmark in child processes, alternating the two loops or collectors",
    )
    parser.add_argument("--reps", type=int, default=3, help="repetitions of each side (--ab)")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)


def start(
    args: argparse.Namespace, main: Callable[[], Coroutine[Any, Any, dict[str, float]]]
) -> None:
    """Run ``main`` (which returns its headline figures) as ``args`` say, or the A/B series."""
    quiet()
    if args.ab:
        ab(args)
        return
    if args.loop:
        os.environ["OC_EVENT_LOOP"] = args.loop
    os.environ["OC_GC"] = args.gc
    from opencomputer.bot.eventloop import run

    print(conditions("start"), flush=True)
    figures = run(main(), loop=os.environ.get("OC_EVENT_LOOP", "auto"), collector=args.gc)
    print(conditions("end"), flush=True)
    if args.json:
        print(RESULT + json.dumps(figures), flush=True)


def tune_gc_if_asked() -> None:
    """After start-up: raise the thresholds with ``--gc tuned`` (as ``OC_GC=tuned`` does)."""
    from opencomputer.bot.eventloop import tune_collector

    tune_collector(os.environ.get("OC_GC", "default"))


def ab(args: argparse.Namespace) -> None:
    """Alternate the two sides in fresh processes (A B A B ...) and print each figure's spread."""
    sides = ["asyncio", "uvloop"] if args.ab == "loop" else ["default", "tuned"]
    script = sys.argv[0]
    passthrough: list[str] = []
    skip = False
    for arg in sys.argv[1:]:
        if skip:
            skip = False
            continue
        if arg in ("--ab", "--reps", "--loop", "--gc"):
            skip = True
            continue
        if arg.startswith(("--ab=", "--reps=", "--loop=", "--gc=")):
            continue
        passthrough.append(arg)
    results: dict[str, list[dict[str, float]]] = {s: [] for s in sides}
    print(conditions("start"), flush=True)
    for rep in range(args.reps):
        for side in sides:
            flag = ["--loop", side] if args.ab == "loop" else ["--gc", side]
            out = subprocess.run(
                [sys.executable, script, *passthrough, *flag, "--json"],
                capture_output=True,
                text=True,
                cwd=ROOT,
                check=False,
            )
            line = [x for x in out.stdout.splitlines() if x.startswith(RESULT)]
            if out.returncode or not line:
                sys.stderr.write(out.stdout[-2000:] + out.stderr[-2000:])
                raise SystemExit(f"run {rep + 1} ({side}) failed")
            figures = json.loads(line[-1][len(RESULT) :])
            results[side].append(figures)
            detail = "  ".join(f"{k} {v:.2f}" for k, v in figures.items())
            print(f"  run {rep + 1} {side:<8} {detail}", flush=True)
    print(f"\nmedian [range] over {args.reps} interleaved runs of each:")
    keys = list(results[sides[0]][0])
    print(f"  {'figure':<28} " + "  ".join(f"{s:<24}" for s in sides) + "  ratio")
    for key in keys:
        cols = [[r[key] for r in results[s]] for s in sides]
        a, b = statistics.median(cols[0]), statistics.median(cols[1])
        print(
            f"  {key:<28} "
            + "  ".join(f"{spread(c):<24}" for c in cols)
            + (f"  {b / a:.2f}x" if a else "")
        )
    print(conditions("end"), flush=True)


if __name__ == "__main__" and sys.argv[1:2] == ["--serve-fake-model"]:
    asyncio.run(
        _serve_fake_model(float(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5] == "1")
    )


def spawn_workers(
    procs: list[subprocess.Popen[bytes]], n: int, data: Path, env: dict[str, str]
) -> None:
    """Start ``n`` ``opencomputer worker`` processes with ``env`` (and none of this process's
    own ``OC_``/``OLLAMA_`` settings), each with its own data dir and log under ``data``;
    each joins ``procs`` as it starts, so the caller's cleanup reaches every one started."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OC_", "OLLAMA_"))}
    data.mkdir(parents=True, exist_ok=True)
    for w in range(n):
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
