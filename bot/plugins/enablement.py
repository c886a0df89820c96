"""Which plugins are on, globally or per chat, and which secrets each may have, in the database.

The agent's tool list is chosen synchronously for every turn, so the rows are cached in memory;
changes made through this object apply at once, changes made by another process (the CLI) are
picked up by :meth:`Enablement.refresh`, which the plugin feature runs periodically.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import Field, SQLModel, UniqueConstraint

__all__ = ["GLOBAL", "Enablement", "PluginGrantRow", "PluginStateRow"]

GLOBAL = "*"


class PluginStateRow(SQLModel, table=True):
    """An admin's decision: ``plugin`` is on or off in ``scope`` (a chat key, or ``*``)."""

    __tablename__ = "plugin_state"
    __table_args__ = (UniqueConstraint("plugin", "scope"),)

    id: int | None = Field(default=None, primary_key=True)
    plugin: str = Field(index=True, max_length=80)
    scope: str = Field(max_length=300)
    enabled: bool
    updated_at: float


class PluginGrantRow(SQLModel, table=True):
    """An admin's decision: ``plugin`` may (or may not) receive its secret setting ``secret``."""

    __tablename__ = "plugin_grant"
    __table_args__ = (UniqueConstraint("plugin", "secret"),)

    id: int | None = Field(default=None, primary_key=True)
    plugin: str = Field(index=True, max_length=80)
    secret: str = Field(max_length=200)
    granted: bool
    updated_at: float


_T = PluginStateRow.__table__  # type: ignore[attr-defined]
_G = PluginGrantRow.__table__  # type: ignore[attr-defined]


class Enablement:
    """Chat setting beats global setting beats the plugin's own default."""

    def __init__(
        self,
        engine: AsyncEngine,
        defaults: Mapping[str, bool] | None = None,
        grant_defaults: Mapping[str, bool] | None = None,
    ) -> None:
        self.engine = engine
        self.defaults = dict(defaults or {})
        self.grant_defaults = dict(grant_defaults or {})
        """Per plugin: whether its secrets are granted until decided (built-ins: yes)."""
        self._rows: dict[tuple[str, str], bool] = {}
        self._grants: dict[tuple[str, str], bool] = {}

    async def start(self) -> None:
        """Load every row (the tables come with the schema: ``opencomputer db upgrade``)."""
        await self.refresh()

    async def refresh(self) -> None:
        """Re-read the rows (another process may have changed them)."""
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(_T.c.plugin, _T.c.scope, _T.c.enabled))).all()
            grants = (await conn.execute(select(_G.c.plugin, _G.c.secret, _G.c.granted))).all()
        self._rows = {(r.plugin, r.scope): bool(r.enabled) for r in rows}
        self._grants = {(g.plugin, g.secret): bool(g.granted) for g in grants}

    async def _replace(self, table: Any, *, plugin: str, **row: Any) -> None:
        """Store one decision: the row for ``plugin`` and the key column (the first of
        ``row``) replaces any earlier one.
        """
        key, value = next(iter(row.items()))
        async with self.engine.begin() as conn:
            await conn.execute(delete(table).where(table.c.plugin == plugin, table.c[key] == value))
            await conn.execute(insert(table).values(plugin=plugin, **row, updated_at=time.time()))

    def is_granted(self, plugin: str, secret: str) -> bool:
        """Whether ``plugin`` may receive its secret setting ``secret``."""
        if (plugin, secret) in self._grants:
            return self._grants[(plugin, secret)]
        return self.grant_defaults.get(plugin, False)

    async def grant(self, plugin: str, secret: str, granted: bool = True) -> None:
        """Let ``plugin`` receive ``secret`` (or, ``granted=False``, withhold it)."""
        await self._replace(_G, plugin=plugin, secret=secret, granted=granted)
        self._grants[(plugin, secret)] = granted

    def grants(self, plugin: str) -> dict[str, bool]:
        """Every stored grant decision for ``plugin`` by secret."""
        return {secret: on for (name, secret), on in self._grants.items() if name == plugin}

    def is_enabled(self, plugin: str, chat_key: str | None = None) -> bool:
        """Whether ``plugin`` is on in the chat ``chat_key`` (``platform:chat_id``)."""
        if chat_key is not None and (plugin, chat_key) in self._rows:
            return self._rows[(plugin, chat_key)]
        if (plugin, GLOBAL) in self._rows:
            return self._rows[(plugin, GLOBAL)]
        return self.defaults.get(plugin, True)

    async def set(self, plugin: str, enabled: bool, scope: str = GLOBAL) -> None:
        """Turn ``plugin`` on or off in ``scope``."""
        await self._replace(_T, plugin=plugin, scope=scope, enabled=enabled)
        self._rows[(plugin, scope)] = enabled

    async def clear(self, plugin: str, scope: str = GLOBAL) -> None:
        """Forget the decision for ``scope`` (the next wider one applies again)."""
        async with self.engine.begin() as conn:
            await conn.execute(delete(_T).where(_T.c.plugin == plugin, _T.c.scope == scope))
        self._rows.pop((plugin, scope), None)

    def decisions(self, plugin: str) -> dict[str, bool]:
        """Every stored decision for ``plugin`` by scope."""
        return {scope: on for (name, scope), on in self._rows.items() if name == plugin}
