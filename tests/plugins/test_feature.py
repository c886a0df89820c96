"""The plugin feature inside the real app: broken plugins, enablement, commands, hooks, notes."""

from __future__ import annotations

import logging

from opencomputer.bot.plugins.feature import PluginSystem
from opencomputer.bot.testing.harness import Harness
from tests.plugins.conftest import enable_dir_plugins, offered, tool_results

GOOD = '''
from opencomputer.bot.plugins.api import tool, PluginContext

@tool
async def shout(text: str, ctx: PluginContext) -> str:
    """Say something loudly.

    Args:
        text: What to say.
    """
    await ctx.send("psst: " + text)
    return text.upper() + "!"
'''


def _write_broken(write_plugin) -> None:
    (write_plugin("badjson", GOOD) / "plugin.json").write_text("{ not json")
    write_plugin("badversion", GOOD, opencomputer=">=99", tools=[{"name": "shout"}])
    write_plugin(
        "needsetting",
        GOOD,
        tools=[{"name": "shout"}],
        settings={"OC_NEEDSETTING_KEY": {"required": True, "description": "API key"}},
    )
    write_plugin(
        "importfail",
        "import no_such_module_xyz\n" + GOOD.replace("shout", "whisper"),
        tools=[{"name": "whisper"}],
    )
    write_plugin("mismatch", GOOD.replace("shout", "murmur"), tools=[{"name": "ghost"}])
    write_plugin("good", GOOD, tools=[{"name": "shout"}])


async def test_broken_plugins_leave_working_ones_usable(
    make_settings, fake_ollama, plugin_dir, write_plugin, caplog
):
    _write_broken(write_plugin)
    fake_ollama.call_tool("whisper", text="hi")
    fake_ollama.call_tool("shout", text="hi")
    fake_ollama.reply("done")
    with caplog.at_level(logging.WARNING):
        async with Harness(make_settings(OC_PLUGIN_DIRS=str(plugin_dir))) as h:
            await enable_dir_plugins(h)  # off until an admin consents
            answer = await h.say("go")
            results = tool_results(fake_ollama)
            await h.say("again")  # the next turn is no longer offered the broken plugin's tool
            system: PluginSystem = h.app.extras["plugins"]
            reasons = {b.name: b.reason for b in system.host.broken}
            sent = [c.text for c in h.conn.calls if c.action == "send"]
    assert answer.endswith("done")
    assert "psst: hi" in sent  # the tool's ctx.send reached the chat
    assert results[0].startswith("error:") and "importfail" in results[0]
    assert results[1] == "HI!"
    assert "whisper" in offered(fake_ollama, 0) and "whisper" not in offered(fake_ollama, -1)
    assert "shout" in offered(fake_ollama, -1)
    assert "not valid JSON" in reasons["badjson"]
    assert reasons["badversion"] == "needs opencomputer >=99, this is 0.1.0"
    assert reasons["needsetting"].startswith("missing setting OC_NEEDSETTING_KEY")
    assert "No module named 'no_such_module_xyz'" in reasons["importfail"]
    assert "tool ghost" in reasons["mismatch"]
    assert "plugin needsetting disabled: missing setting OC_NEEDSETTING_KEY" in caplog.text


async def test_tools_are_offered_only_where_enabled(settings, fake_ollama):
    async with Harness(settings) as h:
        system: PluginSystem = h.app.extras["plugins"]
        await system.enablement.set("calculator", False)
        await system.enablement.set("calculator", True, scope="test:bob")
        await h.say("hi", user="alice")
        alice_tools = offered(fake_ollama)
        await h.say("hi", user="bob")
        bob_tools = offered(fake_ollama)
        await system.enablement.clear("calculator")
        await h.say("hi again", user="alice")
        alice_again = offered(fake_ollama)
    assert "calculate" not in alice_tools and "current_time" in alice_tools
    assert "calculate" in bob_tools
    assert "calculate" in alice_again


async def test_enablement_survives_restart_and_cli_changes_are_picked_up(settings, fake_ollama):
    async with Harness(settings) as h:
        await h.app.extras["plugins"].enablement.set("web", False)
    async with Harness(settings) as h:
        system: PluginSystem = h.app.extras["plugins"]
        assert not system.enabled("web", None)
        from opencomputer.bot.plugins.enablement import Enablement

        other = Enablement(h.app.store.engine)  # e.g. the CLI, another process
        await other.set("web", True)
        assert not system.enabled("web", None)
        await system.enablement.refresh()
        assert system.enabled("web", None)


