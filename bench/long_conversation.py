"""A 200-turn conversation: turn latency at turns 1, 50 and 200, prompt tokens per turn.

The real app (storage, checkpointer, graph, runtime) runs against the fake Ollama, so the
figures are the server's own overhead, not the model's. Two configurations, each run
``--runs`` times, alternating, in the same process: with compaction (the default) and with the
issue-8 services removed (history trimming only), to show what compaction costs and that neither
grows with the length of the conversation. Each figure is the median over the runs with the
range in brackets (a turn's latency at a mark is the median of the 7 turns around it).

    .venv/bin/python bench/long_conversation.py [--turns 200] [--num-ctx 4096] [--runs 3]
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import add_run_options, spread, start
from opencomputer.bot.config import load_settings
from opencomputer.bot.testing import FakeOllama
from opencomputer.bot.testing.fake_ollama import Reply
from opencomputer.bot.testing.harness import Harness
from opencomputer.graphs.agent.compaction import SUMMARY_MARKER
from opencomputer.graphs.agent.trim import estimate_tokens

MARKS = (1, 50, 200)


def _system(body: dict[str, Any]) -> str:
    messages = body.get("messages") or [{}]
    return str(messages[0].get("content", "")) if messages[0].get("role") == "system" else ""


def responder(body: dict[str, Any]) -> Reply:
    if SUMMARY_MARKER in _system(body):
        facts = sorted(set(re.findall(r"FACT \d+: [^.\n]+", body["messages"][-1]["content"])))
        return Reply("Summary. " + ". ".join(facts))
    return Reply("Here is a thoughtful answer. " + "words " * 50)


async def conversation(turns: int, num_ctx: int, compaction: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        async with FakeOllama() as fake:
            fake.responder = responder
            settings = load_settings(
                OLLAMA_HOST=fake.url,
                OC_DATA_DIR=Path(tmp),
                OC_HTTP_PORT=0,
                OC_NUM_CTX=num_ctx,
                OC_DM_POLICY="open",
                OC_RATE_LIMIT_USER="0",
                OC_RATE_LIMIT_CHAT="0",
                OC_PLANNING="false",
            )
            async with Harness(settings) as h:
                if not compaction:
                    h.app.runtime.turn_services.clear()
                latencies, tokens = [], []
                for turn in range(1, turns + 1):
                    if turn == 1:  # warm-up (connections, model probe) outside the figures
                        await h.say("hello")
                    fact = f"FACT {turn}: my number {turn} is lucky. " if turn % 20 == 1 else ""
                    before = len(fake.chats)
                    start = time.perf_counter()
                    await h.say(f"{fact}Turn {turn}: tell me more about topic {turn}. " + "a" * 120)
                    latencies.append(time.perf_counter() - start)
                    answer = [c for c in fake.chats[before:] if SUMMARY_MARKER not in _system(c)]
                    tokens.append(sum(estimate_tokens(m) for m in answer[-1]["messages"]))
                summaries = sum(SUMMARY_MARKER in _system(c) for c in fake.chats)
                prompt = str(fake.chats[-1]["messages"])  # what the model saw last
                history = await h.app.runtime.agent.history("test:alice#0")
    return {
        "latency": latencies,
        "tokens": tokens,
        "summaries": summaries,
        "facts_known": len(set(re.findall(r"FACT \d+", prompt))),
        "history": len(history),
    }


def around(values: list[float], turn: int, width: int = 3) -> float:
    """Median of the turns around ``turn`` (1-based), to smooth scheduler noise."""
    window = values[max(0, turn - 1 - width) : turn + width]
    return statistics.median(window)


async def main(args: argparse.Namespace) -> dict[str, float]:
    results: dict[bool, list[dict[str, Any]]] = {True: [], False: []}
    for _ in range(args.runs):
        for compaction in (True, False):
            results[compaction].append(await conversation(args.turns, args.num_ctx, compaction))
    figures: dict[str, float] = {}
    for compaction, runs in results.items():
        label = "with compaction" if compaction else "trimming only (no issue-8 services)"
        print(f"\n{label}: {args.turns} turns, num_ctx {args.num_ctx}, {len(runs)} runs")
        base = [around(r["latency"], 1) for r in runs]
        for mark in (m for m in MARKS if m <= args.turns):
            at = [around(r["latency"], mark) for r in runs]
            ratio = [a / b for a, b in zip(at, base, strict=True)]
            tokens = runs[0]["tokens"][mark - 1]
            print(
                f"  turn {mark:3d}: {spread([a * 1000 for a in at], '{:.1f}')} ms  "
                f"({spread(ratio)}x turn 1)  prompt {tokens:5d} tokens"
            )
            if mark == max(m for m in MARKS if m <= args.turns):
                figures[f"last_over_first_{'compaction' if compaction else 'trim'}"] = (
                    statistics.median(ratio)
                )
        last = runs[-1]
        tok = last["tokens"]
        print(
            f"  prompt tokens: max {max(tok)}, mean {statistics.mean(tok):.0f} "
            f"(window {args.num_ctx}); summaries {last['summaries']}; "
            f"checkpointed messages at the end {last['history']}; "
            f"early facts in the last prompt {last['facts_known']} of {(args.turns + 19) // 20}"
        )
        p50 = [statistics.median(r["latency"]) * 1000 for r in runs]
        worst = [max(r["latency"]) * 1000 for r in runs]
        print(f"  turn latency p50 {spread(p50, '{:.1f}')} ms, max {spread(worst, '{:.1f}')} ms")
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--num-ctx", type=int, default=4096)
    parser.add_argument("--runs", type=int, default=3)
    add_run_options(parser)
    parsed = parser.parse_args()
    start(parsed, lambda: main(parsed))
