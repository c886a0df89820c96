"""A server-sent event stream of ``chat.completion.chunk`` events for one response."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from opencomputer.connectors.api import wire

__all__ = ["Events"]


class Events:
    """What the client has been sent, and the next delta; a gone client is not an error."""

    def __init__(self, response: web.StreamResponse, cid: str, model: str) -> None:
        self.response = response
        self.cid, self.model, self.created = cid, model, wire.now()
        self.gone = False
        self._sent = ""  # the current reply stream's text, as the client has it

    async def raw(self, data: bytes) -> None:
        """Write bytes unless the client went away (then remember that)."""
        if self.gone:
            return
        try:
            await self.response.write(data)
        except (ConnectionError, RuntimeError):
            self.gone = True

    async def delta(self, delta: dict[str, Any], finish: str | None = None) -> None:
        """One chunk."""
        await self.raw(wire.chunk(self.cid, self.model, self.created, delta, finish))

    async def text(self, text: str) -> None:
        """Send what ``text`` adds to what the client has.

        Streamed text cannot be taken back: when the runtime replaces it (a new model round
        after tool calls dropped its interim words), the new text follows after a blank line.
        """
        if self._sent.startswith(text):
            return  # nothing new (or only trailing text trimmed at the end)
        added = text[len(self._sent) :] if text.startswith(self._sent) else "\n\n" + text
        self._sent = text
        await self.delta({"content": added})

    async def usage(self) -> None:
        """The usage chunk ``stream_options.include_usage`` asks for (no choices)."""
        body = {
            "id": self.cid,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": wire.usage(),
        }
        await self.raw(wire.event(body))
