"""A test kit for plugin authors: the real app, a scripted fake model, a fake chat.

    async with PluginTestKit(Path(__file__).parent) as kit:
        assert await kit.call_tool("greet", person="Ada") == "Hello, Ada!"
        kit.model.call_tool("greet", person="Ada")   # the model asks for the tool...
        kit.model.reply("Done.")                     # ...then answers
        assert await kit.say("greet Ada") == "Done."

The plugin runs exactly as in production: sandboxed (bubblewrap must be installed, or pass
``sandbox="off"``), with only the settings you give the kit (its secrets granted, as an admin
would grant them).
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from opencomputer.bot.config import load_settings
from opencomputer.bot.events import Address, Chat, ChatKind, User
from opencomputer.bot.plugins.manifest import load_manifest
from opencomputer.bot.testing import FakeOllama
from opencomputer.bot.testing.harness import Harness

__all__ = ["PluginTestKit"]


class PluginTestKit:
    """One app, one fake model, one fake chat, and the plugin in ``folder`` enabled."""

    def __init__(
        self,
        folder: str | Path,
        *,
        settings: Mapping[str, str] | None = None,
        sandbox: str = "on",
        timeout: float = 30.0,
        user: str = "alice",
    ) -> None:
        self.folder = Path(folder).resolve()
        self.name = load_manifest(self.folder).name
        self.plugin_settings = dict(settings or {})
        self.sandbox = sandbox
        self.timeout = timeout
        self.user = user
        self.model = FakeOllama()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._harness: Harness | None = None

    async def __aenter__(self) -> PluginTestKit:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start the fake model and the app; fail clearly if the plugin did not load."""
        self._tmp = tempfile.TemporaryDirectory(prefix="oc-plugin-test-")
        await self.model.start()
        settings = load_settings(
            OLLAMA_HOST=self.model.url,
            OC_DATA_DIR=self._tmp.name,
            OC_HTTP_PORT=0,
            OC_PLUGIN_DIRS=str(self.folder),
            OC_PLUGIN_SANDBOX=self.sandbox,
            OC_PLUGIN_TIMEOUT=self.timeout,
            OC_DM_POLICY="open",
        )
        self._harness = Harness(settings)
        self._harness.app.extras["plugin_environ"] = dict(self.plugin_settings)
        await self._harness.start()
        system = self._harness.app.extras["plugins"]
        problems = [b.reason for b in system.host.broken if b.name == self.name]
        if problems or self.name not in system.host.plugins:
            await self.stop()
            raise AssertionError(f"plugin {self.name} did not load: {'; '.join(problems)}")
        await system.enablement.set(self.name, True)
        for secret in system.host.plugins[self.name].manifest.secret_names:
            await system.enablement.grant(self.name, secret)  # the author's own test values
        system.host.tools(self.name)  # parse the code now: a mismatch fails here, not later
        if self.name not in system.host.plugins:
            reasons = [b.reason for b in system.host.broken if b.name == self.name]
            await self.stop()
            raise AssertionError(f"plugin {self.name} did not load: {'; '.join(reasons)}")

    async def stop(self) -> None:
        """Stop the app and the fake model, remove the temporary data folder."""
        if self._harness is not None:
            await self._harness.stop()
            self._harness = None
        await self.model.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    @property
    def harness(self) -> Harness:
        """The running app harness (``harness.app``, ``harness.conn.calls``...)."""
        if self._harness is None:
            raise RuntimeError("use `async with PluginTestKit(...)` first")
        return self._harness

    @property
    def address(self) -> Address:
        """The fake chat the kit talks in (a direct chat with ``user``)."""
        return Address(self.harness.conn.platform, self.user)

    async def call_tool(self, name: str, /, **arguments: Any) -> Any:
        """Call one of the plugin's tools directly, as the fake user in the fake chat.

        Raises :class:`bot.tools.ToolError` with the message the model would see on failure.
        """
        host = self.harness.app.extras["plugins"].host
        user = User(self.harness.conn.platform, self.user, self.user.title())
        return await host.call_tool(
            self.name, name, arguments, user=user, address=self.address, chat_kind=ChatKind.DIRECT
        )

    async def say(self, text: str) -> str:
        """Send a chat message through the real agent; return the bot's answer."""
        return await self.harness.say(text, user=self.user)

    async def command(self, name: str, args: str = "") -> str:
        """Run a chat command (``/name args``); return the bot's answer."""
        return await self.harness.command(name, args, user=self.user)

    @property
    def sent(self) -> list[str]:
        """Every message the bot sent to the fake chat, in order (final text)."""
        conn = self.harness.conn
        return [conn.messages[c.message_id] for c in conn.calls if c.action == "send"]

    def tool_results(self) -> list[str]:
        """What the tools returned in the model's last request (errors start with 'error:')."""
        if not self.model.chats:
            return []
        return [m["content"] for m in self.model.chats[-1]["messages"] if m.get("role") == "tool"]

    @property
    def chat(self) -> Chat:
        """The fake chat."""
        return Chat(self.harness.conn.platform, self.user)
