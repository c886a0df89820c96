"""``OC_FILE_RETENTION_DAYS``: what was read from files and the terminal's files expire
(bot/media/retention.py), and the terminal's ``/forget`` empties its folder.

The sweep is called with a fixed "now"; the stored rows are real (SQLite through the writer
thread, PostgreSQL through SQLAlchemy), and so are the files and links on disk.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from opencomputer.bot.admin.data import forget_person
from opencomputer.bot.app import App
from opencomputer.bot.config import ConfigError, Settings, load_settings
from opencomputer.bot.media.retention import Retention, Swept
from opencomputer.bot.storage import SqlStore
from opencomputer.bot.storage.models import InboundRow
from opencomputer.bot.testing.services import ServiceUnavailable, postgres_database
from opencomputer.connectors.terminal import TerminalConnector, create
from tests.conftest import _unavailable

_IN = InboundRow.__table__  # type: ignore[attr-defined]
DAY = 86400.0
NOW = 1_800_000_000.0

READ = [
    {"kind": "audio", "handle": "h1", "name": "voice.oga", "size": 900, "transcript": "hi"},
    {"kind": "document", "handle": "h2", "name": "a.pdf", "size": 5000, "text": "T", "block": "B"},
    {"kind": "image", "handle": "h3", "name": "p.png", "size": 70},
]
BARE = [{k: v for k, v in a.items() if k not in ("transcript", "text", "block")} for a in READ]


async def _started(url: str) -> AsyncIterator[SqlStore]:
    s = SqlStore(url)
    await s.start()
    yield s
    await s.stop()


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SqlStore]:
    """The same sweep on both executors: the SQLite writer thread and SQLAlchemy."""
    if request.param == "sqlite":
        async for s in _started(f"sqlite:///{tmp_path / 'data' / 'opencomputer.db'}"):
            yield s
        return
    try:
        async with postgres_database() as url:
            async for s in _started(url):
                yield s
    except ServiceUnavailable as exc:
        _unavailable("postgres", exc)


async def _message(store: SqlStore, event: str, received_at: float, attachments: object) -> int:
    async with store.engine.begin() as conn:
        result = await conn.execute(
            insert(_IN).values(
                platform="test", event_id=event, conversation="test:c", chat_id="c",
                user_id="u", text="", received_at=received_at,
                attachments=None if attachments is None else json.dumps(attachments),
            )
        )  # fmt: skip
        key = result.inserted_primary_key
        assert key is not None
        return int(key[0])


async def _attachments(store: SqlStore, inbound_id: int) -> object:
    async with store.engine.connect() as conn:
        text = await conn.scalar(select(_IN.c.attachments).where(_IN.c.id == inbound_id))
    return None if text is None else json.loads(text)


def _file(folder: Path, name: str, age_days: float) -> Path:
    path = folder / name
    path.write_text(name)
    os.utime(path, (NOW - age_days * DAY, NOW - age_days * DAY))
    return path


async def test_a_sweep_drops_old_kept_text_and_files_and_keeps_new_ones(
    store: SqlStore, tmp_path: Path
) -> None:
    old = await _message(store, "e1", NOW - 31 * DAY, READ)
    new = await _message(store, "e2", NOW - 29 * DAY, READ)
    plain = await _message(store, "e3", NOW - 90 * DAY, None)
    files = tmp_path / "files"
    files.mkdir()
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    _file(files, "old.png", 31)
    _file(files, "new.png", 1)
    link = files / "link"
    link.symlink_to(outside)
    os.utime(link, (NOW - 40 * DAY, NOW - 40 * DAY), follow_symlinks=False)
    (files / "sub").mkdir()
    _file(files / "sub", "older.txt", 90)

    swept = await Retention(store, files, 30).sweep(now=NOW)

    assert swept == Swept(messages=1, files=2)
    assert await _attachments(store, old) == BARE  # kind, name and size stay
    assert await _attachments(store, new) == READ
    assert await _attachments(store, plain) is None
    assert sorted(p.name for p in files.iterdir()) == ["new.png", "sub"]
    assert outside.read_text() == "keep me"  # the link went, not what it pointed at
    assert (files / "sub" / "older.txt").exists()  # not ours: left alone
    assert await Retention(store, files, 30).sweep(now=NOW) == Swept(0, 0)  # idempotent


async def test_many_old_messages_and_damaged_ones_are_swept_in_batches(
    store: SqlStore, tmp_path: Path
) -> None:
    ids = [await _message(store, f"m{i}", NOW - 60 * DAY, READ) for i in range(450)]
    damaged = await _message(store, "bad", NOW - 60 * DAY, None)
    async with store.engine.begin() as conn:  # not JSON, though it looks kept
        await conn.execute(
            _IN.update().where(_IN.c.id == damaged).values(attachments='"transcript" [')
        )
    swept = await Retention(store, tmp_path / "none", 30).sweep(now=NOW)
    assert swept == Swept(messages=450, files=0)  # a missing folder is no error
    assert await _attachments(store, ids[0]) == await _attachments(store, ids[-1]) == BARE
    async with store.engine.connect() as conn:
        raw = await conn.scalar(select(_IN.c.attachments).where(_IN.c.id == damaged))
    assert raw == '"transcript" ['  # unreadable: left as it was


async def test_zero_keeps_everything(store: SqlStore, tmp_path: Path) -> None:
    old = await _message(store, "e1", NOW - 3000 * DAY, READ)
    files = tmp_path / "files"
    files.mkdir()
    _file(files, "ancient.png", 3000)
    retention = Retention(store, files, 0)
    assert await retention.sweep(now=NOW) == Swept(0, 0)
    await retention.start()  # no job at all
    assert retention._job is None
    assert await _attachments(store, old) == READ
    assert (files / "ancient.png").exists()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("-1", "OC_FILE_RETENTION_DAYS: Input should be greater than or equal to 0"),
        ("month", "OC_FILE_RETENTION_DAYS: Input should be a valid number"),
    ],
)
def test_a_bad_retention_is_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: str
) -> None:
    monkeypatch.setenv("OC_FILE_RETENTION_DAYS", value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    lines = str(info.value).splitlines()
    assert len(lines) == 2
    assert lines[1].strip().startswith(expected)


async def test_the_sweep_runs_at_start_and_stops_with_the_app(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(OC_FILE_RETENTION_DAYS="30")
    files = settings.data_dir / "files"
    files.mkdir(parents=True)
    stale = files / "stale.png"
    stale.write_text("x")
    os.utime(stale, (1.0, 1.0))
    app = App(settings)
    await app.start(lambda _s, _rt: [], http=False)
    try:
        expiry = app.hooks.pm.get_plugin("media-retention")
        assert expiry is not None
        job = expiry.retention._job
        assert job is not None and not job.done()
        async with asyncio.timeout(5):
            while stale.exists():  # the first sweep runs right away, in the background
                await asyncio.sleep(0.01)
    finally:
        await app.stop()
    assert job.done()


async def test_forget_by_the_terminals_user_empties_its_folder(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings()
    app = App(settings)
    holder: list[TerminalConnector] = []

    def factory(s: Settings, _rt: object) -> list[TerminalConnector]:
        terminal = create(s, app.runtime.emit, wait_idle=app.runtime.wait_idle, hooks=app.hooks)
        holder.append(terminal)
        return holder

    await app.start(factory, http=False)  # type: ignore[arg-type]
    try:
        files = holder[0].files_dir
        assert files == settings.data_dir / "files"
        files.mkdir(parents=True)
        outside = tmp_path / "outside.txt"
        outside.write_text("keep me")
        _file(files, "chart.png", 0)
        (files / "link").symlink_to(outside)
        (files / "sub").mkdir()
        me = holder[0].user.key

        said = await forget_person(app, "someone", ["telegram:42"])  # not the terminal's user
        assert "files sent to the terminal" not in " ".join(said)
        assert (files / "chart.png").exists()

        said = await forget_person(app, me, [me])
        assert "2 files sent to the terminal" in said
        assert sorted(p.name for p in files.iterdir()) == ["sub"]
        assert outside.read_text() == "keep me"
    finally:
        await app.stop()
