"""Turn a store the current code made into one the last release before migrations left.

Tests of upgrades from old stores start from real data the app wrote; this removes what the
revisions after :data:`bot.storage.migrate.LEGACY`'s newest added (tables, columns and indexes;
an index a later revision dropped comes back), read off a scratch SQLite database built by
those revisions, so a new revision never needs the tests edited.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from opencomputer.bot.storage.migrate import LEGACY, MIGRATIONS

__all__ = ["legacy_indexes", "legacy_schema", "strip_to_legacy"]


def legacy_schema() -> dict[str, set[str]]:
    """Table -> columns at the newest legacy revision."""
    return _legacy()[0]


def legacy_indexes() -> dict[str, tuple[str, tuple[str, ...], bool]]:
    """Index name -> (table, columns, unique) at the newest legacy revision."""
    return _legacy()[1]


def _legacy() -> tuple[dict[str, set[str]], dict[str, tuple[str, tuple[str, ...], bool]]]:
    from alembic import command
    from alembic.config import Config

    with tempfile.TemporaryDirectory() as tmp:
        engine = sa.create_engine(f"sqlite:///{Path(tmp) / 'legacy.db'}")
        try:
            with engine.begin() as conn:
                config = Config()
                config.set_main_option("script_location", str(MIGRATIONS))
                config.attributes["connection"] = conn
                command.upgrade(config, LEGACY[-1][0])
            inspector = sa.inspect(engine)
            tables = [t for t in inspector.get_table_names() if t != "alembic_version"]
            return (
                {t: {c["name"] for c in inspector.get_columns(t)} for t in tables},
                {
                    str(i["name"]): (t, tuple(str(c) for c in i["column_names"]), bool(i["unique"]))
                    for t in tables
                    for i in inspector.get_indexes(t)
                },
            )
        finally:
            engine.dispose()


async def strip_to_legacy(conn: AsyncConnection) -> None:
    """Drop the tables and columns later revisions added, and the revision stamp."""
    legacy = legacy_schema()

    def current(sync: sa.Connection) -> dict[str, set[str]]:
        inspector = sa.inspect(sync)
        return {
            t: {c["name"] for c in inspector.get_columns(t)} for t in inspector.get_table_names()
        }

    def indexes(sync: sa.Connection) -> set[str]:
        inspector = sa.inspect(sync)
        return {
            str(i["name"])
            for t in inspector.get_table_names()
            if t in legacy
            for i in inspector.get_indexes(t)
            if not i.get("duplicates_constraint")  # a unique constraint's own index
        }

    legacy_ix = legacy_indexes()
    for name in sorted(await conn.run_sync(indexes) - set(legacy_ix)):  # a later revision's
        await conn.execute(sa.text(f"DROP INDEX {name}"))
    for table, columns in (await conn.run_sync(current)).items():
        if table not in legacy:
            await conn.execute(sa.text(f"DROP TABLE {table}"))
            continue
        for column in sorted(columns - legacy[table]):
            await conn.execute(sa.text(f"ALTER TABLE {table} DROP COLUMN {column}"))
    for name in sorted(set(legacy_ix) - await conn.run_sync(indexes)):  # a later one dropped
        table, cols, unique = legacy_ix[name]
        kind = "UNIQUE INDEX" if unique else "INDEX"
        await conn.execute(sa.text(f"CREATE {kind} {name} ON {table} ({', '.join(cols)})"))
