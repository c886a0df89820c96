"""Schema migrations: old stores upgrade keeping every row, on SQLite and real PostgreSQL.

The baseline is the schema commit 0aa9263's ``create_all`` made (``fixtures/``). Each store is
filled with rows in every table, upgraded by the real ``opencomputer db upgrade`` in a
subprocess, and then compared row by row and against the tables the code declares (Alembic's
``compare_metadata`` finds no difference). Stores made by releases without migrations are
stamped at the revision they match; unmigrated and newer stores stop every serving command
with one line; concurrent upgrades apply the revisions once.
"""

from __future__ import annotations

import ast
import asyncio
import os
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from opencomputer.bot.storage.migrate import LEGACY, head
from opencomputer.bot.storage.schema import MODEL_MODULES, differences, metadata
from opencomputer.bot.testing import FakeOllama

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).with_name("fixtures")
PREFIXES = ("OC_", "OLLAMA_", "TELEGRAM_", "DISCORD_", "SLACK_", "MATRIX_")
ROWS = 25  # per table
BASELINE = set(LEGACY[0][1])
HEAD = head()


# --- helpers ------------------------------------------------------------------------------
async def _cli(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str, str]:
    """The real command line in a subprocess with a clean environment."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(PREFIXES)}
    base = {"OC_DATA_DIR": str(cwd / "data"), "OLLAMA_HOST": "http://127.0.0.1:9"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "opencomputer",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**clean, **base, **env},
        cwd=cwd,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=180)
    return proc.returncode or 0, out.decode(), err.decode()


def _one_line_exit_2(code: int, out: str, err: str, line: str) -> None:
    assert code == 2, (code, out, err)
    assert [x for x in err.splitlines() if x.strip()] == [line], err
    assert "Traceback" not in out + err


def _sync_url(url: str) -> str:
    """A synchronous driver for the test's own checks."""
    if url.startswith("postgresql"):
        return make_url(url).set(drivername="postgresql+psycopg").render_as_string(False)
    return url.replace("sqlite+aiosqlite:", "sqlite:")


@pytest.fixture
def engines() -> Iterator[list[sa.Engine]]:
    made: list[sa.Engine] = []
    yield made
    for engine in made:
        engine.dispose()


def _engine(engines: list[sa.Engine], url: str) -> sa.Engine:
    engine = sa.create_engine(_sync_url(url), poolclass=sa.NullPool)
    engines.append(engine)
    return engine


def _load_fixture(engine: sa.Engine) -> None:
    """Create the baseline tables from the DDL 0aa9263's ``create_all`` emitted."""
    name = "postgresql" if engine.dialect.name == "postgresql" else "sqlite"
    ddl = (FIXTURES / f"schema_0aa9263_{name}.sql").read_text()
    statements = [s.strip() for s in ddl.split(";")]
    with engine.begin() as conn:
        for statement in statements:
            body = "\n".join(x for x in statement.splitlines() if not x.startswith("--"))
            if body.strip():
                conn.exec_driver_sql(body)


def _value(table: sa.Table, column: sa.Column[Any], i: int) -> Any:
    """A distinct value of the column's type for row ``i`` (1-based), valid for its keys."""
    for fk in column.foreign_keys:
        if fk.column.table.name == table.name:  # a parent in the same table: the row before
            return i - 1 if i > 1 else None
        return i
    kind = column.type
    if isinstance(kind, sa.Boolean):
        return i % 2 == 0
    if isinstance(kind, sa.Integer):
        return i
    if isinstance(kind, sa.Float | sa.Numeric):
        return i + 0.25
    if isinstance(kind, sa.LargeBinary):
        return bytes([i]) * 8
    text = f"{column.name[:6]}-{i}-é✓"
    length = getattr(kind, "length", None)
    return text[-length:] if length else text * 3


Written = dict[str, tuple[list[str], list[tuple[Any, ...]]]]


def _fill(engine: sa.Engine) -> Written:
    """Insert ``ROWS`` rows in every table (parents first); return columns and rows by table."""
    reflected = sa.MetaData()
    reflected.reflect(engine)
    written: Written = {}
    with engine.begin() as conn:
        for table in reflected.sorted_tables:
            rows = [
                {c.name: _value(table, c, i) for c in table.columns} for i in range(1, ROWS + 1)
            ]
            conn.execute(table.insert(), rows)
            names = [c.name for c in table.columns]
            written[table.name] = (names, [tuple(r[n] for n in names) for r in rows])
            serial = [c.name for c in table.primary_key.columns if isinstance(c.type, sa.Integer)]
            if engine.dialect.name == "postgresql" and serial:  # as if the app had inserted them
                conn.exec_driver_sql(
                    f"SELECT setval(pg_get_serial_sequence('{table.name}', '{serial[0]}'), {ROWS})"
                )
    return written


