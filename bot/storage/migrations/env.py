"""Alembic's environment: the project's SQLModel metadata, batch ALTERs on SQLite.

``opencomputer db upgrade`` (``bot/storage/migrate.py``) hands over its open, locked
connection in ``config.attributes["connection"]``, inside its transaction. Run by the
``alembic`` command instead (``alembic.ini`` at the repository root, for
``alembic revision --autogenerate -m "..."``), this connects to the database the settings name
(``OC_DATABASE_URL``, default: the SQLite file in the data directory).
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from alembic import context

from opencomputer.bot.storage.schema import include_name, metadata


def _render_item(type_: str, obj: Any, _autogen: Any) -> str | Literal[False]:
    """Render SQLModel's ``AutoString`` as ``sa.String``: revisions must not depend on it."""
    from sqlmodel.sql.sqltypes import AutoString

    if type_ == "type" and isinstance(obj, AutoString):
        return f"sa.String(length={obj.length})" if obj.length else "sa.String()"
    return False


def _run(connection: Any) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata(),
        render_as_batch=True,  # SQLite rebuilds a table for most ALTERs
        include_name=include_name,  # LangGraph's checkpoint tables are not ours
        compare_type=True,
        render_item=_render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _own_connection() -> None:
    from opencomputer.bot.config import load_settings
    from opencomputer.bot.storage.engine import create_engine

    engine = create_engine(load_settings().resolved_database_url)
    try:
        async with engine.connect() as conn:
            await conn.run_sync(_run)
            await conn.commit()
    finally:
        await engine.dispose()


_connection = context.config.attributes.get("connection")
if _connection is not None:
    _run(_connection)
else:
    asyncio.run(_own_connection())
