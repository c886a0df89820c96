"""``/forget`` reaches plugin data: the ``on_forget`` hook, then a sweep of user-keyed keys.

A plugin that keeps personal data declares ``"hooks": ["on_forget"]`` and deletes it in an
``@on_forget`` handler (called once per linked account, ``ctx.user`` that account). Because a
plugin may forget to, every plugin's key/value store is then swept too: a key naming one of
the accounts as a ``:``-separated part (``notes:telegram:42``, ``telegram:42``) is deleted.
Data a plugin keeps elsewhere (its own files, a remote service) only its hook can reach.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from opencomputer.bot.events import User
from opencomputer.bot.hooks import DataRights
from opencomputer.bot.tools import ToolError

if TYPE_CHECKING:
    from opencomputer.bot.plugins.loader import PluginHost

__all__ = ["HasPluginHost", "forget_in_plugins", "register_forget", "sweep_store"]

logger = logging.getLogger(__name__)

STORE = "kv.sqlite3"


class HasPluginHost(Protocol):
    """What forgetting needs of the plugin feature (its ``PluginSystem`` has it).

    A protocol rather than the feature's class: the feature imports this module to register
    the hook, so this module does not import the feature back.
    """

    @property
    def host(self) -> PluginHost:
        """The running plugins (their manifests, hooks and data folders)."""


def _names_account(key: str, accounts: list[str]) -> bool:
    wrapped = f":{key}:"
    return any(f":{account}:" in wrapped for account in accounts)


def sweep_store(path: Path, accounts: list[str]) -> int:
    """Delete the keys of one plugin store that name an account; return how many."""
    if path.is_symlink() or not path.is_file():
        return 0  # a plugin may plant a link to some other file: never follow it
    db = sqlite3.connect(f"file:{path}?mode=rw", uri=True)
    try:
        try:
            keys = [str(r[0]) for r in db.execute("SELECT key FROM kv")]
        except sqlite3.DatabaseError:
            return 0  # not a store we wrote (no kv table, not SQLite)
        doomed = [(k,) for k in keys if _names_account(k, accounts)]
        with db:
            db.executemany("DELETE FROM kv WHERE key = ?", doomed)
        return len(doomed)
    finally:
        db.close()


async def forget_in_plugins(system: HasPluginHost, person: str, accounts: list[str]) -> str:
    """Run every ``on_forget`` hook, then sweep every plugin store; one line for the report."""
    host = system.host
    event: dict[str, Any] = {"type": "forget", "person": person, "accounts": list(accounts)}
    hooked: list[str] = []
    for name, plugin in list(host.plugins.items()):
        if "on_forget" not in plugin.manifest.hooks:
            continue
        for key in accounts:
            platform, _, user_id = key.partition(":")
            try:
                await host.run_hook(name, "on_forget", event, User(platform, user_id), None)
            except ToolError as exc:  # one plugin failing must not stop the others
                logger.warning("plugin %s on_forget failed: %s", name, exc)
        hooked.append(name)
    swept = 0
    root = host.data_root
    if root.is_dir():
        for folder in sorted(root.iterdir()):
            if folder.is_dir() and not folder.is_symlink():
                try:
                    swept += sweep_store(folder / STORE, accounts)
                except sqlite3.Error as exc:
                    logger.warning("plugin store %s not swept: %s", folder.name, exc)
    if not hooked and not swept:
        return ""
    done = f"plugin data ({', '.join(sorted(hooked))})" if hooked else "plugin data"
    return done + (f", {swept} stored entries" if swept else "")


def register_forget(app: Any, system: HasPluginHost) -> None:
    """Add plugin data to what ``/forget`` deletes (the ``oc_forget`` hook)."""

    async def forget(person: str, accounts: list[str]) -> str:
        return await forget_in_plugins(system, person, accounts)

    app.hooks.register(DataRights(forget), "plugins-data")
