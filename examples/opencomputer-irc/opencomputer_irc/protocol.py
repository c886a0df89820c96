"""The parts of IRC (RFC 1459 / 2812 message format) a chat bot needs, without a library.

A line is ``[:prefix] COMMAND param ... [:trailing]``, at most 512 bytes with its CRLF. The
server relays our ``PRIVMSG`` to others with our full mask in front, so what we send must leave
room for ``:nick!user@host``: :func:`payload_budget` says how many bytes of text fit.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LINE_LIMIT", "IrcLine", "format_line", "parse_line", "payload_budget", "split_text"]

LINE_LIMIT = 512
"""Bytes per line, CRLF included (RFC 2812 section 2.3)."""

_FALLBACK_MASK_EXTRA = 1 + 10 + 1 + 63  # "!" + longest usual user + "@" + longest hostname


@dataclass(frozen=True, slots=True)
class IrcLine:
    """One parsed line."""

    prefix: str
    command: str
    params: tuple[str, ...]

    @property
    def nick(self) -> str:
        """The sender's nick (the prefix up to ``!``)."""
        return self.prefix.split("!", 1)[0]


def parse_line(line: str) -> IrcLine:
    """Parse one line (without CRLF); IRCv3 tags, if a server sends them, are dropped."""
    if line.startswith("@"):
        line = line.partition(" ")[2]
    prefix = ""
    if line.startswith(":"):
        prefix, _, line = line[1:].partition(" ")
    head, sep, trailing = line.partition(" :")
    params = head.split()
    command = params.pop(0).upper() if params else ""
    if sep:
        params.append(trailing)
    return IrcLine(prefix, command, tuple(params))


def format_line(command: str, *params: str) -> bytes:
    """Encode a line; the last parameter is sent as trailing (it may hold spaces)."""
    for p in params:
        if any(c in p for c in "\r\n\0"):
            raise ValueError("an IRC parameter cannot hold CR, LF or NUL")
    parts = [command, *params[:-1]]
    if params:
        parts.append(":" + params[-1])
    data = " ".join(parts).encode("utf-8") + b"\r\n"
    if len(data) > LINE_LIMIT:
        raise ValueError(f"IRC line of {len(data)} bytes is over {LINE_LIMIT}")
    return data


def payload_budget(mask: str, target: str, *, nick: str = "") -> int:
    """Bytes of text one ``PRIVMSG target`` may carry so the relayed line fits in 512.

    ``mask`` is our ``nick!user@host`` as the server shows it to others; unknown (empty), the
    longest usual user and host are assumed for ``nick``.
    """
    who = mask or nick
    extra = 0 if mask else _FALLBACK_MASK_EXTRA
    overhead = len(f":{who} PRIVMSG {target} :".encode()) + extra + 2  # CRLF
    return LINE_LIMIT - overhead


def split_text(text: str, budget: int) -> list[str]:
    """Lines of at most ``budget`` UTF-8 bytes, cut at spaces where possible and never inside
    a character; IRC has no multi-line messages and no empty ones.
    """
    if budget < 16:
        raise ValueError("an IRC line budget under 16 bytes cannot carry text")
    out: list[str] = []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        rest = line.replace("\0", "").strip()
        while rest:
            data = rest.encode("utf-8")
            if len(data) <= budget:
                out.append(rest)
                break
            # The longest prefix within budget, backed off to a character boundary...
            cut = budget
            while cut and (data[cut] & 0xC0) == 0x80:  # a continuation byte: inside a char
                cut -= 1
            head = data[:cut].decode("utf-8")
            # ...then to the last space, unless that wastes more than a third of the line.
            space = head.rfind(" ")
            if space > len(head) * 2 // 3:
                head = head[:space]
            out.append(head.rstrip())
            rest = rest[len(head) :].lstrip()
    return out
