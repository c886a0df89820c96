"""Does feedback tune the prompt? Simulated users rate replies made by the real runtime.

Every turn goes through the real App (runtime, graph, SQLite storage, feedback feature) via
``bot.testing.Harness``; the model is an instant ``FakeOllama`` whose answer length depends on
the system prompt it receives: the "short" variant makes ~60-character answers, the default
~250, the "long" variant ~900. The simulated users share a hidden preference for short answers:
each rating is 👍-like with probability 0.85 for an answer up to 100 characters, 0.55 up to 400
and 0.15 beyond (independently per rating). A share of model calls fails (HTTP 500): the runtime
sends its apology with ``failure`` set, users rate it 👎, and the guard must not blame the
prompt. Users come in sessions of 1-5 turns, so the per-conversation stickiness is exercised.

Scenarios (each a fresh database):
  main     default (incumbent) + better ("short") + worse ("long") candidates from scratch:
           share of turns served by the better variant after 100/300/1000 ratings, the first
           promotion, and ratings until the worse one is rolled back.
  planted  the default serves alone for 100 ratings, then a bad candidate is planted: ratings
           until it is rolled back (watched for 100 ratings).
  control  three variants that answer alike: any promotion is a false one (several seeds).

    .venv/bin/python bench/tuning_sim.py [--ratings 1000] [--seeds 2] [--control-seeds 4]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import quiet
from opencomputer.bot.config import load_settings
from opencomputer.bot.feedback.service import FeedbackService
from opencomputer.bot.testing import FakeOllama, Reply
from opencomputer.bot.testing.harness import Harness

DEFAULT = "You are a helpful assistant. Answer clearly."
SHORT = "You are a helpful assistant. Answer in one or two short sentences."
LONG = "You are a helpful assistant. Answer at great length, covering every detail."
EQUAL = [
    "You are a helpful assistant. Answer clearly.",
    "You are a friendly assistant. Answer clearly and kindly.",
    "You are a precise assistant. Answer clearly and accurately.",
]
POSITIVE = ["👍", "❤️", "🎉", "🙏", "👍🏽"]
NEGATIVE = ["👎", "😕", "😡"]
QUESTIONS = ["How do I boil an egg?", "What is DNS?", "Plan my weekend.", "Explain tides."]
WINDOW = 100


def answer_for(system: str, rng: random.Random) -> str:
    """The fake model: answer length follows the system prompt's style."""
    if "short sentences" in system:
        size = rng.randint(40, 80)
    elif "great length" in system:
        size = rng.randint(800, 1000)
    else:
        size = rng.randint(200, 300)
    words = ("lorem ipsum dolor sit amet consectetur adipiscing elit " * 40).split()
    text, i = "", 0
    while len(text) < size:
        text += words[i % len(words)] + " "
        i += 1
    return text.strip()


def liking(length: int) -> float:
    """The hidden preference: the chance that a user likes an answer of this length."""
    return 0.85 if length <= 100 else 0.55 if length <= 400 else 0.15


@dataclass
class Run:
    """What one simulated deployment observed."""

    served: list[int] = field(default_factory=list)  # variant id per turn
    ratings: int = 0
    blamed_failures: int = 0
    failures_rated: int = 0
    events: list[Any] = field(default_factory=list)
    ratings_at_turn: list[int] = field(default_factory=list)
    seconds: float = 0.0


