"""The hash-chained audit log: verification catches edits, deletions and reordering."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import delete, update
from typer.testing import CliRunner

from opencomputer.bot.audit import AuditRow, audit, export, recent, verify
from opencomputer.bot.storage import SqlStore

_T = AuditRow.__table__  # type: ignore[attr-defined]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    s = SqlStore(f"sqlite:///{tmp_path / 'data' / 'opencomputer.db'}")
    await s.start()
    yield s
    await s.stop()


async def _fill(store: SqlStore, n: int = 5) -> None:
    for i in range(n):
        await audit(store, f"test:u{i}", "access.allow", {"subject": f"user:test:{i}"})


async def test_chain_verifies_and_reads_back(store: SqlStore) -> None:
    await _fill(store)
    result = await verify(store)
    assert result.ok and result.count == 5 and len(result.head) == 64
    newest = await recent(store, 2)
    assert [(e.seq, e.actor, e.detail) for e in newest] == [
        (5, "test:u4", {"subject": "user:test:4"}),
        (4, "test:u3", {"subject": "user:test:3"}),
    ]
    rows = [row async for row in export(store)]
    assert [r["seq"] for r in rows] == [1, 2, 3, 4, 5]
    assert all(b["prev_hash"] == a["hash"] for a, b in itertools.pairwise(rows))


async def test_edited_row_is_caught(store: SqlStore) -> None:
    await _fill(store)
    async with store.engine.begin() as conn:
        await conn.execute(update(_T).where(_T.c.seq == 3).values(actor="test:someone-else"))
    result = await verify(store)
    assert not result.ok and result.count == 2 and result.problem == "entry #3 was modified"


async def test_edited_row_with_recomputed_hash_is_caught(store: SqlStore) -> None:
    """Rewriting a row's own MAC too (even with the key) still breaks the link from the next
    row; tests/security/test_audit_tamper.py covers forgers without the key."""
    await _fill(store)
    from opencomputer.bot.audit import _mac, anchor_of

    key = anchor_of(store.engine).key()
    assert key is not None
    async with store.engine.begin() as conn:
        row = (await conn.execute(_T.select().where(_T.c.seq == 2))).one()
        forged = _mac(key, 2, row.at, row.actor, "access.deny", row.detail, row.prev_hash)
        await conn.execute(
            update(_T).where(_T.c.seq == 2).values(action="access.deny", hash=forged)
        )
    result = await verify(store)
    assert not result.ok and result.problem == "entry #3 does not follow its predecessor"


async def test_deleted_row_is_caught(store: SqlStore) -> None:
    await _fill(store)
    async with store.engine.begin() as conn:
        await conn.execute(delete(_T).where(_T.c.seq == 4))
    result = await verify(store)
    assert not result.ok and result.problem == "entry #4 is missing"


async def test_concurrent_writers_keep_one_chain(store: SqlStore) -> None:
    await asyncio.gather(*(audit(store, f"test:w{i}", "x") for i in range(12)))
    result = await verify(store)
    assert result.ok and result.count == 12


async def test_audit_log_on_postgres(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OC_DATA_DIR", str(tmp_path))  # the key and head live in the data dir
    pg = SqlStore(postgres_url)
    await pg.start()
    try:
        await asyncio.gather(*(audit(pg, f"test:p{i}", "x", {"i": i}) for i in range(8)))
        assert (await verify(pg)).count == 8
        async with pg.engine.begin() as conn:
            await conn.execute(update(_T).where(_T.c.seq == 5).values(detail='{"i": 99}'))
        assert (await verify(pg)).problem == "entry #5 was modified"
    finally:
        await pg.stop()


def test_cli_verify_and_export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from opencomputer.bot.cli import app

    data = tmp_path / "data"
    monkeypatch.setenv("OC_DATA_DIR", str(data))

    async def prepare(tamper: bool) -> None:
        s = SqlStore(f"sqlite:///{data / 'opencomputer.db'}")
        await s.start()
        if tamper:
            async with s.engine.begin() as conn:
                await conn.execute(update(_T).where(_T.c.seq == 1).values(action="forged"))
        else:
            await _fill(s, 3)
        await s.stop()

    runner = CliRunner()
    asyncio.run(prepare(False))
    ok = runner.invoke(app, ["audit", "verify"])
    assert ok.exit_code == 0 and "audit log OK: 3 entries" in ok.output
    exported = runner.invoke(app, ["audit", "export"])
    assert exported.exit_code == 0 and exported.output.count('"action":"access.allow"') == 3
    asyncio.run(prepare(True))
    broken = runner.invoke(app, ["audit", "verify"])
    assert broken.exit_code == 1 and "entry #1 was modified" in broken.output
