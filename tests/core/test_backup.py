"""`opencomputer backup` / `restore` through the real CLI, in subprocesses.

Attacks and faults, not only round trips: backups taken while another process writes without
pause (each must be one consistent instant), a SQLCipher store (no plaintext byte may reach the
backup), restore attempted under a running server (refused, nothing touched), a full disk in the
middle of a backup (a real size-limited tmpfs; no partial file, older backups untouched), a
read-only target, a wrong key, files that are missing or not databases: one line, exit 2.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from opencomputer.bot.testing import FakeOllama
from tests.telegram.fake_bot_api import TOKEN, FakeBotApi

PREFIXES = ("OC_", "OLLAMA_", "TELEGRAM_", "DISCORD_", "SLACK_", "MATRIX_")
KEY = "correct horse battery staple"
SECRET_TEXT = "KNOWN-PLAINTEXT-7d1f3c"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _readyz(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:  # 503: not ready
        return int(exc.code)
    except OSError:
        return 0


async def until(what: str, check: Callable[[], bool], timeout: float = 60) -> None:
    """Poll ``check`` until it holds."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < timeout, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def _env(data: Path, **extra: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(PREFIXES)}
    return {**clean, "OC_DATA_DIR": str(data), "OLLAMA_HOST": "http://127.0.0.1:9", **extra}


