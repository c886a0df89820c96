"""The audit log against its database's owner.

The attacker here can run any SQL on the database (raw ``sqlite3``, not our code) and knows the
row format, but cannot read ``audit.key`` or rewrite ``audit.head`` in the data directory. Each
test tampers, recomputes the chain the best way such an attacker can (plain SHA-256, the old
format, or HMAC under a guessed key), and asserts that ``verify`` fails with a one-line reason.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import sqlite3
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from opencomputer.bot.audit import GENESIS, audit, verify
from opencomputer.bot.storage import SqlStore


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "data" / "opencomputer.db"


@pytest.fixture
async def store(db: Path) -> AsyncIterator[SqlStore]:
    s = SqlStore(f"sqlite:///{db}")
    await s.start()
    yield s
    await s.stop()


async def _fill(store: SqlStore, n: int = 5) -> None:
    for i in range(n):
        await audit(store, f"test:u{i}", "access.allow", {"subject": f"user:test:{i}"})


def _sha(row: dict[str, Any]) -> str:
    body = [
        row["seq"],
        repr(row["at"]),
        row["actor"],
        row["action"],
        row["detail"],
        row["prev_hash"],
    ]
    return hashlib.sha256(orjson.dumps(body)).hexdigest()


def _guessed_hmac(row: dict[str, Any]) -> str:
    body = [
        row["seq"],
        repr(row["at"]),
        row["actor"],
        row["action"],
        row["detail"],
        row["prev_hash"],
    ]
    return hmac.new(b"\0" * 32, orjson.dumps(body), hashlib.sha256).hexdigest()


def _tamper(db: Path, sql: str, *params: Any, recompute: Any = _sha) -> None:
    """Run the attacker's SQL, then rebuild every hash and link from the first row."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.row_factory = sqlite3.Row
    try:
        conn.execute("BEGIN IMMEDIATE")
        if sql:
            conn.execute(sql, params)
        prev = GENESIS
        for raw in conn.execute("SELECT * FROM audit_log ORDER BY seq").fetchall():
            row = {**dict(raw), "prev_hash": prev}
            row["hash"] = recompute(row)
            conn.execute(
                "UPDATE audit_log SET prev_hash = ?, hash = ? WHERE id = ?",
                (row["prev_hash"], row["hash"], row["id"]),
            )
            prev = row["hash"]
        conn.execute("COMMIT")
    finally:
        conn.close()


async def test_untampered_log_verifies_and_its_anchor_is_private(store: SqlStore, db: Path) -> None:
    await _fill(store)
    result = await verify(store)
    assert result.ok and result.count == 5 and result.problem == ""
    for name in ("audit.key", "audit.head"):
        assert stat.S_IMODE((db.parent / name).stat().st_mode) == 0o600
    head = orjson.loads((db.parent / "audit.head").read_bytes())
    assert head["seq"] == 5 and head["mac"] == result.head


@pytest.mark.parametrize("recompute", [_sha, _guessed_hmac], ids=["sha256", "guessed-key"])
async def test_edited_row_with_recomputed_chain_is_caught(
    store: SqlStore, db: Path, recompute: Any
) -> None:
    await _fill(store)
    _tamper(db, "UPDATE audit_log SET actor = 'test:nobody' WHERE seq = 3", recompute=recompute)
    result = await verify(store)
    assert not result.ok and result.problem == "entry #1 was modified"  # every row rehashed


async def test_edit_keeping_the_keyed_prefix_is_caught(store: SqlStore, db: Path) -> None:
    """The attacker leaves rows 1-2 alone and rehashes only from the edited row on."""
    await _fill(store)

    def from_three(row: dict[str, Any]) -> str:
        return row["hash"] if row["seq"] < 3 else _sha(row)

    _tamper(db, "UPDATE audit_log SET action = 'access.deny' WHERE seq = 3", recompute=from_three)
    result = await verify(store)
    assert not result.ok and result.count == 2 and result.problem == "entry #3 was modified"


async def test_deleted_middle_row_is_caught_even_renumbered(store: SqlStore, db: Path) -> None:
    await _fill(store)
    conn = sqlite3.connect(db)
    conn.execute("DELETE FROM audit_log WHERE seq = 2")
    conn.execute("UPDATE audit_log SET seq = seq - 1 WHERE seq > 2")
    conn.commit()
    conn.close()
    _tamper(db, "")
    result = await verify(store)
    assert not result.ok and result.problem == "entry #1 was modified"


