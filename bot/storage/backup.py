"""Online backups and restores of the SQLite store (with its graph checkpoints).

Why these mechanisms:

* **Consistent while in use**: SQLite's online backup API (``Connection.backup`` with every page
  in one step) copies the database inside one read transaction. In WAL mode readers do not block
  writers, so a running server keeps writing and the copy is the snapshot of one instant.
* **Encrypted stays encrypted**: with a key, both ends are SQLCipher connections keyed with it;
  pages are re-encrypted as they are written, so no plaintext byte ever reaches the disk.
* **Atomic**: the copy is written to a temporary file beside the target (0600), checked, fsynced,
  then renamed over the target and the folder fsynced. A failure (a full disk) removes the
  temporary file: the target either is a complete backup or is what it was before.
* **Checkpoints**: the LangGraph checkpoints live in ``<stem>-checkpoints.db`` beside the store
  (``graphs/agent/checkpointer.py``). A backup ``X.db`` gets ``X-checkpoints.db`` beside it, the
  same naming rule, so a backup file is itself a usable store.
* **Restore refuses while a server runs** by taking SQLite's own exclusive lock
  (``locking_mode=EXCLUSIVE`` + ``BEGIN EXCLUSIVE``, no wait) on the store and its checkpoints.
  Every process with the store open (``run``, ``gateway``, ``worker``, ``chat``: the engine's
  pooled connections and the checkpointer's connection stay open for the process's life) holds a
  WAL read lock, so the attempt fails while any of them is alive and succeeds after a crash
  (the kernel drops the locks of a dead process; no stale pid file to clean up). The lock is then
  *kept* during the restore, which writes the backup into the live file through the backup API
  (same inode, WAL and side files handled by SQLite): a server starting meanwhile waits and then
  sees the restored data, never a half-swapped file.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shlex
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from opencomputer.bot.storage.engine import private_dir, private_file_open, secure_sqlite_files

__all__ = [
    "CHECKPOINTS_SUFFIX",
    "BackupError",
    "ServerRunningError",
    "backup_command",
    "backup_sqlite",
    "checkpoints_of",
    "restore_command",
    "restore_sqlite",
    "verify_sqlite",
]

CHECKPOINTS_SUFFIX = "-checkpoints.db"
"""The graph checkpoints' file beside a store: ``<stem>-checkpoints.db``."""

_VECTORS_SUFFIX = "-vectors.db"  # memory index: derived from the memory rows, rebuilt at start
_BEFORE_RESTORE = ".before-restore"
_HEADER = b"SQLite format 3\x00"


class BackupError(RuntimeError):
    """A backup or restore cannot be done; the message is one line for the user."""


class ServerRunningError(BackupError):
    """The store is open in another process (a server or chat is running)."""


def checkpoints_of(path: Path) -> Path:
    """The graph checkpoints' file that belongs to the store (or backup) at ``path``."""
    return path.with_name(path.stem + CHECKPOINTS_SUFFIX)


def backup_sqlite(src: Path, dest: Path, key: str | None) -> list[Path]:
    """Copy the SQLite store ``src`` (and its checkpoints file) to ``dest``, safely while in use.

    Meant to be called by ``opencomputer backup`` and by ``db upgrade`` before it migrates a
    SQLite store. ``dest``'s folder is created (0700) if missing; an existing ``dest`` is replaced
    only once the new copy is complete. ``key`` is the SQLCipher key of ``src`` (None for plain
    SQLite); the copy is encrypted with the same key.

    Returns:
        The files written: ``dest``, then ``<dest stem>-checkpoints.db`` when ``src`` has one.

    Raises:
        BackupError: with a one-line message: ``src`` missing, not a SQLite database or not
            openable with ``key``; ``dest`` not writable, the disk full, or ``dest`` naming the
            store itself. Nothing partial is left behind.
    """
    src, dest = Path(src), Path(dest)
    pairs = [(src, dest)]
    if checkpoints_of(src).exists():
        pairs.append((checkpoints_of(src), checkpoints_of(dest)))
    live = {p.resolve() for p, _ in pairs} | {checkpoints_of(src).resolve()}
    if any(target.resolve() in live for _, target in pairs):
        raise BackupError(
            f"{dest}: a backup cannot overwrite the database itself; pick another file"
        )
    _check_source(src, key)
    _make_folder(dest.parent)
    temps: list[tuple[Path, Path]] = []
    try:
        for source, target in pairs:
            temps.append((_copy_to_temp(source, target, key), target))
        try:
            for tmp, target in reversed(temps):  # the store last: it marks a whole backup
                os.replace(tmp, target)
            _fsync_dir(dest.parent)
        except OSError as exc:
            raise _os_error(exc, dest) from None
    finally:
        for tmp, _target in temps:
            _remove(tmp)
    return [target for _, target in pairs]


