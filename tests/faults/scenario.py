"""One crash run: feed messages into the fake platform over time, kill processes at random
moments (some of them right after the platform accepted a post), restart them, wait until every
message is handled, and measure the platform's final state.

Everything random comes from the seed (feeding order and gaps, kill kinds and delays), so a
failing seed can be run again by hand (``OC_TEST_CRASH_SEEDS``); the process timing itself is
not reproducible, which is why many seeds are worth running.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.faults.crash_model import answer_for, tag_for
from tests.faults.crash_platform import CrashBotApi
from tests.faults.figures import Figures, measure
from tests.faults.processes import ServerProcess

__all__ = ["CHAT0", "Plan", "Scenario"]

CHAT0 = 7000
"""Chat ``c`` is the private chat (and user) ``CHAT0 + c``."""


@dataclass(frozen=True, slots=True)
class Plan:
    """How big one run is."""

    seed: int
    chats: int = 20
    per_chat: int = 15
    feed_seconds: float = 12.0
    gap: tuple[float, float] = (0.3, 2.0)
    """Seconds between a restart (or the start) and the next kill."""


@dataclass(slots=True)
class Scenario:
    """The messages sent, the kills done, the waiting and the measuring of one run."""

    plan: Plan
    platform: CrashBotApi
    sent: dict[int, list[str]] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    kills: int = 0
    stalled: int = 0
    """Messages still unanswered when :meth:`until_answered` gave up (before the final restart
    rescued them, if it did): a stall is a failure even if nothing is lost in the end."""
    hung: list[str] = field(default_factory=list)
    """Processes that did not stop within the limit on SIGTERM."""

    def rng(self, purpose: str) -> random.Random:
        """An independent random stream per purpose (feeding and killing do not interfere)."""
        return random.Random(f"{self.plan.seed}:{purpose}")

    def note(self, line: str) -> None:
        """Record what happened when (printed with a failure)."""
        self.log.append(f"{time.monotonic() - self.started:6.2f}s {line}")
        if os.environ.get("OC_TEST_CRASH_VERBOSE"):
            print(self.log[-1], file=sys.stderr, flush=True)

    # --- input ---------------------------------------------------------------------------
    async def feed(self) -> None:
        """Send every chat's messages, interleaved at random, over about ``feed_seconds``."""
        rng = self.rng("feed")
        order = [c for c in range(self.plan.chats) for _ in range(self.plan.per_chat)]
        rng.shuffle(order)
        mean_gap = self.plan.feed_seconds / len(order)
        for chat in order:
            tags = self.sent.setdefault(chat, [])
            tag = tag_for(chat, len(tags))
            tags.append(tag)
            chat_id = CHAT0 + chat
            await self.platform.push(self.platform.message(tag, chat_id=chat_id, user_id=chat_id))
            await asyncio.sleep(rng.uniform(0, 2 * mean_gap))
        self.note(f"fed {len(order)} messages")

    async def pause(self) -> float:
        """The random wait before the next kill (the only sleep that is not a condition)."""
        delay = self.rng(f"gap{self.kills}").uniform(*self.plan.gap)
        await asyncio.sleep(delay)
        return delay

    # --- killing -------------------------------------------------------------------------
    async def kill_after_post(
        self, kill: Callable[[], bool], methods: set[str], what: str, *, within: float = 15.0
    ) -> None:
        """Kill the moment the platform has accepted the next post of ``methods``, before the
        process hears the answer; if no such post comes within ``within`` s, kill anyway.
        """
        done = asyncio.Event()

        def hook(method: str, chat_id: int, message_id: int, text: str) -> None:
            if method in methods and not done.is_set():
                self.platform.after_post = None
                kill()
                self.note(f"kill {what} after {method} {chat_id}/{message_id} {text[:24]!r}")
                done.set()

        self.platform.after_post = hook
        try:
            async with asyncio.timeout(within):
                await done.wait()
        except TimeoutError:
            self.platform.after_post = None
            kill()
            self.note(f"kill {what}: no {sorted(methods)} within {within:.0f}s, killed anyway")
        self.kills += 1

    async def stop_all(self, processes: list[ServerProcess]) -> None:
        """Stop gracefully (SIGTERM), all at once; note any that hangs (it is then killed)."""
        stopped = await asyncio.gather(*(p.stop() for p in processes))
        for process, ok in zip(processes, stopped, strict=True):
            if not ok:
                self.hung.append(process.name)
                self.note(f"{process.name} did not stop on SIGTERM in time; killed")

    def kill_now(self, kill: Callable[[], bool], what: str) -> None:
        """Kill at this moment."""
        kill()
        self.kills += 1
        self.note(f"kill {what} now")

    # --- waiting -------------------------------------------------------------------------
    def unanswered(self) -> int:
        """User messages the platform does not show a complete answer to (yet)."""
        return len(self.missing())

    def missing(self) -> list[str]:
        """The tags of those messages."""
        shown = {m.text.strip() for m in self.platform.posted.values()}
        return [t for tags in self.sent.values() for t in tags if answer_for(t) not in shown]

    async def until_answered(self, within: float) -> bool:
        """Wait (on platform posts) until every message has its complete answer."""
        deadline = time.monotonic() + within
        while self.unanswered():
            left = deadline - time.monotonic()
            if left <= 0:
                self.stalled = self.unanswered()
                self.note(f"{self.stalled} messages still unanswered, giving up: {self.missing()}")
                return False
            self.platform.changed.clear()
            try:
                async with asyncio.timeout(min(left, 1.0)):
                    await self.platform.changed.wait()
            except TimeoutError:
                pass
        self.note("every message has its complete answer")
        return True

    async def until_quiet(self, quiet: float = 2.5, within: float = 60.0) -> None:
        """Wait until the platform saw no post for ``quiet`` seconds (a late duplicate from a
        recovery shows itself within that: the model answers in 0.5 s, posts are 1 s apart).
        """
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            seen = self.platform.posts
            self.platform.changed.clear()
            try:
                async with asyncio.timeout(quiet):
                    await self.platform.changed.wait()
            except TimeoutError:
                if self.platform.posts == seen:
                    return
        self.note(f"still posting after {within:.0f}s")

    # --- result --------------------------------------------------------------------------
    def figures(self) -> Figures:
        """The platform's final state, measured."""
        return measure(
            self.sent,
            {c: self.platform.messages_in(CHAT0 + c) for c in self.sent},
        )

    def dump(self, path: Path) -> None:
        """Write what the platform saw (every bot message with its edit history), the
        messages sent and the timeline, to study a failure after the run.
        """
        chats = {
            CHAT0 + c: {
                "sent": tags,
                "bot": [
                    {"id": m.message_id, "history": m.history}
                    for m in self.platform.messages_in(CHAT0 + c)
                ],
            }
            for c, tags in self.sent.items()
        }
        posts = [
            f"{at - self.started:7.2f}s {method} {chat}/{mid} {text[:40]!r}"
            for at, method, chat, mid, text in self.platform.timeline
        ]
        state = {"seed": self.plan.seed, "timeline": self.log, "chats": chats, "posts": posts}
        path.write_text(json.dumps(state, indent=1, ensure_ascii=False))

    def report(self, mode: str, fig: Figures, errors: list[str], dump: Path | None = None) -> str:
        """The per-mode line, then (for a failure) examples, the kill log and server errors."""
        took = time.monotonic() - self.started
        head = f"[crash {mode} seed={self.plan.seed}] kills={self.kills} {fig.line()} s={took:.0f}"
        lines = [
            head,
            f"  again: OC_TEST_CRASH_SEEDS={self.plan.seed} (and OC_TEST_CRASH_VERBOSE=1)",
        ]
        if dump is not None:
            self.dump(dump)
            lines.append(f"  platform state: {dump}")
        for kind, examples in fig.examples.items():
            lines.append(f"  {kind}: " + "; ".join(examples))
        lines += ["  timeline:", *(f"    {x}" for x in self.log)]
        lines += ["  server errors:", *(f"    {x}" for x in errors[:20])]
        return "\n".join(lines)
