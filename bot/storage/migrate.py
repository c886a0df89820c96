"""Bring a database to this version's schema with the Alembic revisions, safely.

- **One migrator at a time.** PostgreSQL: a session advisory lock; SQLite: an exclusive
  ``flock`` on ``<database>.migrate-lock`` beside the file. Whoever waits re-reads the version
  once it holds the lock, so three processes started together on an empty database apply the
  revisions once and all start.
- **All or nothing.** The revisions run in one transaction (PostgreSQL DDL is transactional;
  SQLite's is too once the driver stops committing around DDL, which the migration engine
  arranges), and an upgraded pre-existing database is compared with the tables the code
  declares before the commit: a mismatch rolls everything back with one line saying why.
- **Never loses rows.** A SQLite store is backed up before its first revision runs; SQLite
  foreign keys are off while tables are rebuilt (a batch ALTER drops and recreates a table,
  which would otherwise cascade).
- **Databases made before migrations** have our tables but no ``alembic_version``: they are
  stamped at the newest revision whose changes they all have (:data:`LEGACY`), then upgraded.

At start (:func:`prepare`), an empty database is created at the head by any process, one at
the head is used as it is, and an older one is upgraded only when the caller allows it (the
embedded default SQLite store); otherwise :class:`SchemaError` says what to run.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import logging
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import event, inspect, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from opencomputer.bot.storage.engine import create_engine, database_key, sqlite_path
from opencomputer.bot.storage.schema import differences, metadata

__all__ = ["LEGACY", "SchemaError", "SchemaState", "Upgrade", "head", "prepare", "upgrade"]

logger = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
LOCK_KEY = 0x6F63_6D69_6772  # "ocmigr": PostgreSQL advisory lock id for migrations

LEGACY: tuple[tuple[str, dict[str, set[str]]], ...] = (
    (
        "0001_baseline",
        {
            name: set()
            for name in (
                "access_grants approvals audit_log conversations feedback_notes feedback_votes "
                "identity_link_codes identity_links inbound_messages memories memory_citations "
                "model_choices pairing_codes plugin_state prompt_assignments "
                "prompt_tuning_events prompt_variants reactions replies reply_failures "
                "reply_parts schedules"
            ).split()
        },
    ),
    (
        "0002_pre_migrations_main",
        {
            "identity_link_codes": {"address", "joiner_key", "joiner_name", "joiner_address"},
            "memories": {"origin", "origin_chat"},
            "plugin_grant": set(),
            "seen_command": set(),
        },
    ),
    ("0003_reply_posts", {"reply_posts": set()}),
)
"""What a database made before migrations has, per revision it may match: tables and the
columns each revision added to them. The newest revision whose marks (and all earlier ones)
are present is where such a database is stamped."""


class SchemaError(RuntimeError):
    """The database is not at this version's schema; the message is one line saying why and
    what to run.
    """


@dataclass(frozen=True, slots=True)
class SchemaState:
    """Where a database stands."""

    current: str | None
    """The revision in ``alembic_version``, or the one a database made before migrations
    matches (None: it lacks some baseline tables, or it is empty)."""
    head: str
    legacy: bool = False
    """Made before migrations: our tables without ``alembic_version``."""
    known: bool = True
    """Whether this version has the revision (False: a newer version migrated it)."""

    @property
    def empty(self) -> bool:
        """None of our tables exist."""
        return self.current is None and not self.legacy

    @property
    def at_head(self) -> bool:
        """Nothing to do."""
        return self.current == self.head and not self.legacy

    def problem(self) -> str:
        """The one line for a process that may not migrate."""
        if not self.known:
            return (
                f"database schema is at {self.current}, newer than this version of opencomputer "
                f"knows (it needs {self.head}): upgrade opencomputer, or restore a backup"
            )
        at = self.current or "an incomplete baseline"
        made = " (made before migrations)" if self.legacy else ""
        return (
            f"database schema is at {at}{made}, this version needs {self.head}: "
            "run `opencomputer db upgrade`"
        )


@dataclass(frozen=True, slots=True)
class Upgrade:
    """What :func:`upgrade` did."""

    before: SchemaState
    backup: Path | None = None

    @property
    def changed(self) -> bool:
        """Whether revisions ran or a database made before migrations was stamped."""
        return not self.before.at_head


@functools.cache
def _script() -> Any:
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(MIGRATIONS))


def head() -> str:
    """The newest revision."""
    return str(_script().get_current_head())


def _read_state(conn: Any) -> SchemaState:
    """The state of the database behind a sync connection."""
    tables = set(inspect(conn).get_table_names())
    top = head()
    if "alembic_version" in tables:
        current = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        if current is not None:
            return SchemaState(str(current), top, known=_known(str(current)))
    ours = tables & set(metadata().tables)
    if not ours:
        return SchemaState(None, top)
    return SchemaState(_legacy_revision(conn, tables), top, legacy=True)


def _known(revision: str) -> bool:
    from alembic.util import CommandError

    try:
        _script().get_revision(revision)
    except CommandError:
        return False
    return True


def _legacy_revision(conn: Any, tables: set[str]) -> str | None:
    """The newest :data:`LEGACY` revision whose marks (and all earlier ones) are present;
    None when even the baseline is incomplete (the baseline revision creates what is missing).
    """
    found = None
    for revision, marks in LEGACY:
        for table, columns in marks.items():
            if table not in tables:
                return found
            if columns and not columns <= {c["name"] for c in inspect(conn).get_columns(table)}:
                return found
        found = revision
    return found


async def state(engine: AsyncEngine) -> SchemaState:
    """Where the database behind ``engine`` stands (reads only)."""
    async with engine.connect() as conn:
        return await conn.run_sync(_read_state)


# --- locking ------------------------------------------------------------------------------
@contextlib.asynccontextmanager
async def _sqlite_lock(path: Path) -> AsyncIterator[None]:
    """An exclusive ``flock`` beside the database (held by whoever migrates it)."""
    lock = path.with_name(path.name + ".migrate-lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


@contextlib.asynccontextmanager
async def _postgres_lock(conn: AsyncConnection) -> AsyncIterator[None]:
    """A session advisory lock on ``conn``; released at the end, or by the server should this
    process die.

    Waiters poll with short transactions instead of blocking in ``pg_advisory_lock``: a
    blocked statement holds a snapshot, and LangGraph's setup (run by the holder) builds its
    indexes ``CONCURRENTLY``, which waits for every such snapshot: a deadlock the server
    cannot see.
    """
    pause = 0.05
    while True:
        got = await conn.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": LOCK_KEY})
        await conn.commit()
        if got:
            break
        await asyncio.sleep(pause)
        pause = min(pause * 2, 1.0)
    try:
        yield
    finally:
        with contextlib.suppress(Exception):  # a broken connection released it already
            await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": LOCK_KEY})
            await conn.commit()


def _migration_engine(url: str) -> AsyncEngine:
    """An engine whose SQLite connections run DDL inside the migration's transaction.

    Python's sqlite3 driver commits before DDL by itself; with ``isolation_level = None`` and
    an explicit ``BEGIN IMMEDIATE`` the whole upgrade is one transaction that also keeps other
    writers out. Foreign keys are off (set before the transaction, as SQLite requires).
    """
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine.sync_engine, "connect")
        def _connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA foreign_keys=OFF")
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


# --- upgrading ----------------------------------------------------------------------------
def _alembic(conn: Any) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = conn
    return config


def _apply(conn: Any, before: SchemaState) -> None:
    """Stamp a pre-migrations database, run the revisions up to the head, and check the
    result of an upgrade against the code's tables (in the caller's transaction).
    """
    from alembic import command

    config = _alembic(conn)
    if before.legacy and before.current is not None:
        command.stamp(config, before.current)
    command.upgrade(config, "head")
    if before.empty:
        return  # tests/core/test_migrations.py checks that the head creates the code's tables
    diffs = differences(conn)
    if diffs:
        raise SchemaError(
            f"database schema still differs from this version's tables after migrating "
            f"from {before.current or 'an incomplete baseline'} ({_describe(diffs)}); nothing was "
            "changed: it was made by a release older than 0aa9263 or altered by hand"
        )


def _describe(diffs: list[Any]) -> str:
    """A short summary of Alembic's differences, e.g. ``add_column inbound_messages.x``."""
    parts = []
    for diff in diffs[:5]:
        item = diff[0] if isinstance(diff, list) else diff
        kind, *rest = item
        names = [getattr(r, "name", r) for r in rest if isinstance(r, str) or hasattr(r, "name")]
        parts.append(f"{kind} {'.'.join(str(n) for n in names if n)}".strip())
    more = f" and {len(diffs) - 5} more" if len(diffs) > 5 else ""
    return ", ".join(parts) + more


