"""Chat with the agent in a terminal.

Interactive (a TTY): a prompt, answers streamed as they are written and rendered as Markdown
with Rich. Scripted (stdin is a pipe or file): each line is one message, each answer is printed
once complete as plain text, and the session ends at end of input, so
``echo "hi" | opencomputer chat`` works in scripts and tests: every input line gets its answer.
``/good`` and ``/bad`` rate the last answer (the terminal has no emoji reactions) and say so in
one line. ``/file PATH [text]`` sends a local file with the message, as a photo or a document
sent on a messenger would be.

An answer that the last session never finished showing (Ctrl-C, a crash) is sent again at the
next start: it is not an answer to anything typed in this session, so it is shown under a note
on a line of its own (on stderr in a pipe, so stdout keeps one answer per input line).
"""

from __future__ import annotations

import asyncio
import getpass
import logging
import mimetypes
import re
import shlex
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from opencomputer.bot.attachments import AttachmentError, claimed_kind, too_large
from opencomputer.bot.connector import (
    Capabilities,
    CommandSpec,
    ConnectorState,
    Emit,
    Formatting,
    RuntimeStopped,
)
from opencomputer.bot.events import (
    Address,
    Attachment,
    Chat,
    ChatKind,
    Command,
    Message,
    Reaction,
    User,
)
from opencomputer.bot.hooks import DataRights
from opencomputer.bot.media.retention import remove_files
from opencomputer.bot.outfiles import OutFile
from opencomputer.connectors.terminal.screen import Screen

__all__ = ["TerminalConnector"]

logger = logging.getLogger(__name__)

PLATFORM = "terminal"
_RATINGS = {"good": "👍", "bad": "👎"}
_LOCAL_HELP = (
    "In this terminal:",
    "/good — Rate the last answer as good.",
    "/bad — Rate the last answer as bad.",
    "/file PATH [text] — Send a file from this computer (quote a path with spaces).",
    "/quit (or /exit, Ctrl-D) — Leave the chat.",
)
REPLAYED = "↻ Replayed: an answer the last session did not finish showing"