def verify_sqlite(path: Path, key: str | None) -> None:
    """Raise :class:`BackupError` unless ``path`` opens with ``key`` and passes integrity_check."""
    _check_source(path, key)
    with contextlib.closing(_connect(path, key, mode="ro")) as conn:
        try:
            rows = conn.execute("PRAGMA integrity_check").fetchall()
        except _errors() as exc:
            raise BackupError(f"{path}: cannot be checked: {exc}") from None
    if [tuple(r) for r in rows] != [("ok",)]:
        raise BackupError(f"{path} is damaged (integrity_check: {rows[0][0]}); use another backup")


def restore_sqlite(backup: Path, dest: Path, key: str | None) -> list[Path]:
    """Replace the store ``dest`` (and its checkpoints) with the backup ``backup``.

    The backup (and its checkpoints file, when present) is verified first. Then SQLite's
    exclusive lock is taken on ``dest`` and its checkpoints without waiting: if another process
    has them open, :class:`ServerRunningError` is raised and nothing changes. Under that lock the
    current files are kept as ``<name>.before-restore`` and the backup is written into them. The
    memory vector index (``<stem>-vectors.db``) is moved aside too; it is rebuilt at the next
    start from the restored memories.

    Returns:
        The ``.before-restore`` copies written.

    Raises:
        BackupError: one line (missing or damaged backup, wrong key, full disk, ...).
        ServerRunningError: the store is in use.
    """
    backup, dest = Path(backup), Path(dest)
    pairs = [(backup, dest)]
    if checkpoints_of(backup).exists():
        pairs.append((checkpoints_of(backup), checkpoints_of(dest)))
    if backup.resolve() in {dest.resolve(), checkpoints_of(dest).resolve()}:
        raise BackupError(f"{backup} is the database itself; name a backup file")
    for source, _ in pairs:
        verify_sqlite(source, key)
    vectors = dest.with_name(dest.stem + _VECTORS_SUFFIX)
    for path in (dest, checkpoints_of(dest), vectors):  # every file a server keeps open
        try:
            running = _in_use(path)
        except OSError as exc:
            raise _os_error(exc, path) from None
        if running:
            raise ServerRunningError(
                f"{dest} is in use by a running opencomputer (run, chat, gateway or worker): "
                "stop it, then restore"
            )
    kept: list[Path] = []
    with contextlib.ExitStack() as stack:
        held = [
            (source, stack.enter_context(_exclusive(target, key, dest)), target)
            for source, target in pairs
        ]
        for source, live, target in held:
            if target.stat().st_size > 0:
                keep = target.with_name(target.name + _BEFORE_RESTORE)
                os.replace(_write_copy(live, keep, key), keep)
                _fsync_dir(keep.parent)
                kept.append(keep)
            with contextlib.closing(_connect(source, key, mode="ro")) as src:
                _run_backup(src, live, target)
        if vectors.exists():
            for suffix in ("", "-wal", "-shm"):
                side = vectors.with_name(vectors.name + suffix)
                if side.exists():
                    kept_side = side.with_name(side.name + _BEFORE_RESTORE)
                    os.replace(side, kept_side)
                    os.chmod(kept_side, 0o600)  # made by sqlite-vec with the umask's mode
    return kept


def backup_command(database_url: str, data_dir: Path, file: Path | None) -> list[str]:
    """What ``opencomputer backup [FILE]`` does and prints (the lines to print).

    SQLite: back up to ``file`` or ``<data dir>/backups/<store>-<UTC time>.db`` (that name
    inside ``file`` when it is a folder); print the paths.
    PostgreSQL: print the ``pg_dump`` command for the configured database (without its password)
    and back up nothing: the server's own tool does this better than we could.
    """
    from opencomputer.bot.storage.engine import database_key, sqlite_path

    path = sqlite_path(database_url)
    if path is None:
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        target = file or Path(f"opencomputer-{stamp}.dump")
        return [
            "PostgreSQL is backed up with its own tool; run (it asks for the password, or set "
            "PGPASSWORD):",
            "  "
            + shlex.join(["pg_dump", "--format=custom", f"--file={target}", _libpq(database_url)]),
            "and restore with `opencomputer restore FILE` for the command.",
        ]
    if file is None or file.is_dir():  # a folder: the default name in it
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        folder = file or data_dir / "backups"
        file = folder / f"{path.stem}-{stamp}.db"
        n = 1
        while file.exists() or checkpoints_of(file).exists():
            n += 1
            file = folder / f"{path.stem}-{stamp}-{n}.db"
    written = backup_sqlite(path, file, database_key(path))
    return [str(p) for p in written]