class Simulation:
    """One App + fake model + a population of simulated users."""

    def __init__(self, seed: int, data: Path, failure_rate: float) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.data = data
        self.failure_rate = failure_rate
        self.fake = FakeOllama()
        self.users = [f"user{i}" for i in range(40)]
        self.h: Harness | None = None

    def respond(self, body: dict[str, Any]) -> Reply:
        messages = body.get("messages") or [{}]
        system = str(messages[0].get("content", "")) if messages[0].get("role") == "system" else ""
        if self.rng.random() < self.failure_rate:
            return Reply(status=500, error="simulated model crash")
        return Reply(answer_for(system, self.rng), chunks=1)

    async def __aenter__(self) -> Simulation:
        await self.fake.start()
        self.fake.responder = self.respond
        settings = load_settings(
            OLLAMA_HOST=self.fake.url,
            OC_DATA_DIR=self.data,
            OC_HTTP_PORT=0,
            OC_LOG_LEVEL="ERROR",
            OC_SYSTEM_PROMPT=DEFAULT,
            OC_DM_POLICY="open",
            OC_RATE_LIMIT_USER="0",
            OC_RATE_LIMIT_CHAT="0",
            OC_PLUGIN_SANDBOX="off",
        )
        self.h = Harness(settings)
        self.h.app.extras["feedback_rng"] = random.Random(self.seed * 7919 + 1)
        await self.h.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.h is not None
        await self.h.stop()
        await self.fake.stop()

    @property
    def service(self) -> FeedbackService:
        assert self.h is not None
        svc = self.h.app.extras["feedback"]
        assert isinstance(svc, FeedbackService)
        return svc

    async def add(self, template: str, name: str) -> int:
        row = await self.service.tuner.add(template, actor="sim", name=name)
        return int(row.id)

    async def default_id(self) -> int:
        rows = await self.service.repo.variants()
        return int(next(r.id for r in rows if r.status == "active"))

    async def rate(self, run: Run, n: int, stop: Any = None) -> None:
        """Run sessions until ``n`` more ratings were given (or ``stop(run)`` is true)."""
        h = self.h
        assert h is not None
        goal = run.ratings + n
        started = time.perf_counter()
        while run.ratings < goal and not (stop and stop(run)):
            user = self.rng.choice(self.users)
            for _ in range(self.rng.randint(1, 5)):
                text = await h.say(self.rng.choice(QUESTIONS), user=user)
                mid = h.last_message_id
                reply = await h.app.store.reply_for_message("test", user, mid)
                run.served.append(int(reply.variant_id))
                failed = reply.failure is not None
                like = (not failed) and self.rng.random() < liking(len(text))
                emoji = self.rng.choice(POSITIVE if like else NEGATIVE)
                await h.react(mid, emoji, user=user)
                run.ratings += 1
                run.failures_rated += failed
                run.ratings_at_turn.append(run.ratings)
                if run.ratings >= goal or (stop and stop(run)):
                    break
        run.seconds += time.perf_counter() - started
        run.events = list(reversed(await self.service.repo.events(1000)))

    async def blamed_on_failures(self) -> int:
        """Votes on failed replies that were counted against a prompt (must be 0)."""
        from sqlalchemy import text

        async with self.service.repo.engine.connect() as conn:
            value = await conn.scalar(
                text(
                    "SELECT count(*) FROM feedback_votes v JOIN replies r ON r.id = v.reply_id "
                    "WHERE r.failure IS NOT NULL AND v.blamed"
                )
            )
        return int(value or 0)


def share(run: Run, variant: int, ratings: int) -> float | None:
    """Share of the WINDOW turns before the ``ratings``-th rating served by ``variant``."""
    if len(run.ratings_at_turn) < ratings:
        return None
    end = run.ratings_at_turn.index(ratings) + 1
    window = run.served[max(0, end - WINDOW) : end]
    return sum(v == variant for v in window) / len(window)


def first(run: Run, kinds: tuple[str, ...], variant: int | None = None) -> Any | None:
    for e in run.events:
        if e.kind in kinds and (variant is None or e.variant_id == variant):
            return e
    return None


async def ratings_when(svc: FeedbackService, event: Any) -> int:
    """Total blamed+unblamed ratings given before an event (by vote timestamps)."""
    from sqlalchemy import text

    async with svc.repo.engine.connect() as conn:
        value = await conn.scalar(
            text("SELECT count(*) FROM feedback_votes WHERE created_at <= :t"), {"t": event.at}
        )
    return int(value or 0)


async def variant_ratings_when(svc: FeedbackService, event: Any, variant: int) -> int:
    from sqlalchemy import text

    async with svc.repo.engine.connect() as conn:
        value = await conn.scalar(
            text("SELECT count(*) FROM feedback_votes WHERE created_at <= :t AND variant_id = :v"),
            {"t": event.at, "v": variant},
        )
    return int(value or 0)


