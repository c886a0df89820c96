"""What ``OC_DATABASE_KEY`` (SQLCipher) costs, against the plain SQLite store in the same run.

Three figures, each plain vs encrypted: full turns per second through the real App (fake Ollama
answering at once; inbound, outbox, graph checkpoint all written), single-row inserts per second
through the store's writer (one transaction each), and the time to open a connection (a
passphrase runs SQLCipher's PBKDF2 once per connection; a 64-hex-digit raw key skips it).

    .venv/bin/python bench/database_key.py [TURNS] [INSERTS]
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import quiet
from opencomputer.bot.config import load_settings
from opencomputer.bot.dedupe import first_time
from opencomputer.bot.storage import SqlStore
from opencomputer.bot.storage.engine import connect_sqlite, use_database_key
from opencomputer.bot.testing import FakeOllama
from opencomputer.bot.testing.harness import Harness

PASSPHRASE = "correct horse battery staple"
RAW = "ab" * 32


async def turns(url: str, folder: Path, key: str | None, n: int) -> float:
    extra = {"OC_DATABASE_KEY": key} if key else {}
    settings = load_settings(
        OLLAMA_HOST=url,
        OC_DATA_DIR=str(folder),
        OC_HTTP_PORT=0,
        OC_DM_POLICY="open",
        OC_RATE_LIMIT_USER="0",
        OC_RATE_LIMIT_CHAT="0",
        **extra,
    )
    async with Harness(settings) as h:
        await h.say("warm up")
        t0 = time.perf_counter()
        for i in range(n):
            await h.say(f"message {i}")
        return n / (time.perf_counter() - t0)


async def inserts(folder: Path, key: str | None, n: int) -> float:
    db = folder / "inserts.db"
    use_database_key(db, key)
    store = SqlStore(f"sqlite:///{db}")
    await store.start()
    try:
        await first_time(store, "bench", "warm-up")
        t0 = time.perf_counter()
        for i in range(n):
            await first_time(store, "bench", f"e{i}")
        return n / (time.perf_counter() - t0)
    finally:
        await store.stop()


def open_ms(folder: Path, key: str | None, n: int = 5) -> float:
    db = folder / "open.db"
    use_database_key(db, key)
    first = connect_sqlite(db)
    first.execute("CREATE TABLE t (x)")  # a database with pages: opening must derive the key
    first.commit()
    first.close()
    t0 = time.perf_counter()
    for _ in range(n):
        conn = connect_sqlite(db)  # reads the first page (applying the key) before returning
        conn.close()
    return (time.perf_counter() - t0) / n * 1000


async def main(n_turns: int, n_inserts: int) -> None:
    quiet()
    async with FakeOllama() as fake:
        results = {}
        for label, key in (("plain", None), ("passphrase", PASSPHRASE), ("raw key", RAW)):
            with tempfile.TemporaryDirectory() as tmp:
                base = Path(tmp)
                results[label] = (
                    await turns(fake.url, base / "turns", key, n_turns),
                    await inserts(base, key, n_inserts),
                    open_ms(base, key),
                )
    base_turns, base_inserts, _ = results["plain"]
    for label, (t, i, o) in results.items():
        print(
            f"{label:<11} turns/s={t:7.1f} ({t / base_turns:4.2f}x)  "
            f"inserts/s={i:7.0f} ({i / base_inserts:4.2f}x)  open={o:7.2f} ms"
        )


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    asyncio.run(main(*(args + [200, 2000][len(args) :])))