async def cli(
    *args: str, cwd: Path, env: dict[str, str], stdin: bytes | None = None
) -> tuple[int, str, str]:
    """Run ``python -m bot ARGS``; return (exit status, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "opencomputer", *args, cwd=cwd, env=env,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(stdin), timeout=90)
    return proc.returncode or 0, out.decode(), err.decode()


def _one_line_exit_2(result: tuple[int, str, str], line: str) -> None:
    code, out, err = result
    assert code == 2, result
    assert [x for x in err.splitlines() if x.strip()] == [line], err
    assert "Traceback" not in out + err


def _open(path: Path, key: str | None = None) -> Any:
    if key is None:
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    from sqlcipher3 import dbapi2

    conn = dbapi2.connect(f"file:{path}?mode=ro", uri=True)
    conn.execute("PRAGMA cipher_log_level = NONE")
    conn.execute("PRAGMA key = '" + key.replace("'", "''") + "'")
    return conn


def dump(path: Path, key: str | None = None) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in rowid order (WITHOUT ROWID tables by their key)."""
    with contextlib.closing(_open(path, key)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        return {
            t: sorted(conn.execute(f'SELECT * FROM "{t}"').fetchall(), key=repr) for t in tables
        }


# --- consistent while written -----------------------------------------------------------------
WRITER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
conn.execute("PRAGMA journal_mode=WAL")
conn.execute("CREATE TABLE ledger(id INTEGER PRIMARY KEY, body TEXT)")
conn.execute("CREATE TABLE total(n INTEGER)")
conn.execute("INSERT INTO total VALUES (0)")
print("ready", flush=True)
while True:  # one row and the counter in each transaction: count(ledger) == total.n, always
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO ledger(body) VALUES (?)", ("x" * 300,))
    conn.execute("UPDATE total SET n = n + 1")
    conn.execute("COMMIT")
"""


@pytest.mark.timeout(400)  # several CLI processes; slow on a loaded machine
async def test_backups_taken_during_continuous_writes_are_consistent(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = _env(data)
    assert (await cli("db", "upgrade", cwd=tmp_path, env=env))[0] == 0
    live = data / "opencomputer.db"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(live)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout is not None and writer.stdout.readline() == "ready\n"
        counts = []
        for _ in range(3):
            code, out, err = await cli("backup", cwd=tmp_path, env=env)
            assert code == 0, err
            backup = Path(out.splitlines()[0])
            assert backup.parent == data / "backups" and backup.suffix == ".db"
            assert oct(os.stat(backup).st_mode & 0o777) == "0o600"
            rows = dump(backup)
            assert len(rows["ledger"]) == rows["total"][0][0]  # one instant, not a smear
            counts.append(len(rows["ledger"]))
            assert writer.poll() is None
        with contextlib.closing(_open(live)) as conn:
            after = conn.execute("SELECT n FROM total").fetchone()[0]
        assert 0 < counts[0] < counts[1] < counts[2] < after, counts  # written throughout
    finally:
        writer.kill()
        writer.wait()
        if writer.stdout is not None:
            writer.stdout.close()
    leftovers = [p.name for p in (data / "backups").iterdir() if not p.name.endswith(".db")]
    assert leftovers == []  # no temporary or journal file left behind


# --- a running server ---------------------------------------------------------------------------
@pytest.mark.timeout(400)  # several CLI processes; slow on a loaded machine
async def test_backup_under_a_running_server_and_restore_refused_until_it_stops(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    port = _free_port()
    async with FakeBotApi() as tg, FakeOllama() as model:
        env = _env(
            data,
            OLLAMA_HOST=model.url,
            OC_HTTP_HOST="127.0.0.1",
            OC_HTTP_PORT=str(port),
            TELEGRAM_BOT_TOKEN=TOKEN,
            TELEGRAM_BASE_URL=tg.base_url,
            OC_DM_POLICY="open",
            OC_RATE_LIMIT_USER="0",
            OC_RATE_LIMIT_CHAT="0",
        )
        log = (tmp_path / "server.log").open("wb")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "opencomputer", "run", env=env, cwd=tmp_path,
            stdout=asyncio.subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
        try:
            await until("the server to be ready", lambda: _readyz(port) == 200, timeout=90)

            def answered(n: int) -> bool:
                return len([k for k in tg.texts if k[0] == 77]) >= n

            for i in range(3):
                await tg.push(tg.message(f"before {i}", chat_id=77, user_id=77))
            await until("three answers", lambda: answered(3))
            code, out, err = await cli(
                "backup", str(tmp_path / "b" / "one.db"), cwd=tmp_path, env=env
            )
            assert code == 0, err
            assert out.split() == [
                str(tmp_path / "b" / "one.db"),
                str(tmp_path / "b" / "one-checkpoints.db"),
            ]
            for i in range(3):
                await tg.push(tg.message(f"after {i}", chat_id=77, user_id=77))
            await until("three more answers", lambda: answered(6))

            live = data / "opencomputer.db"
            refused = await cli("restore", str(tmp_path / "b" / "one.db"), cwd=tmp_path, env=env)
            _one_line_exit_2(
                refused,
                f"{live} is in use by a running opencomputer (run, chat, gateway or worker): "
                "stop it, then restore",
            )
            assert not list(data.glob("*.before-restore"))
            assert _readyz(port) == 200 and proc.returncode is None
        finally:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            await asyncio.wait_for(proc.wait(), 60)
            log.close()
        before = dump(live)
        assert "after 2" in repr(
            before["inbound_messages"]
        )  # the refused restore rolled nothing back

        backup = tmp_path / "b" / "one.db"
        code, out, err = await cli("restore", str(backup), cwd=tmp_path, env=env)
        assert code == 0, err
        assert out.splitlines()[0] == f"restored {live} from {backup}"
        assert dump(live) == dump(backup)  # every row, every table
        assert dump(data / "opencomputer-checkpoints.db") == dump(
            tmp_path / "b" / "one-checkpoints.db"
        )
        assert dump(data / "opencomputer.db.before-restore") == before
        texts = [r for rows in dump(live).values() for r in rows if "after 0" in repr(r)]
        assert texts == []  # what came after the backup is gone from the store...
        kept = [r for rows in before.values() for r in rows if "after 0" in repr(r)]
        assert kept  # ...and kept in the .before-restore copy
    assert "Traceback" not in (tmp_path / "server.log").read_text()


HOLDER = """
import os, sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA journal_mode=WAL")
conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
os.close(os.open(sys.argv[1], os.O_RDONLY))  # drops this process's POSIX locks on the file
print("holding", flush=True)
sys.stdin.read()
"""


@pytest.mark.timeout(400)  # several CLI processes; slow on a loaded machine
async def test_restore_refused_while_a_process_holds_the_store_without_its_file_lock(
    tmp_path: Path,
) -> None:
    """A process can lose its lock on the database file and keep its connection (closing any
    descriptor of the file drops them; the engine's permission check does that): SQLite's
    exclusive lock then succeeds, yet the store is in use. The WAL index lock still tells.
    """
    data = tmp_path / "data"
    env = _env(data)
    assert (await cli("db", "upgrade", cwd=tmp_path, env=env))[0] == 0
    live = data / "opencomputer.db"
    code, _out, err = await cli("backup", str(tmp_path / "b.db"), cwd=tmp_path, env=env)
    assert code == 0, err
    (data / "opencomputer-checkpoints.db").unlink()  # only the store itself is held
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(live)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "holding\n"
        _one_line_exit_2(
            await cli("restore", str(tmp_path / "b.db"), cwd=tmp_path, env=env),
            f"{live} is in use by a running opencomputer (run, chat, gateway or worker): "
            "stop it, then restore",
        )
        assert not list(data.glob("*.before-restore"))
    finally:
        assert holder.stdin is not None and holder.stdout is not None
        holder.stdin.close()
        holder.wait()
        holder.stdout.close()
    code, _out, err = await cli("restore", str(tmp_path / "b.db"), cwd=tmp_path, env=env)
    assert code == 0, err  # once it is gone, the restore goes ahead


# --- SQLCipher ------------------------------------------------------------------------------------
@pytest.mark.timeout(400)  # several CLI processes; slow on a loaded machine
async def test_encrypted_store_backup_stays_encrypted_and_restores(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with FakeOllama() as model:
        env = _env(data, OLLAMA_HOST=model.url, OC_DATABASE_KEY=KEY)
        code, out, err = await cli("chat", cwd=tmp_path, env=env, stdin=f"{SECRET_TEXT}\n".encode())
        assert code == 0, err
    live = data / "opencomputer.db"
    assert SECRET_TEXT in repr(dump(live, KEY))  # the text is in the store (the control)

    code, out, err = await cli("backup", cwd=tmp_path, env=env)
    assert code == 0, err
    files = [Path(p) for p in out.split()]
    assert [p.name.endswith(s) for p, s in zip(files, (".db", "-checkpoints.db"), strict=True)]
    for path in files:
        raw = path.read_bytes()
        assert SECRET_TEXT.encode() not in raw and not raw.startswith(b"SQLite format 3")
        with pytest.raises(sqlite3.DatabaseError), contextlib.closing(_open(path)) as conn:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchall()
    assert dump(files[0], KEY) == dump(live, KEY)

    wrong = _env(data, OC_DATABASE_KEY="not the key")
    _one_line_exit_2(
        await cli("backup", cwd=tmp_path, env=wrong),
        f"{live}: cannot open it with OC_DATABASE_KEY: the key is wrong, or the file is not an "
        "encrypted opencomputer database",
    )
    _one_line_exit_2(
        await cli("restore", str(files[0]), cwd=tmp_path, env=_env(data)),
        f"{files[0]} is not a SQLite database (if it is encrypted, set OC_DATABASE_KEY)",
    )

    from sqlcipher3 import dbapi2

    conn = dbapi2.connect(str(live))
    conn.execute(f"PRAGMA key = '{KEY}'")
    conn.execute("DELETE FROM inbound_messages")
    conn.commit()
    conn.close()
    assert dump(live, KEY)["inbound_messages"] == []
    code, out, err = await cli("restore", str(files[0]), cwd=tmp_path, env=env)
    assert code == 0, err
    assert dump(live, KEY) == dump(files[0], KEY)
    for path in data.iterdir():
        if path.is_file() and "vectors" not in path.name:
            assert SECRET_TEXT.encode() not in path.read_bytes(), path


# --- PostgreSQL ---------------------------------------------------------------------------------
async def test_postgresql_prints_the_commands_without_the_password(tmp_path: Path) -> None:
    url = "postgresql://oc:s3cret-pw@db.example:5433/ocdb?sslmode=require"
    env = _env(tmp_path / "data", OC_DATABASE_URL=url)
    code, out, err = await cli("backup", "nightly.dump", cwd=tmp_path, env=env)
    assert (code, err) == (0, ""), err
    assert out.splitlines() == [
        "PostgreSQL is backed up with its own tool; run (it asks for the password, or set "
        "PGPASSWORD):",
        "  pg_dump --format=custom --file=nightly.dump "
        "'postgresql://oc@db.example:5433/ocdb?sslmode=require'",
        "and restore with `opencomputer restore FILE` for the command.",
    ]
    code, out, err = await cli("restore", "nightly.dump", cwd=tmp_path, env=env)
    assert (code, err) == (0, ""), err
    assert out.splitlines()[1] == (
        "  pg_restore --clean --if-exists --no-owner --dbname "
        "'postgresql://oc@db.example:5433/ocdb?sslmode=require' nightly.dump"
    )
    assert os.listdir(tmp_path) == []  # nothing pretended, nothing made


# --- one-line errors ------------------------------------------------------------------------------
@pytest.fixture
def mount_tmpfs(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """Mount real tmpfs file systems (root only); unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (run the suite as root or in CI)")
    mounted: list[Path] = []

    def mount(options: str) -> Path:
        folder = tmp_path / f"fs{len(mounted)}"
        folder.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], check=True)
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], check=False)


