"""Decisions about variants: automatic promotion and rollback, and the admin's own moves.

Promotion needs evidence: both sides have ``tuning_min_ratings`` blamed ratings and
P(candidate rate > incumbent rate + margin) >= ``tuning_confidence``. The margin guards against
the many looks a continuously watched test takes (every rating is one). Rollback is quicker
(``tuning_rollback_min_ratings``): a worse variant costs users every turn it stays. A promoted
variant is also watched after its promotion and rolled back if it does worse than the one it
replaced. Every change goes through :meth:`FeedbackRepo.change`, which records what it did,
so :meth:`Tuner.undo` can reverse it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from opencomputer.bot.config import Settings
from opencomputer.bot.feedback.models import Author, Scope, Status
from opencomputer.bot.feedback.repo import FeedbackRepo
from opencomputer.bot.feedback.selector import Pool, resolve_pool
from opencomputer.bot.feedback.stats import prob_greater
from opencomputer.graphs.agent.prompts import DEFAULT_SYSTEM_PROMPT

__all__ = ["AuditHook", "Tuner", "TuningError"]

logger = logging.getLogger(__name__)

AuditHook = Callable[[Any], Awaitable[None]]
SETTINGS_AUTHOR = "settings"


class TuningError(Exception):
    """An admin request that cannot be done; the message says why."""


class Tuner:
    """Watches the evidence and changes variant statuses (each change audited)."""

    def __init__(self, settings: Settings, repo: FeedbackRepo) -> None:
        self.settings = settings
        self.repo = repo
        self.audit_hooks: list[AuditHook] = []

    async def _changed(self, event: Any) -> Any:
        logger.info(
            "prompt tuning: %s variant=%s by %s (%s) %s",
            event.kind, event.variant_id, event.actor, event.reason, event.changes,
        )  # fmt: skip
        for hook in self.audit_hooks:
            try:
                await hook(event)
            except Exception as exc:
                logger.warning("audit hook failed for tuning event %s: %s", event.id, exc)
        return event

    # --- seeding -----------------------------------------------------------------------
    async def ensure_default(self) -> None:
        """Make the configured system prompt the global default variant.

        The first start seeds it; when ``OC_SYSTEM_PROMPT`` changes later, the new text becomes
        a new version that replaces the old one (recorded like any promotion).
        """
        text = (self.settings.system_prompt or DEFAULT_SYSTEM_PROMPT).strip()
        rows = await self.repo.variants()
        seeded = [r for r in rows if r.created_by == SETTINGS_AUTHOR]
        if seeded and seeded[-1].template == text:
            return
        if rows and not seeded:
            return  # variants were created by hand: the operator manages them
        has_active = any(
            r.scope == Scope.GLOBAL and r.status in (Status.ACTIVE, Status.PINNED) for r in rows
        )
        status = Status.CANDIDATE if seeded and has_active else Status.ACTIVE
        row = await self.repo.add_variant(
            name="default",
            template=text,
            scope=Scope.GLOBAL,
            scope_key="",
            status=status,
            author=Author.HUMAN,
            created_by=SETTINGS_AUTHOR,
            parent_id=int(seeded[-1].id) if seeded else None,
            note="from settings (OC_SYSTEM_PROMPT or the built-in default)",
        )
        await self._changed(
            await self.repo.record_event("added", actor=SETTINGS_AUTHOR, variant_id=int(row.id))
        )
        if status == Status.CANDIDATE:
            await self.promote(int(row.id), actor=SETTINGS_AUTHOR, reason="system prompt changed")

    # --- pools -------------------------------------------------------------------------
    async def pool_of(self, variant: Any) -> Pool | None:
        """The pool a variant competes in."""
        scope, key = variant.scope, variant.scope_key
        platform = key.split(":", 1)[0] if scope == Scope.CHAT else key
        chat_key = key if scope == Scope.CHAT else ""
        rows = await self.repo.live_for(platform, chat_key)
        return resolve_pool(rows, platform, chat_key, scope=scope)

    # --- automatic decisions -----------------------------------------------------------
    async def evaluate(self, variant_id: int) -> list[Any]:
        """Check the pool of a variant that just got a rating; apply what the evidence says."""
        if not self.settings.tuning_auto:
            return []
        variant = await self.repo.variant(variant_id)
        if variant is None or variant.status == Status.RETIRED:
            return []
        pool = await self.pool_of(variant)
        if pool is None or pool.pinned is not None or pool.incumbent is None:
            return []
        try:
            return await self.evaluate_pool(pool)
        except TuningError as exc:  # a concurrent rating already made this move
            logger.info("tuning decision skipped: %s", exc)
            return []

    async def evaluate_pool(self, pool: Pool) -> list[Any]:
        """Promotions, rollbacks of candidates, and the post-promotion watch."""
        s = self.settings
        inc = pool.incumbent
        assert inc is not None
        ids = [int(m.id) for m in pool.members]
        posts = await self.repo.posteriors(ids)
        p_inc = posts[int(inc.id)]
        events: list[Any] = []
        for cand in pool.candidates:
            p_c = posts[int(cand.id)]
            if min(p_c.n, p_inc.n) >= s.tuning_min_ratings:
                better = prob_greater(p_c, p_inc, s.tuning_margin)
                if better >= s.tuning_confidence:
                    reason = (
                        f"P(better by {s.tuning_margin:.2f}) = {better:.3f} after "
                        f"{p_c.n} vs {p_inc.n} ratings"
                    )
                    events.append(
                        await self.promote(int(cand.id), actor="tuner", reason=reason, auto=True)
                    )
                    return events  # the pool changed; the next rating re-evaluates
            if min(p_c.n, p_inc.n) >= s.tuning_rollback_min_ratings:
                worse = prob_greater(p_inc, p_c, s.tuning_rollback_margin)
                if worse >= s.tuning_confidence:
                    reason = f"P(worse) = {worse:.3f} after {p_c.n} vs {p_inc.n} ratings"
                    events.append(
                        await self.retire(int(cand.id), actor="tuner", reason=reason, auto=True)
                    )
        if inc.replaced_id is not None and inc.promoted_at is not None and inc.scope == pool.scope:
            events.extend(await self._watch_promoted(inc))
        return events

    async def _watch_promoted(self, inc: Any) -> list[Any]:
        s = self.settings
        old = await self.repo.variant(int(inc.replaced_id))
        if old is None or old.status != Status.RETIRED:
            return []
        since = (await self.repo.posteriors([int(inc.id)], since={int(inc.id): inc.promoted_at}))[
            int(inc.id)
        ]
        before = (await self.repo.posteriors([int(old.id)]))[int(old.id)]
        if min(since.n, before.n) < s.tuning_min_ratings:
            return []
        worse = prob_greater(before, since, s.tuning_rollback_margin)
        if worse < s.tuning_confidence:
            return []
        reason = f"since promotion P(worse than #{old.id}) = {worse:.3f} after {since.n} ratings"
        return [await self.rollback(int(inc.id), actor="tuner", reason=reason, auto=True)]

    # --- moves (admin or automatic) ----------------------------------------------------
    async def get(self, variant_id: int) -> Any:
        """A variant by id, or a :class:`TuningError` naming the missing id."""
        row = await self.repo.variant(variant_id)
        if row is None:
            raise TuningError(f"There is no prompt variant #{variant_id}.")
        return row

    async def add(
        self,
        template: str,
        *,
        actor: str,
        scope: str = Scope.GLOBAL,
        scope_key: str = "",
        name: str | None = None,
        author: str = Author.HUMAN,
        parent_id: int | None = None,
        note: str = "",
    ) -> Any:
        """A new candidate (it starts with the exploration share)."""
        text = template.strip()
        if not text:
            raise TuningError("The prompt text is empty.")
        if parent_id is None and name is None:
            pool = await self.repo.live_for(
                scope_key.split(":", 1)[0] if scope == Scope.CHAT else scope_key,
                scope_key if scope == Scope.CHAT else "",
            )
            incumbent = next((r for r in pool if r.status == Status.ACTIVE), None)
            parent_id = int(incumbent.id) if incumbent is not None else None
        if name is None and parent_id is not None:
            parent = await self.repo.variant(parent_id)
            name = parent.name if parent is not None else None
        row = await self.repo.add_variant(
            name=name or "custom",
            template=text,
            scope=scope,
            scope_key=scope_key,
            status=Status.CANDIDATE,
            author=author,
            created_by=actor,
            parent_id=parent_id,
            note=note,
        )
        kind = "proposed" if author == Author.MACHINE else "added"
        await self._changed(
            await self.repo.record_event(kind, actor=actor, variant_id=int(row.id), reason=note)
        )
        return row

    async def promote(
        self, variant_id: int, *, actor: str, reason: str = "", auto: bool = False
    ) -> Any:
        """Make a variant the active one of its scope; the previous one is retired."""
        row = await self.get(variant_id)
        if row.status == Status.ACTIVE:
            raise TuningError(f"#{variant_id} is already active.")
        pool = await self.pool_of(row)
        changes: list[tuple[int, str]] = [(variant_id, Status.ACTIVE)]
        replaced = None
        if pool is not None and pool.incumbent is not None and pool.incumbent.scope == row.scope:
            if int(pool.incumbent.id) != variant_id:
                replaced = int(pool.incumbent.id)
                changes.append((replaced, Status.RETIRED))
        extra: dict[int, dict[str, Any]] = {variant_id: {"promoted_at": time.time()}}
        if replaced is not None:
            extra[variant_id]["replaced_id"] = replaced
        event = await self.repo.change(
            changes,
            kind="auto_promoted" if auto else "promoted",
            actor=actor,
            reason=reason,
            variant_id=variant_id,
            extra=extra,
        )
        return await self._changed(event)

    async def retire(
        self, variant_id: int, *, actor: str, reason: str = "", auto: bool = False
    ) -> Any:
        """Stop serving a variant (the global incumbent can only be replaced, not retired)."""
        row = await self.get(variant_id)
        if row.status == Status.RETIRED:
            raise TuningError(f"#{variant_id} is already retired.")
        if row.status == Status.ACTIVE and row.scope == Scope.GLOBAL:
            raise TuningError(
                f"#{variant_id} is the global default: promote another variant or roll it back."
            )
        event = await self.repo.change(
            [(variant_id, Status.RETIRED)],
            kind="auto_rolled_back" if auto else "retired",
            actor=actor,
            reason=reason,
            variant_id=variant_id,
        )
        return await self._changed(event)

    async def pin(self, variant_id: int, *, actor: str, reason: str = "") -> Any:
        """Serve only this variant in its scope (no exploration) until unpinned."""
        row = await self.get(variant_id)
        if row.status == Status.PINNED:
            raise TuningError(f"#{variant_id} is already pinned.")
        pool = await self.pool_of(row)
        changes: list[tuple[int, str]] = [(variant_id, Status.PINNED)]
        if pool is not None and pool.pinned is not None:
            changes.append((int(pool.pinned.id), Status.CANDIDATE))
        event = await self.repo.change(
            changes, kind="pinned", actor=actor, reason=reason, variant_id=variant_id
        )
        return await self._changed(event)

    async def unpin(self, variant_id: int, *, actor: str, reason: str = "") -> Any:
        """Resume tuning: the pinned variant becomes the active one (or a candidate)."""
        row = await self.get(variant_id)
        if row.status != Status.PINNED:
            raise TuningError(f"#{variant_id} is not pinned.")
        pool = await self.pool_of(row)
        has_active = (
            pool is not None
            and pool.incumbent is not None
            and pool.incumbent.scope == row.scope
            and int(pool.incumbent.id) != variant_id
        )
        status = Status.CANDIDATE if has_active else Status.ACTIVE
        event = await self.repo.change(
            [(variant_id, status)], kind="unpinned", actor=actor, reason=reason,
            variant_id=variant_id,
        )  # fmt: skip
        return await self._changed(event)

    async def rollback(
        self, variant_id: int, *, actor: str, reason: str = "", auto: bool = False
    ) -> Any:
        """Retire a variant and bring back the one it replaced (or its parent)."""
        row = await self.get(variant_id)
        if row.status == Status.RETIRED:
            raise TuningError(f"#{variant_id} is already retired.")
        changes: list[tuple[int, str]] = [(variant_id, Status.RETIRED)]
        back_id = row.replaced_id or row.parent_id
        if row.status in (Status.ACTIVE, Status.PINNED):
            back = await self.repo.variant(int(back_id)) if back_id is not None else None
            same_scope = back is not None and (back.scope, back.scope_key) == (
                row.scope,
                row.scope_key,
            )
            if back is not None and same_scope:
                if back.status != Status.ACTIVE:
                    changes.append((int(back.id), Status.ACTIVE))
            elif row.scope == Scope.GLOBAL:
                raise TuningError(
                    f"#{variant_id} replaced nothing; there is nothing to go back to."
                )
            # else: a chat or platform variant without a predecessor in its own scope; once it
            # is retired the broader scope's active variant serves again
        event = await self.repo.change(
            changes,
            kind="auto_rolled_back" if auto else "rolled_back",
            actor=actor,
            reason=reason,
            variant_id=variant_id,
        )
        return await self._changed(event)

    async def undo(self, *, actor: str) -> Any:
        """Reverse the newest change that was not reversed yet."""
        last = await self.repo.last_undoable()
        if last is None:
            raise TuningError("There is no change to undo.")
        changes = [(int(vid), str(before)) for vid, before, _after in json.loads(last.changes)]
        event = await self.repo.change(
            list(reversed(changes)),
            kind="undone",
            actor=actor,
            reason=f"undo of event {last.id} ({last.kind})",
            variant_id=last.variant_id,
        )
        await self.repo.mark_undone(int(last.id), int(event.id))
        return await self._changed(event)
