"""Learned skills: proposed from liked turns, kept only on evidence (``docs/skills.md``).

Life of one: a 👍 on a turn that used several tools without a failure asks the model for a
``SKILL.md`` (:mod:`bot.skills.drafting`); a valid draft is a *candidate* (or *pending* an
admin's approval when the turn had read outside content: writing a skill is an effect). A
candidate is offered in ``OC_SKILLS_CANDIDATE_SHARE`` of the turns whose request matches it and
held back in the others; the ratings of both kinds of turn (the feedback feature's votes) are
its two arms, and :func:`bot.skills.evidence.decide` promotes it to *live* or retires it. A live
skill is still held back in a small share of its matching turns (``Rule.holdout``), and
:func:`bot.skills.evidence.watch` demotes it (retired) when the ratings since its promotion say
it now hurts. At most ``OC_SKILLS_LIVE_PER_PERSON`` live learned skills per person and
``OC_SKILLS_LIVE_MAX`` in all: beyond a cap the weakest unpinned one retires. Every change is
one audit entry (``skill.learned.<kind>``).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from opencomputer.bot import audit as audit_log
from opencomputer.bot.feedback.models import FeedbackVoteRow
from opencomputer.bot.feedback.stats import Posterior
from opencomputer.bot.skills.evidence import RULE, Rule, decide, keywords, watch
from opencomputer.bot.skills.format import Skill
from opencomputer.bot.skills.learned_models import LearnedSkillRow, LearnedTurnRow, Status

__all__ = ["Arms", "LearnedError", "LearnedSkills", "Offer"]

logger = logging.getLogger(__name__)

_S = LearnedSkillRow.__table__  # type: ignore[attr-defined]
_T = LearnedTurnRow.__table__  # type: ignore[attr-defined]
_V = FeedbackVoteRow.__table__  # type: ignore[attr-defined]
REFRESH_SECONDS = 5.0
MAX_BODY = 8000


class LearnedError(Exception):
    """An admin request that cannot be done; the message says why (one line)."""


@dataclass(frozen=True, slots=True)
class Arms:
    """A learned skill's evidence: ratings where it was offered, where it was held back."""

    offered: Posterior
    held_back: Posterior
    used: int


@dataclass(slots=True)
class Offer:
    """The learned skills of one turn: what the prompt lists, and the rows to record."""

    listed: dict[str, Skill]
    arms: dict[str, bool]  # matching skill -> offered (False: held back for comparison)