async def upgrade(url: str, *, backup_dir: Path | None = None) -> Upgrade:
    """Bring the database at ``url`` to the head under the migration lock.

    A non-empty SQLite store is backed up first (into ``backup_dir``, default: ``backups/``
    beside it). On PostgreSQL the LangGraph checkpoint tables are created under the same lock
    (their own setup, racing in several processes, would otherwise fail in all but one).
    """
    path = sqlite_path(url)
    engine = _migration_engine(url)
    try:
        async with contextlib.AsyncExitStack() as stack:
            if path is not None:
                await stack.enter_async_context(_sqlite_lock(path))
            conn = await stack.enter_async_context(engine.connect())
            if engine.dialect.name == "postgresql":
                await stack.enter_async_context(_postgres_lock(conn))
            before = await conn.run_sync(_read_state)
            await conn.rollback()
            if not before.known:
                raise SchemaError(before.problem())
            copy = None
            if not before.at_head:
                if path is not None and not before.empty:
                    copy = await asyncio.to_thread(_backup, path, backup_dir, before.head)
                async with conn.begin():
                    await conn.run_sync(_apply, before)
            if engine.dialect.name == "postgresql":
                await _checkpoint_tables(url)
            return Upgrade(before, copy)
    finally:
        await engine.dispose()


