"""A full disk under the data directory: new work refused, nothing lost, resumed by itself.

Each test mounts a real, size-limited file system (tmpfs, as root) and fills it with a filler
file until the kernel answers ENOSPC; then deletes the filler. Nothing is mocked: SQLite sees
"database or disk is full" from the kernel, the real `python -m bot run` talks to the Telegram
Bot API fake over HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
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

from opencomputer.bot.events import Chat, Message, User
from opencomputer.bot.storage import SqlStore
from opencomputer.bot.storage.disk import DiskFull, guard_for, refusing
from opencomputer.bot.storage.engine import WAL_LIMIT
from opencomputer.bot.testing import FakeOllama
from opencomputer.bot.testing.fake_ollama import Reply
from tests.telegram.fake_bot_api import TOKEN, FakeBotApi

PREFIXES = ("OC_", "OLLAMA_", "TELEGRAM_", "DISCORD_", "SLACK_", "MATRIX_")
MiB = 1 << 20


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Callable[[int], Path]]:
    """Mount tmpfs file systems of a given size (root only); unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a size-limited tmpfs needs root (run the suite as root or in CI)")
    mounted: list[Path] = []

    def mount(size: int) -> Path:
        folder = tmp_path / f"fs{len(mounted)}"
        folder.mkdir()
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(folder)],
            check=True,
        )
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path) -> Path:
    """Write a filler file until the file system has no byte left (ENOSPC)."""
    path = folder / "filler"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (MiB, 4096, 512, 1):
            block = b"\0" * size
            try:
                while True:
                    os.write(fd, block)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
    finally:
        os.close(fd)
    assert os.statvfs(folder).f_bavail == 0
    return path


async def until(what: str, check: Callable[[], bool], timeout: float = 60) -> float:
    """Poll ``check`` until it holds; return how long it took."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < timeout, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)
    return time.monotonic() - start


def _msg(event_id: str) -> Message:
    return Message(
        platform="tg",
        event_id=event_id,
        chat=Chat("tg", "c1"),
        user=User("tg", "u1"),
        text=f"text {event_id}",
        message_id=f"m-{event_id}",
    )


async def test_writes_wait_out_a_full_disk_and_inbound_is_refused(
    small_fs: Callable[[int], Path], caplog: pytest.LogCaptureFixture
) -> None:
    """SQLite's own "database or disk is full": a turn's write waits, an inbound is refused."""
    from langgraph.checkpoint.base import empty_checkpoint

    from opencomputer.graphs.agent.checkpointer import open_checkpointer
    from opencomputer.graphs.agent.sqlite_saver import WriterSaver

    caplog.set_level(logging.INFO, "opencomputer.bot.storage.disk")
    data = small_fs(16 * MiB)
    url = f"sqlite:///{data / 'oc.db'}"
    store = SqlStore(url)
    await store.start()
    guard = guard_for(data / "oc.db")
    try:
        async with open_checkpointer(url) as saver:
            assert await store.accept_inbound(_msg("1")) is not None
            config: Any = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
            await saver.aput(config, empty_checkpoint(), {}, {})
            for compact in guard.compactors:  # empty logs: the next write must allocate
                await compact()
            filler = fill(data)

            turn_write = asyncio.create_task(store.accept_inbound(_msg("2")))
            await until("the guard to notice", lambda: guard.full)
            # A checkpoint is deferred into the writer's next transaction: that one waits.
            await saver.aput(config, empty_checkpoint(), {}, {})
            assert isinstance(saver, WriterSaver)
            checkpoint = asyncio.create_task(saver.writer.flush())
            with refusing(), pytest.raises(DiskFull):  # what Runtime.emit does
                await store.accept_inbound(_msg("3"))
            assert guard.status.startswith("full: ") and "disk is full" in guard.status
            await asyncio.sleep(0)
            assert not turn_write.done() and not checkpoint.done()  # waiting, not failed

            freed = time.monotonic()
            filler.unlink()
            assert await asyncio.wait_for(turn_write, 30) is not None
            await asyncio.wait_for(checkpoint, 30)
            resumed = time.monotonic() - freed
            assert not guard.full and guard.status == "ok"
            stored = [r.event_id for r in await store.unfinished_inbound()]
            assert stored == ["1", "2"]  # the refused one was never half stored
            with contextlib.closing(sqlite3.connect(data / "oc-checkpoints.db")) as conn:
                saved = conn.execute("SELECT count(*) FROM checkpoints").fetchone()[0]
            assert saved == 2  # the deferred checkpoint was written once space came back
            assert await store.accept_inbound(_msg("3")) is not None  # delivered again: taken
            assert resumed < 10, resumed
    finally:
        await store.stop()
    lines = [r.getMessage() for r in caplog.records if r.name == "opencomputer.bot.storage.disk"]
    assert len([x for x in lines if x.startswith("disk full:")]) == 1, lines
    assert len([x for x in lines if x.startswith("disk space is back")]) == 1, lines
    for name in ("oc.db-wal", "oc-checkpoints.db-wal"):
        wal = data / name
        assert not wal.exists() or wal.stat().st_size <= WAL_LIMIT


# --- the real server -------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _readyz(port: int) -> tuple[int, dict[str, str]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as resp:
            return resp.status, dict(json.loads(resp.read())["checks"])
    except urllib.error.HTTPError as exc:  # 503: not ready, same body
        return exc.code, dict(json.loads(exc.read())["checks"])
    except OSError:
        return 0, {}


def _slow_echo(body: dict[str, Any]) -> Reply:
    users = [m for m in body.get("messages", []) if m.get("role") == "user"]
    text = users[-1].get("content", "")
    # "inflight" streams for about 3 s: the disk fills while its turn runs.
    return Reply(f"echo: {text}", chunks=6, pace=0.5 if text == "inflight" else 0.05)


def _final_texts(tg: FakeBotApi, chat_id: int) -> list[str]:
    """What the chat finally shows from the bot, oldest first."""
    return [tg.texts[key] for key in sorted(k for k in tg.texts if k[0] == chat_id)]


def _asked_from(tg: FakeBotApi, since: int, uid: int) -> int:
    """``getUpdates`` calls after the ``since``-th that confirm nothing from ``uid`` on."""
    polls = tg.calls_to("getUpdates")[since:]
    return len([c for c in polls if int(c.get("offset") or 0) in (0, uid)])


def _wal_sizes(data: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in data.glob("*-wal")}


async def _server(
    data: Path, tg: FakeBotApi, model: FakeOllama, port: int, log: Path
) -> asyncio.subprocess.Process:
    """The real `python -m bot run` with its data on ``data``; stderr appended to ``log``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(PREFIXES)}
    env = {
        **clean,
        "OC_DATA_DIR": str(data),
        "OLLAMA_HOST": model.url,
        "OC_HTTP_HOST": "127.0.0.1",
        "OC_HTTP_PORT": str(port),
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_BASE_URL": tg.base_url,
        "OC_DM_POLICY": "open",
        "OC_RATE_LIMIT_USER": "0",
        "OC_RATE_LIMIT_CHAT": "0",
        "OC_LOG_LEVEL": "INFO",
    }
    with log.open("ab") as err:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "opencomputer", "run", env=env, cwd=log.parent,
            stdout=asyncio.subprocess.DEVNULL, stderr=err,
        )  # fmt: skip