class LearnedSkills:
    """The learned skills' rows, their evidence and every change to them (audited)."""

    def __init__(
        self,
        engine: AsyncEngine,
        settings: Any,
        *,
        audit_to: Any = None,
        rng: random.Random | None = None,
        rule: Rule = RULE,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.rule = rule
        self.audit_to = audit_to if audit_to is not None else engine
        self.rng = rng or random.Random()
        self._rows: list[Any] = []
        self._read_at = -REFRESH_SECONDS

    # --- reading -----------------------------------------------------------------------
    async def rows(self, *, fresh: bool = False) -> list[Any]:
        """Every learned skill not retired (re-read at most every few seconds, or ``fresh``)."""
        now = time.monotonic()
        if fresh or now - self._read_at >= REFRESH_SECONDS:
            async with self.engine.connect() as conn:
                query = select(_S).where(_S.c.status != Status.RETIRED).order_by(_S.c.id)
                self._rows = list((await conn.execute(query)).all())
            self._read_at = now
        return self._rows

    def cached_any(self) -> bool:
        """Whether the last read found any learned skill (no query: for sync hooks)."""
        return bool(self._rows)

    async def all_rows(self) -> list[Any]:
        """Every learned skill, retired ones too (for admins)."""
        async with self.engine.connect() as conn:
            return list((await conn.execute(select(_S).order_by(_S.c.id))).all())

    async def get(self, name: str) -> Any:
        """One learned skill by name, or LearnedError."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(_S).where(_S.c.name == name))).first()
        if row is None:
            raise LearnedError(f"There is no learned skill {name!r}. Send /skills learned.")
        return row

    def skill(self, row: Any) -> Skill:
        """A row as a skill the tools and the prompt know (it has no folder of files)."""
        folder = Path(self.settings.data_dir) / "skills" / "learned" / row.name
        meta = {"status": row.status, "pinned": bool(row.pinned)}
        return Skill(
            name=row.name,
            description=row.description,
            body=row.body,
            folder=folder,
            source="learned",
            owner=row.owner,
            metadata=meta,
        )

    @staticmethod
    def may_see(row: Any, person: str | None) -> bool:
        """A person's learned skill is theirs alone (``person`` is None outside a DM)."""
        return row.owner is None or (person is not None and row.owner == person)

    async def usable(self, person: str | None) -> dict[str, Skill]:
        """Candidates and live skills ``person`` may load (``use_skill``) in this chat."""
        return {
            row.name: self.skill(row)
            for row in await self.rows()
            if row.status in (Status.CANDIDATE, Status.LIVE) and self.may_see(row, person)
        }

    # --- one turn ----------------------------------------------------------------------
    async def offer(self, person: str | None, text: str, taken: Iterable[str] = ()) -> Offer:
        """Which learned skills this turn lists: a candidate matching the request in a share
        of turns (drawn here), held back in the others; a live one always, except in the
        holdout share of its matching turns (unless pinned), which watches it for regressions.
        """
        words = set(keywords(text))
        busy = set(taken)
        listed: dict[str, Skill] = {}
        arms: dict[str, bool] = {}
        for row in await self.rows():
            if row.name in busy or not self.may_see(row, person):
                continue
            match = bool(words & set(keywords(f"{row.name.replace('-', ' ')} {row.description}")))
            if row.status == Status.LIVE:
                if match:
                    held = not row.pinned and self.rng.random() < self.rule.holdout
                    arms[row.name] = not held
                    if held:
                        continue
                listed[row.name] = self.skill(row)
            elif row.status == Status.CANDIDATE and match:
                arms[row.name] = self.rng.random() < self.settings.skills_candidate_share
                if arms[row.name]:
                    listed[row.name] = self.skill(row)
        return Offer(listed, arms)

    async def record(self, reply_id: int, arms: dict[str, bool], used: Iterable[str]) -> None:
        """Remember which learned skills this reply's turn offered, held back and used."""
        if not arms:
            return
        loaded = set(used)
        now = time.time()
        values = [
            {"skill": n, "reply_id": reply_id, "offered": o, "used": n in loaded, "at": now}
            for n, o in arms.items()
        ]
        async with self.engine.begin() as conn:
            await conn.execute(insert(_T), values)

    async def skills_of_reply(self, reply_id: int) -> list[str]:
        """The learned skills with a row for this reply."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(_T.c.skill).where(_T.c.reply_id == reply_id))
            return [r.skill for r in rows]

    # --- evidence ----------------------------------------------------------------------
    async def arms(self, name: str) -> Arms:
        """The ratings (counted votes of the feedback feature) of both arms."""
        query = (
            select(_T.c.offered, _V.c.score, func.count())
            .select_from(_T.join(_V, _V.c.reply_id == _T.c.reply_id))
            .where(_T.c.skill == name, _V.c.blamed.is_(True), _V.c.score != 0)
            .group_by(_T.c.offered, _V.c.score)
        )
        counts = {(True, 1): 0, (True, -1): 0, (False, 1): 0, (False, -1): 0}
        async with self.engine.connect() as conn:
            for offered, score, n in await conn.execute(query):
                counts[(bool(offered), 1 if score > 0 else -1)] += int(n)
            used = await conn.scalar(
                select(func.count()).where(_T.c.skill == name, _T.c.used.is_(True))
            )
        return Arms(
            Posterior(counts[(True, 1)], counts[(True, -1)]),
            Posterior(counts[(False, 1)], counts[(False, -1)]),
            int(used or 0),
        )

    async def evaluate(self, names: Iterable[str]) -> list[str]:
        """Apply the evidence to these skills (candidates, and live ones under watch); the
        moves made, as lines with their reasons.
        """
        if not self.settings.tuning_auto:
            return []
        moves: list[str] = []
        for name in sorted(set(names)):
            try:
                row = await self.get(name)
            except LearnedError:
                continue
            if row.status == Status.LIVE and not row.pinned:
                moves += await self._watch(row)
            if row.status != Status.CANDIDATE:
                continue
            arms = await self.arms(name)
            decision = decide(arms.offered, arms.held_back, self.rule)
            if decision.move == "promote":
                await self._set(row, Status.LIVE, "tuner", "promoted", decision.reason)
                moves.append(f"{name} promoted: {decision.reason}")
                moves += await self._enforce_caps(row.owner)
            elif decision.move == "retire" and not row.pinned:
                await self._set(row, Status.RETIRED, "tuner", "retired", decision.reason)
                moves.append(f"{name} retired: {decision.reason}")
        return moves

    async def recent_arms(self, name: str, since: float) -> tuple[Posterior, Posterior]:
        """The newest ``Rule.watch_window`` ratings of each arm among the turns recorded since
        ``since``: a window, so that a skill that was good for months and turned bad is judged
        on how it does now, not on its average.
        """
        arms: list[Posterior] = []
        async with self.engine.connect() as conn:
            for offered in (True, False):
                newest = (
                    select(_V.c.score)
                    .select_from(_T.join(_V, _V.c.reply_id == _T.c.reply_id))
                    .where(_T.c.skill == name, _T.c.offered.is_(offered), _T.c.at >= since)
                    .where(_V.c.blamed.is_(True), _V.c.score != 0)
                    .order_by(_T.c.id.desc())
                    .limit(self.rule.watch_window)
                )
                scores = [int(r.score) for r in await conn.execute(newest)]
                up = sum(1 for score in scores if score > 0)
                arms.append(Posterior(up, len(scores) - up))
        return arms[0], arms[1]

    async def _watch(self, row: Any) -> list[str]:
        """Demote a live skill whose ratings since it went live (its last status change or
        edit: ``updated_at``) say it now hurts, against the held-back share.
        """
        offered, held_back = await self.recent_arms(row.name, float(row.updated_at))
        decision = watch(offered, held_back, self.rule)
        if decision.move != "demote":
            return []
        await self._set(row, Status.RETIRED, "tuner", "demoted", decision.reason)
        return [f"{row.name} demoted (retired): {decision.reason}"]

    async def _enforce_caps(self, owner: str | None) -> list[str]:
        """Retire the weakest unpinned live skills beyond the per-person and global caps."""
        moves: list[str] = []
        live = [r for r in await self.rows(fresh=True) if r.status == Status.LIVE]
        groups: list[tuple[list[Any], int, str]] = []
        if owner is not None:
            mine = [r for r in live if r.owner == owner]
            groups.append((mine, self.settings.skills_live_per_person, f"{owner}'s cap"))
        groups.append((live, self.settings.skills_live_max, "the global cap"))
        retired: set[str] = set()
        for rows, cap, label in groups:
            rows = [r for r in rows if r.name not in retired]
            spare = [r for r in rows if not r.pinned]
            means = {r.name: (await self.arms(r.name)).offered.mean for r in spare}
            spare.sort(key=lambda r: (means[r.name], float(r.updated_at)))  # weakest, oldest
            while len(rows) > cap and spare:
                weakest = spare.pop(0)
                reason = f"{label} ({cap}) reached; weakest (rate {means[weakest.name]:.2f})"
                await self._set(weakest, Status.RETIRED, "tuner", "retired", reason)
                retired.add(weakest.name)
                rows = [r for r in rows if r.name != weakest.name]
                moves.append(f"{weakest.name} retired: {reason}")
        return moves

    # --- changes -----------------------------------------------------------------------
    async def _audit(self, actor: str, kind: str, name: str, **detail: Any) -> None:
        await audit_log.audit(
            self.audit_to, actor, f"skill.learned.{kind}", {"skill": name, **detail}
        )

    async def _set(self, row: Any, status: str, actor: str, kind: str, reason: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                update(_S).where(_S.c.id == row.id).values(status=status, updated_at=time.time())
            )
        self._read_at = -REFRESH_SECONDS
        logger.info("learned skill %s: %s -> %s by %s (%s)", row.name, row.status, status,
                    actor, reason)  # fmt: skip
        await self._audit(actor, kind, row.name, before=row.status, after=status, reason=reason)

    async def add(
        self,
        skill: Skill,
        *,
        owner: str | None,
        tainted: bool,
        actor: str,
        source_reply: int | None = None,
    ) -> Any:
        """Store a validated draft: a candidate, or pending approval when ``tainted``."""
        status = Status.PENDING if tainted else Status.CANDIDATE
        now = time.time()
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(_S).values(
                    name=skill.name,
                    description=skill.description,
                    body=skill.body[:MAX_BODY],
                    owner=owner,
                    status=status,
                    pinned=False,
                    tainted=tainted,
                    source_reply=source_reply,
                    created_at=now,
                    updated_at=now,
                )
            )
        self._read_at = -REFRESH_SECONDS
        await self._audit(actor, "proposed", skill.name, status=status, owner=owner,
                          reply=source_reply)  # fmt: skip
        return await self.get(skill.name)

    async def open_slots(self, owner: str | None) -> int:
        """How many more unproven (pending or candidate) skills ``owner`` may have."""
        rows = await self.rows(fresh=True)
        waiting = [
            r for r in rows if r.owner == owner and r.status in (Status.PENDING, Status.CANDIDATE)
        ]
        return int(self.settings.skills_live_per_person) - len(waiting)

    async def approve(self, name: str, *, actor: str) -> Any:
        """An admin lets a pending skill compete as a candidate."""
        row = await self.get(name)
        if row.status != Status.PENDING:
            raise LearnedError(f"{name} is {row.status}, not pending approval.")
        await self._set(row, Status.CANDIDATE, actor, "approved", "approved by an admin")
        return await self.get(name)

    async def pin(self, name: str, *, actor: str, pinned: bool = True) -> Any:
        """Pin (never auto-retired, live at once) or unpin a learned skill."""
        row = await self.get(name)
        if row.status == Status.PENDING and pinned:
            raise LearnedError(f"{name} is pending approval: /skills approve {name} first.")
        status = Status.LIVE if pinned else row.status
        async with self.engine.begin() as conn:
            await conn.execute(
                update(_S)
                .where(_S.c.id == row.id)
                .values(pinned=pinned, status=status, updated_at=time.time())
            )
        self._read_at = -REFRESH_SECONDS
        kind = "pinned" if pinned else "unpinned"
        await self._audit(actor, kind, name, before=row.status, after=status)
        return await self.get(name)

    async def edit(self, name: str, body: str, *, actor: str) -> Any:
        """Replace a learned skill's instructions (the evidence so far stays with it)."""
        row = await self.get(name)
        text = body.strip()
        if not text:
            raise LearnedError("The new instructions are empty: /skills edit NAME <text>.")
        if len(text) > MAX_BODY:
            raise LearnedError(f"The instructions are {len(text)} characters; at most {MAX_BODY}.")
        async with self.engine.begin() as conn:
            await conn.execute(
                update(_S).where(_S.c.id == row.id).values(body=text, updated_at=time.time())
            )
        self._read_at = -REFRESH_SECONDS
        await self._audit(actor, "edited", name, before=row.body, after=text)
        return await self.get(name)

    async def delete(self, name: str, *, actor: str) -> None:
        """Remove a learned skill and its evidence."""
        row = await self.get(name)
        async with self.engine.begin() as conn:
            await conn.execute(delete(_T).where(_T.c.skill == name))
            await conn.execute(delete(_S).where(_S.c.id == row.id))
        self._read_at = -REFRESH_SECONDS
        await self._audit(actor, "deleted", name, status=row.status, body=row.body)

    # --- data rights -------------------------------------------------------------------
    async def forget(self, person: str) -> int:
        """Delete the learned skills drafted for ``person`` (their turns were the source)."""
        async with self.engine.begin() as conn:
            names = [
                r.name for r in await conn.execute(select(_S.c.name).where(_S.c.owner == person))
            ]
            if names:
                await conn.execute(delete(_T).where(_T.c.skill.in_(names)))
                await conn.execute(delete(_S).where(_S.c.owner == person))
        self._read_at = -REFRESH_SECONDS
        return len(names)

    async def export(self, person: str) -> list[dict[str, Any]]:
        """The learned skills drafted for ``person``."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(_S).where(_S.c.owner == person))
            return [
                {
                    "name": r.name,
                    "description": r.description,
                    "body": r.body,
                    "status": r.status,
                    "created_at": r.created_at,
                }
                for r in rows
            ]