class TerminalConnector:
    """One local user talking to the agent through stdin/stdout."""

    platform = PLATFORM

    def __init__(
        self,
        emit: Emit,
        *,
        wait_idle: Callable[[Address], Awaitable[None]],
        stdin: TextIO | None = None,
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
        interactive: bool | None = None,
        pretty: bool | None = None,
        user: str | None = None,
        files_dir: Path | None = None,
        hooks: Any = None,
    ) -> None:
        self._emit = emit
        self.files_dir = files_dir
        """Where files sent to this terminal are written (``<data dir>/files``)."""
        if hooks is not None and files_dir is not None:  # /forget empties the folder
            hooks.register(DataRights(self.forget), "terminal-files")
        self._wait_idle = wait_idle
        self._in = stdin or sys.stdin
        self._out = stdout or sys.stdout
        self.interactive = self._in.isatty() if interactive is None else interactive
        # Rich only where a person reads a terminal: a pipe gets the text as written
        pretty = self.interactive and self._out.isatty() if pretty is None else pretty
        self.screen = Screen(self._out, pretty=pretty, streaming=self.interactive)
        # replayed answers: beside the prompt on a TTY, apart from the answers in a pipe
        self._aside = (
            self.screen
            if self.interactive
            else Screen(stderr or sys.stderr, pretty=False, streaming=False)
        )
        name = user or getpass.getuser()
        self.user = User(PLATFORM, name, name)
        self.chat = Chat(PLATFORM, name, ChatKind.DIRECT, "terminal")
        self.capabilities = Capabilities(
            max_length=1_000_000,
            can_edit=self.interactive,
            can_react=False,
            can_type=False,
            formatting=Formatting.MARKDOWN,
            edit_interval=0.03,
            keeps_messages=False,  # a new session replays a cut answer instead of editing it
        )
        self.state = ConnectorState.STOPPED
        self._last_sent: str | None = None
        self._counter = 0
        self._mine: set[str] = set()  # ids of the messages typed in this session
        self._commands: set[str] = set()  # ... of them, the commands (plain-text answers)
        self._reading = False  # run() has started: sends before it are the last session's
        self._replayed: set[str] = set()  # ids of answers shown as replayed

    @property
    def address(self) -> Address:
        """The single conversation of this terminal."""
        return Address(PLATFORM, self.chat.id)

    async def start(self) -> None:
        """Nothing to connect to; :meth:`run` drives the session."""
        self.state = ConnectorState.CONNECTED

    async def stop(self) -> None:
        """Mark the channel closed; a live answer cut short (Ctrl-C) is left as shown."""
        self.screen.settle()  # also gives the cursor back
        self.screen.fresh_line()
        self.state = ConnectorState.STOPPED

    async def run(self) -> None:
        """Read lines until end of input (or ``/quit``), one message per line."""
        self._reading = True
        if self.interactive:
            self.screen.line("opencomputer — type a message, /help for commands, Ctrl-D to quit.")
        while True:
            if self.interactive:
                self.screen.raw("\n› ")
            line = await asyncio.to_thread(self._in.readline)
            if not line:
                break
            text = line.strip()
            if not text:
                continue
            if text in ("/quit", "/exit"):
                break
            name = text[1:].partition(" ")[0].lower() if text.startswith("/") else ""
            if name in _RATINGS and self._last_sent is None:
                self.screen.line(f"Nothing to rate yet: /{name} rates the last answer.")
                continue
            if name == "file":
                attached = self._attach(text[len("/file") :].strip())
                if attached is None:
                    continue
                event: Message | Command | Reaction = attached
            else:
                event = self._event(text)
            if not isinstance(event, Reaction):
                self._mine.add(event.message_id)  # its answer is this session's, not a replay
            if isinstance(event, Command):
                self._commands.add(event.message_id)
            try:
                await self._emit(event)
            except RuntimeStopped as exc:  # a full disk (or shutting down): not taken
                self.screen.line(f"Not taken: {exc}. Send it again in a moment.")
                continue
            await self._wait_idle(self.address)
            self._after(name, event)
        self.screen.settle()
        self.screen.fresh_line()

    def _after(self, name: str, event: Message | Command | Reaction) -> None:
        """What the terminal adds to an answer: the rating's acknowledgement, its own commands."""
        if isinstance(event, Reaction):
            word = "good" if event.emoji == _RATINGS["good"] else "bad"
            self.screen.line(f"{event.emoji} Noted: the last answer was {word}.")
        elif name == "help":
            self.screen.line("\n".join(_LOCAL_HELP))

    def _attach(self, args: str) -> Message | None:
        """``/file PATH [text]``: a message carrying a local file (None, and one line, if not)."""
        try:
            words = shlex.split(args)
        except ValueError as exc:  # an unclosed quote
            self.screen.line(f"Cannot read that: {exc}. Usage: /file PATH [text]")
            return None
        if not words:
            self.screen.line("Usage: /file PATH [text] (quote a path with spaces).")
            return None
        path = Path(words[0]).expanduser()
        try:
            path = path.resolve(strict=True)
            size = path.stat().st_size
        except OSError:
            self.screen.line(f"No such file: {words[0]}")
            return None
        if not path.is_file():
            self.screen.line(f"Not a file: {words[0]} (send one file at a time).")
            return None
        mime = mimetypes.guess_type(path.name)[0] or ""
        attachment = Attachment(claimed_kind(mime, path.name), str(path), path.name, mime, size)
        self._counter += 1
        event_id = f"{time.time_ns()}-{self._counter}"
        return Message(
            platform=PLATFORM,
            event_id=event_id,
            chat=self.chat,
            user=self.user,
            text=" ".join(words[1:]),
            message_id=event_id,
            attachments=(attachment,),
        )

    async def fetch_attachment(self, attachment: Attachment, max_bytes: int) -> bytes:
        """Read a file sent with ``/file`` (from disk again: it may have changed or gone)."""
        return await asyncio.to_thread(_read_file, attachment, max_bytes)

    def _event(self, text: str) -> Message | Command | Reaction:
        self._counter += 1
        event_id = f"{time.time_ns()}-{self._counter}"
        chat, user = self.chat, self.user
        if text.startswith("/") and len(text) > 1:
            name, _, args = text[1:].partition(" ")
            if name.lower() in _RATINGS and self._last_sent:
                return Reaction(
                    platform=PLATFORM,
                    event_id=event_id,
                    chat=chat,
                    user=user,
                    message_id=self._last_sent,
                    emoji=_RATINGS[name.lower()],
                )
            return Command(
                platform=PLATFORM,
                event_id=event_id,
                chat=chat,
                user=user,
                name=name.lower(),
                args=args.strip(),
                message_id=event_id,
            )
        return Message(
            platform=PLATFORM,
            event_id=event_id,
            chat=chat,
            user=user,
            text=text,
            message_id=event_id,
        )

    # --- outbound ----------------------------------------------------------------------
    def render(self, markdown: str) -> list[str]:
        """The whole answer as one message; :class:`Screen` renders the Markdown (or not)."""
        return [markdown] if markdown else []

    def _is_replay(self, text: str, reply_to: str | None) -> bool:
        """An answer to nothing typed in this session: the last session's, sent again."""
        if reply_to is not None:  # a turn run again for a message of the last session
            return reply_to not in self._mine
        # the outbox re-sends undelivered answers while the app starts, before run();
        # reminders come the same way but say what they are
        return not self._reading and not text.startswith("⏰")

    async def send(self, address: Address, text: str, *, reply_to: str | None = None) -> str:
        """Print a new answer (streamed answers continue through :meth:`edit`)."""
        self._counter += 1
        mid = f"out-{time.time_ns()}-{self._counter}"
        if self._is_replay(text, reply_to):
            self._replayed.add(mid)
            self._last_sent = mid  # /good and /bad rate it like any answer
            self._aside.line(REPLAYED + ":", note=True)
            self._aside.answer(mid, text)
            return mid
        self._last_sent = mid
        self.screen.answer(mid, text, markdown=reply_to not in self._commands)
        return mid

    async def send_file(
        self, address: Address, file: OutFile, *, reply_to: str | None = None
    ) -> str:
        """Write the file under ``files_dir`` (a fresh name, never outside it) and print its
        path, after the caption.
        """
        if self.files_dir is None:
            raise RuntimeError("this terminal has no folder for files")
        path = await asyncio.to_thread(_write_file, self.files_dir, file)
        self._counter += 1
        mid = f"file-{time.time_ns()}-{self._counter}"
        caption = f"{file.caption} " if file.caption else ""
        self.screen.line(f"📎 {caption}{path}", note=True)
        return mid

    async def forget(self, _person: str, accounts: list[str]) -> str:
        """Delete the files sent to this terminal when its user forgets: only the terminal
        writes there and it has one person, the local owner. Subfolders (not ours) stay.
        """
        if self.files_dir is None or self.user.key not in accounts:
            return ""
        gone = await asyncio.to_thread(remove_files, self.files_dir)
        return f"{gone} files sent to the terminal" if gone else ""

    async def edit(self, address: Address, message_id: str, text: str) -> None:
        """Show the newer version of an answer (streaming: re-rendered, or the added text)."""
        screen = self._aside if message_id in self._replayed else self.screen
        screen.update(message_id, text)

    async def react(self, address: Address, message_id: str, emoji: str) -> None:
        """The terminal has no reactions."""

    async def typing(self, address: Address) -> None:
        """No typing indicator in a terminal."""

    async def register_commands(self, commands: Sequence[CommandSpec]) -> None:
        """Commands are typed as ``/name``; nothing to register."""

    def routes(self) -> list[object]:
        """No webhooks."""
        return []


def _read_file(attachment: Attachment, max_bytes: int) -> bytes:
    """Read at most ``max_bytes`` (one more tells that the file is bigger)."""
    try:
        with open(attachment.handle, "rb") as file:
            data = file.read(max_bytes + 1)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise AttachmentError(f"cannot read {attachment.name}: {reason}") from exc
    if len(data) > max_bytes:
        raise too_large(attachment, max_bytes)
    return data


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _write_file(folder: Path, file: OutFile) -> Path:
    """Write ``file`` as ``<time>-<safe name>`` in ``folder``; the name cannot leave it."""
    folder.mkdir(parents=True, exist_ok=True)
    name = _UNSAFE.sub("_", Path(file.name).name).strip("._") or "file"
    path = (
        folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{time.time_ns() % 1_000_000:06d}-{name[:100]}"
    )
    with path.open("xb") as out:  # x: never overwrite, never follow a planted link
        out.write(file.data)
    return path
