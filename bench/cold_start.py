"""Whole-process cold start of ``opencomputer chat``: from exec to the prompt, and to the exit.

Each run is a fresh ``python -m opencomputer chat`` against the fake Ollama (in its own
process), with the embedded defaults (SQLite in a data directory):

- ``to prompt``: on a pseudo-terminal, as a person starts it: the time until the ``›`` prompt
  is shown; then Ctrl-D ends the session.
- ``to exit``: stdin empty (``< /dev/null``), the issue's measure: start, no input, stop.

``fresh`` runs get a new, empty data directory (database created and migrated, as at the very
first start); ``warm`` runs reuse one that was started before. The kinds alternate, so drift in
the machine's load hits all of them. Then one more run under ``-X importtime`` lists the
biggest imports. Prints median and p90 of each (wall time, and the chat process's CPU time,
which a busy machine inflates less), the load average and the calibration loop.

``--baseline DIR`` also runs another checkout (``git archive <rev> | tar -x -C DIR``) in the
same loop, interleaved, and prints the ratios: before/after figures from one run.

    .venv/bin/python bench/cold_start.py [RUNS] [--baseline DIR]   # RUNS of each (default 10)
"""

from __future__ import annotations

import argparse
import os
import pty
import re
import resource
import select
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import calibration_ms, load_average  # noqa: E402

PROMPT = "›".encode()
LIMIT = 60.0  # seconds: a run that takes longer has hung


_SERVE = """
import asyncio
from opencomputer.bot.testing import FakeOllama

async def serve():
    fake = FakeOllama()
    print(await fake.start(0), flush=True)
    await asyncio.Event().wait()

asyncio.run(serve())
"""


class FakeModel:
    """The fake Ollama in a child process of its own (the chats only check the model)."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _SERVE], stdout=subprocess.PIPE, cwd=ROOT
        )
        assert self.proc.stdout is not None
        url = self.proc.stdout.readline().decode().strip()
        if not url.startswith("http"):
            raise SystemExit("the fake model did not start")
        return url

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait()


def _children_cpu() -> float:
    """CPU seconds used by this process's finished (waited-for) children."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _env(data_dir: Path, url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OC_", "OLLAMA"))}
    env.update(OC_DATA_DIR=str(data_dir), OLLAMA_HOST=url, HOME=str(data_dir))
    return env


def _command(*flags: str) -> list[str]:
    return [sys.executable, *flags, "-m", "opencomputer", "chat"]


CHECKOUT = ROOT
"""Where ``-m opencomputer`` is run from (its ``opencomputer`` package comes first on the path)."""


def to_exit(data_dir: Path, url: str) -> float:
    """Seconds from exec to exit with empty stdin."""
    start = time.perf_counter()
    done = subprocess.run(
        _command(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env=_env(data_dir, url),
        cwd=CHECKOUT,
        timeout=LIMIT,
        check=False,
    )
    took = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"chat exited {done.returncode}: {done.stderr.decode()[-800:]}")
    return took