async def test_real_server_refuses_while_full_and_resumes_by_itself(
    small_fs: Callable[[int], Path],
) -> None:
    disk = small_fs(32 * MiB)
    data = disk / "data"
    port = _free_port()
    log = disk.parent / "server.log"  # outside the full file system
    async with FakeBotApi() as tg, FakeOllama() as model:
        model.responder = _slow_echo
        proc = await _server(data, tg, model, port, log)
        chats = [501, 502, 503, 504]
        try:
            await until(
                "the server to be ready",
                lambda: _readyz(port)[0] == 200,
                timeout=90,
            )
            for i, chat in enumerate(chats):
                await tg.push(tg.message(f"a{i}", chat_id=chat, user_id=chat))
            await until(
                "the first answers",
                lambda: all(f"echo: a{i}" in _final_texts(tg, c) for i, c in enumerate(chats)),
            )
            wal_before = _wal_sizes(data)

            await tg.push(tg.message("inflight", chat_id=505, user_id=505))
            await until("the in-flight turn to stream", lambda: bool(_final_texts(tg, 505)))
            filler = fill(disk)
            await until("/readyz to say full", lambda: _readyz(port)[0] == 503)
            _status, checks = _readyz(port)
            assert checks["disk"].startswith("full: "), checks
            pushed = len(tg.calls_to("getUpdates"))
            uids = []
            for n in range(12):
                chat = chats[n % len(chats)]
                uids.append(await tg.push(tg.message(f"b{n:02}", chat_id=chat, user_id=chat)))

            def asked_again() -> int:
                polls = tg.calls_to("getUpdates")[pushed:]
                return len([c for c in polls if int(c.get("offset") or 0) == uids[0]])

            # Not acknowledged: Telegram is asked again and again from the first refused update.
            await until("the same offset to be re-requested", lambda: asked_again() >= 3)
            assert proc.returncode is None
            assert not any("echo: b" in t for c in chats for t in _final_texts(tg, c))

            freed = time.monotonic()
            filler.unlink()
            await until("/readyz to say ok", lambda: _readyz(port)[1].get("disk") == "ok")
            ready_after = time.monotonic() - freed
            expected = {
                c: [f"echo: b{n:02}" for n in range(12) if chats[n % 4] == c] for c in chats
            }
            await until(
                "every refused message answered",
                lambda: all(
                    [t for t in _final_texts(tg, c) if t.startswith("echo: b")] == expected[c]
                    for c in chats
                ),
            )
            answered_after = time.monotonic() - freed
            await until(
                "the in-flight turn to finish", lambda: "echo: inflight" in _final_texts(tg, 505)
            )
            assert _final_texts(tg, 505) == ["echo: inflight"]  # once, no second copy
            await until(  # a settled writer truncates the log
                "the write-ahead log to be truncated",
                lambda: _wal_sizes(data).get("opencomputer.db-wal", 0) == 0,
                timeout=30,
            )
            wal_after = _wal_sizes(data)
            assert all(size <= WAL_LIMIT for size in wal_after.values()), wal_after
            # Exactly once: no answer appears twice anywhere.
            for chat in chats:
                shown = _final_texts(tg, chat)
                assert len(shown) == len(set(shown)), shown
            assert proc.returncode is None
        finally:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            await asyncio.wait_for(proc.wait(), 60)
    text = log.read_text()
    assert "Traceback" not in text, text[-4000:]
    full_lines = [line for line in text.splitlines() if "disk full:" in line]
    back_lines = [line for line in text.splitlines() if "disk space is back" in line]
    assert len(full_lines) == 1 and len(back_lines) == 1, (full_lines, back_lines)
    print(
        f"\ndisk-full figures: readyz ok {ready_after:.1f}s and all 12 answered "
        f"{answered_after:.1f}s after space returned; WAL before {wal_before}, after {wal_after}"
    )


