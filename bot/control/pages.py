"""Conversations (list, search, transcript with tool calls and votes) and prompts (variants,
ratings, promote/pin/unpin/retire/rollback) for the control room.

A transcript's tool calls and results come from the graph's checkpoint of the conversation's
current thread (``runtime.agent.history``): the database keeps what was said, the checkpoint
what the agent did in between. Each turn's steps are attached to the user message that started
it (matched by text, in order); results are cut to ``TOOL_TEXT`` characters.

Prompt moves call the tuner of the feedback feature (``app.extras["feedback"]``), the same
calls ``/prompt`` and ``opencomputer prompts`` make; the tuner writes each move to the audit log
under the admin's account. With the feedback feature off, the prompts routes say so (404).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web
from sqlalchemy import func, or_, select

from opencomputer.bot.control.auth import Admin
from opencomputer.bot.control.web import HEADERS, ControlWeb, error
from opencomputer.bot.events import Address
from opencomputer.bot.storage.models import InboundRow, ReactionRow, ReplyRow

if TYPE_CHECKING:
    from opencomputer.bot.features import Host

__all__ = ["ControlPages", "turn_steps"]

logger = logging.getLogger(__name__)

_IN = InboundRow.__table__  # type: ignore[attr-defined]
_REPLY = ReplyRow.__table__  # type: ignore[attr-defined]
_REACT = ReactionRow.__table__  # type: ignore[attr-defined]
TRANSCRIPT = 200
"""Newest inbound messages a transcript shows (with the replies to them)."""
MOVES = ("promote", "pin", "unpin", "retire", "rollback")
TOOL_TEXT = 2000
"""Characters of a tool's arguments or result a transcript shows (the rest is cut)."""


def _cut(text: str) -> str:
    return text if len(text) <= TOOL_TEXT else text[:TOOL_TEXT] + f"… [{len(text)} characters]"


def turn_steps(messages: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, str]]]]:
    """Each turn of an Ollama-format history: the user's text and its tool calls and results."""
    turns: list[tuple[str, list[dict[str, str]]]] = []
    for message in messages:
        role = message.get("role")
        if role == "user":
            turns.append((str(message.get("content") or ""), []))
        elif not turns:
            continue
        elif role == "assistant":
            for call in message.get("tool_calls") or []:
                function = call.get("function") or {}
                arguments = function.get("arguments")
                if not isinstance(arguments, str):
                    arguments = orjson.dumps(arguments or {}).decode()
                turns[-1][1].append(
                    {"kind": "call", "name": str(function.get("name", "")), "text": _cut(arguments)}
                )
        elif role == "tool":
            turns[-1][1].append(
                {
                    "kind": "result",
                    "name": str(message.get("tool_name") or message.get("name") or ""),
                    "text": _cut(str(message.get("content") or "")),
                }
            )
    return turns


