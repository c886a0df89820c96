"""Votes, notes, failures and what is computed from them (posteriors, stats, exchanges)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, case, delete, func, insert, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from opencomputer.bot.feedback.cache import Tallies
from opencomputer.bot.feedback.models import (
    FeedbackNoteRow,
    FeedbackVoteRow,
    PromptVariantRow,
    ReplyFailureRow,
)
from opencomputer.bot.feedback.stats import Posterior
from opencomputer.bot.storage.models import InboundRow, ReplyRow

__all__ = ["Exchange", "VariantStats", "VoteQueries"]

_VAR = PromptVariantRow.__table__  # type: ignore[attr-defined]
_VOTE = FeedbackVoteRow.__table__  # type: ignore[attr-defined]
_NOTE = FeedbackNoteRow.__table__  # type: ignore[attr-defined]
_FAIL = ReplyFailureRow.__table__  # type: ignore[attr-defined]
_REPLY = ReplyRow.__table__  # type: ignore[attr-defined]
_IN = InboundRow.__table__  # type: ignore[attr-defined]


def _pk(result: Any) -> int:
    """The primary key of the row an INSERT created."""
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


@dataclass(frozen=True, slots=True)
class VariantStats:
    """What admins see per variant."""

    variant: Any
    up: int
    down: int
    excluded: int  # ratings on failed replies, not blamed on the prompt
    served: int
    failures: int

    @property
    def posterior(self) -> Posterior:
        """Posterior of the thumbs-up rate from the blamed ratings."""
        return Posterior(self.up, self.down)


@dataclass(frozen=True, slots=True)
class Exchange:
    """A rated question/answer pair, as the tuner shows it to the model."""

    question: str
    answer: str
    score: int


class VoteQueries:
    """The vote side of :class:`~bot.feedback.repo.FeedbackRepo`."""

    engine: AsyncEngine
    tallies: Tallies  # the selector's in-memory posteriors: every vote change here drops them

    # --- votes -------------------------------------------------------------------------
    async def reply(self, reply_id: int) -> Any | None:
        """A bot reply row."""
        async with self.engine.connect() as conn:
            return (await conn.execute(select(_REPLY).where(_REPLY.c.id == reply_id))).first()

    async def set_vote(
        self, reply: Any, user_key: str, score: int, emoji: str, blamed: bool | None = None
    ) -> bool:
        """Store a user's vote on a reply (replacing theirs); True if it changed.

        ``blamed`` defaults to "the reply has no failure"; the caller may know better (a tool
        failure recorded in ``reply_failures``).
        """
        blame = reply.failure is None if blamed is None else blamed
        try:
            changed = await self._set_vote(reply, user_key, score, emoji, blame)
        except IntegrityError:  # two reactions of one user raced; the second write wins
            changed = await self._set_vote(reply, user_key, score, emoji, blame)
        self.tallies.invalidate()
        return changed

    async def _set_vote(
        self, reply: Any, user_key: str, score: int, emoji: str, blamed: bool
    ) -> bool:
        async with self.engine.begin() as conn:
            old = (
                await conn.execute(
                    select(_VOTE.c.score, _VOTE.c.emoji).where(
                        _VOTE.c.reply_id == reply.id, _VOTE.c.user_key == user_key
                    )
                )
            ).first()
            if old is not None and old.score == score and old.emoji == emoji:
                return False
            await conn.execute(
                delete(_VOTE).where(_VOTE.c.reply_id == reply.id, _VOTE.c.user_key == user_key)
            )
            await conn.execute(
                insert(_VOTE).values(
                    reply_id=reply.id,
                    user_key=user_key,
                    variant_id=reply.variant_id,
                    model=reply.model,
                    conversation=reply.conversation,
                    score=score,
                    emoji=emoji,
                    blamed=blamed,
                    created_at=time.time(),
                )
            )
            return old is None or old.score != score

    async def delete_vote(self, reply_id: int, user_key: str) -> bool:
        """Remove a user's vote; True if there was one."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                delete(_VOTE).where(_VOTE.c.reply_id == reply_id, _VOTE.c.user_key == user_key)
            )
        self.tallies.invalidate()
        return bool(result.rowcount)

    async def votes(self, reply_id: int) -> list[Any]:
        """Current votes on a reply."""
        async with self.engine.connect() as conn:
            return list(await conn.execute(select(_VOTE).where(_VOTE.c.reply_id == reply_id)))

    async def posteriors(
        self, variant_ids: Iterable[int], *, since: dict[int, float] | None = None
    ) -> dict[int, Posterior]:
        """Blamed up/down counts per variant (optionally only votes after a time per variant)."""
        ids = list(variant_ids)
        out = {vid: Posterior() for vid in ids}
        if not ids:
            return out
        up = func.sum(case((_VOTE.c.score > 0, 1), else_=0))
        down = func.sum(case((_VOTE.c.score < 0, 1), else_=0))
        query = (
            select(_VOTE.c.variant_id, up, down)
            .where(_VOTE.c.variant_id.in_(ids), _VOTE.c.blamed.is_(True))
            .group_by(_VOTE.c.variant_id)
        )
        if since:
            query = query.where(
                or_(
                    *(
                        and_(_VOTE.c.variant_id == v, _VOTE.c.created_at >= t)
                        for v, t in since.items()
                    )
                )
            )
        async with self.engine.connect() as conn:
            for vid, u, d in await conn.execute(query):
                out[int(vid)] = Posterior(int(u or 0), int(d or 0))
        return out

    async def stats(self) -> list[VariantStats]:
        """Per variant: blamed ups and downs, excluded ratings, replies served, failures."""
        up = func.sum(case((and_(_VOTE.c.score > 0, _VOTE.c.blamed.is_(True)), 1), else_=0))
        down = func.sum(case((and_(_VOTE.c.score < 0, _VOTE.c.blamed.is_(True)), 1), else_=0))
        excl = func.sum(case((_VOTE.c.blamed.is_(False), 1), else_=0))
        async with self.engine.connect() as conn:
            votes = {
                r[0]: r[1:]
                for r in await conn.execute(
                    select(_VOTE.c.variant_id, up, down, excl).group_by(_VOTE.c.variant_id)
                )
            }
            served: dict[Any, int] = dict(
                list(
                    await conn.execute(
                        select(_REPLY.c.variant_id, func.count()).group_by(_REPLY.c.variant_id)
                    )
                )
            )
            fails: dict[Any, int] = dict(
                list(
                    await conn.execute(
                        select(_FAIL.c.variant_id, func.count()).group_by(_FAIL.c.variant_id)
                    )
                )
            )
            variants = list(await conn.execute(select(_VAR).order_by(_VAR.c.id)))
        out = []
        for v in variants:
            u, d, x = votes.get(v.id, (0, 0, 0))
            out.append(
                VariantStats(
                    v,
                    int(u or 0),
                    int(d or 0),
                    int(x or 0),
                    int(served.get(v.id, 0)),
                    int(fails.get(v.id, 0)),
                )
            )
        return out

    async def timeline(self) -> list[tuple[int, float, int]]:
        """Every blamed vote as (variant id, time, score), oldest first (for charts)."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(_VOTE.c.variant_id, _VOTE.c.created_at, _VOTE.c.score)
                .where(_VOTE.c.blamed.is_(True), _VOTE.c.variant_id.is_not(None))
                .order_by(_VOTE.c.created_at)
            )
            return [(int(v), float(t), int(s)) for v, t, s in rows]

    async def exchanges(self, variant_ids: Sequence[int], score: int, limit: int) -> list[Exchange]:
        """Newest blamed exchanges rated ``score`` (question and answer text) for the tuner."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(_IN.c.text, _REPLY.c.text, _VOTE.c.score)
                .select_from(_VOTE.join(_REPLY, _REPLY.c.id == _VOTE.c.reply_id))
                .join(_IN, _IN.c.id == _REPLY.c.inbound_id)
                .where(
                    _VOTE.c.variant_id.in_(list(variant_ids)),
                    _VOTE.c.blamed.is_(True),
                    _VOTE.c.score == score,
                )
                .order_by(_VOTE.c.created_at.desc())
                .limit(limit)
            )
            return [Exchange(q, a, s) for q, a, s in rows]

    # --- notes and failures --------------------------------------------------------------
    async def add_note(self, **values: Any) -> int:
        """Store a reason given in words."""
        async with self.engine.begin() as conn:
            result = await conn.execute(insert(_NOTE).values(created_at=time.time(), **values))
            return _pk(result)

    async def notes(self, *, variant_id: int | None = None, limit: int = 10) -> list[Any]:
        """Newest notes (for one variant or all)."""
        query = select(_NOTE).order_by(_NOTE.c.id.desc()).limit(limit)
        if variant_id is not None:
            query = query.where(_NOTE.c.variant_id == variant_id)
        async with self.engine.connect() as conn:
            return list(await conn.execute(query))

    async def has_failure(self, reply_id: int) -> bool:
        """Whether a failure (e.g. a failed tool call) is recorded for the reply."""
        async with self.engine.connect() as conn:
            found = await conn.scalar(select(_FAIL.c.id).where(_FAIL.c.reply_id == reply_id))
            return found is not None

    async def add_failure(self, **values: Any) -> None:
        """Record that a reply was produced by a failure (idempotent per reply)."""
        async with self.engine.begin() as conn:
            exists = await conn.scalar(
                select(_FAIL.c.id).where(_FAIL.c.reply_id == values["reply_id"])
            )
            if exists is None:
                await conn.execute(insert(_FAIL).values(created_at=time.time(), **values))

    # --- data rights -------------------------------------------------------------------
    async def forget(self, accounts: Sequence[str]) -> tuple[int, int]:
        """Delete the accounts' votes and notes, and rows of replies that no longer exist."""
        alive = select(_REPLY.c.id)
        async with self.engine.begin() as conn:
            votes = await conn.execute(
                delete(_VOTE).where(
                    or_(_VOTE.c.user_key.in_(list(accounts)), _VOTE.c.reply_id.not_in(alive))
                )
            )
            notes = await conn.execute(delete(_NOTE).where(_NOTE.c.user_key.in_(list(accounts))))
            await conn.execute(delete(_FAIL).where(_FAIL.c.reply_id.not_in(alive)))
        self.tallies.invalidate()
        return int(votes.rowcount or 0), int(notes.rowcount or 0)

    async def export(self, accounts: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        """The accounts' votes and notes as plain dicts."""
        async with self.engine.connect() as conn:
            votes = await conn.execute(select(_VOTE).where(_VOTE.c.user_key.in_(list(accounts))))
            notes = await conn.execute(select(_NOTE).where(_NOTE.c.user_key.in_(list(accounts))))
            return {
                "feedback_votes": [dict(r._mapping) for r in votes],
                "feedback_notes": [dict(r._mapping) for r in notes],
            }
