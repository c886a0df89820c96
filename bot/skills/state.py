"""Which skills are on, everywhere or in one chat, in the database.

A skill is on unless an admin turned it off: putting a folder into ``OC_SKILL_DIRS`` or
installing it is the admin's consent already. A chat's decision beats the global one. Rows are
read on each use (a handful of rows, one query a turn), so a change made by the CLI in another
process applies from the next message on without any signal.
"""

from __future__ import annotations

import time

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import Field, SQLModel, UniqueConstraint

__all__ = ["GLOBAL", "SkillStateRow", "SkillStates"]

GLOBAL = "*"


class SkillStateRow(SQLModel, table=True):
    """An admin's decision: ``skill`` is on or off in ``scope`` (a chat key, or ``*``)."""

    __tablename__ = "skill_state"
    __table_args__ = (UniqueConstraint("skill", "scope"),)

    id: int | None = Field(default=None, primary_key=True)
    skill: str = Field(index=True, max_length=64)
    scope: str = Field(max_length=300)
    enabled: bool
    updated_at: float


_T = SkillStateRow.__table__  # type: ignore[attr-defined]


class SkillStates:
    """Enablement decisions of skills (chat beats global beats on)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def decisions(self) -> dict[tuple[str, str], bool]:
        """Every stored decision, by (skill, scope)."""
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(_T.c.skill, _T.c.scope, _T.c.enabled))).all()
        return {(r.skill, r.scope): bool(r.enabled) for r in rows}

    @staticmethod
    def is_on(decisions: dict[tuple[str, str], bool], skill: str, chat: str | None) -> bool:
        """Whether ``skill`` is on in ``chat`` (``platform:chat_id``) given ``decisions``."""
        if chat is not None and (skill, chat) in decisions:
            return decisions[(skill, chat)]
        return decisions.get((skill, GLOBAL), True)

    async def set(self, skill: str, enabled: bool, scope: str = GLOBAL) -> None:
        """Turn ``skill`` on or off in ``scope`` (replacing an earlier decision there)."""
        async with self.engine.begin() as conn:
            await conn.execute(delete(_T).where(_T.c.skill == skill, _T.c.scope == scope))
            await conn.execute(
                insert(_T).values(skill=skill, scope=scope, enabled=enabled, updated_at=time.time())
            )
