"""Data at rest: another local user can neither list the data directory nor read the database,
and with ``OC_DATABASE_KEY`` the files hold no plaintext and do not open without the key.

The attacker is a second uid on the same machine, run as a real process (``user=65534`` or
65533), trying plain ``os.listdir`` and ``open``. The service side runs with umask 000 (the
worst an operator can leave), as root and as an unprivileged user.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from opencomputer.bot.config import Settings
from opencomputer.bot.storage import SqlStore
from opencomputer.bot.storage.engine import DatabaseKeyError
from opencomputer.bot.testing import FakeOllama
from opencomputer.bot.testing.harness import Harness
from tests.security.sandbox_kit import _python_reachable

ROOT = Path(__file__).resolve().parents[2]
MARKER = "MARKER-plaintext-7f3a"

_SERVICE = """
import asyncio, os, sys
os.umask(0)
from opencomputer.bot.audit import audit
from opencomputer.bot.dedupe import first_time
from opencomputer.bot.storage import SqlStore

async def main(folder):
    store = SqlStore(f"sqlite:///{folder}/opencomputer.db")
    await store.start()
    await audit(store, "test:a", "access.allow", {"note": sys.argv[2]})
    await first_time(store, "test", sys.argv[2])  # the raw writer's connection too
    await store.stop()

asyncio.run(main(sys.argv[1]))
"""


@pytest.fixture
def shared_base() -> Iterator[Path]:
    """A folder every user may enter (unlike pytest's 0700 tmp_path): only our modes protect."""
    base = Path(tempfile.mkdtemp(prefix="oc-at-rest-"))
    base.chmod(0o755)
    try:
        yield base
    finally:
        subprocess.run(["rm", "-rf", str(base)], check=False)


def _modes(folder: Path) -> dict[str, int]:
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in [folder, *folder.iterdir()]}


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")


def _as(uid: int) -> list[str]:
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]


@needs_root
@pytest.mark.parametrize("service_uid", [0, 65534], ids=["service-root", "service-nobody"])
def test_another_user_cannot_list_the_data_dir_or_read_the_database(
    shared_base: Path, service_uid: int
) -> None:
    data = shared_base / "data"
    command = [sys.executable, "-c", _SERVICE, str(data), MARKER]
    if service_uid:
        os.chown(shared_base, service_uid, service_uid)
        command = [*_python_reachable(), *_as(service_uid), *command]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run(command, cwd=shared_base, env=env, check=True, timeout=60)
    modes = _modes(data)
    assert modes.pop("data") == 0o700
    assert modes and all(mode == 0o600 for mode in modes.values()), modes
    attacker = 65533 if service_uid else 65534
    for attempt in (
        ["ls", str(data)],
        ["cat", str(data / "opencomputer.db")],
        ["cat", str(data / "audit.key")],
    ):
        done = subprocess.run(
            [*_as(attacker), *attempt], cwd="/", capture_output=True, text=True, timeout=30
        )
        assert done.returncode != 0 and "Permission denied" in done.stderr, (attempt, done)
        assert MARKER not in done.stdout