async def main_scenario(seed: int, ratings: int, failure_rate: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(dir=scratch_dir()) as tmp:
        async with Simulation(seed, Path(tmp), failure_rate) as sim:
            default = await sim.default_id()
            better = await sim.add(SHORT, "short")
            worse = await sim.add(LONG, "long")
            run = Run()
            await sim.rate(run, ratings)
            promo = first(run, ("auto_promoted",), better)
            rolled = first(run, ("auto_rolled_back",), worse)
            return {
                "seed": seed,
                "share": {n: share(run, better, n) for n in (100, 300, 1000) if n <= ratings},
                "cum300": sum(v == better for v in run.served[:300])
                / max(1, min(300, len(run.served))),
                "promotion": await ratings_when(sim.service, promo) if promo else None,
                "rollback": await ratings_when(sim.service, rolled) if rolled else None,
                "rollback_own": await variant_ratings_when(sim.service, rolled, worse)
                if rolled
                else None,
                "wrong_promotions": sum(
                    e.kind == "auto_promoted" and e.variant_id != better for e in run.events
                ),
                "default": default,
                "failures_rated": run.failures_rated,
                "blamed_on_failures": await sim.blamed_on_failures(),
                "seconds": run.seconds,
                "turns": len(run.served),
            }


async def planted_scenario(seed: int, failure_rate: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(dir=scratch_dir()) as tmp:
        async with Simulation(seed, Path(tmp), failure_rate) as sim:
            run = Run()
            await sim.rate(run, 100)
            bad = await sim.add(LONG, "long")
            before = run.ratings
            await sim.rate(run, 100)
            rolled = first(run, ("auto_rolled_back",), bad)
            total = await ratings_when(sim.service, rolled) - before if rolled else None
            own = await variant_ratings_when(sim.service, rolled, bad) if rolled else None
            return {"seed": seed, "rollback": total, "rollback_own": own, "seconds": run.seconds}


async def control_scenario(seed: int, ratings: int, failure_rate: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(dir=scratch_dir()) as tmp:
        async with Simulation(seed, Path(tmp), failure_rate) as sim:
            await sim.add(EQUAL[1], "friendly")
            await sim.add(EQUAL[2], "precise")
            run = Run()
            await sim.rate(run, ratings)
            return {
                "seed": seed,
                "promotions": sum(e.kind == "auto_promoted" for e in run.events),
                "rollbacks": sum(e.kind == "auto_rolled_back" for e in run.events),
                "seconds": run.seconds,
            }


def fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.0f}%"


async def amain(args: argparse.Namespace) -> int:
    ok = True
    print(
        f"tuning simulation: {args.ratings} ratings per run, failure rate {args.failure_rate:.0%}"
    )
    print("\nmain: default + better (short) + worse (long), from scratch")
    print("seed  better@100  better@300  better@1000  promoted@  worse rolled back@ (its own)  s")
    for seed in range(1, args.seeds + 1):
        r = await main_scenario(seed, args.ratings, args.failure_rate)
        s = r["share"]
        print(
            f"{seed:>4}  {fmt(s.get(100)):>10}  {fmt(s.get(300)):>10}  {fmt(s.get(1000)):>11}  "
            f"{r['promotion']!s:>9}  {r['rollback']!s:>18} ({r['rollback_own']})  "
            f"{r['seconds']:.0f}"
        )
        ok &= (s.get(300) or 0) >= 0.9 and r["rollback"] is not None and r["rollback"] <= 50
        ok &= r["wrong_promotions"] == 0 and r["blamed_on_failures"] == 0
        print(
            f"      failed replies rated: {r['failures_rated']}, blamed on a prompt: "
            f"{r['blamed_on_failures']}, wrong promotions: {r['wrong_promotions']}"
        )
    print("\nplanted: default serves 100 ratings alone, then a bad candidate is planted")
    planted = []
    for seed in range(1, args.planted_seeds + 1):
        r = await planted_scenario(seed, args.failure_rate)
        print(f"seed {seed}: rolled back after {r['rollback']} ratings ({r['rollback_own']} on it)")
        planted.append(r["rollback"] if r["rollback"] is not None else 10**6)
    planted.sort()
    median = planted[len(planted) // 2]
    print(f"planted: median {median} ratings, slowest {planted[-1]}")
    ok &= planted[-1] <= 50  # every planted run, not just the median
    print(f"\ncontrol: three equal variants, {args.ratings} ratings per seed")
    false_promotions = false_rollbacks = 0
    for seed in range(101, 101 + args.control_seeds):
        r = await control_scenario(seed, args.ratings, args.failure_rate)
        false_promotions += r["promotions"]
        false_rollbacks += r["rollbacks"]
        print(
            f"seed {seed}: promotions {r['promotions']}, rollbacks {r['rollbacks']} "
            f"({r['seconds']:.0f} s)"
        )
    ok &= false_promotions == 0
    print(f"control: {false_promotions} promotions, {false_rollbacks} rollbacks (all false)")
    print(
        "\ntargets: better >= 90% after 300 ratings; rollback within 50 ratings (every planted "
        f"run); no promotion in control -> {'MET' if ok else 'NOT MET'}"
    )
    return 0 if ok else 1


def scratch_dir() -> str | None:
    """A RAM-backed folder when there is one: SQLite's fsyncs would dominate otherwise."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratings", type=int, default=1000)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--control-seeds", type=int, default=4)
    parser.add_argument("--planted-seeds", type=int, default=5)
    parser.add_argument("--failure-rate", type=float, default=0.03)
    args = parser.parse_args()
    quiet()
    logging.disable(logging.CRITICAL)  # the simulated model failures would log an error each
    raise SystemExit(asyncio.run(amain(args)))


if __name__ == "__main__":
    main()