async def test_deleted_middle_row_without_rehash_is_caught(store: SqlStore, db: Path) -> None:
    await _fill(store)
    conn = sqlite3.connect(db)
    conn.execute("DELETE FROM audit_log WHERE seq = 4")
    conn.commit()
    conn.close()
    result = await verify(store)
    assert not result.ok and result.problem == "entry #4 is missing"


async def test_inserted_row_is_caught(store: SqlStore, db: Path) -> None:
    await _fill(store)
    conn = sqlite3.connect(db)
    newest = conn.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
    row = {
        "seq": newest[0] + 1,
        "at": 1.0,
        "actor": "test:intruder",
        "action": "access.admin_add",
        "detail": "{}",
        "prev_hash": newest[1],
    }
    conn.execute(
        "INSERT INTO audit_log (seq, at, actor, action, detail, prev_hash, hash)"
        " VALUES (:seq, :at, :actor, :action, :detail, :prev_hash, :hash)",
        {**row, "hash": _sha(row)},
    )
    conn.commit()
    conn.close()
    result = await verify(store)
    assert not result.ok and result.count == 5 and result.problem == "entry #6 was modified"


async def test_truncated_log_is_caught(store: SqlStore, db: Path) -> None:
    """Deleting the newest rows leaves a valid chain: only the head outside the DB sees it."""
    await _fill(store)
    conn = sqlite3.connect(db)
    conn.execute("DELETE FROM audit_log WHERE seq > 3")
    conn.commit()
    conn.close()
    result = await verify(store)
    assert not result.ok and result.count == 3
    assert result.problem == (
        "entries #4-#5 are missing (the log ends at #3, its head outside the database says #5)"
    )
    conn = sqlite3.connect(db)  # emptied completely
    conn.execute("DELETE FROM audit_log")
    conn.commit()
    conn.close()
    assert (await verify(store)).problem.startswith("entries #1-#5 are missing")


async def test_missing_head_or_key_fails_verification(store: SqlStore, db: Path) -> None:
    await _fill(store, 2)
    (db.parent / "audit.head").unlink()
    result = await verify(store)
    assert not result.ok and result.problem.endswith(
        "audit.head is missing: the log cannot be checked against it"
    )


async def test_legacy_rows_are_anchored_when_the_key_is_made(store: SqlStore, db: Path) -> None:
    """Rows from before the key (plain SHA-256) stay as they are and are anchored from then on."""
    conn = sqlite3.connect(db)
    prev = GENESIS
    for seq in (1, 2, 3):
        row = {
            "seq": seq,
            "at": float(seq),
            "actor": "test:old",
            "action": "x",
            "detail": "{}",
            "prev_hash": prev,
        }
        row["hash"] = prev = _sha(row)
        conn.execute(
            "INSERT INTO audit_log (seq, at, actor, action, detail, prev_hash, hash)"
            " VALUES (:seq, :at, :actor, :action, :detail, :prev_hash, :hash)",
            row,
        )
    conn.commit()
    conn.close()
    assert not (db.parent / "audit.key").exists()
    await audit(store, "test:new", "access.allow")  # makes the key, anchors rows 1-3
    head = orjson.loads((db.parent / "audit.head").read_bytes())
    assert head["legacy"] == 3 and head["seq"] == 4
    assert (await verify(store)).ok
    # Rewriting the old rows consistently (as was possible before) is now caught.
    conn = sqlite3.connect(db)
    conn.execute("DELETE FROM audit_log WHERE seq = 4")
    conn.commit()
    conn.close()

    def legacy_only(row: dict[str, Any]) -> str:
        return _sha(row)

    _tamper(db, "UPDATE audit_log SET actor = 'test:other' WHERE seq = 2", recompute=legacy_only)
    result = await verify(store)
    assert not result.ok and result.problem == "entry #3 was modified"


def test_cli_verify_reports_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from opencomputer.bot.cli import app

    data = tmp_path / "data"
    monkeypatch.setenv("OC_DATA_DIR", str(data))

    async def fill() -> None:
        s = SqlStore(f"sqlite:///{data / 'opencomputer.db'}")
        await s.start()
        await _fill(s, 4)
        await s.stop()

    asyncio.run(fill())
    runner = CliRunner()
    ok = runner.invoke(app, ["audit", "verify"])
    assert ok.exit_code == 0 and "audit log OK: 4 entries" in ok.output
    conn = sqlite3.connect(data / "opencomputer.db")
    conn.execute("DELETE FROM audit_log WHERE seq = 4")
    conn.commit()
    conn.close()
    broken = runner.invoke(app, ["audit", "verify"])
    assert broken.exit_code == 1
    assert broken.output.strip().count("\n") == 0  # one line, no traceback
    assert "entry #4 is missing (the log ends at #3" in broken.output