class ControlPages:
    """The conversations and prompts routes."""

    def __init__(self, app: Host, web_: ControlWeb) -> None:
        self.app = app
        self.web = web_

    def routes(self) -> list[web.RouteDef]:
        """Guarded routes; prompt moves change state (CSRF)."""
        guard = self.web.guard
        return [
            web.get("/ui/api/conversations", guard(self.conversations)),
            web.get("/ui/api/transcript", guard(self.transcript)),
            web.get("/ui/api/prompts", guard(self.prompts)),
            web.post("/ui/api/prompts/{id:[0-9]+}", guard(self.move, changes=True)),
        ]

    async def conversations(self, request: web.Request, _admin: Admin) -> web.StreamResponse:
        """The 100 most recently active conversations (``?q=`` searches chat ids and texts)."""
        q = request.query.get("q", "").strip()[:200]
        query = (
            select(
                _IN.c.conversation,
                func.count().label("messages"),
                func.max(_IN.c.received_at).label("last"),
            )
            .group_by(_IN.c.conversation)
            .order_by(func.max(_IN.c.received_at).desc())
            .limit(100)
        )
        if q:
            like = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            query = query.where(
                or_(
                    _IN.c.conversation.like(like, escape="\\"),
                    _IN.c.text.like(like, escape="\\"),
                    _IN.c.user_name.like(like, escape="\\"),
                )
            )
        async with self.app.store.engine.connect() as conn:
            rows = list(await conn.execute(query))
        return _json(
            {
                "ok": True,
                "conversations": [
                    {"key": r.conversation, "messages": int(r.messages), "last": r.last}
                    for r in rows
                ],
            }
        )

    async def changes(self) -> dict[str, Any]:
        """The live ``conversations`` event: the newest message and the newest replies' state.

        It changes when a message arrives, a reply is recorded or grows, or a delivery ends,
        so an open list or transcript redraws itself (reads by primary key: cheap each second).
        """
        async with self.app.store.engine.connect() as conn:
            newest = await conn.scalar(select(func.max(_IN.c.id)))
            replies = list(
                await conn.execute(
                    select(
                        _REPLY.c.id,
                        _REPLY.c.conversation,
                        _REPLY.c.status,
                        func.length(_REPLY.c.text).label("size"),
                    )
                    .order_by(_REPLY.c.id.desc())
                    .limit(20)
                )
            )
        return {
            "message": int(newest or 0),
            "replies": [[int(r.id), r.conversation, r.status, int(r.size or 0)] for r in replies],
        }

    async def prompt_changes(self) -> dict[str, Any] | None:
        """The live ``prompts`` event: variants and their states, the newest vote, tuning
        move and reply (what the page's figures are computed from), read by primary key.
        None with the feedback feature off.
        """
        if self.app.extras.get("feedback") is None:
            return None
        from opencomputer.bot.feedback.models import (
            FeedbackVoteRow,
            PromptVariantRow,
            TuningEventRow,
        )

        variants = PromptVariantRow.__table__  # type: ignore[attr-defined]
        votes = FeedbackVoteRow.__table__  # type: ignore[attr-defined]
        moves = TuningEventRow.__table__  # type: ignore[attr-defined]
        async with self.app.store.engine.connect() as conn:
            states = await conn.execute(
                select(variants.c.id, variants.c.status).order_by(variants.c.id)
            )
            newest = [
                int(await conn.scalar(select(func.max(t.c.id))) or 0)
                for t in (votes, moves, _REPLY)
            ]
        return {"variants": [[int(r.id), str(r.status)] for r in states], "newest": newest}

    async def audit_changes(self) -> dict[str, Any]:
        """The live ``audit`` event: the newest entry's sequence number."""
        from opencomputer.bot.audit import AuditRow

        table = AuditRow.__table__  # type: ignore[attr-defined]
        async with self.app.store.engine.connect() as conn:
            seq = await conn.scalar(select(func.max(table.c.seq)))
        return {"seq": int(seq or 0)}

    async def transcript(self, request: web.Request, _admin: Admin) -> web.StreamResponse:
        """What was said in one conversation (``?conversation=``), each reply with its votes."""
        key = request.query.get("conversation", "")
        async with self.app.store.engine.connect() as conn:
            inbound = list(
                await conn.execute(
                    select(_IN)
                    .where(_IN.c.conversation == key)
                    .order_by(_IN.c.id.desc())
                    .limit(TRANSCRIPT)
                )
            )
            if not inbound:
                return error(404, "no such conversation")
            first = min(r.received_at for r in inbound)
            replies = list(
                await conn.execute(
                    select(_REPLY)
                    .where(_REPLY.c.conversation == key)
                    .where(_REPLY.c.created_at >= first)
                    .order_by(_REPLY.c.id)
                )
            )
            ids = [int(r.id) for r in replies]
            votes: dict[int, dict[str, int]] = {}
            if ids:
                counted = await conn.execute(
                    select(_REACT.c.reply_id, _REACT.c.emoji, func.count().label("n"))
                    .where(_REACT.c.reply_id.in_(ids))
                    .group_by(_REACT.c.reply_id, _REACT.c.emoji)
                )
                for row in counted:
                    votes.setdefault(int(row.reply_id), {})[row.emoji] = int(row.n)
        items = [
            {
                "role": "user",
                "at": r.received_at,
                "who": r.user_name or r.user_id,
                "text": r.text,
                "status": r.status,
                "error": r.error or "",
            }
            for r in inbound
        ] + [
            {
                "role": "assistant",
                "at": r.created_at,
                "who": r.model,
                "text": r.text,
                "status": r.status,
                "error": r.failure or "",
                "variant": r.variant_id,
                "votes": votes.get(int(r.id), {}),
            }
            for r in replies
        ]
        items.sort(key=lambda item: (item["at"], item["role"] == "assistant"))
        await self._attach_steps(key, items)
        return _json({"ok": True, "conversation": key, "items": items})

    async def _attach_steps(self, key: str, items: list[dict[str, Any]]) -> None:
        """Give each user message of the current thread its turn's tool calls (``tools``)."""
        runtime = self.app.runtime
        history = getattr(runtime.agent, "history", None)  # the graph agent has it
        if history is None:
            return
        try:
            thread = runtime.thread_id(Address.parse(key), await self.app.store.epoch(key))
            turns = turn_steps(await history(thread))
        except Exception as exc:  # no graph in this process, or no checkpoint: words only
            logger.info("no tool calls for %s: %s", key, exc)
            return
        for item in items:  # in order: each turn is matched once, after the one before
            if not turns or item["role"] != "user" or not item["text"]:
                continue
            for n, (said, steps) in enumerate(turns):
                if said == item["text"] or item["text"] in said:
                    if steps:
                        item["tools"] = steps
                    del turns[: n + 1]
                    break

    async def prompts(self, _request: web.Request, _admin: Admin) -> web.StreamResponse:
        """Every variant with its ratings and its chance to beat the global active one."""
        service = self.app.extras.get("feedback")
        if service is None:
            return error(404, "the feedback feature is off (OC_FEATURES_OFF)")
        from opencomputer.bot.feedback.stats import prob_greater

        stats = await service.repo.stats()
        base = next(
            (s for s in stats if s.variant.status == "active" and s.variant.scope == "global"),
            None,
        )
        variants = []
        for s in stats:
            v, post = s.variant, s.posterior
            better = None
            if base is not None and s is not base and post.n and base.posterior.n:
                better = round(prob_greater(post, base.posterior), 3)
            variants.append(
                {
                    "id": int(v.id),
                    "name": v.name,
                    "version": v.version,
                    "status": str(v.status),
                    "scope": str(v.scope) + (f":{v.scope_key}" if v.scope_key else ""),
                    "author": v.author,
                    "template": v.template,
                    "up": s.up,
                    "down": s.down,
                    "served": s.served,
                    "failures": s.failures,
                    "p_better": better,
                }
            )
        return _json({"ok": True, "variants": variants})

    async def move(self, request: web.Request, admin: Admin) -> web.StreamResponse:
        """``{"action": "promote" | "pin" | "unpin" | "retire" | "rollback"}`` on a variant."""
        service = self.app.extras.get("feedback")
        if service is None:
            return error(404, "the feedback feature is off (OC_FEATURES_OFF)")
        try:
            body = await request.json()
        except ValueError:
            body = None
        action = body.get("action") if isinstance(body, dict) else None
        if action not in MOVES:
            return error(400, f"action must be one of {', '.join(MOVES)}")
        from opencomputer.bot.feedback.tuner import TuningError

        variant_id = int(request.match_info["id"])
        try:
            event = await getattr(service.tuner, action)(variant_id, actor=admin.key)
        except TuningError as exc:
            return error(409, str(exc))
        return _json({"ok": True, "event": str(event.kind), "variant": int(event.variant_id)})


def _json(data: dict[str, Any]) -> web.Response:
    return web.json_response(data, headers=HEADERS)
