"""``remember_file``: a document someone sent goes into their memory when they ask.

The multimodal layer keeps each document's text -- or, for one too long for the context, its
summary -- with the stored message (``inbound_messages.attachments``, key ``text``) and shows
the model the file's id (``in<message>#<position>``). Asked to remember the file, the model
calls this tool with that id; the tool stores the kept text itself, so what is remembered is
the file's own content, never the model's retelling, and the resume after an approval (or a
restart) finds it again.

A file is outside content: the turn that read it is tainted, so this call (effect
``persist``) asks the owner first, like any effect after untrusted content
(``bot/approvals.py``). The memory says it came from a file, not from the person's own
words, and belongs to the person who sent the file: another person's file id is refused.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from opencomputer.bot.events import User
from opencomputer.bot.media.summary import summarize
from opencomputer.bot.ollama import ModelClient
from opencomputer.bot.origin import Origin
from opencomputer.bot.storage.attachments import kept_from_json
from opencomputer.bot.storage.models import InboundRow
from opencomputer.bot.tools import Tool, ToolError, tool
from opencomputer.graphs.agent.state import current_turn

__all__ = ["MEMORY_CHARS", "file_id", "make_remember_file"]

MEMORY_CHARS = 1000
"""Longest file memory: recall has a token budget (``OC_MEMORY_TOKEN_BUDGET``), so a longer
text is summarized to this size first."""

_IN = InboundRow.__table__  # type: ignore[attr-defined]
_ID = re.compile(r"in(\d{1,18})#(\d{1,4})")


def file_id(inbound_id: int, index: int) -> str:
    """How the model names a stored message's attachment."""
    return f"in{inbound_id}#{index}"


def make_remember_file(engine: AsyncEngine, llm: ModelClient, *, chunk_chars: int) -> Tool:
    """The ``remember_file`` tool over the main database and the model client."""

    # persist: the memory is shown in later prompts; asks the owner after the file was read
    @tool(effects=["persist"], trusted_output=True)
    async def remember_file(file: str) -> str:
        """Save a file the user sent (its text, or a summary of a long one) in their memory.

        Use it only when the user asks you to remember or keep a document they sent.

        Args:
            file: The file id shown with the attached file, e.g. "in42#0".
        """
        ctx = current_turn()
        memory: Any = ctx.services.get("memory")
        person_of: Any = ctx.services.get("person_of")
        if memory is None or person_of is None or ctx.user is None:
            raise ToolError("memory is not enabled on this server")
        match = _ID.fullmatch(file.strip())
        if match is None:
            raise ToolError(f"{file!r} is not a file id; use the id shown with the file")
        inbound_id, index = int(match.group(1)), int(match.group(2))
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    select(_IN.c.platform, _IN.c.user_id, _IN.c.attachments).where(
                        _IN.c.id == inbound_id
                    )
                )
            ).first()
        person = str(await person_of(ctx.user))
        if row is None or str(await person_of(User(row.platform, row.user_id))) != person:
            raise ToolError(f"there is no file {file} from the person you are talking to")
        text = kept_from_json(row.attachments, "text").get(index)
        if not text:
            raise ToolError(f"the text of file {file} is not kept; ask them to send it again")
        name = kept_from_json(row.attachments, "name").get(index) or "a file"
        if len(text) > MEMORY_CHARS:
            text = (
                await summarize(
                    llm,
                    ctx.model,
                    text,
                    name=f'"{name}"',
                    chunk_chars=chunk_chars,
                    target_chars=MEMORY_CHARS,
                    options=ctx.options,
                )
            ).text
        fact = f'From the file "{name}" they sent (the file\'s content, not their words): {text}'
        source = ctx.address.key if ctx.address is not None else ""
        origin = Origin.of(ctx.address, ctx.chat_kind)  # a DM's file never reaches a group
        saved = await memory.add(person, fact, source=source, origin=origin)
        return f'remembered the file "{name}" (memory {saved.id})'

    return remember_file.__oc_tool__  # type: ignore[attr-defined,no-any-return]