def _read(engine: sa.Engine, written: Written) -> int:
    """Assert every written row is there unchanged (in the columns it had); return how many."""
    reflected = sa.MetaData()
    reflected.reflect(engine)
    checked = 0
    with engine.connect() as conn:
        for name, (names, rows) in written.items():
            table = reflected.tables[name]
            query = sa.select(*(table.c[n] for n in names)).order_by(*table.primary_key.columns)
            got = [tuple(r) for r in conn.execute(query)]
            assert sorted(got, key=repr) == sorted(rows, key=repr), name
            checked += len(got)
    return checked


def _version(engine: sa.Engine) -> str | None:
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def _diffs(engine: sa.Engine) -> list[Any]:
    with engine.connect() as conn:
        return differences(conn)


LAST_LEGACY = LEGACY[-1][0]
"""The newest revision a store made before migrations can match."""


def _create_all(engine: sa.Engine, *, without: tuple[str, ...] = ()) -> None:
    """What a release without migrations left: the schema at :data:`LAST_LEGACY`, built by its
    revisions and then unstamped (tables and columns of later revisions are not there).
    """
    from alembic import command
    from alembic.config import Config

    from opencomputer.bot.storage.migrate import MIGRATIONS

    with engine.begin() as conn:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = conn
        command.upgrade(config, LAST_LEGACY)
        for name in ("alembic_version", *without):
            conn.exec_driver_sql(f"DROP TABLE {name}")


# --- the head is the code ------------------------------------------------------------------
def test_every_table_module_is_listed_for_migrations() -> None:
    """A table defined outside MODEL_MODULES would be missed by the schema check below."""
    defining = set()
    for folder in ("bot", "connectors", "graphs", "plugins"):
        for path in (ROOT / folder).rglob("*.py"):
            tree = ast.parse(path.read_text(), str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef) and any(
                    k.arg == "table" and isinstance(k.value, ast.Constant) and k.value.value
                    for k in node.keywords
                ):
                    parts = path.relative_to(ROOT).with_suffix("").parts
                    defining.add(".".join(("opencomputer", *parts)))
    assert defining and defining <= set(MODEL_MODULES), defining - set(MODEL_MODULES)


async def test_head_creates_exactly_the_code_tables_on_sqlite(
    tmp_path: Path, engines: list[sa.Engine]
) -> None:
    url = f"sqlite:///{tmp_path / 'data' / 'fresh.db'}"
    code, out, err = await _cli(["db", "upgrade"], tmp_path, {"OC_DATABASE_URL": url})
    assert code == 0, err
    assert out.splitlines() == [
        f"database upgraded from empty to {HEAD}",
        f"database is up to date ({HEAD})",
    ]
    engine = _engine(engines, url)
    assert _version(engine) == HEAD
    assert _diffs(engine) == []
    assert (tmp_path / "data" / "fresh-checkpoints.db").exists()  # LangGraph's own tables too


async def test_head_creates_exactly_the_code_tables_on_postgres(
    tmp_path: Path, postgres_url: str, engines: list[sa.Engine]
) -> None:
    code, _out, err = await _cli(["db", "upgrade"], tmp_path, {"OC_DATABASE_URL": postgres_url})
    assert code == 0, err
    engine = _engine(engines, postgres_url)
    assert _version(engine) == HEAD
    assert _diffs(engine) == []
    assert sa.inspect(engine).has_table("checkpoints")


# --- the 0aa9263 baseline, filled, upgraded ----------------------------------------------------
async def _upgrade_baseline(tmp_path: Path, url: str, engines: list[sa.Engine]) -> dict[str, Any]:
    engine = _engine(engines, url)
    _load_fixture(engine)
    written = _fill(engine)
    assert set(written) == BASELINE  # every table of the baseline has rows
    code, out, err = await _cli(["db", "upgrade"], tmp_path, {"OC_DATABASE_URL": url})
    assert code == 0, (out, err)
    assert f"database upgraded from 0001_baseline (made before migrations) to {HEAD}" in out
    assert _version(engine) == HEAD
    assert _diffs(engine) == []
    assert _read(engine, written) == ROWS * len(BASELINE)
    with engine.connect() as conn:  # rows from before the new columns read as their defaults
        origins = conn.execute(sa.text("SELECT DISTINCT origin, origin_chat FROM memories")).all()
        assert [tuple(r) for r in origins] == [("direct", "")]  # of unknown origin: private
        codes = conn.execute(
            sa.text("SELECT DISTINCT address, joiner_key FROM identity_link_codes")
        ).all()
        assert [tuple(r) for r in codes] == [("", "")]
    return {"engine": engine, "written": written, "out": out}


