"""The audit log's anchor outside the database: its key and its head (``bot/audit.py``).

Both files live in one folder (the data directory), 0600 whatever the umask. The key is made
once, exclusively, so two processes starting together agree on one. The head is replaced
atomically (temporary file, fsync, rename, fsync of the folder) under an advisory lock, and only
ever moves forward, so writers in several processes of one machine keep it right.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

__all__ = ["GENESIS", "HEAD_FILE", "KEY_FILE", "Anchor", "AuditAnchorError", "Head"]

GENESIS = "0" * 64

KEY_FILE = "audit.key"
HEAD_FILE = "audit.head"
_LOCK_FILE = "audit.lock"


class AuditAnchorError(RuntimeError):
    """The key or head outside the database is missing or unreadable."""


@dataclass(frozen=True, slots=True)
class Head:
    """What is recorded outside the database: the newest entry, and the legacy prefix."""

    seq: int = 0
    mac: str = GENESIS
    legacy: int = 0
    legacy_hash: str = GENESIS


class Anchor:
    """The key and head files of one audit log (one folder)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.key_path = folder / KEY_FILE
        self.head_path = folder / HEAD_FILE
        self._key: bytes | None = None

    def key(self) -> bytes | None:
        """The key, or None when none was made yet."""
        if self._key is None:
            try:
                raw = self.key_path.read_bytes()
            except FileNotFoundError:
                return None
            if len(raw) < 32:
                raise AuditAnchorError(f"{self.key_path} is too short to be an audit key")
            self._key = raw
        return self._key

    def create(self, legacy: int, legacy_hash: str) -> bytes:
        """Make the key (0600) and the first head, recording the unkeyed rows present now."""
        from opencomputer.bot.storage.engine import private_dir, private_file_open

        private_dir(self.folder)
        with self._locked():
            key = self.key()
            if key is not None:  # another process made it meanwhile
                return key
            with private_file_open(self.key_path, exclusive=True) as out:
                out.write(secrets.token_bytes(32))
                out.flush()
                os.fsync(out.fileno())
            self._write_head(Head(legacy, legacy_hash, legacy, legacy_hash))
        key = self.key()
        assert key is not None
        return key

    def head(self) -> Head | None:
        """The recorded head, or None when the file is absent."""
        try:
            data = orjson.loads(self.head_path.read_bytes())
        except FileNotFoundError:
            return None
        except orjson.JSONDecodeError as exc:
            raise AuditAnchorError(f"{self.head_path} is not valid JSON") from exc
        return Head(
            int(data["seq"]), str(data["mac"]), int(data["legacy"]), str(data["legacy_hash"])
        )

    def advance(self, seq: int, mac: str) -> None:
        """Record a newer entry as the head (never moves backwards)."""
        with self._locked():
            current = self.head() or Head()
            if seq > current.seq:
                self._write_head(Head(seq, mac, current.legacy, current.legacy_hash))

    def _write_head(self, head: Head) -> None:
        from opencomputer.bot.storage.engine import private_file_open

        tmp = self.head_path.with_name(f".{HEAD_FILE}.{os.getpid()}.tmp")
        body = {"seq": head.seq, "mac": head.mac, "legacy": head.legacy}
        body["legacy_hash"] = head.legacy_hash
        with private_file_open(tmp) as out:
            out.write(orjson.dumps(body))
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.head_path)
        fd = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(fd)  # the rename itself survives a crash
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        from opencomputer.bot.storage.engine import private_file_open

        with private_file_open(self.folder / _LOCK_FILE, append=True) as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
