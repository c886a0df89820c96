"""What the skills feature learns from turns: skill proposals, evidence, missing capabilities.

* :meth:`Learning.observe` wraps the agent call (inside the skills layer): after the turn it
  reads the thread's checkpoint through the runtime's graph (the turn's tool calls, the skills it
  loaded, whether it called a tool that is missing, and its taint: ``AgentState.taint``, which is
  sticky for the thread, so a turn after outside content counts as tainted too) and keeps that
  by run id until the reply is recorded.
* :meth:`Learning.on_reply` records which learned skills were offered or held back (and used)
  in that reply's turn, and the missing capability when the answer said it cannot.
* :meth:`Learning.on_reaction` (after the feedback feature stored the vote) re-evaluates the
  learned skills of the rated reply (every automatic promotion, retirement or demotion is
  logged, audited by :class:`LearnedSkills`, and told to the admins in their direct chats, the
  way the missing-capabilities report reaches them); a 👍 by the asker on a turn with at
  least two tool calls and no failure asks the model for a skill (in the background: a
  reaction never waits for a model), and a 👎 on an answer that hedged records a missing
  capability.

What a turn did is kept in memory (the newest 1000 replies): after a restart, reactions on
older replies still count as evidence but propose nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from typing import Any

from opencomputer.bot.events import Address, Reaction
from opencomputer.bot.feedback.scoring import EmojiTable
from opencomputer.bot.hooks import TurnCall, TurnNext
from opencomputer.bot.skills.drafting import Turn, draft_skill, transcript
from opencomputer.bot.skills.format import SkillError
from opencomputer.bot.skills.gaps import WEEK, CapabilityGaps, classify, render_report
from opencomputer.bot.skills.learned import LearnedSkills
from opencomputer.bot.skills.service import SkillService

__all__ = ["MIN_TOOL_CALLS", "Learning"]

logger = logging.getLogger(__name__)

MIN_TOOL_CALLS = 2
_REMEMBER = 1000


class Learning:
    """Turns, replies and reactions in; proposals, evidence and missing capabilities out."""

    def __init__(
        self, app: Any, service: SkillService, learned: LearnedSkills, gaps: CapabilityGaps
    ) -> None:
        self.app = app
        self.settings = app.settings
        self.service = service
        self.learned = learned
        self.gaps = gaps
        self.table = EmojiTable.from_csv(
            self.settings.feedback_positive, self.settings.feedback_negative
        )
        self.runs: OrderedDict[str, Turn] = OrderedDict()
        self.replies: OrderedDict[int, tuple[Turn, str | None]] = OrderedDict()
        self.proposed: set[int] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._report: asyncio.Task[None] | None = None

    # --- the turn ----------------------------------------------------------------------
    async def observe(self, call: TurnCall, call_next: TurnNext, arms: dict[str, bool]) -> Any:
        """Run the turn; remember what it did (by run id) for its reply."""
        outcome = await call_next(call)
        run_id = str(getattr(outcome, "run_id", "") or "")
        if not run_id:
            return outcome
        calls = int(getattr(outcome, "tool_calls", 0) or 0)
        steps: list[str] = []
        used: list[str] = []
        missing = tainted = False
        if calls or arms:
            try:
                values = await self._checkpoint(call.thread_id)
                steps, used, missing = transcript(list(values.get("messages", [])))
                tainted = bool(values.get("taint"))
            except Exception as exc:  # learning is best effort; the turn has its answer
                logger.warning("skills: could not read the turn's checkpoint: %s", exc)
        ctx = call.ctx
        user = ctx.user
        direct = ctx.chat_kind == "direct"
        turn = Turn(
            run_id=run_id,
            text=call.message.text or call.text,
            answer=str(getattr(outcome, "text", "")),
            tool_calls=calls,
            tool_errors=int(getattr(outcome, "tool_errors", 0) or 0),
            steps=steps,
            used=used,
            missing_tool=missing,
            tainted=tainted or bool(ctx.taint),
            offered=arms,
            user=user,  # the person behind it is looked up only when needed (a query)
            account=user.key if user is not None else "",
            conversation=ctx.address.key if ctx.address is not None else "",
            direct=direct,
        )
        self.runs[run_id] = turn
        while len(self.runs) > _REMEMBER:
            self.runs.popitem(last=False)
        return outcome

    async def _checkpoint(self, thread_id: str) -> dict[str, Any]:
        graph = self.app.runtime.agent.graph
        snapshot = await graph.aget_state({"configurable": {"thread_id": thread_id}})
        return dict(snapshot.values) if snapshot is not None else {}

    async def _person(self, turn: Turn) -> str:
        """The person behind the turn's account (linked identities), looked up once."""
        if not turn.person and turn.user is not None:
            turn.person = await self.service.person_of(turn.user)
        return turn.person or turn.account

    # --- the reply ---------------------------------------------------------------------
    async def on_reply(self, record: Any) -> None:
        """Record the reply's learned-skill arms and a missing capability, if any."""
        turn = self.runs.pop(str(record.meta.run_id or ""), None)
        if turn is None:
            return
        try:
            await self.learned.record(record.reply_id, turn.offered, turn.used)
            hedge = await self._gap_on_reply(record, turn)
        except Exception:
            logger.exception("skills: could not record reply %s", record.reply_id)
            return
        self.replies[int(record.reply_id)] = (turn, record.meta.failure or hedge)
        while len(self.replies) > _REMEMBER:
            self.replies.popitem(last=False)

    async def _gap_on_reply(self, record: Any, turn: Turn) -> str | None:
        """Store a missing capability; "hedge" when only a 👎 would make it one."""
        if record.meta.failure:
            return None
        kind = "no_tool" if turn.missing_tool else classify(turn.answer)
        if kind in ("no_tool", "cannot"):
            await self._add_gap(turn, kind, int(record.reply_id))
            return None
        return "hedge" if kind == "hedge" else None

    async def _add_gap(self, turn: Turn, kind: str, reply_id: int) -> None:
        await self.gaps.add(
            person=await self._person(turn),
            account=turn.account,
            conversation=turn.conversation,
            direct=turn.direct,
            kind=kind,
            text=turn.text,
            reply_id=reply_id,
        )

    # --- reactions ---------------------------------------------------------------------
    async def on_reaction(self, reaction: Reaction, reply_id: int | None) -> None:
        """Evidence for the reply's learned skills; a proposal or a gap from this rating."""
        if reply_id is None:
            return
        score = self.table.score(reaction.emoji, reaction.platform)
        if score is None:
            return
        try:
            moves = await self.learned.evaluate(await self.learned.skills_of_reply(reply_id))
            if moves:
                logger.info("learned skills: %s", "; ".join(moves))
                await self.tell_admins("Learned skills changed by ratings:\n" + "\n".join(
                    f"- {line}" for line in moves))  # fmt: skip
            remembered = self.replies.get(reply_id)
            if remembered is None or not reaction.added:
                return
            turn, flag = remembered
            if score < 0 and flag == "hedge" and not await self.gaps.has(reply_id):
                await self._add_gap(turn, "disliked", reply_id)
            elif score > 0 and self._may_propose(turn, flag, reaction, reply_id):
                self.proposed.add(reply_id)
                task = asyncio.create_task(self.propose(turn, reply_id))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        except Exception:
            logger.exception("skills: could not handle a reaction on reply %s", reply_id)

    def _may_propose(self, turn: Turn, flag: str | None, reaction: Reaction, reply_id: int) -> bool:
        """A liked turn that used several tools, none failing, and loaded no skill."""
        return (
            self.settings.skills_learn
            and reply_id not in self.proposed
            and reaction.user.key == turn.account  # the asker's 👍, not a bystander's
            and turn.tool_calls >= MIN_TOOL_CALLS
            and turn.tool_errors == 0
            and not turn.missing_tool
            and not turn.used
            and flag in (None, "hedge")
        )

    async def propose(self, turn: Turn, reply_id: int) -> Any:
        """Ask the model for a skill from ``turn``; store a valid draft (None: dropped)."""
        owner = await self._person(turn) or None
        if await self.learned.open_slots(owner) <= 0:
            logger.info("learned skill not proposed from reply %s: %s has enough candidates",
                        reply_id, owner)  # fmt: skip
            return None
        try:
            skill = await draft_skill(self.app.llm, self.settings.model, turn)
        except SkillError as exc:
            logger.warning("learned skill draft dropped: %s", exc)
            return None
        except Exception as exc:  # the model failed: nothing to store
            logger.warning("learned skill draft failed: %s", exc)
            return None
        scan = await asyncio.to_thread(self.service.catalog.scan, owner)
        taken = set(scan.skills) | {r.name for r in await self.learned.all_rows()}
        if skill.name in taken:
            logger.warning("learned skill draft dropped: the name %r is taken", skill.name)
            return None
        return await self.learned.add(
            skill, owner=owner, tainted=turn.tainted, actor="model", source_reply=reply_id
        )

    async def settle(self) -> None:
        """Wait for the proposals under way (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # --- the report --------------------------------------------------------------------
    async def start(self) -> None:
        """``oc_ready``: start the periodic missing-capabilities report."""
        days = self.settings.skills_gaps_report_days
        if days > 0 and self._report is None:
            self._report = asyncio.create_task(self._report_every(days * 86400.0))

    async def stop(self) -> None:
        """Stop the report job and the proposals under way."""
        tasks = [*self._tasks, *([self._report] if self._report is not None else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._report = None

    async def _report_every(self, seconds: float) -> None:
        """Send at fixed points (multiples of the period since the epoch), so that restarts
        more frequent than the period neither postpone the report for ever nor repeat it.
        """
        while True:
            now = time.time()
            await asyncio.sleep((now // seconds + 1) * seconds - now)
            try:
                await self.send_report(days=seconds / 86400.0)
            except Exception as exc:
                logger.warning("missing-capabilities report not sent: %s", exc)

    async def report(self, *, examples: bool, days: float = 7.0) -> str:
        """The report's text (``examples`` only for an admin in a direct chat)."""
        topics = await self.gaps.topics(time.time() - days * 86400.0)
        return render_report(topics, examples=examples, days=days)

    async def send_report(self, days: float = WEEK / 86400.0) -> int:
        """Send the report to every admin's direct chat (``OC_ADMINS``); how many got it."""
        topics = await self.gaps.topics(time.time() - days * 86400.0)
        if not topics:
            return 0
        return await self.tell_admins(render_report(topics, examples=True, days=days))

    async def tell_admins(self, text: str) -> int:
        """Send ``text`` to every admin's direct chat (``OC_ADMINS``); how many got it."""
        runtime = self.app.runtime
        sent = 0
        for admin in self.settings.admins:
            platform, _, user_id = str(admin).partition(":")
            if platform not in runtime.connectors or not user_id:
                continue
            try:  # a direct chat's id is the user's id (Telegram, Discord DMs, terminal)
                await runtime.say(Address(platform, user_id), text)
                sent += 1
            except Exception as exc:
                logger.warning("skills: message to admin %s failed: %s", admin, exc)
        return sent

    # --- data rights -------------------------------------------------------------------
    async def forget(self, person: str, accounts: list[str]) -> str:
        """``/forget``: their missing-capability examples and the skills drafted for them."""
        gaps = await self.gaps.forget(accounts)
        skills = await self.learned.forget(person)
        parts = [f"{gaps} missing-capability examples"] if gaps else []
        parts += [f"{skills} learned skills"] if skills else []
        return " and ".join(parts)

    async def export(self, person: str, accounts: list[str]) -> dict[str, Any]:
        """``/export``: the same (sections only where there is something)."""
        sections = {
            "capability_gaps": await self.gaps.export(accounts),
            "learned_skills": await self.learned.export(person),
        }
        return {name: rows for name, rows in sections.items() if rows}
