"""Per-user notes and to-dos, kept in the plugin's own key/value store.

Notes belong to the person speaking, not to the chat: in a group everyone has their own list.

Notes are scoped the way memories are (``bot.memory.store.Origin``): each note records where
it was made (``origin`` ``"direct"`` or ``"group"``, ``origin_chat`` ``platform:chat_id``).
In a direct chat a person sees, completes and deletes all their notes; in a group only the
notes they made in that same group (any thread of it), because everyone there reads the
answer and the model's reply. Notes saved before notes had an origin count as private. When
notes are hidden, the answer says so in one line, never what they are or how many.
"""

from __future__ import annotations

import time
from typing import Any

from opencomputer import PluginContext, ToolError, command, on_forget, tool

PRIVATE = "Your notes are private: ask me in a direct message."
OTHERS_PRIVATE = "Your other notes are private: ask me in a direct message."


def _key(ctx: PluginContext) -> str:
    if ctx.user is not None:
        return f"notes:{ctx.user.key}"
    if ctx.address is not None:
        return f"notes:chat:{ctx.address.key}"
    raise ToolError("notes need to know who is asking")


async def _load(ctx: PluginContext) -> list[dict[str, Any]]:
    return list(await ctx.store.get(_key(ctx), []))


def _visible(ctx: PluginContext, notes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The notes that may be shown where the call was made (all of them only in a DM)."""
    if ctx.private:
        return notes
    here = ctx.chat
    return [
        n for n in notes if here and n.get("origin") == "group" and n.get("origin_chat") == here
    ]


def _render(shown: list[dict[str, Any]], hidden: bool) -> str:
    if not shown:
        return PRIVATE if hidden else "No notes yet."
    lines = []
    for i, note in enumerate(shown, 1):
        box = "" if not note.get("todo") else ("[x] " if note.get("done") else "[ ] ")
        lines.append(f"{i}. {box}{note['text']}")
    if hidden:
        lines.append(OTHERS_PRIVATE)
    return "\n".join(lines)


def _pick(shown: list[dict[str, Any]], number: int, hidden: bool) -> dict[str, Any]:
    if not 1 <= number <= len(shown):
        where = " here" if hidden else ""
        raise ToolError(f"there is no note number {number}{where} (there are {len(shown)})")
    return shown[number - 1]


@tool
async def add_note(text: str, ctx: PluginContext, todo: bool = False) -> str:
    """Save a note or to-do item for the user.

    Args:
        text: What to remember.
        todo: True for a to-do item that can be completed later.
    """
    notes = await _load(ctx)
    note = {
        "text": text.strip(),
        "todo": todo,
        "done": False,
        "at": time.time(),
        "origin": "direct" if ctx.private else "group",
        "origin_chat": ctx.chat,
    }
    notes.append(note)
    await ctx.store.set(_key(ctx), notes)
    shown = _visible(ctx, notes)
    return f"Saved as note {len(shown)}." if shown and shown[-1] is note else "Saved."


@tool
async def list_notes(ctx: PluginContext) -> str:
    """List the user's notes and to-do items, numbered (in a group: those made there)."""
    notes = await _load(ctx)
    shown = _visible(ctx, notes)
    return _render(shown, len(shown) < len(notes))


@tool
async def complete_note(number: int, ctx: PluginContext) -> str:
    """Mark a to-do item as done.

    Args:
        number: The item's number as shown by list_notes.
    """
    notes = await _load(ctx)
    shown = _visible(ctx, notes)
    note = _pick(shown, number, len(shown) < len(notes))
    note["done"], note["todo"] = True, True  # the same dict as in ``notes``
    await ctx.store.set(_key(ctx), notes)
    return f"Done: {note['text']}"


@tool
async def delete_note(number: int, ctx: PluginContext) -> str:
    """Delete a note.

    Args:
        number: The note's number as shown by list_notes.
    """
    notes = await _load(ctx)
    shown = _visible(ctx, notes)
    note = _pick(shown, number, len(shown) < len(notes))
    await ctx.store.set(_key(ctx), [n for n in notes if n is not note])
    return f"Deleted: {note['text']}"


@command("notes")
async def notes_command(args: str, ctx: PluginContext) -> str:
    """Show your notes and to-do list (in a group, only the notes you made there)."""
    notes = await _load(ctx)
    shown = _visible(ctx, notes)
    return _render(shown, len(shown) < len(notes))


@on_forget
async def forget_notes(event: dict[str, Any], ctx: PluginContext) -> None:
    """``/forget``: delete the notes of the account being forgotten."""
    if ctx.user is not None:
        await ctx.store.delete(f"notes:{ctx.user.key}")