async def test_baseline_sqlite_store_upgrades_keeping_every_row(
    tmp_path: Path, engines: list[sa.Engine]
) -> None:
    db = tmp_path / "data" / "opencomputer.db"
    db.parent.mkdir()
    url = f"sqlite:///{db}"
    done = await _upgrade_baseline(tmp_path, url, engines)
    backups = list((db.parent / "backups").glob(f"opencomputer-before-{HEAD}-*.db"))
    assert len(backups) == 1
    assert f"backup of the database before migrating: {backups[0]}" in done["out"]
    old = _engine(engines, f"sqlite:///{backups[0]}")  # the backup is the store as it was
    assert _version(old) is None and _read(old, done["written"]) == ROWS * len(BASELINE)
    # The upgraded store works: the app's own store reads and writes it.
    from opencomputer.bot.storage import SqlStore

    store = SqlStore(url)
    await store.start()
    try:
        assert await store.count_inbound() == ROWS
        assert await store.reset("telegram:1") == 1
    finally:
        await store.stop()
    code, out, err = await _cli(["db", "upgrade"], tmp_path, {"OC_DATABASE_URL": url})
    assert code == 0 and out == f"database is up to date ({HEAD})\n", (out, err)


async def test_baseline_postgres_store_upgrades_keeping_every_row(
    tmp_path: Path, postgres_url: str, engines: list[sa.Engine]
) -> None:
    done = await _upgrade_baseline(tmp_path, postgres_url, engines)
    assert "backup" not in done["out"]  # PostgreSQL: pg_dump is the operator's tool
    from opencomputer.bot.storage import SqlStore

    store = SqlStore(postgres_url)
    await store.start()
    try:
        assert await store.count_inbound() == ROWS
        assert await store.reset("telegram:1") == 1
    finally:
        await store.stop()


# --- stores made by releases without migrations -------------------------------------------
@pytest.mark.parametrize(
    ("without", "stamped"),
    [
        ((), LAST_LEGACY),  # the newest release before migrations: later revisions run
        (("reply_posts",), "0002_pre_migrations_main"),  # main when migrations were written
    ],
)
async def test_store_made_before_migrations_is_stamped_where_it_is(
    tmp_path: Path, engines: list[sa.Engine], without: tuple[str, ...], stamped: str
) -> None:
    db = tmp_path / "data" / "opencomputer.db"
    db.parent.mkdir()
    url = f"sqlite:///{db}"
    engine = _engine(engines, url)
    _create_all(engine, without=without)
    written = _fill(engine)
    code, out, err = await _cli(["db", "upgrade"], tmp_path, {"OC_DATABASE_URL": url})
    assert code == 0, err
    assert f"database upgraded from {stamped} (made before migrations) to {HEAD}" in out
    assert _version(engine) == HEAD and _diffs(engine) == []
    assert _read(engine, written) == ROWS * len(written)


async def test_store_between_releases_and_partial_baseline_are_completed(
    tmp_path: Path, engines: list[sa.Engine]
) -> None:
    """Some of a revision's changes already there (a release in between), or only the five
    tables 0aa9263's `db upgrade` created: the revisions add just what is missing.
    """
    between = _engine(engines, f"sqlite:///{tmp_path / 'between.db'}")
    _load_fixture(between)
    metadata().tables["plugin_grant"].create(between)  # 0002's table, not its columns
    with between.begin() as conn:
        conn.exec_driver_sql(
            "ALTER TABLE memories ADD COLUMN origin VARCHAR(16) NOT NULL DEFAULT 'group'"
        )
    written = _fill(between)
    partial = _engine(engines, f"sqlite:///{tmp_path / 'partial.db'}")
    core = ["inbound_messages", "replies", "reply_parts", "reactions", "conversations"]
    _load_fixture(partial)
    with partial.begin() as conn:
        for name in BASELINE - set(core):
            conn.exec_driver_sql(f"DROP TABLE {name}")
    written_partial = _fill(partial)
    cases = ((between, written, "0001_baseline"), (partial, written_partial, "incomplete"))
    for engine, rows, was in cases:
        url = engine.url.render_as_string(False)
        code, out, err = await _cli(["db", "upgrade"], tmp_path, {"OC_DATABASE_URL": url})
        assert code == 0, err
        assert f"database upgraded from {was} (made before migrations) to {HEAD}" in out
        assert _version(engine) == HEAD and _diffs(engine) == []
        assert _read(engine, rows) == ROWS * len(rows)  # memories.origin kept its own values


