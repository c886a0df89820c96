"""Add columns a table created by an older release lacks (until migrations exist).

Tables come from ``SQLModel.metadata.create_all``, which creates missing tables but never
alters existing ones; a store from before a column was added would fail on its first query.
:func:`add_missing_columns` adds each missing column with its declared scalar default, so
rows written before the column existed read as that default (choose it to be the safe
reading). Works on SQLite and PostgreSQL; concurrent starts are harmless (a column another
process added meanwhile is skipped).
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Table, inspect, literal, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["add_missing_columns"]

logger = logging.getLogger(__name__)


def _default_sql(column: Any, dialect: Any) -> str | None:
    default = column.default
    value = getattr(default, "arg", None) if default is not None else None
    if value is None or callable(value) or not isinstance(value, str | int | float | bool):
        return None
    compiled = literal(value).compile(dialect=dialect, compile_kwargs={"literal_binds": True})
    return str(compiled)


def _missing(conn: Any, table: Table) -> list[str]:
    """``ALTER TABLE`` statements for the columns the database lacks."""
    have = {col["name"] for col in inspect(conn).get_columns(table.name)}
    quote = conn.dialect.identifier_preparer.quote
    statements = []
    for column in table.columns:
        if column.name in have:
            continue
        kind = column.type.compile(dialect=conn.dialect)
        ddl = f"ALTER TABLE {quote(table.name)} ADD COLUMN {quote(column.name)} {kind}"
        default = _default_sql(column, conn.dialect)
        if default is not None:
            ddl += f" NOT NULL DEFAULT {default}"
        statements.append(ddl)
    return statements


async def add_missing_columns(engine: AsyncEngine, table: Table) -> int:
    """Add the columns of ``table`` the database lacks; return how many were added."""
    async with engine.connect() as conn:
        statements: list[str] = await conn.run_sync(lambda c: _missing(c, table))
    added = 0
    for ddl in statements:
        try:
            async with engine.begin() as conn:  # one transaction each: a failure spoils none
                await conn.execute(text(ddl))
            added += 1
        except DBAPIError as exc:  # most likely another process added it first
            logger.info("%s: %s", ddl, exc.orig)
    if added:
        logger.info("added %d columns to %s (made by an older release)", added, table.name)
    return added
