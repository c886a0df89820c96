"""The feedback feature's runtime side: reactions become votes, failures are recorded.

One vote per user per reply: a user's vote is recomputed from their current reactions on the
reply (the core's ``reactions`` table), the newest rating emoji winning, so adding 👍 then ❤️
is one +1, switching to 👎 makes it -1, and removing the last rating emoji removes the vote.
A vote on a reply whose ``failure`` is set is kept but not blamed on the prompt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import TYPE_CHECKING, Any

from opencomputer.bot.config import Settings
from opencomputer.bot.events import Message, Reaction
from opencomputer.bot.feedback.guard import ToolFailureTap
from opencomputer.bot.feedback.repo import FeedbackRepo
from opencomputer.bot.feedback.scoring import EmojiTable
from opencomputer.bot.feedback.selector import Selector
from opencomputer.bot.feedback.tuner import Tuner
from opencomputer.bot.storage.store import SqlStore

if TYPE_CHECKING:
    from opencomputer.bot.feedback.proposer import ChatModel
    from opencomputer.bot.runtime import ReplyRecord

__all__ = ["FeedbackService"]

logger = logging.getLogger(__name__)


class FeedbackService:
    """Votes, notes, failures; owns the selector and the tuner."""

    def __init__(
        self,
        settings: Settings,
        store: SqlStore,
        *,
        llm: ChatModel | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.llm = llm
        self.repo = FeedbackRepo(store.engine, store.transact)
        self.table = EmojiTable.from_csv(settings.feedback_positive, settings.feedback_negative)
        self.tuner = Tuner(settings, self.repo)
        self.selector = Selector(settings, self.repo, store.epoch, rng)
        self._schedule: asyncio.Task[None] | None = None
        self.tools_tap: ToolFailureTap | None = None  # set by the feature's setup

    async def start(self) -> None:
        """Seed the default variant, start the proposal schedule if set."""
        await self.tuner.ensure_default()
        hours = self.settings.tuning_propose_hours
        if hours > 0 and self.llm is not None:
            self._schedule = asyncio.create_task(self._propose_every(hours * 3600))

    async def stop(self) -> None:
        """Stop the schedule."""
        if self._schedule is not None:
            self._schedule.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._schedule

    # --- listeners ---------------------------------------------------------------------
    async def on_reaction(self, reaction: Reaction, reply_id: int | None) -> None:
        """``runtime.reaction_listeners`` entry; a failure here is logged, never raised.

        The reaction itself is already stored by the core; raising would make the connector
        treat the event as undelivered.
        """
        try:
            await self._rate(reaction, reply_id)
        except Exception:
            logger.exception("could not record feedback for %s", reaction.event_id)

    async def _rate(self, reaction: Reaction, reply_id: int | None) -> None:
        if reply_id is None:
            return  # not on a bot reply
        if self.table.score(reaction.emoji, reaction.platform) is None:
            return  # not a rating emoji: the vote cannot have changed
        reply = await self.repo.reply(reply_id)
        if reply is None:
            return
        user_key = reaction.user.key
        current = [
            r
            for r in await self.store.reactions_for_reply(reply_id)
            if r.platform == reaction.platform and r.user_id == reaction.user.id
        ]
        scored = [
            (float(r.created_at), int(r.id), r.emoji, self.table.score(r.emoji, r.platform))
            for r in current
        ]
        scored = [s for s in scored if s[3] is not None]
        blamed = reply.failure is None and not await self.repo.has_failure(reply_id)
        if scored:
            _at, _id, emoji, score = max(scored)
            changed = await self.repo.set_vote(reply, user_key, int(score or 0), emoji, blamed)
        else:
            changed = await self.repo.delete_vote(reply_id, user_key)
        if changed and blamed and reply.variant_id is not None:
            await self.tuner.evaluate(int(reply.variant_id))

    async def on_reply(self, record: ReplyRecord) -> None:
        """``runtime.reply_listeners`` entry: remember replies that a failure produced."""
        failure = record.meta.failure
        tool_errors = self.tools_tap.take(record.meta.run_id) if self.tools_tap else 0
        if not failure and tool_errors:
            failure = f"tool: {tool_errors} tool call(s) failed"
        if not failure:
            return
        kind, _, detail = failure.partition(":")
        await self.repo.add_failure(
            reply_id=record.reply_id,
            variant_id=record.meta.variant_id,
            conversation=record.address.key,
            kind=kind.strip()[:32],
            detail=detail.strip(),
        )

    async def reason_middleware(self, event: Any, call_next: Any) -> None:
        """A reply to a rated answer is also kept as the reason for the rating."""
        if isinstance(event, Message) and event.reply_to:
            try:
                await self._maybe_reason(event)
            except Exception:
                logger.exception("could not store a feedback reason")
        await call_next(event)

    async def _maybe_reason(self, msg: Message) -> None:
        reply = await self.store.reply_for_message(msg.platform, msg.chat.id, msg.reply_to or "")
        if reply is None:
            return
        votes = await self.repo.votes(int(reply.id))
        if any(v.user_key == msg.user.key for v in votes):
            await self.repo.add_note(
                user_key=msg.user.key,
                conversation=msg.address.key,
                reply_id=int(reply.id),
                variant_id=reply.variant_id,
                text=msg.text,
            )

    async def note(self, msg_user_key: str, conversation: str, text: str) -> Any | None:
        """``/feedback <text>``: a note on the conversation's last answer (if any)."""
        last = await self.store.last_reply(conversation)
        reply_id = int(last.id) if last is not None else None
        variant_id = last.variant_id if last is not None else None
        await self.repo.add_note(
            user_key=msg_user_key,
            conversation=conversation,
            reply_id=reply_id,
            variant_id=variant_id,
            text=text,
        )
        return last

    # --- proposals ---------------------------------------------------------------------
    async def propose(self, *, actor: str, platform: str = "", chat_key: str = "") -> Any:
        """Ask the model for a candidate in the pool that serves this chat (or globally)."""
        from opencomputer.bot.feedback.proposer import propose_candidate
        from opencomputer.bot.feedback.selector import resolve_pool
        from opencomputer.bot.feedback.tuner import TuningError

        if self.llm is None:
            raise TuningError("No model client is available to write a candidate.")
        pool = resolve_pool(await self.repo.live_for(platform, chat_key), platform, chat_key)
        if pool is None:
            raise TuningError("There is no prompt variant yet.")
        return await propose_candidate(
            tuner=self.tuner,
            repo=self.repo,
            llm=self.llm,
            model=self.settings.model,
            pool=pool,
            actor=actor,
        )

    async def _propose_every(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await self.propose(actor="schedule")
            except Exception as exc:
                logger.warning("scheduled prompt proposal skipped: %s", exc)
