"""Do reactions keep a helpful learned skill and drop a harmful one? Simulated people rate turns.

The learned-skill machinery is the real one (``bot/skills/learned.py``: which candidates a turn
offers, drawn with ``OC_SKILLS_CANDIDATE_SHARE``; a live skill's holdout; the rows of offered and
held-back turns; the votes joined from the feedback feature's ``feedback_votes`` table; the
decision rule of ``bot/skills/evidence.py`` with its default thresholds; the caps) on a real
SQLite database. What is simulated is the turn itself: no graph and no model run
(``tests/skills/test_learned.py`` drives the same code through real turns).

People (40) share a hidden need: 60% of their requests are about the weather, the rest about
other things. Without help a weather answer is liked with probability 0.5; when the helpful
skill ``weather-forecast`` is offered, +0.3; when the harmful ``weather-shortcut`` is offered,
-0.3 (effects add up, clamped to 0.05-0.95). Other answers are liked with probability 0.6.
70% of turns get a rating. "Ratings" of a skill are those of its matching turns, offered and
held back alike (the figure the targets are stated in); "its own" are those of the turns in
which it was offered (what people had to suffer of a harmful one).

Scenarios (each run a fresh database; seeds 1.., 101.., 201..):
  main      both candidates from scratch: ratings until the helpful one is promoted (target:
            <= 300 in every seed) and the harmful one retired (target: <= 50 in every seed),
            and the 👍 rate of the last 300 rated turns against a baseline without skills.
  control   three candidates with no effect at all: any promotion is a false one (target: 0).
  watch     a live (promoted) skill, helpful (+0.3) for the first half of the run, then
            harmful (-0.2): ratings after the turn until it is demoted, and demotions while it
            was still good (false ones).

    .venv/bin/python bench/skills_sim.py [--turns 1000] [--seeds 20] [--jobs N] [--verbose]

Runs are spread over ``--jobs`` processes (default: one per core); each run's figures depend
on its seed alone, so the result does not depend on the number of processes.

``--calibrate RUNS`` instead runs the decision rule alone (``decide``: no database, ratings
drawn directly, a look after each one) over longer horizons and more base rates than the
scenarios, for the per-run error rates the thresholds were chosen by.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import insert

from bench._common import quiet
from opencomputer.bot.config import load_settings
from opencomputer.bot.feedback.models import FeedbackVoteRow
from opencomputer.bot.feedback.stats import Posterior
from opencomputer.bot.skills.evidence import RULE, decide
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
HELPFUL, HARMFUL = "weather-forecast", "weather-shortcut"


@dataclass
class Outcome:
    """What one run saw: per skill, (turn, its ratings, its own ratings) at each move."""

    promoted: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    retired: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    live: list[str] = field(default_factory=list)
    liked: list[int] = field(default_factory=list)  # 1/0 per rated turn, with skills
    baseline: list[int] = field(default_factory=list)  # 1/0 per rated turn, no skills
    flip_ratings: int = 0  # watch: the skill's ratings when its effect turned
    turns: int = 0  # turns run


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


async def run(
    seed: int,
    turns: int,
    effects: dict[str, float],
    skills: list[Skill],
    *,
    live: bool = False,
    turn_bad: dict[str, float] | None = None,
    until: str = "",
) -> Outcome:
    """One deployment: ``turns`` turns, the candidates in ``skills`` from the start (already
    live with ``live``); halfway, ``turn_bad`` replaces ``effects`` when given. It ends early
    once :func:`finished` says so for scenario ``until`` (nothing left to see).
    """
    rng = random.Random(seed)
    out = Outcome()
    shm = "/dev/shm" if Path("/dev/shm").is_dir() else None  # no fsync cost: seconds, not minutes
    with tempfile.TemporaryDirectory(dir=shm) as tmp:
        settings = load_settings(OC_DATA_DIR=Path(tmp), OC_LOG_LEVEL="ERROR")
        store = SqlStore(settings.resolved_database_url)
        await store.start()  # one run at a time per process: alembic keeps global state
        try:
            learned = LearnedSkills(store.engine, settings, rng=random.Random(seed + 1000))
            for skill in skills:
                row = await learned.add(skill, owner=None, tainted=False, actor="sim")
                if live:  # as if promoted by earlier ratings
                    await learned._set(row, Status.LIVE, "sim", "promoted", "the scenario")
            ratings = {s.name: 0 for s in skills}
            own = {s.name: 0 for s in skills}
            for turn in range(1, turns + 1):
                if turn_bad is not None and turn == turns // 2 + 1:
                    effects = turn_bad
                    out.flip_ratings = sum(ratings.values())
                out.turns = turn
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
                for name, shown in offer.arms.items():
                    ratings[name] += 1
                    own[name] += int(shown)
                for line in await learned.evaluate(offer.arms):
                    name, _, what = line.partition(" ")
                    at = (turn, ratings.get(name, 0), own.get(name, 0))
                    moves = out.promoted if what.startswith("promoted") else out.retired
                    moves.setdefault(name, at)
                if finished(until, out):
                    break
            out.live = sorted(r.name for r in await learned.all_rows() if r.status == Status.LIVE)
        finally:
            await store.stop()
    return out


def finished(until: str, out: Outcome) -> bool:
    """Whether scenario ``until`` has nothing left to show in this run."""
    if until == "main":  # both decided, and LAST rated turns after that for the 👍 rate
        if HELPFUL not in out.promoted or HARMFUL not in out.retired:
            return False
        since = max(out.promoted[HELPFUL][0], out.retired[HARMFUL][0])
        return len(out.liked) >= LAST and out.turns - since >= LAST / RATED
    if until == "control":  # every candidate retired: none can be promoted any more
        return len(out.retired) == 3
    if until == "watch":
        return bool(out.retired)
    return False


def _run_here(job: tuple[Any, ...]) -> Outcome:
    """One run in a worker process (``--jobs``)."""
    quiet()
    args, kwargs = job
    return asyncio.run(run(*args, **kwargs))


async def runs_of(pool: ProcessPoolExecutor, jobs: list[tuple[Any, ...]]) -> list[Outcome]:
    """Every run, spread over the worker processes, in order."""
    loop = asyncio.get_running_loop()
    return list(await asyncio.gather(*(loop.run_in_executor(pool, _run_here, j) for j in jobs)))


def skill(name: str, description: str) -> Skill:
    """A candidate as the model would have drafted it."""
    return Skill(name, description, "1. ...", Path(name), source="learned")


def rate(values: list[int]) -> float:
    """The 👍 rate of the last ``LAST`` rated turns."""
    tail = values[-LAST:]
    return sum(tail) / max(1, len(tail))


def spread(values: list[int]) -> str:
    """Median and maximum, or that there were none."""
    if not values:
        return "none"
    return f"median {statistics.median(values):g}, max {max(values)}"


def verdict(ok: bool) -> str:
    """PASS or FAIL."""
    return "PASS" if ok else "FAIL"


async def scenarios(args: argparse.Namespace, pool: ProcessPoolExecutor) -> bool:
    """The three scenarios; whether every target held."""
    helpful = skill(HELPFUL, "Give a city's weather forecast: rain, weekend, tomorrow.")
    harmful = skill(HARMFUL, "Answer weather questions from memory, no lookup.")
    effects = {HELPFUL: 0.3, HARMFUL: -0.3}
    seeds = range(1, args.seeds + 1)
    runs = await runs_of(
        pool, [((s, args.turns, effects, [helpful, harmful]), {"until": "main"}) for s in seeds]
    )
    print(f"main: helpful +0.3, harmful -0.3 on weather turns; {args.turns} turns, "
          f"{args.seeds} seeds")  # fmt: skip
    if args.verbose:
        print("seed  helpful promoted (turn, ratings, own)  harmful retired (turn, ratings, own)"
              "  live at the end          👍 last 300: skills / none")  # fmt: skip
        for seed, out in zip(seeds, runs, strict=True):
            prom, ret = out.promoted.get(helpful.name), out.retired.get(harmful.name)
            print(f"{seed:>4}  {prom or 'never'!s:<38} {ret or 'never'!s:<38} "
                  f"{','.join(out.live) or '-':<24} {rate(out.liked):.2f} / "
                  f"{rate(out.baseline):.2f}")  # fmt: skip
    promoted = [o.promoted[helpful.name] for o in runs if helpful.name in o.promoted]
    retired = [o.retired[harmful.name] for o in runs if harmful.name in o.retired]
    n = len(runs)
    ok_promote = len(promoted) == n and all(r <= 300 for _, r, _ in promoted)
    ok_retire = len(retired) == n and all(r <= 50 for _, r, _ in retired)
    lost = sum(helpful.name in o.retired for o in runs)
    within = sum(r <= 300 for _, r, _ in promoted)
    print(
        f"  helpful promoted in {len(promoted)}/{n} seeds; its ratings "
        f"{spread([r for _, r, _ in promoted])}; <= 300 in {within}/{n}; retired instead: "
        f"{lost}   [{verdict(ok_promote)}: <= 300 in every seed]"
    )
    within = sum(r <= 50 for _, r, _ in retired)
    print(
        f"  harmful retired in {len(retired)}/{n} seeds; its ratings "
        f"{spread([r for _, r, _ in retired])} (its own: {spread([o for _, _, o in retired])});"
        f" <= 50 in {within}/{n}   [{verdict(ok_retire)}: <= 50 in every seed]"
    )
    ratios = [rate(o.liked) / max(rate(o.baseline), 1e-9) for o in runs]
    print(
        f"  👍 rate of the last {LAST} rated turns / baseline without skills: median "
        f"{statistics.median(ratios):.2f}, min {min(ratios):.2f}"
    )

    equal = [
        skill("weather-notes", "Keep notes about the weather."),
        skill("weather-style", "Answer weather questions in a friendly style."),
        skill("weather-units", "Give weather in metric units."),
    ]
    control = range(101, 101 + args.seeds)
    outs = await runs_of(
        pool, [((s, args.turns, {}, equal), {"until": "control"}) for s in control]
    )
    if args.verbose:
        for seed, out in zip(control, outs, strict=True):
            print(f"{seed:>4}  promoted {sorted(out.promoted) or '-'}  "
                  f"retired {sorted(out.retired) or '-'}")  # fmt: skip
    false_promotions = sum(len(o.promoted) for o in outs)
    retirements = sum(len(o.retired) for o in outs)
    cases = len(outs) * len(equal)
    print(f"control: three candidates without any effect; {args.turns} turns, {args.seeds} seeds")
    print(
        f"  false promotions: {false_promotions}/{cases} candidate runs   "
        f"[{verdict(false_promotions == 0)}: 0]; harmless ones retired: {retirements}/{cases}"
    )

    watched = helpful
    good, bad = {watched.name: 0.3}, {watched.name: -0.2}
    turns = 2 * args.turns
    later = range(201, 201 + args.seeds)
    watch = {"live": True, "turn_bad": bad, "until": "watch"}
    outs = await runs_of(pool, [((s, turns, good, [watched]), watch) for s in later])
    after = [o.retired[watched.name][1] - o.flip_ratings for o in outs if watched.name in o.retired]
    early = sum(1 for a in after if a <= 0)
    late = [a for a in after if a > 0]
    print(
        f"watch: a live skill, +0.3 for {turns // 2} turns, then -0.2 for {turns // 2}; "
        f"holdout {RULE.holdout:.0%}; {args.seeds} seeds"
    )
    ok_watch = early == 0 and len(late) == len(outs)
    print(
        f"  demoted after it turned bad in {len(late)}/{len(outs)} seeds; its ratings after the "
        f"turn {spread(late)}; demoted while still good: {early}   [{verdict(ok_watch)}]"
    )
    return ok_promote and ok_retire and false_promotions == 0 and ok_watch


def calibrate(runs: int) -> None:
    """The rule alone over many runs: per-run rates of each outcome (``--calibrate``)."""
    rng = random.Random(7)
    share = 0.5

    def one(p_offered: float, p_held: float, horizon: int) -> tuple[str | None, int]:
        up = [0, 0]
        down = [0, 0]
        for k in range(1, horizon + 1):
            arm = 0 if rng.random() < share else 1
            liked = rng.random() < (p_offered if arm == 0 else p_held)
            up[arm] += liked
            down[arm] += not liked
            move = decide(Posterior(up[0], down[0]), Posterior(up[1], down[1])).move
            if move is not None:
                return move, k
        return None, horizon

    cases = [
        ("equal, 0.5", 0.5, 0.5, 1000),
        ("equal, 0.8", 0.8, 0.8, 1000),
        ("+0.3 (0.8 vs 0.5)", 0.8, 0.5, 300),
        ("+0.1 (0.6 vs 0.5)", 0.6, 0.5, 1000),
        ("-0.3 (0.2 vs 0.5)", 0.2, 0.5, 50),
        ("-0.3 (0.5 vs 0.8)", 0.5, 0.8, 50),
    ]
    print(f"calibration: {runs} runs per case, a look after every rating, share {share}")
    for label, p_off, p_held, horizon in cases:
        results = [one(p_off, p_held, horizon) for _ in range(runs)]
        prom = [k for m, k in results if m == "promote"]
        ret = [k for m, k in results if m == "retire"]
        print(
            f"  {label:<18} within {horizon:>4} ratings: promoted {len(prom)}/{runs} "
            f"({spread(prom)}), retired {len(ret)}/{runs} ({spread(ret)})",
            flush=True,
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=1000)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--verbose", action="store_true", help="one line per seed")
    parser.add_argument("--calibrate", type=int, metavar="RUNS", default=0)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="processes")
    args = parser.parse_args()
    quiet()
    print(f"load average at the start: {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores)")
    started = time.perf_counter()
    if args.calibrate:
        calibrate(args.calibrate)
    else:
        with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
            ok = await scenarios(args, pool)
        print(f"all targets: {verdict(ok)}")
    print(
        f"{time.perf_counter() - started:.1f} s; load average at the end: {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    asyncio.run(main())
