"""The control room's data: overview, approvals (approve/reject), audit log, live events.

Every handler runs behind :meth:`ControlWeb.guard` (a live admin session; CSRF for changes).
Decisions go through the admin feature's ``decide`` (``app.extras["admin"]``), the very
operation ``/approve`` and ``/reject`` perform, so the paused turn resumes and answers in its
chat, and the decision is audited under the admin's own account.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web
from sqlalchemy import or_, select

from opencomputer.bot import audit
from opencomputer.bot.control.auth import Admin
from opencomputer.bot.control.live import Event, LiveFeed, Source
from opencomputer.bot.control.web import HEADERS, ControlWeb, error
from opencomputer.bot.storage.models import InboundRow, ReplyRow

if TYPE_CHECKING:
    from opencomputer.bot.features import Host

__all__ = ["ControlApi"]

_IN = InboundRow.__table__  # type: ignore[attr-defined]
_REPLY = ReplyRow.__table__  # type: ignore[attr-defined]
EVENT_POLL = 1.0
"""Seconds between a live stream's checks that its session is still good."""


class ControlApi:
    """The JSON routes of the control room."""

    def __init__(self, app: Host, web_: ControlWeb, sources: dict[str, Source]) -> None:
        """``sources``: the other pages' live data by event name (plugins, people, ...)."""
        self.app = app
        self.web = web_
        self.closing = asyncio.Event()
        """Set when the app stops: open event streams end at once instead of holding it up."""
        self.feed = LiveFeed(
            {"approvals": self._approvals, "overview": self.overview_data, **sources},
            self.closing,
        )
        """What changed, for every open page (bot/control/live.py)."""

    async def _approvals(self) -> dict[str, Any]:
        return {"approvals": await self.pending()}

    def routes(self) -> list[web.RouteDef]:
        """Every data route, guarded."""
        guard = self.web.guard
        return [
            web.get("/ui/api/overview", guard(self.overview)),
            web.get("/ui/api/approvals", guard(self.approvals)),
            web.post("/ui/api/approvals/{id:[0-9]+}", guard(self.decide, changes=True)),
            web.get("/ui/api/audit", guard(self.audit_log)),
            web.get("/ui/api/audit/verify", guard(self.verify)),
            web.get("/ui/api/audit/export", guard(self.export)),
            web.get("/ui/api/events", guard(self.events)),
        ]

    # --- overview ----------------------------------------------------------------------
    async def overview_data(self) -> dict[str, Any]:
        """Connectors, model, database, queue depth, recent failures (as ``/status`` sees)."""
        runtime = self.app.runtime
        checks = await self.app.readiness()
        connectors = {name: str(c.state) for name, c in runtime.connectors.items()}
        async with self.app.store.engine.connect() as conn:
            failed_in = await conn.execute(
                select(_IN.c.id, _IN.c.conversation, _IN.c.error, _IN.c.received_at)
                .where(_IN.c.status == "failed")
                .order_by(_IN.c.id.desc())
                .limit(10)
            )
            failed_out = await conn.execute(
                select(_REPLY.c.id, _REPLY.c.conversation, _REPLY.c.failure, _REPLY.c.created_at)
                .where(or_(_REPLY.c.failure.is_not(None), _REPLY.c.status == "failed"))
                .order_by(_REPLY.c.id.desc())
                .limit(10)
            )
            failures = [
                {
                    "kind": "message",
                    "conversation": r.conversation,
                    "error": r.error or "",
                    "at": r.received_at,
                }
                for r in failed_in
            ] + [
                {
                    "kind": "reply",
                    "conversation": r.conversation,
                    "error": r.failure or "failed",
                    "at": r.created_at,
                }
                for r in failed_out
            ]
        failures.sort(key=lambda f: f["at"], reverse=True)
        return {
            "checks": checks,
            "connectors": connectors,
            "model": self.app.settings.model,
            "model_status": self.app.model_status,
            "queue_depth": runtime.queue_depth,
            "started_at": runtime.started_at,
            "failures": failures[:10],
        }

    async def overview(self, _request: web.Request, _admin: Admin) -> web.StreamResponse:
        """The overview page's data."""
        return _json({"ok": True, **await self.overview_data()})

    # --- approvals ---------------------------------------------------------------------
    async def pending(self) -> list[dict[str, Any]]:
        """Every pending approval with its COMPLETE arguments (never shortened)."""
        rows = await self.app.extras["admin"].approvals.find(status="pending")
        return [
            {
                "id": int(row.id),
                "conversation": row.conversation,
                "user": row.user_key,
                "user_name": row.user_name,
                "created_at": row.created_at,
                "calls": [
                    {
                        "name": str(call.get("name", "")),
                        "why": str(call.get("why", "") or ""),
                        "arguments": orjson.dumps(
                            call.get("arguments") or {}, option=orjson.OPT_INDENT_2
                        ).decode(),
                    }
                    for call in orjson.loads(row.calls or "[]")
                ],
            }
            for row in rows
        ]

    async def approvals(self, _request: web.Request, _admin: Admin) -> web.StreamResponse:
        """Pending approvals."""
        return _json({"ok": True, "approvals": await self.pending()})

    async def decide(self, request: web.Request, admin: Admin) -> web.StreamResponse:
        """``{"decision": "approve" | "reject"}``: what ``/approve`` and ``/reject`` do."""
        try:
            body = await request.json()
        except ValueError:
            body = None
        decision = body.get("decision") if isinstance(body, dict) else None
        if decision not in ("approve", "reject"):
            return error(400, 'send {"decision": "approve"} or {"decision": "reject"}')
        services = self.app.extras["admin"]
        approval_id = int(request.match_info["id"])
        row = await services.approvals.get(approval_id)
        if row is None or row.status != "pending":
            return error(409, f"there is no open approval #{approval_id} (decided or dropped)")
        approved = decision == "approve"
        refused = await services.decide(approval_id, approved, admin.user)
        if (await services.approvals.get(approval_id)).status == "pending":
            return error(403, refused or "the decision was refused")
        return _json(
            {"ok": True, "id": approval_id, "status": "approved" if approved else "rejected"}
        )

    # --- audit log ---------------------------------------------------------------------
    async def audit_log(self, request: web.Request, _admin: Admin) -> web.StreamResponse:
        """The newest entries (``?n=``, default 50, at most 500)."""
        try:
            n = max(1, min(500, int(request.query.get("n", "50"))))
        except ValueError:
            return error(400, "n must be a number")
        entries = await audit.recent(self.app.store, n)
        return _json(
            {
                "ok": True,
                "entries": [
                    {
                        "seq": e.seq,
                        "at": e.at,
                        "actor": e.actor,
                        "action": e.action,
                        "detail": e.detail,
                    }
                    for e in entries
                ],
            }
        )

    async def verify(self, _request: web.Request, _admin: Admin) -> web.StreamResponse:
        """Check the keyed chain (as ``opencomputer audit verify``)."""
        result = await audit.verify(self.app.store)
        return _json(
            {
                "ok": True,
                "valid": result.ok,
                "count": result.count,
                "head": result.head,
                "problem": result.problem,
            }
        )

    async def export(self, request: web.Request, admin: Admin) -> web.StreamResponse:
        """Every entry as JSON Lines (as ``opencomputer audit export``), streamed."""
        response = web.StreamResponse(
            headers={
                **HEADERS,
                "Content-Type": "application/x-ndjson; charset=utf-8",
                "Content-Disposition": 'attachment; filename="audit.jsonl"',
            }
        )
        await response.prepare(request)
        async for entry in audit.export(self.app.store):
            await response.write(orjson.dumps(entry) + b"\n")
        await response.write_eof()
        return response

    # --- live events -------------------------------------------------------------------
    async def events(self, request: web.Request, admin: Admin) -> web.StreamResponse:
        """Server-sent events: each source's data whenever it changes (bot/control/live.py).

        A new page gets every source's current data; a page reconnecting with
        ``Last-Event-ID`` gets only what it missed, or ``reload`` and the current data when the
        buffer no longer reaches back that far. The stream ends when the session does
        (logout, expiry, admin rights revoked) or the app stops.
        """
        response = web.StreamResponse(
            headers={
                **HEADERS,
                "Content-Type": "text/event-stream",
                "X-Accel-Buffering": "no",
            }
        )
        feed = self.feed
        try:
            await feed.join()  # counted at once, so the finally below always balances it
            await response.prepare(request)
            last = request.headers.get("Last-Event-ID", "")
            missed = feed.since(last) if last else None
            cursor = feed.seq
            if last and missed is None:
                await response.write(b"retry: 2000\nevent: reload\ndata: {}\n\n")
            await self._write(response, feed.snapshot() if missed is None else missed)
            while not self.closing.is_set() and await self.web.admin_of(request) is not None:
                await feed.wait(cursor, EVENT_POLL)
                new = [e for e in feed.events if e.seq > cursor]
                if new and new[0].seq > cursor + 1:  # this page fell behind the buffer
                    await response.write(b"event: reload\ndata: {}\n\n")
                    new = feed.snapshot()
                cursor = feed.seq
                await self._write(response, new)
        except ConnectionResetError:  # the browser went away
            pass
        finally:
            feed.leave()
        return response

    async def _write(self, response: web.StreamResponse, events: list[Event]) -> None:
        for e in events:
            await response.write(
                f"id: {self.feed.event_id(e)}\nevent: {e.kind}\ndata: {e.text}\n\n".encode()
            )


def _json(data: dict[str, Any]) -> web.Response:
    return web.json_response(data, headers=HEADERS)
