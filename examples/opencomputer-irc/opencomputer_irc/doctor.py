"""``opencomputer doctor`` for IRC: is the server reachable, and does it let us register."""

from __future__ import annotations

import asyncio
import ssl

from opencomputer import Check, Settings
from opencomputer_irc.channel import IrcSettings
from opencomputer_irc.protocol import format_line, parse_line

__all__ = ["check"]


async def check(_settings: Settings) -> list[Check]:
    """One line: registered (and as whom), or why not and what to change."""
    irc = IrcSettings()
    host, port = irc.address
    probe = f"{irc.nick[:20]}-doctor"  # a running bot may hold the nick itself
    tls = ssl.create_default_context() if irc.tls else None
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port, ssl=tls), 10)
    except (OSError, TimeoutError) as exc:
        return [Check("irc", False, f"cannot reach IRC_SERVER {irc.server}: {exc}")]
    try:
        if irc.password:
            writer.write(format_line("PASS", irc.password))
        writer.write(format_line("NICK", probe) + format_line("USER", probe, "0", "*", "doctor"))
        while True:
            data = await asyncio.wait_for(reader.readline(), 10)
            if not data:
                return [Check("irc", False, f"{irc.server} closed the connection (IRC_PASSWORD?)")]
            line = parse_line(data.decode("utf-8", errors="replace").rstrip("\r\n"))
            if line.command == "001":
                writer.write(format_line("QUIT", "doctor"))
                channels = irc.channel_list or ["no IRC_CHANNELS: DMs only"]
                return [Check("irc", True, f"{irc.server} accepts us; joins {', '.join(channels)}")]
            if line.command in ("432", "433"):  # the probe's nick, not the bot's, was refused
                detail = f"{irc.server} answers; it refused the probe nick {probe}"
                return [Check("irc", True, detail, warning=True)]
            if line.command == "ERROR" or line.command in ("464", "465"):
                return [Check("irc", False, f"{irc.server} refused: {line.params[-1:]}")]
            if line.command == "PING":
                writer.write(format_line("PONG", *line.params))
    except TimeoutError:
        return [Check("irc", False, f"{irc.server} did not answer registration in 10 s")]
    finally:
        writer.close()