def restore_command(database_url: str, file: Path) -> list[str]:
    """What ``opencomputer restore FILE`` does and prints (the lines to print)."""
    from opencomputer.bot.storage.engine import database_key, sqlite_path

    path = sqlite_path(database_url)
    if path is None:
        return [
            "PostgreSQL is restored with its own tool; stop opencomputer, then run (it asks for "
            "the password, or set PGPASSWORD):",
            "  "
            + shlex.join(
                [
                    "pg_restore",
                    "--clean",
                    "--if-exists",
                    "--no-owner",
                    "--dbname",
                    _libpq(database_url),
                    str(file),
                ]
            ),
        ]
    kept = restore_sqlite(file, path, database_key(path))
    lines = [f"restored {path} from {file}"]
    lines += [f"the replaced file is kept as {k}" for k in kept]
    return lines


def _libpq(database_url: str) -> str:
    """The URL as libpq reads it (pg_dump, psql), without the password."""
    from sqlalchemy.engine import URL, make_url

    url = make_url(database_url)
    bare = URL.create("postgresql", url.username, None, url.host, url.port, url.database, url.query)
    return bare.render_as_string(hide_password=False)


# --- internals ----------------------------------------------------------------------------------
def _errors() -> tuple[type[BaseException], ...]:
    """sqlite3's and SQLCipher's error classes (they are distinct hierarchies)."""
    try:
        from sqlcipher3 import dbapi2
    except ImportError:
        return (sqlite3.Error,)
    return (sqlite3.Error, dbapi2.Error)


def _connect(path: Path, key: str | None, *, mode: str, timeout: float = 30.0) -> Any:
    """A raw connection (autocommit) that never creates ``path`` unless ``mode`` is ``rwc``.

    Raw, not :func:`bot.storage.engine.connect_sqlite`: that one creates missing files, and the
    backup API needs two connections of the same module.
    """
    uri = f"file:{quote(str(path.resolve()))}?mode={mode}"
    if key is None:
        return sqlite3.connect(uri, uri=True, timeout=timeout, isolation_level=None)
    from opencomputer.bot.storage.engine import _cipher, _key_pragma  # the store's own key handling

    conn = _cipher().connect(uri, uri=True, timeout=timeout, isolation_level=None)
    conn.execute("PRAGMA cipher_log_level = NONE")  # a wrong key is our one line, not a log
    conn.execute(_key_pragma(key))
    return conn


def _check_source(path: Path, key: str | None) -> None:
    """One line for a missing file, a file that is not SQLite, or a wrong key."""
    if not path.is_file():
        raise BackupError(f"{path}: no such database file")
    with path.open("rb") as f:
        header = f.read(16)
    if key is None and header != _HEADER:
        raise BackupError(
            f"{path} is not a SQLite database (if it is encrypted, set OC_DATABASE_KEY)"
        )
    try:
        with contextlib.closing(_connect(path, key, mode="ro")) as conn:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except _errors() as exc:
        if key is not None:
            raise BackupError(
                f"{path}: cannot open it with OC_DATABASE_KEY: the key is wrong, or the file "
                "is not an encrypted opencomputer database"
            ) from None
        raise BackupError(f"{path} is not a readable SQLite database ({exc})") from None


def _make_folder(folder: Path) -> None:
    try:
        if not folder.exists():
            private_dir(folder)
    except OSError as exc:
        raise _os_error(exc, folder) from None


def _os_error(exc: OSError, where: Path) -> BackupError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return BackupError(f"disk full while writing {where}: free some space or pick another file")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return BackupError(f"cannot write to {where} ({exc.strerror}): pick a writable folder")
    return BackupError(f"cannot write {where}: {exc.strerror or exc}")