async def _checkpoint_tables(url: str) -> None:
    from opencomputer.graphs.agent.checkpointer import open_checkpointer

    async with open_checkpointer(url):
        pass


async def prepare(engine: AsyncEngine, *, allow_upgrade: bool = False) -> SchemaState:
    """At process start: use a database at the head, create an empty one, upgrade an older
    one when ``allow_upgrade`` (with a backup), else raise :class:`SchemaError`.
    """
    now = await state(engine)
    if now.at_head:
        return now
    if not now.known or not (now.empty or allow_upgrade):
        raise SchemaError(now.problem())
    url = engine.url.render_as_string(hide_password=False)
    if url.startswith("sqlite") and sqlite_path(url) is None:  # in memory: this engine only
        async with engine.begin() as conn:
            await conn.run_sync(_apply, now)
        return await state(engine)
    done = await upgrade(url)
    if done.changed and not done.before.empty:
        logger.warning(
            "database schema upgraded from %s to %s (backup: %s)",
            done.before.current or "an incomplete baseline",
            done.before.head,
            done.backup,
        )
    return await state(engine)


def _backup(path: Path, folder: Path | None, target: str) -> Path:
    """A consistent copy of the SQLite store (and its checkpoints) before migrating it:
    ``<folder, default: backups/ beside it>/<stem>-before-<revision>-<UTC time>.db``.
    """
    from opencomputer.bot.storage.backup import backup_sqlite

    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    copy = (folder or path.parent / "backups") / f"{path.stem}-before-{target}-{stamp}.db"
    backup_sqlite(path, copy, database_key(path))
    return copy
