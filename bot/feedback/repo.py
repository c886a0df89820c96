"""Database access for feedback and tuning (SQLAlchemy Core on the store's shared engine)."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from opencomputer.bot.feedback.cache import LiveVariants, Tallies
from opencomputer.bot.feedback.models import (
    PromptVariantRow,
    Status,
    TuningEventRow,
    VariantAssignmentRow,
)
from opencomputer.bot.feedback.votes import Exchange, VariantStats, VoteQueries, _pk
from opencomputer.bot.storage.models import InboundRow
from opencomputer.bot.storage.writer import Tx

__all__ = ["Change", "Exchange", "FeedbackRepo", "VariantStats"]

_VAR = PromptVariantRow.__table__  # type: ignore[attr-defined]
_ASSIGN = VariantAssignmentRow.__table__  # type: ignore[attr-defined]
_EVENT = TuningEventRow.__table__  # type: ignore[attr-defined]
_INBOUND = InboundRow.__table__  # type: ignore[attr-defined]
LIVE = (Status.ACTIVE, Status.CANDIDATE, Status.PINNED)

Change = tuple[int, str, str]  # variant id, status before, status after
Transact = Callable[..., Awaitable[Any]]


class FeedbackRepo(VoteQueries):
    """Variants, votes, notes, failures, assignments and tuning events.

    ``live`` is this process's in-memory view of the live variants (what the per-turn selector
    reads); every variant change made here invalidates it. ``tallies`` is the same for the
    posteriors a draw compares; every vote change made here invalidates it.
    """

    def __init__(self, engine: AsyncEngine, transact: Transact | None = None) -> None:
        self.engine = engine
        self.transact = transact
        """``SqlStore.transact``: the assignment a new conversation's first turn writes goes
        through the store's one writer (on SQLite a write on a second connection waits for the
        writer's lock in SQLite's sleeping busy handler: hundreds of milliseconds).
        """
        self.live = LiveVariants(self.variants_live)
        self.tallies = Tallies(self.posteriors)

    # --- variants ----------------------------------------------------------------------
    async def add_variant(self, **values: Any) -> Any:
        """Insert a variant; its version follows the newest of the same name."""
        async with self.engine.begin() as conn:
            newest = await conn.scalar(
                select(func.max(_VAR.c.version)).where(_VAR.c.name == values["name"])
            )
            now = time.time()
            result = await conn.execute(
                insert(_VAR).values(
                    version=int(newest or 0) + 1, created_at=now, updated_at=now, **values
                )
            )
            vid = _pk(result)
            row = (await conn.execute(select(_VAR).where(_VAR.c.id == vid))).one()
        self.live.invalidate()
        return row

    async def variant(self, variant_id: int) -> Any | None:
        """One variant by id."""
        async with self.engine.connect() as conn:
            return (await conn.execute(select(_VAR).where(_VAR.c.id == variant_id))).first()

    async def variants(self, *, live_only: bool = False) -> list[Any]:
        """Every variant (or every live one), oldest first."""
        query = select(_VAR).order_by(_VAR.c.id)
        if live_only:
            query = query.where(_VAR.c.status.in_(LIVE))
        async with self.engine.connect() as conn:
            return list(await conn.execute(query))

    async def variants_live(self) -> list[Any]:
        """Every live variant, oldest first (what :class:`LiveVariants` keeps in memory)."""
        return await self.variants(live_only=True)

    async def live_for(self, platform: str, chat_key: str) -> list[Any]:
        """Live variants that can apply to a chat: global, its platform's, its own."""
        query = select(_VAR).where(
            _VAR.c.status.in_(LIVE),
            or_(
                _VAR.c.scope == "global",
                and_(_VAR.c.scope == "platform", _VAR.c.scope_key == platform),
                and_(_VAR.c.scope == "chat", _VAR.c.scope_key == chat_key),
            ),
        )
        async with self.engine.connect() as conn:
            return list(await conn.execute(query.order_by(_VAR.c.id)))

    async def change(
        self,
        changes: Sequence[tuple[int, str]],
        *,
        kind: str,
        actor: str,
        reason: str = "",
        variant_id: int | None = None,
        extra: dict[int, dict[str, Any]] | None = None,
    ) -> Any:
        """Apply status changes (and extra column updates) and record one event, atomically."""
        now = time.time()
        done: list[Change] = []
        async with self.engine.begin() as conn:
            for vid, status in changes:
                before = await conn.scalar(select(_VAR.c.status).where(_VAR.c.id == vid))
                if before is None:
                    raise LookupError(f"no prompt variant {vid}")
                values = {"status": status, "updated_at": now, **(extra or {}).get(vid, {})}
                await conn.execute(update(_VAR).where(_VAR.c.id == vid).values(**values))
                done.append((vid, str(before), status))
            result = await conn.execute(
                insert(_EVENT).values(
                    at=now,
                    kind=kind,
                    variant_id=variant_id,
                    actor=actor,
                    reason=reason,
                    changes=json.dumps(done),
                )
            )
            eid = _pk(result)
            event = (await conn.execute(select(_EVENT).where(_EVENT.c.id == eid))).one()
        if done:
            self.live.invalidate()
        return event

    async def record_event(
        self, kind: str, *, actor: str, variant_id: int | None = None, reason: str = ""
    ) -> Any:
        """An event that changes no status (a variant added, a proposal)."""
        return await self.change([], kind=kind, actor=actor, variant_id=variant_id, reason=reason)

    async def events(self, limit: int = 20) -> list[Any]:
        """Newest tuning events first."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(_EVENT).order_by(_EVENT.c.id.desc()).limit(limit))
            return list(rows)

    async def last_undoable(self) -> Any | None:
        """The newest status change that was not undone (undos themselves are not undone)."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(_EVENT)
                .where(
                    _EVENT.c.undone_by.is_(None),
                    _EVENT.c.changes != "[]",
                    _EVENT.c.kind != "undone",
                )
                .order_by(_EVENT.c.id.desc())
                .limit(1)
            )
            return rows.first()

    async def mark_undone(self, event_id: int, by: int) -> None:
        """Link an event to the event that reversed it."""
        async with self.engine.begin() as conn:
            await conn.execute(update(_EVENT).where(_EVENT.c.id == event_id).values(undone_by=by))

    # --- assignments ---------------------------------------------------------------------
    async def assignment(self, conversation: str) -> Any | None:
        """The conversation's current variant assignment."""
        async with self.engine.connect() as conn:
            query = select(_ASSIGN).where(_ASSIGN.c.conversation == conversation)
            return (await conn.execute(query)).first()

    async def assign(
        self, conversation: str, variant_id: int, epoch: int, at: float | None = None
    ) -> None:
        """Give a conversation a (new) variant, starting its turn count at one.

        Only the selector's first turn of an assignment writes here; the turns after it are
        counted in memory (see ``bot/feedback/cache.py``).
        """
        at = time.time() if at is None else at
        values = {"variant_id": variant_id, "epoch": epoch, "turns": 1, "assigned_at": at}
        if self.transact is not None:
            await self.transact(_assign, {"conversation": conversation, **values})
            return
        async with self.engine.begin() as conn:
            changed = await conn.execute(
                update(_ASSIGN).where(_ASSIGN.c.conversation == conversation).values(**values)
            )
            if not changed.rowcount:
                await conn.execute(insert(_ASSIGN).values(conversation=conversation, **values))

    async def forget_assignments(self, accounts: Sequence[str]) -> list[str]:
        """Delete the assignments of the accounts' conversations; return their keys.

        ``/forget`` hooks get account keys only and run after the admin feature deleted the
        person's messages, so a conversation of theirs is recognised two ways: a direct chat
        keyed by the account itself (``platform:user_id``, and its threads), and any
        conversation that no stored message belongs to any more (a DM whose chat id is not
        the user id, or a group only they spoke in). An assignment is only a sticky choice of
        variant: dropping one that was not theirs costs a fresh draw, nothing else.
        """
        keys = list(accounts)
        conv = _ASSIGN.c.conversation
        orphan = ~select(_INBOUND.c.id).where(_INBOUND.c.conversation == conv).exists()
        theirs = or_(conv.in_(keys), *(conv.like(_escape(k) + ":%", escape="\\") for k in keys))
        async with self.engine.begin() as conn:
            found = [str(r.conversation) for r in await conn.execute(
                select(conv).where(or_(theirs, orphan))
            )]  # fmt: skip
            if found:
                await conn.execute(delete(_ASSIGN).where(conv.in_(found)))
        return found


_REASSIGN = (
    update(_ASSIGN)
    .where(_ASSIGN.c.conversation == bindparam("b_conv"))
    .values(
        variant_id=bindparam("b_variant"),
        epoch=bindparam("b_epoch"),
        turns=bindparam("b_turns"),
        assigned_at=bindparam("b_at"),
    )
)

_NEW_ASSIGNMENT = insert(_ASSIGN).values(
    conversation=bindparam("b_conv"),
    variant_id=bindparam("b_variant"),
    epoch=bindparam("b_epoch"),
    turns=bindparam("b_turns"),
    assigned_at=bindparam("b_at"),
)


def _assign(tx: Tx, values: dict[str, Any]) -> None:
    """The assignment as one transaction of the store's writer (see ``FeedbackRepo.assign``)."""
    params = {
        "b_conv": values["conversation"],
        "b_variant": values["variant_id"],
        "b_epoch": values["epoch"],
        "b_turns": values["turns"],
        "b_at": values["assigned_at"],
    }
    if not tx.execute(_REASSIGN, params):
        tx.execute(_NEW_ASSIGNMENT, params)


def _escape(text: str) -> str:
    """``text`` as a literal LIKE prefix (backslash is the escape character)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