async def test_notes_are_per_user_and_have_a_command(make_settings, fake_ollama):
    # admins: a group message from anyone else is outside content, and notes would ask first
    settings = make_settings(OC_ADMINS="test:alice,test:bob")
    fake_ollama.call_tool("add_note", text="buy milk", todo=True)
    fake_ollama.reply("noted")
    fake_ollama.call_tool("add_note", text="call mum")
    fake_ollama.reply("noted")
    fake_ollama.call_tool("complete_note", number=1)
    fake_ollama.reply("ticked")
    async with Harness(settings) as h:
        await h.say("remember to buy milk", user="alice", chat="room", group=True)
        await h.say("remember to call mum", user="bob", chat="room", group=True)
        await h.say("milk bought", user="alice", chat="room", group=True)
        alice = await h.command("notes", user="alice", chat="room", group=True)
        bob = await h.command("notes", user="bob", chat="room", group=True)
        nobody = await h.command("notes", user="carol")
    # one conversation (the group), two lists: bob's first note is his number 1
    assert tool_results(fake_ollama) == ["Saved as note 1.", "Saved as note 1.", "Done: buy milk"]
    assert alice == "1. [x] buy milk"
    assert bob == "1. call mum"
    assert nobody == "No notes yet."


HOOKED = """
from opencomputer.bot.plugins.api import on_message, command, PluginContext

@on_message
async def count(event: dict, ctx: PluginContext) -> None:
    seen = await ctx.store.get("seen", 0) + 1
    await ctx.store.set("seen", seen)
    if "ping" in event["text"]:
        await ctx.send(f"pong from {event['user_name']} ({seen})")

@command("seen")
async def seen(args: str, ctx: PluginContext) -> str:
    return f"{await ctx.store.get('seen', 0)} messages{' ' + args if args else ''}"
"""


async def test_hooks_and_commands_run_in_the_plugin(
    make_settings, fake_ollama, plugin_dir, write_plugin
):
    write_plugin(
        "hooked",
        HOOKED,
        hooks=["on_message"],
        commands=[{"name": "seen", "description": "How many messages I saw."}],
    )
    async with Harness(make_settings(OC_PLUGIN_DIRS=str(plugin_dir))) as h:
        await enable_dir_plugins(h)  # off until an admin consents
        await h.say("hello")
        await h.say("ping")
        await h.app.extras["plugins"].wait_idle()
        sent = [c.text for c in h.conn.calls if c.action == "send"]
        answer = await h.command("seen", "so far")
        specs = {s.name: s.help for s in h.conn.commands}
    assert "pong from Alice (2)" in sent
    assert answer == "2 messages so far"
    assert specs["seen"] == "How many messages I saw."
    assert specs["notes"] == "Show your notes and to-do list."


TICKER = """
from opencomputer.bot.events import Address
from opencomputer.bot.plugins.api import every, PluginContext

@every(0.2)
async def tick(ctx: PluginContext) -> None:
    ticks = await ctx.store.get("ticks", 0) + 1
    await ctx.store.set("ticks", ticks)
    await ctx.send(f"tick {ticks}", Address("test", "alice"))
"""


async def test_scheduled_jobs_run_and_can_message_a_chat(
    make_settings, fake_ollama, plugin_dir, write_plugin
):
    import asyncio

    write_plugin("ticker", TICKER, jobs=[{"name": "tick", "every": 0.2}])
    async with Harness(make_settings(OC_PLUGIN_DIRS=str(plugin_dir))) as h:
        await enable_dir_plugins(h)  # off until an admin consents
        system: PluginSystem = h.app.extras["plugins"]
        got: list[str] = []
        two = asyncio.Event()
        say = system.host.send
        assert say is not None

        async def record(address, text):  # type: ignore[no-untyped-def]
            got.append(f"{address.key} {text}")
            await say(address, text)
            if len(got) >= 2:
                two.set()

        system.host.send = record
        await asyncio.wait_for(two.wait(), 20)
        sent = [c.text for c in h.conn.calls if c.action == "send"]
    assert got[:2] == ["test:alice tick 1", "test:alice tick 2"]
    assert "tick 1" in sent


REACTOR = """
from opencomputer.bot.plugins.api import on_reaction, PluginContext

@on_reaction
async def thanks(event: dict, ctx: PluginContext) -> None:
    if event["added"]:
        await ctx.send(f"{event['user_name']} reacted {event['emoji']} to {event['message_id']}")
"""


async def test_reaction_hooks(make_settings, fake_ollama, plugin_dir, write_plugin):
    write_plugin("reactor", REACTOR, hooks=["on_reaction"])
    async with Harness(make_settings(OC_PLUGIN_DIRS=str(plugin_dir))) as h:
        await enable_dir_plugins(h)  # off until an admin consents
        await h.say("hello")
        await h.react(h.last_message_id, "👍")
        await h.app.extras["plugins"].wait_idle()
        sent = [c.text for c in h.conn.calls if c.action == "send"]
    assert sent[-1] == "Alice reacted 👍 to m1"
