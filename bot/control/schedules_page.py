"""The schedules page: every active reminder and scheduled task, and *Cancel*.

Cancelling calls the scheduler of the schedules feature (``app.extras["scheduler"]``) exactly
as ``/schedules cancel ID`` does for the person who made it (the scheduler is woken, and in
scale-out the gateway's is told); the admin's move is audited as ``schedule.cancelled``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web
from sqlalchemy import select

from opencomputer.bot import audit
from opencomputer.bot.control.auth import Admin
from opencomputer.bot.control.web import ControlWeb, body, error, ok
from opencomputer.bot.schedules.models import ScheduleRow
from opencomputer.bot.schedules.spec import describe_repeat

if TYPE_CHECKING:
    from opencomputer.bot.features import Host

__all__ = ["SchedulesPage"]

_SCHED = ScheduleRow.__table__  # type: ignore[attr-defined]


class SchedulesPage:
    """``GET /ui/api/schedules`` and ``POST /ui/api/schedules/ID``."""

    def __init__(self, app: Host, web_: ControlWeb) -> None:
        self.app = app
        self.web = web_

    def routes(self) -> list[web.RouteDef]:
        """Guarded routes; cancelling needs the CSRF token."""
        guard = self.web.guard
        return [
            web.get("/ui/api/schedules", guard(self.list_)),
            web.post("/ui/api/schedules/{id:[0-9]+}", guard(self.cancel, changes=True)),
        ]

    async def list_(self, _request: web.Request, _admin: Admin) -> web.StreamResponse:
        """Active schedules, soonest first."""
        data = await self.data()
        if data is None:
            return error(404, "the schedules feature is off (OC_FEATURES_OFF)")
        return ok(data)

    async def data(self) -> dict[str, Any] | None:
        """Active schedules, soonest first (None: the feature is off); the live event too."""
        scheduler = self.app.extras.get("scheduler")
        if scheduler is None:
            return None
        rows = await scheduler.active()
        return {
            "schedules": [
                {
                    "id": int(r.id),
                    "person": r.person,
                    "chat": f"{r.platform}:{r.chat_id}",
                    "user": r.user_name or r.user_id,
                    "action": r.action,
                    "text": r.text,
                    "repeat": describe_repeat(r.repeat) if r.repeat else "",
                    "tz": r.tz,
                    "next_run": r.next_run,
                    "runs": r.runs,
                }
                for r in rows
            ]
        }

    async def cancel(self, request: web.Request, admin: Admin) -> web.StreamResponse:
        """``{"action": "cancel"}``: what ``/schedules cancel ID`` does for its owner."""
        scheduler = self.app.extras.get("scheduler")
        if scheduler is None:
            return error(404, "the schedules feature is off (OC_FEATURES_OFF)")
        if (await body(request)).get("action") != "cancel":
            return error(400, 'send {"action": "cancel"}')
        schedule_id = int(request.match_info["id"])
        async with self.app.store.engine.connect() as conn:
            person = await conn.scalar(select(_SCHED.c.person).where(_SCHED.c.id == schedule_id))
        if person is None or not await scheduler.cancel(person, schedule_id):
            return error(409, f"there is no active schedule #{schedule_id}")
        await audit.audit(
            self.app.store,
            admin.key,
            "schedule.cancelled",
            {"id": schedule_id, "person": person, "via": "web"},
        )
        return ok({"id": schedule_id, "status": "cancelled"})