async def test_loose_modes_left_by_older_versions_are_tightened(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    db = data / "opencomputer.db"
    sqlite3.connect(db).close()
    db.chmod(0o644)
    (data / "opencomputer.db-wal").write_bytes(b"")
    (data / "opencomputer.db-wal").chmod(0o644)
    store = SqlStore(f"sqlite:///{db}")
    await store.start()
    try:
        modes = _modes(data)  # while open: the -wal and -shm files exist
    finally:
        await store.stop()
    assert modes.pop("data") == 0o700
    assert {"opencomputer.db", "opencomputer.db-wal", "opencomputer.db-shm"} <= set(modes)
    assert all(mode == 0o600 for mode in modes.values()), modes


def _scan(folder: Path) -> list[str]:
    """Every file under ``folder`` that contains the marker in plaintext."""
    return [p.name for p in folder.rglob("*") if p.is_file() and MARKER.encode() in p.read_bytes()]


async def test_encrypted_database_holds_no_plaintext_and_needs_the_key(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama, tmp_path: Path
) -> None:
    pytest.importorskip("sqlcipher3", reason="SQLCipher (sqlcipher3-binary) is not installed")
    data = tmp_path / "data"
    keyed = make_settings(OC_DATABASE_KEY="correct horse battery staple")
    async with Harness(keyed) as h:
        await h.say(f"remember {MARKER} please")
        assert MARKER in h.last_text()  # the fake model echoes it: the turn ran end to end
    files = {p.name for p in data.iterdir()}
    assert {"opencomputer.db", "opencomputer-checkpoints.db"} <= files
    # The memory index (embeddings: text can be recovered from them) stays in memory.
    assert not [name for name in files if "vectors" in name]
    assert _scan(data) == []
    for name in ("opencomputer.db", "opencomputer-checkpoints.db"):
        with pytest.raises(sqlite3.DatabaseError, match="file is not a database"):
            sqlite3.connect(data / name).execute("SELECT * FROM sqlite_master").fetchall()

    wrong = make_settings(OC_DATABASE_KEY="wrong horse")
    store = SqlStore(wrong.resolved_database_url)
    with pytest.raises(DatabaseKeyError, match="cannot open the database with OC_DATABASE_KEY"):
        await store.start()
    await store.stop()

    key_file = tmp_path / "db.key"
    key_file.write_text("correct horse battery staple\n")
    again = make_settings(OC_DATABASE_KEY_FILE=str(key_file))
    store = SqlStore(again.resolved_database_url)
    await store.start()
    try:
        inbound, replies = await _rows(store)
    finally:
        await store.stop()
    # Read back with the key: the turn's whole bookkeeping ran on the encrypted files.
    assert [(status, MARKER in text) for status, text in inbound] == [("answered", True)]
    assert [status for status, _text in replies] == ["sent"]
    # From the command line, a wrong or missing key is one line and exit 2, not a traceback.
    for key, says in (("wrong horse", "the key is wrong"), ("", "set OC_DATABASE_KEY")):
        env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT)}
        env |= {"OC_DATA_DIR": str(data), "OC_DATABASE_KEY": key}
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "opencomputer", "db", "upgrade"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2 and says in done.stderr, done
        assert done.stderr.strip().count("\n") == 0 and "Traceback" not in done.stderr
    # Control: the same turn without a key leaves the marker readable on disk.
    plain_dir = tmp_path / "plain"
    async with Harness(make_settings(OC_DATA_DIR=plain_dir)) as h:
        await h.say(f"remember {MARKER} please")
    assert "opencomputer.db" in " ".join(_scan(plain_dir))
    vectors = plain_dir / "opencomputer-vectors.db"  # without a key the index is a file, 0600
    assert vectors.exists() and stat.S_IMODE(vectors.stat().st_mode) == 0o600


async def _rows(store: SqlStore) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    from sqlalchemy import select

    from opencomputer.bot.storage.models import InboundRow, ReplyRow

    inbound = InboundRow.__table__  # type: ignore[attr-defined]
    reply = ReplyRow.__table__  # type: ignore[attr-defined]
    async with store.engine.connect() as conn:
        got_in = [(r.status, r.text) for r in await conn.execute(select(inbound))]
        got_out = [(r.status, r.text) for r in await conn.execute(select(reply))]
    return got_in, got_out


def test_database_key_with_postgres_is_refused_in_one_line(
    make_settings: Callable[..., Settings],
) -> None:
    from opencomputer.bot.config import ConfigError

    with pytest.raises(ConfigError, match="OC_DATABASE_KEY encrypts SQLite only"):
        make_settings(OC_DATABASE_URL="postgresql://u@127.0.0.1/db", OC_DATABASE_KEY="k")
