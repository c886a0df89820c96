"""Per-user notes and to-dos, kept in the plugin's own key/value store.

Notes belong to the person speaking, not to the chat: in a group everyone has their own list.
"""

from __future__ import annotations

import time
from typing import Any

from bot.plugins.api import PluginContext, ToolError, command, on_forget, tool


def _key(ctx: PluginContext) -> str:
    if ctx.user is not None:
        return f"notes:{ctx.user.key}"
    if ctx.address is not None:
        return f"notes:chat:{ctx.address.key}"
    raise ToolError("notes need to know who is asking")


async def _load(ctx: PluginContext) -> list[dict[str, Any]]:
    return list(await ctx.store.get(_key(ctx), []))


def _render(notes: list[dict[str, Any]]) -> str:
    if not notes:
        return "No notes yet."
    lines = []
    for i, note in enumerate(notes, 1):
        box = "" if not note.get("todo") else ("[x] " if note.get("done") else "[ ] ")
        lines.append(f"{i}. {box}{note['text']}")
    return "\n".join(lines)


def _pick(notes: list[dict[str, Any]], number: int) -> dict[str, Any]:
    if not 1 <= number <= len(notes):
        raise ToolError(f"there is no note number {number} (there are {len(notes)})")
    return notes[number - 1]


@tool
async def add_note(text: str, ctx: PluginContext, todo: bool = False) -> str:
    """Save a note or to-do item for the user.

    Args:
        text: What to remember.
        todo: True for a to-do item that can be completed later.
    """
    notes = await _load(ctx)
    notes.append({"text": text.strip(), "todo": todo, "done": False, "at": time.time()})
    await ctx.store.set(_key(ctx), notes)
    return f"Saved as note {len(notes)}."


@tool
async def list_notes(ctx: PluginContext) -> str:
    """List the user's notes and to-do items, numbered."""
    return _render(await _load(ctx))


@tool
async def complete_note(number: int, ctx: PluginContext) -> str:
    """Mark a to-do item as done.

    Args:
        number: The item's number as shown by list_notes.
    """
    notes = await _load(ctx)
    note = _pick(notes, number)
    note["done"], note["todo"] = True, True
    await ctx.store.set(_key(ctx), notes)
    return f"Done: {note['text']}"


@tool
async def delete_note(number: int, ctx: PluginContext) -> str:
    """Delete a note.

    Args:
        number: The note's number as shown by list_notes.
    """
    notes = await _load(ctx)
    note = _pick(notes, number)
    notes.remove(note)
    await ctx.store.set(_key(ctx), notes)
    return f"Deleted: {note['text']}"


@command("notes")
async def notes_command(args: str, ctx: PluginContext) -> str:
    """Show your notes and to-do list."""
    return _render(await _load(ctx))


@on_forget
async def forget_notes(event: dict[str, Any], ctx: PluginContext) -> None:
    """``/forget``: delete the notes of the account being forgotten."""
    if ctx.user is not None:
        await ctx.store.delete(f"notes:{ctx.user.key}")
