"""Data rights: everything stored about a person, exported or deleted.

Other features and channels add their own data through two hooks (``bot/hooks.py``):
``oc_export(person, accounts) -> dict`` (sections of the export) and
``oc_forget(person, accounts) -> str`` (a line saying what was removed).
``accounts`` are user keys (``platform:id``) of every linked account of the person.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson
from sqlalchemy import and_, delete, or_, select

from opencomputer.bot.approvals import ApprovalRow
from opencomputer.bot.events import Address
from opencomputer.bot.identity import LinkCodeRow
from opencomputer.bot.storage.models import (
    ConversationRow,
    InboundRow,
    ReactionRow,
    ReplyPartRow,
    ReplyPostRow,
    ReplyRow,
)

__all__ = ["ExportHook", "ForgetHook", "export_person", "forget_person"]

logger = logging.getLogger(__name__)

ExportHook = Callable[[str, list[str]], Awaitable[dict[str, Any]]]
ForgetHook = Callable[[str, list[str]], Awaitable[str]]

_IN = InboundRow.__table__  # type: ignore[attr-defined]
_REPLY = ReplyRow.__table__  # type: ignore[attr-defined]
_PART = ReplyPartRow.__table__  # type: ignore[attr-defined]
_POST = ReplyPostRow.__table__  # type: ignore[attr-defined]
_REACT = ReactionRow.__table__  # type: ignore[attr-defined]
_CONV = ConversationRow.__table__  # type: ignore[attr-defined]
_APPROVAL = ApprovalRow.__table__  # type: ignore[attr-defined]
_LINKCODE = LinkCodeRow.__table__  # type: ignore[attr-defined]


def _of_accounts(table: Any, accounts: Sequence[str]) -> Any:
    """``(platform, user_id)`` matches any of the accounts."""
    pairs = [key.split(":", 1) for key in accounts]
    return or_(*(and_(table.c.platform == p, table.c.user_id == u) for p, u in pairs))


def _rows(result: Any) -> list[dict[str, Any]]:
    return [dict(row._mapping) for row in result]


async def _footprint(
    app: Any, accounts: Sequence[str]
) -> tuple[list[int], list[int], set[str], set[str]]:
    """Inbound ids, reply ids, conversations spoken in, and direct conversations."""
    async with app.store.engine.connect() as conn:
        inbound = list(
            await conn.execute(
                select(_IN.c.id, _IN.c.conversation, _IN.c.chat_kind).where(
                    _of_accounts(_IN, accounts)
                )
            )
        )
        spoken = {row.conversation for row in inbound}
        direct = {row.conversation for row in inbound if row.chat_kind == "direct"}
        direct |= {f"{key}" for key in accounts}  # a DM's chat id is the user id on our platforms
        inbound_ids = [int(row.id) for row in inbound]
        replies = await conn.execute(
            select(_REPLY.c.id).where(
                or_(_REPLY.c.inbound_id.in_(inbound_ids), _REPLY.c.conversation.in_(direct))
            )
        )
        reply_ids = [int(row.id) for row in replies]
    return inbound_ids, reply_ids, spoken, direct


async def _threads(app: Any, conversations: set[str]) -> list[str]:
    runtime = app.runtime
    threads = []
    for key in sorted(conversations):
        epoch = await app.store.epoch(key)
        threads += [runtime.thread_id(Address.parse(key), e) for e in range(epoch + 1)]
    return threads


async def export_person(app: Any, person: str, accounts: list[str]) -> dict[str, Any]:
    """Everything stored about the person, as one JSON-ready dict."""
    inbound_ids, reply_ids, _spoken, direct = await _footprint(app, accounts)
    data: dict[str, Any] = {"person": person, "accounts": accounts}
    async with app.store.engine.connect() as conn:
        data["messages"] = _rows(await conn.execute(select(_IN).where(_IN.c.id.in_(inbound_ids))))
        data["replies"] = _rows(
            await conn.execute(select(_REPLY).where(_REPLY.c.id.in_(reply_ids)))
        )
        data["reactions"] = _rows(
            await conn.execute(select(_REACT).where(_of_accounts(_REACT, accounts)))
        )
        data["approvals"] = _rows(
            await conn.execute(select(_APPROVAL).where(_APPROVAL.c.user_key.in_(accounts)))
        )
    services = app.extras["admin"]
    data["access"] = {
        key: services.policy.role(f"user:{key}")
        for key in accounts
        if services.policy.role(f"user:{key}")
    }
    data["audit"] = [
        {"seq": e.seq, "at": e.at, "action": e.action, "detail": e.detail}
        for key in accounts
        for e in await services.audit_recent(10_000, actor=key)
    ]
    conversations: dict[str, list[Any]] = {}
    for thread in await _threads(app, direct):
        messages = await app.runtime.agent.history(thread)
        if messages:
            conversations[thread] = messages
    data["conversation_history"] = conversations
    for result in app.hooks.call.oc_export(person=person, accounts=accounts):
        try:
            data.update(await result)
        except Exception:
            logger.exception("an export hook failed")
    plain: dict[str, Any] = orjson.loads(orjson.dumps(data, default=str))  # JSON types only
    return plain


async def forget_person(app: Any, person: str, accounts: list[str]) -> list[str]:
    """Delete everything stored about the person; return lines saying what was removed."""
    inbound_ids, reply_ids, spoken, direct = await _footprint(app, accounts)
    threads = await _threads(app, spoken | direct)
    async with app.store.engine.begin() as conn:
        reactions = await conn.execute(
            delete(_REACT).where(
                or_(_of_accounts(_REACT, accounts), _REACT.c.reply_id.in_(reply_ids))
            )
        )
        await conn.execute(delete(_PART).where(_PART.c.reply_id.in_(reply_ids)))
        keys = [f"in{i}" for i in inbound_ids] + [f"reply{r}" for r in reply_ids]
        await conn.execute(delete(_POST).where(_POST.c.key.in_(keys)))  # the delivery ledger
        await conn.execute(delete(_REPLY).where(_REPLY.c.id.in_(reply_ids)))
        await conn.execute(delete(_IN).where(_IN.c.id.in_(inbound_ids)))
        await conn.execute(delete(_CONV).where(_CONV.c.key.in_(direct)))
        await conn.execute(delete(_APPROVAL).where(_APPROVAL.c.user_key.in_(accounts)))
        await conn.execute(delete(_LINKCODE).where(_LINKCODE.c.user_key.in_(accounts)))
    epochs = getattr(app.store, "_epochs", None)
    for key in direct:
        if isinstance(epochs, dict):
            epochs.pop(key, None)  # the cached epoch would outlive the deleted row
    saver = app.runtime.agent.graph.checkpointer
    for thread in threads:
        await saver.adelete_thread(thread)
    services = app.extras["admin"]
    for key in accounts:
        await services.policy.forget_user(key)
        await services.identity.forget(key)
    await services.approvals.load()
    done = [
        f"{len(inbound_ids)} messages you sent and {len(reply_ids)} replies to them",
        f"{reactions.rowcount or 0} reactions",
        f"the history of {len(threads)} conversation threads"
        + (" (group chats you spoke in start afresh)" if spoken - direct else ""),
        "pending approvals, link codes, pairing codes and account links",
    ]
    for result in app.hooks.call.oc_forget(person=person, accounts=accounts):
        try:
            line = await result
            if line:
                done.append(line)
        except Exception:  # one failing must not keep the others' data
            logger.exception("a forget hook failed")
    return done
