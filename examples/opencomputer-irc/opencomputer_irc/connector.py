"""The IRC connector: one connection, kept up; channel lines that name the bot become messages.

Written on asyncio streams rather than an IRC library: a bot needs a dozen commands, and owning
the socket makes the parts that matter here explicit (reconnect with backoff and rejoin, the
512-byte line limit counted in UTF-8 bytes, pacing against flood limits). The maintained
PyPI client, jaraco's ``irc``, is callback/reactor based with its own reconnect strategy; its
asyncio flavour still leaves all of the above to the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import ssl
import time
import uuid
from collections.abc import Sequence
from typing import Any

from opencomputer import (
    Address,
    Capabilities,
    Chat,
    ChatKind,
    Command,
    CommandSpec,
    ConnectorState,
    Emit,
    Formatting,
    Message,
    RuntimeStopped,
    Settings,
    User,
)
from opencomputer_irc.channel import IrcSettings
from opencomputer_irc.protocol import IrcLine, format_line, parse_line, payload_budget, split_text

__all__ = ["IrcConnector", "create"]

logger = logging.getLogger(__name__)

PLATFORM = "irc"
_BURST = 5  # lines sent at once before pacing starts (what common IRC daemons tolerate)


def create(settings: Settings, emit: Emit) -> IrcConnector:
    """The factory the channel declaration names: opencomputer calls ``create(settings, emit)``."""
    return IrcConnector(IrcSettings(), emit)


class IrcConnector:
    """Connect, register, join; turn ``PRIVMSG`` into core events; send answers as lines."""

    def __init__(self, settings: IrcSettings, emit: Emit) -> None:
        if not settings.server:
            raise ValueError("IRC_SERVER is not set (host:port)")
        self.settings = settings
        self.platform = PLATFORM
        self.capabilities = Capabilities(
            max_length=400,  # characters per chunk the core renders; send() splits by bytes
            can_edit=False,
            can_react=False,
            can_type=False,
            formatting=Formatting.PLAIN,
            edit_interval=0.0,
        )
        self.state = ConnectorState.STOPPED
        self.nick = settings.nick
        self.mask = ""  # our nick!user@host as others see it (from 001 or our JOIN)
        self._emit = emit
        self._writer: asyncio.StreamWriter | None = None
        self._ready = asyncio.Event()  # registered and joined: lines may be sent
        self._task: asyncio.Task[None] | None = None
        self._first = asyncio.Event()  # the first connection attempt ended (either way)
        self._send_lock = asyncio.Lock()
        self._sent_at: list[float] = []
        self._ids = itertools.count(1)
        self._stopping = False

    # --- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        """Connect in the background; wait (briefly) for the first registration."""
        self._stopping = False
        self.state = ConnectorState.STARTING
        self._task = asyncio.create_task(self._run(), name="irc-connection")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._first.wait(), 15)

    async def stop(self) -> None:
        """Say QUIT and close. Safe to call twice."""
        self._stopping = True
        writer, self._writer = self._writer, None
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.write(format_line("QUIT", "bye"))
                await asyncio.wait_for(writer.drain(), 2)
            writer.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        self._ready.clear()
        self.state = ConnectorState.STOPPED

    async def _run(self) -> None:
        delay = self.settings.reconnect_delay
        failures = 0  # attempts in this streak: one line when it starts, one when it ends
        while not self._stopping:
            registered = False
            try:
                registered = await self._session()
                if not self._stopping:
                    logger.warning("IRC server %s closed the connection", self.settings.server)
            except (OSError, TimeoutError, ValueError, UnicodeError) as exc:
                failures += 1
                log = logger.warning if failures == 1 else logger.debug
                log("IRC connection to %s failed (retrying): %s", self.settings.server, exc)
            except Exception:  # a bug here must not end the connection for good
                failures += 1
                logger.exception("IRC connection to %s broke (retrying)", self.settings.server)
            finally:
                self._ready.clear()
                self._writer = None
                self._first.set()
            if self._stopping:
                return
            if registered:  # it worked a while: start over small, and a new streak
                delay, failures = self.settings.reconnect_delay, 0
            self.state = ConnectorState.RECONNECTING
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.settings.reconnect_max)

    async def _session(self) -> bool:
        """One connection from connect to EOF; True if it got as far as registering."""
        host, port = self.settings.address
        tls = ssl.create_default_context() if self.settings.tls else None
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=tls, limit=64 * 1024), 15
        )
        self._writer = writer
        self.nick = self.settings.nick
        if self.settings.password:
            await self._raw("PASS", self.settings.password)
        await self._raw("NICK", self.nick)
        await self._raw("USER", self.settings.nick, "0", "*", "opencomputer")
        registered = False
        try:
            while True:
                data = await reader.readline()
                if not data:
                    return registered
                line = parse_line(data.decode("utf-8", errors="replace").rstrip("\r\n"))
                if line.command == "001":
                    registered = True
                    await self._welcome(line)
                else:
                    await self._handle(line)
        finally:
            writer.close()

    async def _welcome(self, line: IrcLine) -> None:
        self.nick = line.params[0] if line.params else self.nick
        last = line.params[-1].split() if line.params else []
        if last and "!" in last[-1] and "@" in last[-1]:
            self.mask = last[-1]  # "Welcome to the ... Network nick!user@host"
        for channel in self.settings.channel_list:
            await self._raw("JOIN", channel)
        if not self.settings.channel_list:
            self._connected()

    def _connected(self) -> None:
        self.state = ConnectorState.CONNECTED
        self._ready.set()
        self._first.set()
        logger.info("IRC: connected to %s as %s", self.settings.server, self.nick)

    async def _handle(self, line: IrcLine) -> None:
        command, params = line.command, line.params
        if command == "PING":
            await self._raw("PONG", *(params or ("",)))
        elif command == "433":  # nick in use (a ghost of our last connection): take another
            self.nick = f"{self.nick}_"
            await self._raw("NICK", self.nick)
        elif command == "JOIN" and line.nick.lower() == self.nick.lower():
            self.mask = line.prefix or self.mask  # exactly what others see in front of our lines
            if params and self._last_channel(params[0]):
                self._connected()
        elif command in ("403", "405", "471", "473", "474", "475"):  # could not join
            logger.error("IRC: cannot join %s: %s", params[1:2], params[-1:])
            if params[1:2] and self._last_channel(params[1]):
                self._connected()
        elif command == "PRIVMSG" and len(params) == 2:
            await self._privmsg(line)
        elif command == "ERROR":
            logger.warning("IRC server says: %s", params[-1] if params else "")

    def _last_channel(self, channel: str) -> bool:
        """Whether ``channel`` is the last one we join (then we are ready to talk)."""
        wanted = self.settings.channel_list
        return bool(wanted) and channel.lower() == wanted[-1].lower()

    # --- inbound -----------------------------------------------------------------------
    async def _privmsg(self, line: IrcLine) -> None:
        target, text = line.params
        sender = line.nick
        if not sender or sender.lower() == self.nick.lower():
            return
        if text.startswith("\x01"):  # CTCP (VERSION, ACTION...): not a message to answer
            return
        direct = target.lower() == self.nick.lower()
        chat = (
            Chat(PLATFORM, sender, ChatKind.DIRECT, sender)
            if direct
            else Chat(PLATFORM, target, ChatKind.GROUP, target)
        )
        text, mentioned = self._strip_mention(text)
        event_id = uuid.uuid4().hex  # IRC has no message ids (and never delivers twice)
        common: dict[str, Any] = {
            "platform": PLATFORM,
            "event_id": event_id,
            "chat": chat,
            "user": User(PLATFORM, sender, sender),
            "raw": {"prefix": line.prefix, "params": list(line.params)},
        }
        prefix = self.settings.command_prefix
        event: Message | Command
        if prefix and text.startswith(prefix) and len(text) > len(prefix) and (direct or mentioned):
            name, _, args = text[len(prefix) :].partition(" ")
            event = Command(**common, name=name.lower(), args=args.strip(), message_id=event_id)
        else:
            event = Message(**common, text=text, message_id=event_id, addressed=direct or mentioned)
        try:
            await self._emit(event)
        except RuntimeStopped:
            logger.info("IRC: shutting down, a line from %s was not taken", sender)

    def _strip_mention(self, text: str) -> tuple[str, bool]:
        """``nick: text`` / ``nick, text`` is the IRC way to address someone."""
        nick = self.nick.lower()
        head, sep, rest = text.partition(" ")
        if head.lower().rstrip(":,") == nick and (head[-1:] in ":," or not sep):
            return rest.strip(), True
        words = {w.strip(".,:;!?()[]<>'\"").lower() for w in text.split()}
        return text, nick in words

    # --- outbound ----------------------------------------------------------------------
    def render(self, markdown: str) -> list[str]:
        """The answer as one chunk of plain text: :meth:`send` cuts it into IRC lines, because
        only then is the target, and so the byte budget of a line, known.
        """
        text = markdown.strip()
        return [text] if text else []

    async def send(self, address: Address, text: str, *, reply_to: str | None = None) -> str:
        """Post ``text`` as as many ``PRIVMSG`` lines as the 512-byte limit needs.

        While the connection is down it waits for the reconnect (up to ``send_timeout``), so an
        answer finished during a server restart is delivered, not dropped.
        """
        target = address.chat_id
        deadline = time.monotonic() + self.settings.send_timeout
        async with self._send_lock:
            await self._wait_ready(deadline)
            pieces = split_text(text, payload_budget(self.mask, target, nick=self.nick))
            sent = 0
            while sent < len(pieces):
                try:
                    await self._pace()
                    await self._raw("PRIVMSG", target, pieces[sent])
                    sent += 1
                except (ConnectionError, OSError):  # dropped mid-answer: the rest after rejoin
                    await self._wait_ready(deadline)
                    budget = payload_budget(self.mask, target, nick=self.nick)
                    rest = " ".join(pieces[sent:])
                    pieces = pieces[:sent] + split_text(rest, budget)
        return f"irc{next(self._ids)}"

    async def _wait_ready(self, deadline: float) -> None:
        try:
            await asyncio.wait_for(self._ready.wait(), max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            raise ConnectionError(f"IRC is not connected to {self.settings.server}") from None

    async def edit(self, address: Address, message_id: str, text: str) -> None:
        """IRC cannot edit (``can_edit`` is false, so the core never asks)."""
        raise NotImplementedError("IRC messages cannot be edited")

    async def react(self, address: Address, message_id: str, emoji: str) -> None:
        """IRC has no reactions."""

    async def typing(self, address: Address) -> None:
        """IRC has no typing indicator."""

    async def register_commands(self, commands: Sequence[CommandSpec]) -> None:
        """IRC has no native command menu: commands are typed with the prefix (``!help``)."""

    def routes(self) -> list[Any]:
        """No webhooks: IRC is one outbound TCP connection."""
        return []

    async def _pace(self) -> None:
        """A burst of lines, then one per ``line_interval`` (servers disconnect floods)."""
        now = time.monotonic()
        window = _BURST * self.settings.line_interval
        self._sent_at = [t for t in self._sent_at if now - t < window]
        if len(self._sent_at) >= _BURST:
            wait = self._sent_at[-_BURST] + window - now
            if wait > 0:
                await asyncio.sleep(wait)
        self._sent_at.append(time.monotonic())

    async def _raw(self, command: str, *params: str) -> None:
        writer = self._writer
        if writer is None:
            raise ConnectionError("IRC connection is down")
        writer.write(format_line(command, *params))
        await writer.drain()