async def test_missing_and_non_database_files_are_one_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = _env(data)
    missing = tmp_path / "nope.db"
    _one_line_exit_2(
        await cli("restore", str(missing), cwd=tmp_path, env=env),
        f"{missing}: no such database file",
    )
    _one_line_exit_2(
        await cli("backup", cwd=tmp_path, env=env),
        f"{data / 'opencomputer.db'}: no such database file",
    )
    assert not (data / "opencomputer.db").exists()  # a backup never creates the store
    text = tmp_path / "notes.db"
    text.write_text("these are notes, not a database\n")
    _one_line_exit_2(
        await cli("restore", str(text), cwd=tmp_path, env=env),
        f"{text} is not a SQLite database (if it is encrypted, set OC_DATABASE_KEY)",
    )
    other = _env(data, OC_DATABASE_URL=f"sqlite:///{text}")
    _one_line_exit_2(
        await cli("backup", str(tmp_path / "x.db"), cwd=tmp_path, env=other),
        f"{text} is not a SQLite database (if it is encrypted, set OC_DATABASE_KEY)",
    )


async def test_backup_into_a_folder_takes_the_default_name(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = _env(data)
    assert (await cli("db", "upgrade", cwd=tmp_path, env=env))[0] == 0
    folder = tmp_path / "usb"
    folder.mkdir()
    code, out, err = await cli("backup", str(folder), cwd=tmp_path, env=env)
    assert code == 0, err
    made = [Path(p) for p in out.split()]
    assert [p.parent for p in made] == [folder, folder], out
    assert re.fullmatch(r"opencomputer-\d{8}-\d{6}\.db", made[0].name), out
    assert dump(made[0]) == dump(data / "opencomputer.db")


async def test_read_only_target_is_one_line(
    tmp_path: Path, mount_tmpfs: Callable[..., Path]
) -> None:
    data = tmp_path / "data"
    env = _env(data)
    assert (await cli("db", "upgrade", cwd=tmp_path, env=env))[0] == 0
    ro = mount_tmpfs("size=1m,ro")
    _one_line_exit_2(
        await cli("backup", str(ro / "x.db"), cwd=tmp_path, env=env),
        f"cannot write to {ro} (Read-only file system): pick a writable folder",
    )


@pytest.mark.timeout(400)  # several CLI processes; slow on a loaded machine
async def test_full_disk_leaves_no_partial_file_and_older_backups_intact(
    tmp_path: Path, mount_tmpfs: Callable[..., Path]
) -> None:
    data = tmp_path / "data"
    env = _env(data)
    assert (await cli("db", "upgrade", cwd=tmp_path, env=env))[0] == 0
    with contextlib.closing(sqlite3.connect(data / "opencomputer.db")) as conn:
        conn.execute("CREATE TABLE bulk(body BLOB)")  # a store bigger than what is left below
        conn.executemany("INSERT INTO bulk VALUES (?)", [(os.urandom(4096),) for _ in range(150)])
        conn.commit()
    size = (data / "opencomputer.db").stat().st_size
    disk = mount_tmpfs("size=8m")
    code, _out, err = await cli("backup", str(disk / "old.db"), cwd=tmp_path, env=env)
    assert code == 0, err
    old = {p.name: p.read_bytes() for p in disk.iterdir()}
    assert set(old) == {"old.db", "old-checkpoints.db"}

    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    with (disk / "filler").open("wb") as f:  # leave half a store: the copy starts, then ENOSPC
        f.write(b"\0" * (free - size // 2))
    started = time.monotonic()
    _one_line_exit_2(
        await cli("backup", str(disk / "new.db"), cwd=tmp_path, env=env),
        f"disk full while writing {disk / 'new.db'}: free some space or pick another file",
    )
    assert time.monotonic() - started < 60
    assert sorted(p.name for p in disk.iterdir()) == ["filler", "old-checkpoints.db", "old.db"]
    assert {n: (disk / n).read_bytes() for n in old} == old
    assert dump(disk / "old.db")["bulk"]  # the old backup still opens, whole

    # Replacing an existing backup on a full disk keeps the old one as it was.
    _one_line_exit_2(
        await cli("backup", str(disk / "old.db"), cwd=tmp_path, env=env),
        f"disk full while writing {disk / 'old.db'}: free some space or pick another file",
    )
    assert {n: (disk / n).read_bytes() for n in old} == old