async def test_store_older_than_the_baseline_is_refused_unchanged(
    tmp_path: Path, engines: list[sa.Engine]
) -> None:
    """A column the revisions do not add (made before 0aa9263): nothing is half-migrated."""
    db = tmp_path / "old.db"
    engine = _engine(engines, f"sqlite:///{db}")
    _load_fixture(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE inbound_messages DROP COLUMN claimed_at")
    written = _fill(engine)
    before = sqlite3.connect(db).execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall()
    code, out, err = await _cli(["db", "upgrade"], tmp_path, {"OC_DATABASE_URL": f"sqlite:///{db}"})
    _one_line_exit_2(
        code,
        out,
        err,
        "database schema still differs from this version's tables after migrating from "
        "0001_baseline (add_column inbound_messages.claimed_at); nothing was changed: it was "
        "made by a release older than 0aa9263 or altered by hand",
    )
    after = sqlite3.connect(db).execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall()
    assert after == before and _version(engine) is None
    assert _read(engine, written) == ROWS * len(BASELINE)


async def test_encrypted_baseline_store_upgrades_and_its_backup_stays_encrypted(
    tmp_path: Path,
) -> None:
    """SQLCipher (OC_DATABASE_KEY): the migration engine and the backup both use the key."""
    pytest.importorskip("sqlcipher3", reason="SQLCipher (sqlcipher3-binary) is not installed")
    from opencomputer.bot.storage.engine import connect_sqlite, use_database_key
    from opencomputer.bot.storage.migrate import upgrade

    db = tmp_path / "data" / "opencomputer.db"
    db.parent.mkdir()
    use_database_key(db, "correct horse battery staple")
    try:
        conn = connect_sqlite(db)
        conn.executescript((FIXTURES / "schema_0aa9263_sqlite.sql").read_text())
        for i in range(ROWS):
            conn.execute(
                "INSERT INTO memories (person, text, vector, dim, source, created_at, updated_at)"
                " VALUES (?, ?, x'00', 1, '', ?, ?)",
                (f"p{i}", f"secret fact {i}", i, i),
            )
        conn.commit()
        conn.close()
        done = await upgrade(f"sqlite:///{db}")
        assert done.changed and done.backup is not None
        for path in (db, done.backup):  # neither the store nor its backup is plain SQLite
            assert not path.read_bytes().startswith(b"SQLite format 3")
        conn = connect_sqlite(db)
        rows = conn.execute("SELECT text, origin FROM memories ORDER BY id").fetchall()
        version = conn.execute("SELECT version_num FROM alembic_version").fetchall()
        conn.close()
        assert [tuple(r) for r in rows] == [(f"secret fact {i}", "direct") for i in range(ROWS)]
        assert [tuple(v) for v in version] == [(HEAD,)]
    finally:
        use_database_key(db, None)


# --- refusing to serve an unmigrated or newer store ------------------------------------------
SERVE = {
    "run": {"TELEGRAM_BOT_TOKEN": "1:x", "TELEGRAM_BASE_URL": "http://127.0.0.1:9"},
    "chat": {},
    "gateway": {"TELEGRAM_BOT_TOKEN": "1:x", "OC_REDIS_URL": "redis://127.0.0.1:9/0"},
    "worker": {"OC_REDIS_URL": "redis://127.0.0.1:9/0"},
}


async def test_unmigrated_postgres_refuses_every_serving_command(
    tmp_path: Path, postgres_url: str, engines: list[sa.Engine]
) -> None:
    engine = _engine(engines, postgres_url)
    _load_fixture(engine)
    line = (
        f"database schema is at 0001_baseline (made before migrations), this version needs "
        f"{HEAD}: run `opencomputer db upgrade`"
    )
    for command, env in SERVE.items():
        code, out, err = await _cli([command], tmp_path, {"OC_DATABASE_URL": postgres_url, **env})
        _one_line_exit_2(code, out, err, line)
    code, out, err = await _cli(["doctor"], tmp_path, {"OC_DATABASE_URL": postgres_url})
    assert code == 1 and f"[FAIL] database: {line}\n" in out, (out, err)
    assert _version(engine) is None and not sa.inspect(engine).has_table("plugin_grant")


async def test_newer_store_refuses_upgrade_and_serving(
    tmp_path: Path, engines: list[sa.Engine]
) -> None:
    url = f"sqlite:///{tmp_path / 'data' / 'opencomputer.db'}"
    code, _out, err = await _cli(["db", "upgrade"], tmp_path, {"OC_DATABASE_URL": url})
    assert code == 0, err
    engine = _engine(engines, url)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0099_from_the_future'")
    line = (
        "database schema is at 0099_from_the_future, newer than this version of opencomputer "
        f"knows (it needs {HEAD}): upgrade opencomputer, or restore a backup"
    )
    for args in (["db", "upgrade"], ["chat"], ["run"]):
        env = {"OC_DATABASE_URL": url, **SERVE.get(args[0], {})}
        code, out, err = await _cli(args, tmp_path, env)
        _one_line_exit_2(code, out, err, line)
    # the embedded default (no OC_DATABASE_URL) does not "upgrade" a newer store either
    code, out, err = await _cli(["chat"], tmp_path, {})
    _one_line_exit_2(code, out, err, line)


async def test_embedded_default_store_upgrades_itself_after_a_backup(
    tmp_path: Path, engines: list[sa.Engine], fake_ollama: FakeOllama
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    url = f"sqlite:///{data / 'opencomputer.db'}"
    engine = _engine(engines, url)
    _load_fixture(engine)
    written = _fill(engine)
    # Named explicitly, the same file is not the embedded default: it is refused.
    line = (
        f"database schema is at 0001_baseline (made before migrations), this version needs "
        f"{HEAD}: run `opencomputer db upgrade`"
    )
    code, out, err = await _cli(["chat"], tmp_path, {"OC_DATABASE_URL": url})
    _one_line_exit_2(code, out, err, line)
    code, out, err = await _cli(["chat"], tmp_path, {"OLLAMA_HOST": fake_ollama.url})
    assert code == 0, (out, err)
    assert len(list((data / "backups").glob("opencomputer-before-*.db"))) == 1
    assert _version(engine) == HEAD and _diffs(engine) == []
    assert _read(engine, written) == ROWS * len(BASELINE)


# --- concurrent upgrades --------------------------------------------------------------------
async def test_three_upgrades_at_once_on_empty_postgres_apply_it_once(
    tmp_path: Path, postgres_url: str, engines: list[sa.Engine]
) -> None:
    env = {"OC_DATABASE_URL": postgres_url}
    results = await asyncio.gather(*(_cli(["db", "upgrade"], tmp_path, env) for _ in range(3)))
    assert [code for code, _, _ in results] == [0, 0, 0], results
    applied = [out for _, out, _ in results if "database upgraded from empty" in out]
    assert len(applied) == 1, results
    engine = _engine(engines, postgres_url)
    assert _version(engine) == HEAD and _diffs(engine) == []
    assert sa.inspect(engine).has_table("checkpoint_migrations")


async def test_three_stores_starting_at_once_on_empty_postgres(
    postgres_url: str, engines: list[sa.Engine]
) -> None:
    """Workers started together on a fresh database: each creates or finds the schema."""
    from opencomputer.bot.storage import SqlStore

    stores = [SqlStore(postgres_url) for _ in range(3)]
    try:
        await asyncio.gather(*(s.start() for s in stores))
        assert [await s.count_inbound() for s in stores] == [0, 0, 0]
    finally:
        for s in stores:
            await s.stop()
    assert _version(_engine(engines, postgres_url)) == HEAD


async def test_three_upgrades_at_once_on_a_filled_sqlite_store(
    tmp_path: Path, engines: list[sa.Engine]
) -> None:
    db = tmp_path / "data" / "opencomputer.db"
    db.parent.mkdir()
    url = f"sqlite:///{db}"
    engine = _engine(engines, url)
    _load_fixture(engine)
    written = _fill(engine)
    env = {"OC_DATABASE_URL": url}
    results = await asyncio.gather(*(_cli(["db", "upgrade"], tmp_path, env) for _ in range(3)))
    assert [code for code, _, _ in results] == [0, 0, 0], results
    assert sum("database upgraded from" in out for _, out, _ in results) == 1, results
    assert len(list((db.parent / "backups").glob("*.db"))) == 1
    assert _version(engine) == HEAD and _diffs(engine) == []
    assert _read(engine, written) == ROWS * len(BASELINE)


# --- packaging ------------------------------------------------------------------------------
def test_revisions_ship_in_the_package() -> None:
    """A non-editable install has the migrations: packages found, the template as data."""
    import tomllib

    from setuptools import find_packages

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = find_packages(str(ROOT), include=project["packages"]["find"]["include"])
    assert {
        "opencomputer.bot.storage.migrations",
        "opencomputer.bot.storage.migrations.versions",
    } <= set(found)
    assert "*.mako" in project["package-data"]["*"]
    versions = ROOT / "bot" / "storage" / "migrations" / "versions"
    assert len(list(versions.glob("0*.py"))) >= 3
