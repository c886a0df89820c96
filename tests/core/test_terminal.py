"""The terminal channel as a user meets it: the real ``opencomputer chat`` in a subprocess, fed
through a pipe (scripts) or a pseudo-terminal (a person), against the fake Ollama on loopback."""

from __future__ import annotations

import asyncio
import io
import os
import pty
import re
import select
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opencomputer.bot.app import App
from opencomputer.bot.config import Settings
from opencomputer.bot.testing import FakeOllama, Reply
from opencomputer.connectors.terminal import TerminalConnector
from opencomputer.connectors.terminal.connector import REPLAYED

ANSWER = "**Bold** answer, with a list:\n\n- one\n- two\n\nand `code`."
BIN = [sys.executable, "-m", "opencomputer", "chat"]


def _env(fake: FakeOllama, data: Path) -> dict[str, str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OC_", "OLLAMA_", "TELEGRAM_", "DISCORD_", "SLACK_", "MATRIX_"))
    }
    return {
        **clean,
        "OLLAMA_HOST": fake.url,
        "OC_DATA_DIR": str(data),
        "TERM": "xterm-256color",
        "COLUMNS": "100",
    }


async def _piped(env: dict[str, str], stdin: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *BIN,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode()), timeout=60)
    return proc.returncode or 0, out.decode(), err.decode()


class Tty:
    """``opencomputer chat`` on a pseudo-terminal: type keys, wait for what it prints."""

    def __init__(self, env: dict[str, str]) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: the real command, its stdin/stdout a terminal
            os.execve(sys.executable, BIN, env)
        self.seen = b""

    def expect(self, pattern: str, limit: float = 30.0) -> str:
        """Read until ``pattern`` (a regex) shows up in the output; return all output so far."""
        deadline = time.monotonic() + limit
        while not re.search(pattern.encode(), self.seen):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{pattern!r} not printed; got {self.seen!r}")
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:  # the child closed the terminal
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"{pattern!r} not printed before exit; got {self.seen!r}")
                self.seen += chunk
        return self.seen.decode(errors="replace")

    def type(self, keys: str) -> None:
        os.write(self.fd, keys.encode())

    def wait(self, limit: float = 30.0) -> int:
        """The exit status, reading (and keeping) what is printed until then."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
            ready, _, _ = select.select([self.fd], [], [], 0.05)
            if ready:
                try:
                    self.seen += os.read(self.fd, 65536)
                except OSError:
                    pass
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        os.close(self.fd)
        raise AssertionError(f"did not exit; printed {self.seen!r}")


def _visible(screen: str) -> str:
    """The text without terminal escape sequences (colours, cursor moves)."""
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen)


def _slow_answers(fake: FakeOllama) -> None:
    """Answers streamed in eight pieces, 0.3 s apart: time for Ctrl-C in the middle."""

    def respond(body: dict[str, Any]) -> Reply:
        last = body["messages"][-1]["content"]
        return Reply(f"{ANSWER} ({last})", chunks=8, pace=0.3)

    fake.responder = respond


async def test_piped_session_keeps_one_answer_per_line_and_plain_text(
    fake_ollama: FakeOllama, tmp_path: Path
) -> None:
    fake_ollama.responder = lambda body: Reply(ANSWER.replace("\n\n", "\n"))
    env = _env(fake_ollama, tmp_path / "d")
    code, out, err = await _piped(env, "/good\nhello\n/good\n/bad\nbye\n")
    assert code == 0, err
    one = ANSWER.replace("\n\n", "\n")
    assert out == "\n".join(
        [
            "Nothing to rate yet: /good rates the last answer.",
            one,
            "👍 Noted: the last answer was good.",
            "👎 Noted: the last answer was bad.",
            one,
            "",
        ]
    )
    assert "\x1b" not in out and "Unknown command" not in out  # plain: no escape codes


async def test_help_lists_every_command_including_the_terminals_own(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama
) -> None:
    app = App(make_settings())
    out = io.StringIO()
    holder: list[TerminalConnector] = []

    def factory(_s: Settings, _rt: object) -> list[TerminalConnector]:
        holder.append(
            TerminalConnector(
                app.runtime.emit, wait_idle=app.runtime.wait_idle, stdin=io.StringIO("/help\n"),
                stdout=out, interactive=False, user="me",
            )
        )  # fmt: skip
        return holder

    await app.start(factory, http=False)  # type: ignore[arg-type]
    try:
        await holder[0].run()
        listed = set(re.findall(r"(?m)^/([a-z]+)", out.getvalue()))
        registered = {spec.name for spec in app.commands.specs(admin=True)}
    finally:
        await app.stop()
    assert len(registered) > 10
    assert registered | {"good", "bad", "quit"} <= listed, out.getvalue()


async def test_answer_cut_by_ctrl_c_is_replayed_on_its_own_line_in_a_tty(
    fake_ollama: FakeOllama, tmp_path: Path
) -> None:
    _slow_answers(fake_ollama)
    env = _env(fake_ollama, tmp_path / "d")

    def first_session() -> tuple[str, int]:
        tty = Tty(env)
        tty.expect("› ")
        tty.type("hello\r")
        printed = tty.expect("Bold")  # the answer has begun streaming ...
        tty.type("\x03")  # ... and the user presses Ctrl-C
        return printed, tty.wait()

    printed, status = await asyncio.to_thread(first_session)
    assert status == 130
    assert "(hello)" not in printed  # it was cut before the end

    def second_session() -> str:
        tty = Tty(env)
        screen = tty.expect(r"\(hello\)")  # the cut answer, shown again in full
        tty.type("\x04")  # Ctrl-D: leave
        assert tty.wait() == 0
        return screen

    screen = await asyncio.to_thread(second_session)
    # the note has a line of its own: it starts right after a line break, never after "› "
    assert re.search(r"\r\n(\x1b\[[0-9;]*m)*" + re.escape(REPLAYED), screen), screen
    assert "› " + REPLAYED not in screen and "›" + REPLAYED not in screen
    after = screen[screen.index(REPLAYED) :]
    # Rich rendered the Markdown: bold, bullets, no raw ** or "- "
    assert "\x1b[1mBold" in after and " • one" in _visible(after)
    assert "**" not in after and "- one" not in after


async def test_in_a_pipe_a_replayed_answer_goes_to_stderr_under_its_note(
    fake_ollama: FakeOllama, tmp_path: Path
) -> None:
    _slow_answers(fake_ollama)
    env = _env(fake_ollama, tmp_path / "d")

    def cut_session() -> int:
        tty = Tty(env)
        tty.expect("› ")
        tty.type("hello\r")
        tty.expect("Bold")
        tty.type("\x03")
        return tty.wait()

    assert await asyncio.to_thread(cut_session) == 130
    code, out, err = await _piped(env, "bye\n")
    assert code == 0, err
    assert out == f"{ANSWER} (bye)\n"  # stdout: the answer to the one line typed, nothing else
    assert f"{REPLAYED}:\n{ANSWER} (hello)\n" in err
