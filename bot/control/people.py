"""The people page: people and their linked accounts, access grants, pending pairing requests
(approve / deny), and each person's memories (view, delete one).

Memories are what people told the agent, often in private: they are only ever sent to a
logged-in admin, and the page inserts them as text. Approving a pairing request is
``/allow <code>`` (the code is redeemed, the account allowed, and told so in its chat); denying
it is ``/deny platform:user_id`` (the account is denied) and drops the code. Deleting a memory
is ``/memory delete`` done for the person. Each change is audited under the admin's account.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from aiohttp import web
from sqlalchemy import func, select

from opencomputer.bot import audit
from opencomputer.bot.access.models import PairingRow
from opencomputer.bot.access.policy import user_subject
from opencomputer.bot.control.auth import Admin
from opencomputer.bot.control.web import ControlWeb, body, error, ok
from opencomputer.bot.memory.models import MemoryRow

if TYPE_CHECKING:
    from opencomputer.bot.features import Host

__all__ = ["PeoplePage"]

_PAIR = PairingRow.__table__  # type: ignore[attr-defined]
_MEM = MemoryRow.__table__  # type: ignore[attr-defined]


class PeoplePage:
    """``/ui/api/people``, ``/ui/api/pairing/USER``, ``/ui/api/memories``."""

    def __init__(self, app: Host, web_: ControlWeb) -> None:
        self.app = app
        self.web = web_

    def routes(self) -> list[web.RouteDef]:
        """Guarded routes; changes need the CSRF token."""
        guard = self.web.guard
        return [
            web.get("/ui/api/people", guard(self.people)),
            web.post("/ui/api/pairing/{user}", guard(self.pairing, changes=True)),
            web.get("/ui/api/memories", guard(self.memories)),
            web.post("/ui/api/memories/{id:[0-9]+}", guard(self.delete_memory, changes=True)),
        ]

    async def people(self, _request: web.Request, _admin: Admin) -> web.StreamResponse:
        """The people page's data."""
        return ok(await self.data())

    async def data(self) -> dict[str, Any]:
        """Everyone the bot knows of: linked, granted, remembered; grants; pairing requests.

        Also the live ``people`` event: a pairing request arriving, a grant or a link changed.
        """
        services = self.app.extras["admin"]
        policy, identity = services.policy, services.identity
        grants = policy.grants()
        async with self.app.store.engine.connect() as conn:
            counted = await conn.execute(
                select(_MEM.c.person, func.count().label("n")).group_by(_MEM.c.person)
            )
            memories = {str(r.person): int(r.n) for r in counted}
            pending = list(
                await conn.execute(
                    select(_PAIR)
                    .where(_PAIR.c.expires_at > time.time())
                    .order_by(_PAIR.c.created_at)
                )
            )
        persons: dict[str, set[str]] = {}
        for person, accounts in identity.people().items():
            persons.setdefault(person, set()).update(accounts)
        for subject in grants:
            if subject.startswith("user:"):
                key = subject.removeprefix("user:")
                persons.setdefault(identity.person_key(key), set()).add(key)
        for key in self.app.settings.admins:
            persons.setdefault(identity.person_key(key), set()).add(key)
        for person in memories:
            persons.setdefault(person, set())
        people = [
            {
                "person": person,
                "accounts": [
                    {"key": key, "role": self._role(key, grants)} for key in sorted(accounts)
                ],
                "memories": memories.get(person, 0),
            }
            for person, accounts in sorted(persons.items())
        ]
        return {
            "people": people,
            "grants": [{"subject": s, "role": r} for s, r in sorted(grants.items())],
            "pairing": [
                {
                    "user": r.user_key,
                    "name": r.user_name,
                    "chat": r.address,
                    "created_at": r.created_at,
                    "expires_at": r.expires_at,
                }
                for r in pending
            ],
        }

    def _role(self, key: str, grants: dict[str, str]) -> str:
        if key in self.app.settings.admins:
            return "admin (OC_ADMINS)"
        return grants.get(user_subject(key), "")

    async def pairing(self, request: web.Request, admin: Admin) -> web.StreamResponse:
        """``{"decision": "approve" | "deny"}`` on the pending request of account USER."""
        decision = (await body(request)).get("decision")
        if decision not in ("approve", "deny"):
            return error(400, 'send {"decision": "approve"} or {"decision": "deny"}')
        user_key = request.match_info["user"]
        services = self.app.extras["admin"]
        if decision == "deny" and (
            user_key in self.app.settings.admins or user_key.startswith("terminal:")
        ):
            return error(409, f"{user_key} is an admin from OC_ADMINS or the local owner")
        async with self.app.store.engine.connect() as conn:
            code = await conn.scalar(
                select(_PAIR.c.code)
                .where(_PAIR.c.user_key == user_key)
                .where(_PAIR.c.expires_at > time.time())
            )
        pairing = await services.policy.redeem(code) if code else None
        if pairing is None:
            return error(409, f"{user_key} has no pending pairing request (expired or decided)")
        subject = user_subject(pairing.user_key)
        if decision == "approve":
            await services.policy.grant(subject, "allowed", by=admin.key)
            await audit.audit(
                self.app.store, admin.key, "access.allow", {"subject": subject, "via": "web"}
            )
            try:  # what /allow <code> tells the person
                await self.app.runtime.say(
                    pairing.address, "You're in: an admin allowed you. Say hello!"
                )
            except LookupError:  # its connector is not running here
                pass
        else:
            await services.policy.grant(subject, "denied", by=admin.key)
            await audit.audit(
                self.app.store, admin.key, "access.deny", {"subject": subject, "via": "web"}
            )
        return ok({"user": user_key, "decision": decision})

    async def memories(self, request: web.Request, _admin: Admin) -> web.StreamResponse:
        """One person's memories (``?person=``), oldest first, wherever they were learned."""
        store = self.app.extras.get("memory")
        if store is None:
            return error(404, "the memory feature is off (OC_FEATURES_OFF)")
        person = request.query.get("person", "")
        items = await store.list_of(person)
        return ok(
            {
                "person": person,
                "memories": [
                    {"id": m.id, "text": m.text, "at": m.created_at, "learned_in": m.learned_in}
                    for m in items
                ],
            }
        )

    async def delete_memory(self, request: web.Request, admin: Admin) -> web.StreamResponse:
        """``{"person": P}``: delete memory ID of person P (``/memory delete ID`` for them)."""
        store = self.app.extras.get("memory")
        if store is None:
            return error(404, "the memory feature is off (OC_FEATURES_OFF)")
        person = str((await body(request)).get("person") or "")
        memory_id = int(request.match_info["id"])
        if not person or not await store.delete(person, [memory_id]):
            return error(404, f"{person or 'nobody'} has no memory #{memory_id}")
        await audit.audit(
            self.app.store,
            admin.key,
            "memory.deleted",
            {"person": person, "id": memory_id, "via": "web"},
        )
        return ok({"deleted": memory_id})