def to_prompt(data_dir: Path, url: str) -> float:
    """Seconds from exec to the prompt on a pseudo-terminal (then Ctrl-D ends it)."""
    master, slave = pty.openpty()
    start = time.perf_counter()
    proc = subprocess.Popen(
        _command(),
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=_env(data_dir, url),
        cwd=CHECKOUT,
        close_fds=True,
    )
    os.close(slave)
    seen = b""
    took = None
    try:
        while took is None:
            left = LIMIT - (time.perf_counter() - start)
            ready, _, _ = select.select([master], [], [], max(0.0, left))
            if not ready:
                raise SystemExit(f"no prompt after {LIMIT:.0f} s: {seen[-800:]!r}")
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child closed the terminal: it exited before prompting
                raise SystemExit(f"chat ended before its prompt: {seen[-800:]!r}") from None
            seen += chunk
            if PROMPT in seen:
                took = time.perf_counter() - start
        os.write(master, b"\x04")  # Ctrl-D: end of input
        deadline = time.perf_counter() + LIMIT
        while proc.poll() is None and time.perf_counter() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    os.read(master, 65536)
                except OSError:
                    break
        proc.wait(timeout=LIMIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return took


def top_imports(data_dir: Path, url: str, n: int = 15) -> list[str]:
    """The biggest imports of one run (``-X importtime``): top-level cumulative, and by package."""
    done = subprocess.run(
        _command("-X", "importtime"),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env=_env(data_dir, url),
        cwd=CHECKOUT,
        timeout=LIMIT,
        check=False,
    )
    rows = []
    for line in done.stderr.decode().splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if m:
            rows.append((int(m[1]), int(m[2]), len(m[3]), m[4]))
    top = min((r[2] for r in rows), default=0)
    firsts = sorted((r for r in rows if r[2] == top), key=lambda r: -r[1])[:n]
    packages: Counter[str] = Counter()
    for own, _, _, name in rows:
        packages[name.split(".")[0]] += own
    total = sum(packages.values())
    lines = [f"imports: {len(rows)} modules, {total / 1000:.0f} ms in all (under importtime)"]
    lines.append("  biggest imports made by opencomputer itself (cumulative):")
    lines += [f"    {c / 1000:7.1f} ms  {name}" for _, c, _, name in firsts]
    lines.append("  by package (own time of its modules):")
    lines += [f"    {t / 1000:7.1f} ms  {name}" for name, t in packages.most_common(n)]
    return lines


def _stats(name: str, values: list[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return (
        f"{name:<31} n={len(values):<3} median {statistics.median(values):.3f} s  "
        f"p90 {p90:.3f} s  min {ordered[0]:.3f} s  max {ordered[-1]:.3f} s"
    )


def main() -> None:
    global CHECKOUT
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="?", type=int, default=10, help="runs of each kind")
    parser.add_argument("--baseline", type=Path, help="another checkout to run interleaved")
    options = parser.parse_args()
    baseline = None if options.baseline is None else options.baseline.resolve()
    runs = options.runs
    checkouts = {"": ROOT} if baseline is None else {"": ROOT, "baseline ": baseline}
    print(f"[start] load {load_average()}  calibration {calibration_ms():.1f} ms", flush=True)
    fake = FakeModel()
    url = fake.start()
    kinds = ["to prompt, fresh", "to prompt, warm", "to exit, fresh", "to exit, warm"]
    results: dict[str, list[float]] = {f"{c}{k}": [] for k in kinds for c in checkouts}
    cpu: dict[str, list[float]] = {name: [] for name in results}
    try:
        with tempfile.TemporaryDirectory(prefix="oc-cold-") as tmp:
            warms = {}
            for label, checkout in checkouts.items():
                CHECKOUT = checkout
                warms[label] = Path(tmp) / f"warm-{label.strip() or 'this'}"
                warms[label].mkdir()
                to_exit(warms[label], url)  # creates and migrates the warm database once
            for i in range(runs):
                for kind in kinds:
                    for label, checkout in checkouts.items():
                        CHECKOUT = checkout
                        fresh = "fresh" in kind
                        data_dir = Path(tmp) / f"{i}-{label.strip()}-{kind.replace(' ', '')}"
                        if fresh:
                            data_dir.mkdir()
                        measure = to_prompt if kind.startswith("to prompt") else to_exit
                        before = _children_cpu()
                        took = measure(data_dir if fresh else warms[label], url)
                        results[f"{label}{kind}"].append(took)
                        cpu[f"{label}{kind}"].append(_children_cpu() - before)
                print(
                    f"  run {i + 1}: "
                    + "  ".join(f"{k} {v[-1]:.2f}" for k, v in results.items())
                    + f"  (load {load_average()})",
                    flush=True,
                )
            print()
            for name, values in results.items():
                print(_stats(name, values))
            print("CPU time of the whole chat process, start to exit (user + system):")
            for name, values in cpu.items():
                print(_stats(name, values))
            if baseline is not None:
                print(f"\nthis checkout / baseline ({baseline}), medians (wall, CPU):")
                for kind in kinds:
                    ratios = [
                        statistics.median(d[kind]) / statistics.median(d[f"baseline {kind}"])
                        for d in (results, cpu)
                    ]
                    print(f"  {kind:<20} {ratios[0]:.2f}x  {ratios[1]:.2f}x")
            for label, checkout in checkouts.items():
                CHECKOUT = checkout
                print(f"\n{label or 'this checkout '}({checkout}):")
                print("\n".join(top_imports(warms[label], url)))
    finally:
        fake.stop()
    print(f"\n[end] load {load_average()}  calibration {calibration_ms():.1f} ms", flush=True)


if __name__ == "__main__":
    main()
