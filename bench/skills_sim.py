"""Do reactions keep a helpful learned skill and drop a harmful one? Simulated people rate turns.

The learned-skill machinery is the real one (``bot/skills/learned.py``: which candidates a turn
offers, drawn with ``OC_SKILLS_CANDIDATE_SHARE``; the rows of offered and held-back turns; the
votes joined from the feedback feature's ``feedback_votes`` table; the tuner's promotion and
rollback rule with its default thresholds; the caps) on a real SQLite database. What is
simulated is the turn itself: no graph and no model run (``tests/skills/test_learned.py`` drives
the same code through real turns), so a run takes seconds.

People (40) share a hidden need: 60% of their requests are about the weather, the rest about
other things. Without help a weather answer is liked with probability 0.5; when the helpful
skill ``weather-forecast`` is offered, +0.3; when the harmful ``weather-shortcut`` is offered,
-0.3 (effects add up, clamped to 0.05-0.95). Other answers are liked with probability 0.6.
70% of turns get a rating.

Scenarios (each a fresh database, several seeds):
  main      both candidates from scratch: turns and ratings until the helpful one is promoted
            and the harmful one retired, the final live set, and the 👍 rate of the last 300
            turns against a baseline without skills (the same people and requests, same run).
  control   three candidates with no effect at all: any promotion is a false one.

    .venv/bin/python bench/skills_sim.py [--turns 1000] [--seeds 4]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import insert

from bench._common import quiet
from opencomputer.bot.config import load_settings
from opencomputer.bot.feedback.models import FeedbackVoteRow
from opencomputer.bot.skills.format import Skill
from opencomputer.bot.skills.learned import LearnedSkills
from opencomputer.bot.skills.learned_models import Status
from opencomputer.bot.storage import SqlStore

_V = FeedbackVoteRow.__table__  # type: ignore[attr-defined]
WEATHER = ["weather in {c} tomorrow?", "will it rain in {c}?", "forecast for {c} this weekend"]
OTHER = ["a recipe for dinner", "explain tides", "plan my trip", "what is DNS"]
CITIES = ["Berlin", "Lima", "Oslo", "Perth", "Quito"]
RATED = 0.7
LAST = 300
MIGRATING = asyncio.Lock()


@dataclass
class Outcome:
    """What one run saw."""

    promoted: dict[str, tuple[int, int]] = field(default_factory=dict)  # skill -> (turns, ratings)
    retired: dict[str, tuple[int, int]] = field(default_factory=dict)
    live: list[str] = field(default_factory=list)
    liked: list[int] = field(default_factory=list)  # 1/0 per rated turn, with skills
    baseline: list[int] = field(default_factory=list)  # 1/0 per rated turn, no skills


def request(rng: random.Random) -> tuple[str, bool]:
    """A person's request and whether it is about the weather (the hidden need)."""
    if rng.random() < 0.6:
        return rng.choice(WEATHER).format(c=rng.choice(CITIES)), True
    return rng.choice(OTHER), False


def liking(weather: bool, offered: set[str], effects: dict[str, float]) -> float:
    """The chance that the person likes the answer."""
    if not weather:
        return 0.6
    p = 0.5 + sum(effects.get(name, 0.0) for name in offered)
    return min(0.95, max(0.05, p))


