"""Which model answers where: ``/model`` sets it per chat or globally (``Runtime.choose_model``)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import Field, SQLModel

from opencomputer.bot.events import Address

__all__ = ["GLOBAL", "ModelChoice", "ModelChoiceRow"]

GLOBAL = "*"


class ModelChoiceRow(SQLModel, table=True):
    """A model chosen for one conversation (``scope`` = address key) or for all (``*``)."""

    __tablename__ = "model_choices"

    scope: str = Field(primary_key=True, max_length=512)
    model: str = Field(max_length=255)
    set_by: str = Field(default="", max_length=255)
    at: float = Field(default_factory=time.time)


_T = ModelChoiceRow.__table__  # type: ignore[attr-defined]


class ModelChoice:
    """Cached choices (``choose_model`` is synchronous and runs every turn)."""

    def __init__(self, engine: AsyncEngine, default: str) -> None:
        self.engine = engine
        self.default = default
        self._chosen: dict[str, str] = {}
        self.announce: Callable[[], Awaitable[None]] | None = None
        """Called after a change, so other processes reload their copy (bot/scale/changes.py)."""

    async def load(self) -> None:
        """Read every stored choice."""
        async with self.engine.connect() as conn:
            self._chosen = {row.scope: row.model for row in await conn.execute(select(_T))}

    def choose(self, address: Address) -> str:
        """The conversation's model, else the global choice, else ``OC_MODEL``."""
        return self._chosen.get(address.key) or self._chosen.get(GLOBAL) or self.default

    def scope_of(self, address: Address) -> str:
        """Where the current model comes from, for ``/model`` without arguments."""
        if address.key in self._chosen:
            return "this chat"
        return "global" if GLOBAL in self._chosen else "OC_MODEL"

    async def set(self, scope: str, model: str | None, *, by: str) -> None:
        """Choose ``model`` for ``scope``; None goes back to the next level."""
        async with self.engine.begin() as conn:
            await conn.execute(delete(_T).where(_T.c.scope == scope))
            if model:
                await conn.execute(
                    insert(_T).values(scope=scope, model=model, set_by=by, at=time.time())
                )
        if model:
            self._chosen[scope] = model
        else:
            self._chosen.pop(scope, None)
        if self.announce is not None:
            await self.announce()
