"""Disk pressure: notice a full disk, refuse new work, resume by itself when space returns.

A SQLite database in the data directory cannot take a write once its file system is full, and
an event that is acknowledged to its platform but not stored would be lost. So one
:class:`DiskGuard` per data folder turns "database or disk is full" (``SQLITE_FULL``,
``ENOSPC``), from any connection to that folder, or free space below a low-water mark, into one
state: ``full``. While full:

- ``Runtime.emit`` raises :class:`DiskFull` (a :class:`~bot.connector.RuntimeStopped`), so
  connectors leave the event unacknowledged and the platform delivers it again;
- a write made by a turn already running (the store's writer, the graph checkpointer) waits
  for space instead of failing, then runs again: its transaction was rolled back, so nothing is
  half written and the turn's answer is sent once;
- ``/readyz`` reports ``disk: full: ...`` (HTTP 503).

A probe with capped backoff (free space from ``statvfs``, then a real allocation of the
resume margin) notices when space is back, compacts the write-ahead logs and clears the state.
One log line marks the start of a streak and one its end.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import errno
import logging
import os
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

from opencomputer.bot.connector import RuntimeStopped
from opencomputer.bot.storage.urls import async_url, sqlite_path

__all__ = [
    "LOW_WATER",
    "RESUME_AT",
    "DiskFull",
    "DiskGuard",
    "full_at_start",
    "guard_for_url",
    "is_disk_full",
    "may_wait",
    "refusing",
]

logger = logging.getLogger(__name__)

LOW_WATER = 4 << 20
"""Below this many free bytes new work is refused, so running turns can still finish."""
RESUME_AT = 8 << 20
"""Work is taken again once this many bytes are free and can be allocated (no flapping)."""
_STAT_EVERY = 1.0
"""Seconds between two free-space checks on the hot path (``statvfs`` is cheap, not free)."""
_SQLITE_FULL = 13


class DiskFull(RuntimeStopped):
    """The data directory's disk is full: the event is not taken (deliver it again later)."""


