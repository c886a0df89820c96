"""Approvals outside the graph: record paused turns, take decisions, resume the thread.

:class:`ApprovalGate` is the turn layer next to the graph agent. When a turn stops at an
approval ``interrupt`` (see ``graphs/agent/approval.py``) it stores the request and answers with
a question instead of the model's text. A decision (``/approve``, ``/reject``, or a thumbs
reaction on the question) queues the conversation again; the next turn of that thread resumes
the checkpoint with ``Command(resume=...)`` instead of adding a message. Requests and decisions
live in the database and the checkpoint holds the paused step, so both survive a restart.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson
from langgraph.types import Command as Resume
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import Field, SQLModel

from opencomputer.bot.effects import OUTWARD, UNKNOWN, ApprovalPolicy, effects_of
from opencomputer.bot.events import User
from opencomputer.bot.hooks import TurnCall, TurnNext
from opencomputer.bot.tools import Tool, ToolError
from opencomputer.graphs.agent.approval import APPROVAL_KIND
from opencomputer.graphs.agent.runner import TurnOutcome
from opencomputer.graphs.agent.state import TurnContext

__all__ = ["ApprovalGate", "ApprovalRow", "Approvals", "request_text"]

GROUP_MESSAGE = "a group message from"
WEBHOOK = "the webhook"
"""How outside content that only an owner may approve effects after is named in the taint."""

logger = logging.getLogger(__name__)

OPEN = ("pending", "approved", "rejected")  # not yet resumed
YES = frozenset({"👍", "+1", "thumbsup", "✅", "white_check_mark"})
NO = frozenset({"👎", "-1", "thumbsdown", "❌", "x"})
ASKING = OUTWARD | {UNKNOWN}


class ApprovalRow(SQLModel, table=True):
    """A paused turn waiting for (or resuming after) a person's decision."""

    __tablename__ = "approvals"

    id: int | None = Field(default=None, primary_key=True)
    thread_id: str = Field(index=True, max_length=600)
    conversation: str = Field(index=True, max_length=512)
    user_key: str = Field(index=True, max_length=300)
    user_name: str = Field(default="", max_length=255)
    calls: str = Field(default="[]")
    status: str = Field(default="pending", max_length=16, index=True)
    decided_by: str = Field(default="", max_length=300)
    run_id: str = Field(default="", max_length=64, index=True)
    reply_id: int | None = Field(default=None, index=True)
    created_at: float = Field(default_factory=time.time)
    decided_at: float | None = None


_T = ApprovalRow.__table__  # type: ignore[attr-defined]


INLINE = 200  # arguments up to this long (one line, no backticks) are shown inline


def request_text(
    approval_id: int, calls: list[dict[str, Any]], taint: list[str] | None = None
) -> str:
    """The question shown in the chat, with every call's COMPLETE arguments.

    Short arguments are shown inline; longer ones in a fenced block (pretty JSON), never cut:
    a reply longer than the platform allows is split across messages by the reply stream, and
    the block says how many characters it holds so a missing part would show.
    """
    lines = []
    for call in calls:
        arguments = call.get("arguments") or {}
        args = orjson.dumps(arguments).decode()
        why = f" ({call['why']})" if call.get("why") else ""
        if len(args) <= INLINE and "`" not in args and "\n" not in args:
            lines.append(f"- `{call.get('name')}` {args}{why}")
            continue
        full = orjson.dumps(arguments, option=orjson.OPT_INDENT_2).decode()
        fence = "```"
        while fence in full:
            fence += "`"
        lines.append(
            f"- `{call.get('name')}`{why}, arguments in full ({len(full)} characters):\n"
            f"{fence}json\n{full}\n{fence}"
        )
    origin = ""
    if taint:
        origin = "\nThis conversation has read outside content (" + ", ".join(taint[:5])
        origin += f" and {len(taint) - 5} more)" if len(taint) > 5 else ")"
        origin += ", which may be trying to steer me: check before you approve.\n"
    return (
        "⚠️ I want to run an action that needs your approval:\n"
        + "\n".join(lines)
        + "\n"
        + origin
        + f"\nSend /approve {approval_id} or /reject {approval_id} "
        "(or react 👍 / 👎 to this message)."
    )


