"""``/forget`` must reach plugin data: before, a person's notes survived their ``/forget``.

The built-in notes plugin implements the ``on_forget`` hook; a third-party plugin's hook is
called too (its key does not name the account, so only the hook can find it); every plugin
store is then swept for keys naming the account; a plugin that plants a symlink as its store
does not get the server to delete through it.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Any

from opencomputer.bot.plugins.api import KeyValueStore
from opencomputer.bot.testing import FakeOllama
from opencomputer.bot.testing.harness import Harness
from tests.plugins.conftest import make_plugin, tool_results
from tests.security.privacy_kit import GROUP, privacy_settings

DIARY = '''
import hashlib
from opencomputer.bot.plugins.api import on_forget

@on_forget
async def forget(event, ctx):
    """Entries are filed under a hash of the account: only this hook can find them."""
    await ctx.store.delete("entry-" + hashlib.sha256(ctx.user.key.encode()).hexdigest())
    await ctx.store.set("forgot", sorted(event["accounts"]))
'''


def _keys(path: Path) -> list[str]:
    db = sqlite3.connect(path)
    try:
        return sorted(r[0] for r in db.execute("SELECT key FROM kv"))
    finally:
        db.close()


async def _note(h: Harness, fake: FakeOllama, user: str, text: str) -> None:
    fake.call_tool("add_note", text=text)
    fake.reply("Saved.")
    assert await h.say(f"note: {text}", user=user) == "Saved."
    assert tool_results(fake) == ["Saved as note 1."]


async def test_forget_deletes_notes_and_every_plugin_store_entry_of_the_person(
    make_settings: Any, fake_ollama: FakeOllama, tmp_path: Path
) -> None:
    plugins = tmp_path / "user-plugins"
    make_plugin(plugins, "diary", DIARY, hooks=["on_forget"])
    settings = privacy_settings(make_settings, OC_PLUGIN_DIRS=str(plugins))
    data = settings.data_dir / "plugins"
    hashed = "entry-" + hashlib.sha256(b"test:alice").hexdigest()
    diary = KeyValueStore(data / "diary" / "kv.sqlite3")
    await diary.set(hashed, "dear diary, PINEAPPLE-77")
    diary.close()
    # A plugin without a hook that keys data by account (and one it must keep).
    legacy = KeyValueStore(data / "legacy" / "kv.sqlite3")
    for key in ("prefs:test:alice", "test:alice", "prefs:test:alice2", "counter"):
        await legacy.set(key, "PINEAPPLE-77" if "alice" in key else 1)
    legacy.close()
    # A plugin whose "store" is a symlink to a file outside its folder.
    outside = tmp_path / "outside.sqlite3"
    bystander = KeyValueStore(outside)
    await bystander.set("notes:test:alice", "must stay")
    bystander.close()
    (data / "trap").mkdir(parents=True)
    (data / "trap" / "kv.sqlite3").symlink_to(outside)

    async with Harness(settings) as h:
        await _note(h, fake_ollama, "alice", "PINEAPPLE-77 is my locker code")
        await _note(h, fake_ollama, "bob", "bob's shopping list")
        assert "PINEAPPLE-77" in await h.command("notes", user="alice")
        # Not in a group, and not without the confirmation.
        await h.command("forget", "confirm", user="alice", chat=GROUP, group=True)
        await h.command("forget", user="alice")
        assert "PINEAPPLE-77" in await h.command("notes", user="alice")
        done = await h.command("forget", "confirm", user="alice")
        assert "plugin data (diary, notes), 2 stored entries" in done, done

        assert await h.command("notes", user="alice") == "No notes yet."
        assert await h.command("notes", user="bob") == "1. bob's shopping list"

    notes_keys = _keys(data / "notes" / "kv.sqlite3")
    assert notes_keys == ["notes:test:bob"]
    assert "PINEAPPLE" not in (data / "notes" / "kv.sqlite3").read_bytes().decode(errors="replace")
    assert _keys(data / "diary" / "kv.sqlite3") == ["forgot"]
    assert _keys(data / "legacy" / "kv.sqlite3") == ["counter", "prefs:test:alice2"]
    assert _keys(outside) == ["notes:test:alice"]  # the symlink was not followed