async def test_terminal_says_not_taken_in_one_line_and_goes_on() -> None:
    """``opencomputer chat`` on a full disk: one line for the refused message, no crash."""
    import io

    from opencomputer.connectors.terminal import TerminalConnector

    taken: list[str] = []

    async def emit(event: Any) -> None:
        if event.text == "first":
            raise DiskFull("the disk is full (only 0 KiB free on /data)")
        taken.append(event.text)

    async def idle(_address: Any) -> None:
        return None

    out = io.StringIO()
    term = TerminalConnector(
        emit, wait_idle=idle, stdin=io.StringIO("first\nsecond\n"), stdout=out,
        interactive=False, user="me",
    )  # fmt: skip
    await term.start()
    await term.run()
    await term.stop()
    assert taken == ["second"]
    lines = [line for line in out.getvalue().splitlines() if "Not taken" in line]
    assert lines == [
        "Not taken: the disk is full (only 0 KiB free on /data). Send it again in a moment."
    ]


async def test_shutdown_on_a_full_disk_is_prompt_and_the_next_start_answers_once(
    small_fs: Callable[[int], Path],
) -> None:
    """An operator restarts the service while the disk is full: it stops cleanly, and the
    refused message (never confirmed to Telegram) is answered once after the next start.
    """
    disk = small_fs(32 * MiB)
    data = disk / "data"
    port = _free_port()
    log = disk.parent / "server.log"
    async with FakeBotApi() as tg, FakeOllama() as model:
        proc = await _server(data, tg, model, port, log)
        try:
            await until("the server to be ready", lambda: _readyz(port)[0] == 200, timeout=90)
            filler = fill(disk)
            await until("/readyz to say full", lambda: _readyz(port)[0] == 503)
            polls = len(tg.calls_to("getUpdates"))
            uid = await tg.push(tg.message("during", chat_id=601, user_id=601))
            # Asked again from the refused update (0: no offset yet, nothing confirmed).
            await until("the update to be refused", lambda: _asked_from(tg, polls, uid) >= 3)
            assert _final_texts(tg, 601) == []  # refused, not answered
            proc.terminate()
            stopped = await asyncio.wait_for(proc.wait(), 30)
            assert stopped == 0
            filler.unlink()
            proc = await _server(data, tg, model, port, log)
            await until("the answer", lambda: "echo: during" in _final_texts(tg, 601), timeout=90)
            await until("the server to be ready", lambda: _readyz(port)[0] == 200)
            assert _final_texts(tg, 601) == ["echo: during"]
        finally:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            await asyncio.wait_for(proc.wait(), 60)
    text = log.read_text()
    assert "Traceback" not in text, text[-4000:]


async def test_start_on_a_full_disk_is_one_line_and_exit_2(
    small_fs: Callable[[int], Path],
) -> None:
    """SQLite would fail with "disk I/O error" and a traceback; the operator gets one line."""
    disk = small_fs(16 * MiB)
    data = disk / "data"
    port = _free_port()
    log = disk.parent / "server.log"
    async with FakeBotApi() as tg, FakeOllama() as model:
        proc = await _server(data, tg, model, port, log)  # a first run makes the database
        try:
            await until("the server to be ready", lambda: _readyz(port)[0] == 200, timeout=90)
        finally:
            proc.terminate()
            assert await asyncio.wait_for(proc.wait(), 60) == 0
        fill(disk)
        log.write_text("")
        proc = await _server(data, tg, model, port, log)
        assert await asyncio.wait_for(proc.wait(), 60) == 2
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    assert "Traceback" not in log.read_text()
    assert lines[-1] == (
        f"the disk holding {data} is full (0 KiB free): free some space, then start again"
    ), lines[-5:]