class Approvals:
    """The approvals table, with the open ones cached by thread (checked on every turn)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._open: dict[str, int] = {}
        self._asked: set[str] = set()  # run ids whose reply is a question not yet linked

    def asked_in(self, run_id: str) -> bool:
        """Whether the reply of this run carries an approval question."""
        return run_id in self._asked

    async def load(self) -> None:
        """Cache the threads that have an open approval."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(_T.c.id, _T.c.thread_id).where(_T.c.status.in_(OPEN)))
            self._open = {row.thread_id: int(row.id) for row in rows}

    def open_id(self, thread_id: str) -> int | None:
        """The open approval of a thread, if any."""
        return self._open.get(thread_id)

    async def get(self, approval_id: int) -> Any | None:
        """One approval row."""
        async with self.engine.connect() as conn:
            return (await conn.execute(select(_T).where(_T.c.id == approval_id))).first()

    async def find(self, **where: Any) -> list[Any]:
        """Rows matching column equalities, newest first."""
        query = select(_T).order_by(_T.c.id.desc())
        for column, value in where.items():
            query = query.where(_T.c[column] == value)
        async with self.engine.connect() as conn:
            return list(await conn.execute(query))

    async def create(self, thread_id: str, ctx: TurnContext, calls: list[Any], run_id: str) -> int:
        """Record a new request (closing an older open one of the same thread)."""
        old = self._open.get(thread_id)
        if old is not None:
            await self.set_status(old, "superseded")
        user, address = ctx.user, ctx.address
        async with self.engine.begin() as conn:
            result = await conn.execute(
                insert(_T).values(
                    thread_id=thread_id,
                    conversation=address.key if address else thread_id.split("#", 1)[0],
                    user_key=user.key if user else "",
                    user_name=user.name if user else "",
                    calls=orjson.dumps(calls, default=str).decode(),
                    status="pending",
                    run_id=run_id,
                    created_at=time.time(),
                )
            )
        approval_id = int(result.inserted_primary_key[0])  # type: ignore[index]
        self._open[thread_id] = approval_id
        self._asked.add(run_id)
        return approval_id

    async def set_status(self, approval_id: int, status: str, *, by: str = "") -> None:
        """Move an approval on; closed ones leave the cache."""
        values: dict[str, Any] = {"status": status}
        if by:
            values.update(decided_by=by, decided_at=time.time())
        async with self.engine.begin() as conn:
            await conn.execute(update(_T).where(_T.c.id == approval_id).values(**values))
        if status not in OPEN:
            self._open = {t: i for t, i in self._open.items() if i != approval_id}

    async def attach_reply(self, run_id: str, reply_id: int) -> None:
        """Remember which reply carried the question, so reactions on it decide."""
        self._asked.discard(run_id)
        async with self.engine.begin() as conn:
            await conn.execute(update(_T).where(_T.c.run_id == run_id).values(reply_id=reply_id))


