"""Opening the store again must not drop the locks this process already holds on it.

On Linux, closing any descriptor of a file releases every POSIX lock the process holds on that
file. SQLite relies on those locks; a helper that merely opened and closed the store (to fix its
mode or read its header) while a transaction was open let another process write underneath it.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from opencomputer.bot.storage.engine import connect_sqlite, create_engine


def _locks_on(path: Path) -> list[str]:
    """This process's entries in /proc/locks for ``path``'s inode, without the line's ordinal
    (``13:``), which moves as other processes take and drop locks."""
    st = os.stat(path)
    dev = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    pid = str(os.getpid())
    return [
        line.split(":", 1)[1].strip()
        for line in Path("/proc/locks").read_text().splitlines()
        if dev in line and pid in line.split()
    ]


async def test_reopening_the_store_keeps_the_locks_of_an_open_transaction(tmp_path: Path) -> None:
    path = tmp_path / "data" / "opencomputer.db"
    holder = connect_sqlite(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN IMMEDIATE")  # RESERVED lock: another writer must wait
    holder.execute("INSERT INTO t VALUES (1)")
    held = _locks_on(path)
    assert held, "SQLite holds a POSIX lock during a write transaction"

    connect_sqlite(path).close()  # what every new pooled connection does first
    engine = create_engine(f"sqlite:///{path}")  # checks the header of an existing store
    await engine.dispose()
    assert _locks_on(path) == held

    # Another process is refused: the lock is real, not only SQLite's in-process bookkeeping.
    probe = (
        "import sqlite3, sys\n"
        "c = sqlite3.connect(sys.argv[1], timeout=0)\n"
        "try:\n    c.execute('BEGIN IMMEDIATE'); print('got in')\n"
        "except sqlite3.OperationalError as e:\n    print(e)\n"
    )
    try:
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-c", probe, str(path)],
            capture_output=True,
            text=True,
            check=True,
        )
        out = done.stdout
        assert "locked" in out, out
    finally:
        holder.execute("ROLLBACK")
        holder.close()
