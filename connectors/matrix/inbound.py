"""Delivering one sync batch: invites, timelines (with gaps filled), reactions, redactions.

The sync token is only advanced by the caller after :meth:`Inbound.deliver` returned, i.e.
after every event of the batch was accepted by the sink; if the sink fails, the same batch is
fetched again later and the events already accepted are skipped (``delivered``).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from nio import (
    AsyncClient,
    InviteMemberEvent,
    JoinError,
    MatrixRoom,
    MegolmEvent,
    MessageDirection,
    RedactionEvent,
    RoomGetEventResponse,
    RoomMemberEvent,
    RoomMessagesError,
    SyncResponse,
)

from opencomputer.bot.connector import Emit, RuntimeStopped
from opencomputer.bot.events import Command, Message, Reaction
from opencomputer.bot.quarantine import FailureCounter, Quarantine
from opencomputer.bot.storage.engine import is_transient
from opencomputer.bot.text import clean_event
from opencomputer.connectors.matrix.state import SyncState
from opencomputer.connectors.matrix.translate import PLATFORM, Translator, chat_for

__all__ = ["DeliveryError", "Inbound"]

logger = logging.getLogger(__name__)

MAX_BACKFILL = 1000
"""Events fetched per room to fill one gap; a bot that was down for longer skips the rest."""
_OWN_CACHE = 10_000


class DeliveryError(Exception):
    """The sink did not accept an event; the batch is retried."""


class Inbound:
    """Turns sync batches into core events for the sink."""

    def __init__(
        self,
        client: AsyncClient,
        emit: Emit,
        state: SyncState,
        *,
        may_invite: Callable[[str], bool],
        on_encrypted: Callable[[MatrixRoom, Any], Awaitable[None]],
        command_prefix: str,
        quarantine: Quarantine | None = None,
    ) -> None:
        self.client = client
        self.quarantine = quarantine
        self._failures = FailureCounter(limit=3)
        self.emit = emit
        self.state = state
        self.may_invite = may_invite
        self.on_encrypted = on_encrypted
        self.translator = Translator(client.user, self.is_own_event, command_prefix)
        self.delivered: set[str] = set()
        self._own: OrderedDict[str, bool] = OrderedDict()

    # --- own events ----------------------------------------------------------------------
    def remember_own(self, event_id: str) -> None:
        """Note an event the bot sent (replies, reactions and mentions refer to them)."""
        self._cache(event_id, True)

    def _cache(self, event_id: str, own: bool) -> None:
        self._own[event_id] = own
        self._own.move_to_end(event_id)
        while len(self._own) > _OWN_CACHE:
            self._own.popitem(last=False)

    async def is_own_event(self, room_id: str, event_id: str) -> bool:
        """Whether the bot sent ``event_id`` (asks the homeserver once per unknown id)."""
        known = self._own.get(event_id)
        if known is not None:
            return known
        resp = await self.client.room_get_event(room_id, event_id)
        own = isinstance(resp, RoomGetEventResponse) and resp.event.sender == self.client.user
        self._cache(event_id, own)
        return own

    # --- batches -------------------------------------------------------------------------
    async def deliver(self, resp: SyncResponse, since: str | None) -> None:
        """Hand every new event of ``resp`` to the sink; ``since`` None means first start."""
        for room_id, info in resp.rooms.invite.items():
            await self._invite(room_id, info.invite_state)
        for room_id, info in resp.rooms.join.items():
            room = self.client.rooms.get(room_id)
            if room is None:
                continue
            events = list(info.timeline.events)
            joined_at = _my_membership(events, self.client.user, "join")
            if since is None:
                events = []  # first start ever: history is not a conversation with us
            elif joined_at is not None:
                invited_at = _my_membership(events[:joined_at], self.client.user, "invite")
                events = events[(invited_at if invited_at is not None else joined_at) + 1 :]
            elif info.timeline.limited and info.timeline.prev_batch:
                events = await self._backfill(room_id, info.timeline.prev_batch, since) + events
            if room.encrypted and (since is None or joined_at is not None):
                await self.on_encrypted(room, None)
            for event in events:
                await self._event(room, event)

    async def _invite(self, room_id: str, invite_state: list[Any]) -> None:
        me = self.client.user
        inviter = next(
            (
                e.sender
                for e in invite_state
                if isinstance(e, InviteMemberEvent)
                and e.state_key == me
                and e.membership == "invite"
            ),
            None,
        )
        if inviter is None:
            return
        if not self.may_invite(inviter):
            logger.info(
                "declining invite to %s from %s: only admins may invite "
                "(add matrix:%s to OC_ADMINS, or set OC_DM_POLICY=open)",
                room_id,
                inviter,
                inviter,
            )
            await self.client.room_leave(room_id)
            return
        resp = await self.client.join(room_id)
        if isinstance(resp, JoinError):
            logger.warning("could not join %s (invited by %s): %s", room_id, inviter, resp)
        else:
            logger.info("joined %s (invited by %s)", room_id, inviter)

    async def _backfill(self, room_id: str, prev_batch: str, since: str) -> list[Any]:
        """Events between the last sync and this batch's timeline (the sync skipped them)."""
        older: list[Any] = []
        token: str | None = prev_batch
        while token and len(older) < MAX_BACKFILL:
            resp = await self.client.room_messages(
                room_id, start=token, end=since, direction=MessageDirection.back, limit=100
            )
            if isinstance(resp, RoomMessagesError):
                logger.warning("could not fetch missed events of %s: %s", room_id, resp)
                break
            older.extend(resp.chunk)
            if not resp.chunk or not resp.end or resp.end == token:
                break
            token = resp.end
        if older:
            logger.info("fetched %d events of %s missed by the sync", len(older), room_id)
        return older[::-1]

    async def _event(self, room: MatrixRoom, event: Any) -> None:
        event_id = getattr(event, "event_id", None)
        if not event_id or event_id in self.delivered:
            return
        if isinstance(event, MegolmEvent):
            await self.on_encrypted(room, event)
            self.delivered.add(event_id)
            return
        core: Message | Command | Reaction | None
        if isinstance(event, RedactionEvent):
            core = self._unreaction(room, event)
        else:
            try:
                core = await self.translator.translate(room, event)
            except (aiohttp.ClientError, OSError, TimeoutError):
                raise  # the homeserver is unreachable: retry the batch
            except Exception as exc:
                # One malformed event must not block the sync forever: keep it aside.
                await self._poisoned(event_id, event, f"cannot translate: {exc!r}")
                core = None
        if core is not None:
            try:
                await self.emit(clean_event(core))
            except Exception as exc:
                if (
                    not isinstance(exc, RuntimeStopped)
                    and not is_transient(exc)
                    and self._failures.failed(event_id)
                ):
                    self._failures.forget(event_id)
                    await self._poisoned(event_id, event, f"not taken 3 times: {exc!r}")
                    self.delivered.add(event_id)
                    return
                raise DeliveryError(f"{type(core).__name__} {event_id}: {exc!r}") from exc
            if isinstance(core, Reaction) and core.added:
                self.state.remember_reaction(
                    event_id, room.room_id, core.message_id, core.emoji, core.user.id
                )
            elif isinstance(core, Reaction):
                self.state.reactions.pop(event.redacts, None)
        self.delivered.add(event_id)

    async def _poisoned(self, event_id: str, event: Any, reason: str) -> None:
        raw = getattr(event, "source", None) or event
        if self.quarantine is not None:
            await self.quarantine.hold(event_id, raw, reason)
        else:
            logger.warning("matrix: event %s skipped (%s)", event_id, reason)

    def _unreaction(self, room: MatrixRoom, event: RedactionEvent) -> Reaction | None:
        """Turn the redaction of a remembered reaction into its removal."""
        known = self.state.reactions.get(event.redacts)
        if known is None:
            return None
        _room_id, target, key, user_id = known
        return Reaction(
            platform=PLATFORM,
            event_id=event.event_id,
            chat=chat_for(room),
            user=self.translator.user(room, user_id),
            message_id=target,
            emoji=key,
            added=False,
            raw=event.source,
        )


def _my_membership(events: list[Any], me: str, membership: str) -> int | None:
    """Index of the last event that moved the bot into ``membership``."""
    found = None
    for i, event in enumerate(events):
        if (
            isinstance(event, RoomMemberEvent)
            and event.state_key == me
            and event.membership == membership
            and event.prev_membership != membership
        ):
            found = i
    return found