def is_disk_full(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or what caused it) says the disk or a quota is full."""
    seen: list[BaseException] = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        if isinstance(exc, DiskFull):
            return True
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if isinstance(exc, sqlite3.Error):
            code = getattr(exc, "sqlite_errorcode", None)
            if (code is not None and code & 0xFF == _SQLITE_FULL) or "disk is full" in str(exc):
                return True
        orig = getattr(exc, "orig", None)  # SQLAlchemy's DBAPIError wraps the driver's error
        exc = orig if isinstance(orig, BaseException) else (exc.__cause__ or exc.__context__)
    return False


# --- who may wait --------------------------------------------------------------------------
_REFUSING: contextvars.ContextVar[asyncio.Task[object] | None] = contextvars.ContextVar(
    "oc_disk_refusing", default=None
)


@contextlib.contextmanager
def refusing() -> Iterator[None]:
    """Inside, storage that meets a full disk raises :class:`DiskFull` at once, not waits.

    ``Runtime.emit`` uses it: an inbound event must be refused quickly (the platform keeps it),
    never parked. The mark names the current task, so tasks started inside (a conversation's
    lane copies the context) still wait as turns should.
    """
    token = _REFUSING.set(_current_task())
    try:
        yield
    finally:
        _REFUSING.reset(token)


def may_wait() -> bool:
    """Whether the running code may wait for space (False inside :func:`refusing`)."""
    task = _REFUSING.get()
    return task is None or task is not _current_task()


def _current_task() -> asyncio.Task[object] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:
        return None


# --- the guard -----------------------------------------------------------------------------
Compactor = Callable[[], Awaitable[None]]


class DiskGuard:
    """The disk state of one data folder, shared by every connection to files in it."""

    def __init__(
        self,
        folder: Path,
        *,
        low_water: int = LOW_WATER,
        resume_at: int = RESUME_AT,
        first_probe: float = 0.2,
        probe_cap: float = 5.0,
    ) -> None:
        self.folder = folder
        self.low_water = low_water
        self.resume_at = max(resume_at, low_water)
        self.first_probe = first_probe
        self.probe_cap = probe_cap
        self.reason = ""
        self.compactors: list[Compactor] = []
        """Run when space is back (checkpoint and truncate write-ahead logs)."""
        self._since = 0.0
        self._checked = 0.0
        self._space: asyncio.Event | None = None
        self._probe: asyncio.Task[None] | None = None

    @property
    def full(self) -> bool:
        """Whether new work is refused now."""
        return bool(self.reason)

    @property
    def status(self) -> str:
        """``ok`` or ``full: <why>`` (``/readyz``)."""
        return f"full: {self.reason}" if self.reason else "ok"

    def check(self) -> None:
        """Raise :class:`DiskFull` when the disk is full (free space is looked at every
        second at most, so a disk filled by someone else is noticed before SQLite fails).
        """
        now = time.monotonic()
        if not self.reason and now - self._checked >= _STAT_EVERY:
            self._checked = now
            free = self.free_bytes()
            if free is not None and free < self.low_water:
                self.mark_full(f"only {free // 1024} KiB free on {self.folder}")
        if self.reason:
            raise DiskFull(f"the disk is full ({self.reason}); deliver this event later")

    def report(self, exc: BaseException) -> bool:
        """Note a failed write: True (and the state is full) when the disk caused it.

        SQLite says "disk I/O error" rather than "full" when growing its shared-memory file
        fails: on a folder below the low-water mark that is a full disk too.
        """
        if not is_disk_full(exc) and not (_io_error(exc) and self._low()):
            return False
        if not self.reason:
            self.mark_full(f"{_describe(exc)} on {self.folder}")
        return True

    def mark_full(self, reason: str) -> None:
        """Enter the full state (one log line per streak) and start probing for space."""
        if not self.reason:
            self.reason = reason
            self._since = time.monotonic()
            logger.error(
                "disk full: %s; refusing new messages (platforms will deliver them again) "
                "until space is freed",
                reason,
            )
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop here (a sync caller): the next async caller starts the probe
        if self._probe is None or self._probe.done() or self._probe.get_loop() is not loop:
            self._space = asyncio.Event()
            self._probe = loop.create_task(self._probe_until_space(), name="disk-probe")

    async def wait_for_space(self) -> None:
        """Return once the disk is no longer full (cancellable: a shutdown does not wait)."""
        while self.reason:
            self.mark_full(self.reason)  # (re)starts the probe on this loop if needed
            assert self._space is not None
            await self._space.wait()

    def stop_probing(self) -> None:
        """Stop the probe (the store is closing); a later wait starts it again."""
        probe, self._probe = self._probe, None
        if probe is not None and not probe.done():
            with contextlib.suppress(RuntimeError):  # its loop is already closed
                probe.cancel()

    def _low(self) -> bool:
        free = self.free_bytes()
        return free is not None and free < self.low_water

    def free_bytes(self) -> int | None:
        """Bytes an unprivileged writer may still use on the folder's file system."""
        try:
            st = os.statvfs(self.folder)
        except OSError:
            return None
        return st.f_bavail * st.f_frsize

    async def _probe_until_space(self) -> None:
        delay = self.first_probe
        while self.reason:
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.probe_cap)
            if not await asyncio.to_thread(self._room_for, self.resume_at):
                continue
            try:
                for compact in self.compactors:
                    await compact()
            except Exception as exc:
                if is_disk_full(exc):
                    continue
                logger.warning("compacting the write-ahead log failed: %s", exc)
            free = self.free_bytes() or 0
            took = time.monotonic() - self._since
            self.reason = ""
            self._checked = time.monotonic()
            logger.warning(
                "disk space is back on %s (%d MiB free) after %.1f s; taking new messages again",
                self.folder,
                free >> 20,
                took,
            )
            if self._space is not None:
                self._space.set()

    def _room_for(self, size: int) -> bool:
        """Whether ``size`` bytes can really be allocated in the folder (then freed again)."""
        free = self.free_bytes()
        if free is not None and free < size:
            return False
        probe = self.folder / f".oc-space-probe-{os.getpid()}"
        try:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        except OSError:
            return False
        try:
            try:
                os.posix_fallocate(fd, 0, size)
            except OSError as exc:
                if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                    return False
                block = b"\0" * (1 << 20)
                for _ in range(0, size, len(block)):
                    os.write(fd, block)
            return True
        except OSError:
            return False
        finally:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(probe)


def _io_error(exc: BaseException | None) -> bool:
    seen: list[BaseException] = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        if isinstance(exc, sqlite3.Error) and "disk I/O error" in str(exc):
            return True
        orig = getattr(exc, "orig", None)
        exc = orig if isinstance(orig, BaseException) else (exc.__cause__ or exc.__context__)
    return False


def _describe(exc: BaseException) -> str:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        if isinstance(current, OSError | sqlite3.Error):
            return str(current) or type(current).__name__
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__
    return str(exc) or type(exc).__name__


def full_at_start(url: str) -> str | None:
    """Why the database cannot be opened for lack of space (None when it can, or not local).

    SQLite opening a database on a full disk fails with "disk I/O error" and a traceback; the
    command line says this instead, in one line.
    """
    guard = guard_for_url(url)
    free = None if guard is None else guard.free_bytes()  # None: the folder does not exist yet
    if guard is None or free is None or free >= guard.low_water:
        return None
    return (
        f"the disk holding {guard.folder} is full ({free // 1024} KiB free): "
        "free some space, then start again"
    )


# --- one guard per folder ------------------------------------------------------------------
_GUARDS: dict[Path, DiskGuard] = {}
_BY_URL: dict[str, DiskGuard | None] = {}


def guard_for(path: Path) -> DiskGuard:
    """The guard of the folder holding the SQLite file ``path`` (shared by its connections)."""
    folder = path.resolve().parent
    guard = _GUARDS.get(folder)
    if guard is None:
        guard = _GUARDS[folder] = DiskGuard(folder)
    return guard


def guard_for_url(url: str) -> DiskGuard | None:
    """The guard for a database URL; None when the database is not a local SQLite file."""
    if url in _BY_URL:
        return _BY_URL[url]
    path = sqlite_path(async_url(url))
    guard = None if path is None else guard_for(path)
    _BY_URL[url] = guard
    return guard