def _sqlite_error(exc: BaseException, where: Path) -> BackupError:
    name = getattr(exc, "sqlite_errorname", "")
    if name == "SQLITE_FULL" or "disk is full" in str(exc):
        return BackupError(f"disk full while writing {where}: free some space or pick another file")
    if name in ("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM"):
        return BackupError(f"cannot write to {where} ({exc}): pick a writable folder")
    return BackupError(f"cannot write {where}: {exc}")


def _copy_to_temp(source: Path, target: Path, key: str | None) -> Path:
    """Back ``source`` up into a new, complete, fsynced temporary file beside ``target``."""
    with contextlib.closing(_connect(source, key, mode="rw")) as src:
        return _write_copy(src, target, key)


def _write_copy(src: Any, target: Path, key: str | None) -> Path:
    """Write the database open on ``src`` to a checked, fsynced temporary file beside
    ``target`` (0600, one self-contained file); return it for the caller to rename.
    """
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    _remove(tmp)
    try:
        try:
            with private_file_open(tmp, exclusive=True):
                pass
        except OSError as exc:
            raise _os_error(exc, target.parent) from None
        with contextlib.closing(_connect(tmp, key, mode="rw")) as out:
            _run_backup(src, out, target)
            try:
                # WAL pages come along in the header; a backup is one file, no -wal beside it.
                out.execute("PRAGMA journal_mode=DELETE")
                rows = out.execute("PRAGMA quick_check").fetchall()
            except _errors() as exc:
                raise _sqlite_error(exc, target) from None
            if [tuple(r) for r in rows] != [("ok",)]:
                raise BackupError(f"{target}: the copy failed its check ({rows[0][0]})")
        try:
            with tmp.open("rb+") as f:
                os.fsync(f.fileno())
        except OSError as exc:
            raise _os_error(exc, target) from None
    except BaseException:
        _remove(tmp)
        raise
    return tmp


def _run_backup(src: Any, out: Any, where: Path) -> None:
    """Every page in one step: one read transaction on the source, so one consistent instant."""
    try:
        src.backup(out)
    except _errors() as exc:
        raise _sqlite_error(exc, where) from None


_DMS_BYTE = 128
"""SQLite's "dead man switch" in ``<db>-shm`` (unix VFS, ``UNIX_SHM_DMS``): every connection
with the WAL index open holds a read lock on this byte until it closes."""


def _in_use(path: Path) -> bool:
    """Whether another process has the WAL database ``path`` open (a read lock on its DMS byte).

    Checked besides SQLite's own exclusive lock because a process can lose its lock on the
    database file itself while keeping its connections (POSIX locks are dropped when *any* file
    descriptor of the process on that file is closed, e.g. by a permission check); the -shm
    file is touched by SQLite alone.
    """
    shm = path.with_name(path.name + "-shm")
    try:
        fd = os.open(shm, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:
        return False
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, _DMS_BYTE, os.SEEK_SET)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            return True
        raise
    else:
        fcntl.lockf(fd, fcntl.LOCK_UN, 1, _DMS_BYTE, os.SEEK_SET)
    finally:
        os.close(fd)
    return False


@contextlib.contextmanager
def _exclusive(path: Path, key: str | None, store: Path) -> Iterator[Any]:
    """Hold SQLite's exclusive lock on ``path`` (created 0600 if missing) or raise at once.

    ``store`` is the database named in the message (``path`` may be its checkpoints file).
    """
    running = ServerRunningError(
        f"{store} is in use by a running opencomputer (run, chat, gateway or worker): "
        "stop it, then restore"
    )
    try:
        if _in_use(path):
            raise running
        secure_sqlite_files(path)
    except OSError as exc:
        raise _os_error(exc, path) from None
    conn = _connect(path, key, mode="rwc", timeout=0.0)
    try:
        try:
            conn.execute("PRAGMA locking_mode=EXCLUSIVE")
            conn.execute("BEGIN EXCLUSIVE")
            conn.execute("COMMIT")  # exclusive locking mode keeps the lock until close
        except _errors() as exc:
            if "locked" in str(exc) or getattr(exc, "sqlite_errorname", "") == "SQLITE_BUSY":
                raise running from None
            raise BackupError(
                f"{path}: cannot open it{' with OC_DATABASE_KEY' if key else ''} ({exc})"
            ) from None
        yield conn
    finally:
        conn.close()


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)  # the rename itself survives a crash
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    """Delete a temporary file and its side files; quietly (an error is already on its way)."""
    for suffix in ("", "-journal", "-wal", "-shm"):
        with contextlib.suppress(OSError):
            path.with_name(path.name + suffix).unlink()