class ApprovalGate:
    """The turn layer next to the agent (stage ``approvals``): turns interrupts into questions
    and resumes decided threads.
    """

    def __init__(
        self,
        graph: Any,
        approvals: Approvals,
        on_request: Any = None,
        secrets: list[str] | None = None,
        *,
        policy: ApprovalPolicy | None = None,
        is_owner: Callable[[User], bool] | None = None,
    ) -> None:
        self.policy = policy or ApprovalPolicy()
        # Who may steer the agent in a group: anyone else's message is outside content.
        self.is_owner = is_owner or (lambda _user: False)
        # Secret values (tokens) never enter a prompt, even if someone pastes or configures one.
        self.secrets = sorted({s for s in secrets or [] if len(s) >= 6}, key=len, reverse=True)
        self.graph = graph
        self.approvals = approvals
        self.on_request = on_request  # async (approval_id, ctx, calls) -> None, e.g. audit

    async def layer(self, call: TurnCall, call_next: TurnNext) -> Any:
        """Resume a decided thread, or run a normal turn and catch an approval pause."""
        ctx, thread_id = call.ctx, call.thread_id
        if self.secrets:
            call.text, ctx.system_prompt = self.redact(call.text), self.redact(ctx.system_prompt)
            ctx.tools = [_redacting(t, self.redact) for t in ctx.tools]
        ctx.approval_policy = self.policy
        ctx.taint = [*ctx.taint, *self.turn_taint(ctx)]  # earlier layers' (attachments) kept
        open_id = self.approvals.open_id(thread_id)
        if open_id is None and not call.text:
            # A resume queued by another process (scaled out) carries no text: re-read.
            await self.approvals.load()
            open_id = self.approvals.open_id(thread_id)
        if open_id is not None:
            row = await self.approvals.get(open_id)
            if row is not None and row.status in ("approved", "rejected"):
                return await self._resume(thread_id, row, ctx)
            # A new message while a question is open: the paused step is dropped, not run.
            await self.approvals.set_status(open_id, "superseded")
        outcome = await call_next(call)
        return await self._after(thread_id, outcome, ctx)

    def turn_taint(self, ctx: TurnContext) -> list[str]:
        """Outside content a turn starts with: a webhook's content, or a message in a group
        from someone not an owner.
        """
        if ctx.address is not None and ctx.address.platform == "hook":
            return [f"{WEBHOOK} {ctx.address.chat_id}"]
        user = ctx.user
        if ctx.chat_kind != "group" or user is None or self.is_owner(user):
            return []
        return [f"{GROUP_MESSAGE} {user.key}"]

    def redact(self, text: str) -> str:
        """Replace every secret value in ``text`` with ``***``."""
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    async def _resume(self, thread_id: str, row: Any, ctx: TurnContext) -> Any:
        run_id = uuid.uuid4().hex
        config = {"configurable": {"thread_id": thread_id}, "run_id": run_id}
        ctx.taint = []  # the paused turn's taint is in its checkpoint; the resume adds none
        approved = row.status == "approved"
        if approved and not await self._decider_may_approve(thread_id, row):
            # Outside content came from someone in the group who is not an owner: their own
            # yes is no yes (they wrote the instructions). Only an owner may approve.
            logger.warning(
                "approval %s: approved by %s, who is not an owner", row.id, row.decided_by
            )
            approved = False
        decision = {"approved": approved, "by": row.decided_by}
        try:
            state = await self.graph.ainvoke(
                Resume(resume=decision), config=config, context=ctx, durability="exit"
            )
        finally:
            # One attempt per decision: if it failed, the chat moves on (a dangerous call that
            # did not happen is the safe outcome) instead of swallowing the next message.
            await self.approvals.set_status(int(row.id), "done")
        messages = state.get("messages", [])
        answer = messages[-1].get("content", "") if messages else ""
        return await self._after(thread_id, TurnOutcome(answer, run_id), ctx)

    async def _decider_may_approve(self, thread_id: str, row: Any) -> bool:
        """Whether the person who said yes may: owners always, others unless a stranger's
        group message is among the paused turn's outside content.
        """
        platform, _, user_id = str(row.decided_by).partition(":")
        if not row.decided_by or self.is_owner(User(platform, user_id, "")):
            return True
        request = await self._paused_request(thread_id)
        taint = request.get("taint") or [] if request is not None else []
        return not any(str(t).startswith((GROUP_MESSAGE, WEBHOOK)) for t in taint)

    async def _paused_request(self, thread_id: str) -> dict[str, Any] | None:
        snapshot = await self.graph.aget_state({"configurable": {"thread_id": thread_id}})
        for pause in getattr(snapshot, "interrupts", ()) or ():
            value = pause.value
            if isinstance(value, dict) and value.get("kind") == APPROVAL_KIND:
                return value
        return None

    def _may_pause(self, ctx: TurnContext) -> bool:
        if any(t.dangerous for t in ctx.tools):
            return True
        if self.policy.mode == "off":
            return False
        return any(effects_of(t) & ASKING for t in ctx.tools)

    async def _after(self, thread_id: str, outcome: Any, ctx: TurnContext) -> Any:
        if not self._may_pause(ctx):
            return outcome  # nothing could have paused: skip the checkpoint read
        request = await self._paused_request(thread_id)
        if request is None:
            return outcome
        calls = list(request.get("calls") or [])
        approval_id = await self.approvals.create(thread_id, ctx, calls, outcome.run_id)
        if self.on_request is not None:
            await self.on_request(approval_id, ctx, calls)
        text = request_text(approval_id, calls, list(request.get("taint") or []))
        return TurnOutcome(text, outcome.run_id)


def _redacting(tool: Tool, redact: Callable[[str], str]) -> Tool:
    """A copy of an in-process tool whose result and error text are redacted."""
    fn = tool.fn

    async def run(**arguments: Any) -> Any:
        try:
            result = fn(**arguments)
            if inspect.isawaitable(result):
                result = await result
        except ToolError as exc:
            raise ToolError(redact(str(exc))) from None
        return redact(result) if isinstance(result, str) else result

    return dataclasses.replace(tool, fn=run, _spec=tool._spec)