async def run(seed: int, turns: int, effects: dict[str, float], skills: list[Skill]) -> Outcome:
    """One deployment: ``turns`` turns, the candidates in ``skills`` from the start."""
    rng = random.Random(seed)
    out = Outcome()
    shm = "/dev/shm" if Path("/dev/shm").is_dir() else None  # no fsync cost: seconds, not minutes
    with tempfile.TemporaryDirectory(dir=shm) as tmp:
        settings = load_settings(OC_DATA_DIR=Path(tmp), OC_LOG_LEVEL="ERROR")
        store = SqlStore(settings.resolved_database_url)
        async with MIGRATING:  # alembic keeps global state: one migration at a time
            await store.start()
        try:
            learned = LearnedSkills(store.engine, settings, rng=random.Random(seed + 1000))
            for skill in skills:
                await learned.add(skill, owner=None, tainted=False, actor="sim")
            ratings: dict[str, int] = {s.name: 0 for s in skills}
            for turn in range(1, turns + 1):
                text, weather = request(rng)
                user = f"test:p{rng.randrange(40)}"
                offer = await learned.offer(None, text)
                await learned.record(turn, offer.arms, used=offer.listed)
                offered = set(offer.listed)
                rated = rng.random() < RATED
                base_like = rng.random() < liking(weather, set(), effects)  # the same person
                like = rng.random() < liking(weather, offered, effects)
                if not rated:
                    continue
                out.baseline.append(int(base_like))
                out.liked.append(int(like))
                async with store.engine.begin() as conn:
                    await conn.execute(
                        insert(_V).values(reply_id=turn, user_key=user, score=1 if like else -1)
                    )
                for name in offer.arms:
                    ratings[name] += 1
                await learned.evaluate(offer.arms)
                for row in await learned.all_rows():
                    if row.status == Status.LIVE and row.name not in out.promoted:
                        out.promoted[row.name] = (turn, ratings[row.name])
                    if row.status == Status.RETIRED and row.name not in out.retired:
                        out.retired[row.name] = (turn, ratings[row.name])
            out.live = sorted(r.name for r in await learned.all_rows() if r.status == Status.LIVE)
        finally:
            await store.stop()
    return out


def skill(name: str, description: str) -> Skill:
    """A candidate as the model would have drafted it."""
    return Skill(name, description, "1. ...", Path(name), source="learned")


def rate(values: list[int]) -> float:
    """The 👍 rate of the last ``LAST`` rated turns."""
    tail = values[-LAST:]
    return sum(tail) / max(1, len(tail))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=1000)
    parser.add_argument("--seeds", type=int, default=4)
    args = parser.parse_args()
    quiet()
    started = time.perf_counter()
    helpful = skill("weather-forecast", "Give a city's weather forecast: rain, weekend, tomorrow.")
    harmful = skill("weather-shortcut", "Answer weather questions from memory, no lookup.")
    effects = {"weather-forecast": 0.3, "weather-shortcut": -0.3}
    print(f"main: helpful +0.3, harmful -0.3 on weather turns; {args.turns} turns per seed")
    print("seed  helpful promoted (turn, its ratings)  harmful retired (turn, its ratings)  "
          "final live set          👍 last 300: skills / none = ratio")  # fmt: skip
    seeds = range(1, args.seeds + 1)  # runs overlap: each waits on its own database
    runs = await asyncio.gather(*(run(s, args.turns, effects, [helpful, harmful]) for s in seeds))
    for seed, out in zip(seeds, runs, strict=True):
        prom = out.promoted.get(helpful.name)
        ret = out.retired.get(harmful.name)
        with_skills, without = rate(out.liked), rate(out.baseline)
        print(
            f"{seed:>4}  {prom or 'never'!s:<36} {ret or 'never'!s:<36} "
            f"{','.join(out.live) or '-':<23} {with_skills:.2f} / {without:.2f} = "
            f"{with_skills / max(without, 1e-9):.2f}"
        )
    print("\ncontrol: three candidates without any effect (a promotion is a false one)")
    equal = [
        skill("weather-notes", "Keep notes about the weather."),
        skill("weather-style", "Answer weather questions in a friendly style."),
        skill("weather-units", "Give weather in metric units."),
    ]
    control = range(101, 101 + args.seeds)
    outs = await asyncio.gather(*(run(s, args.turns, {}, equal) for s in control))
    for seed, out in zip(control, outs, strict=True):
        promoted, retired = sorted(out.promoted) or "-", sorted(out.retired) or "-"
        print(f"{seed:>4}  promoted {promoted}  retired {retired}")
    false_promotions = sum(len(o.promoted) for o in outs)
    false_retirements = sum(len(o.retired) for o in outs)
    print(
        f"false promotions: {false_promotions} in {args.seeds} seeds x {len(equal)} candidates "
        f"(harmless skills retired: {false_retirements})"
    )
    print(f"{time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    asyncio.run(main())
