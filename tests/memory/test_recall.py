from __future__ import annotations

from collections.abc import Callable

from opencomputer.bot.config import Settings
from opencomputer.bot.events import User
from opencomputer.bot.hooks import hookimpl
from opencomputer.bot.testing import FakeOllama
from opencomputer.bot.testing.harness import Harness
from tests.memory.helpers import open_settings, system_prompt, topic_embedding


class _Links:
    """Linked accounts, answered before the admin feature's identity links (a hook)."""

    def __init__(self, mapping: dict[str, str]) -> None:
        self.mapping = mapping

    @hookimpl(tryfirst=True)
    async def oc_person_of(self, user: User) -> str:
        return self.mapping.get(user.key, user.key)


async def test_fact_remembered_in_one_chat_is_recalled_in_another(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama
) -> None:
    fake_ollama.embedder = topic_embedding
    async with Harness(make_settings(**open_settings())) as h:
        fake_ollama.reply("Hello!")
        await h.say("hi there", user="alice")
        embeds = [r for r in fake_ollama.requests if r["path"] == "/api/embed"]
        assert embeds == []  # no memories yet: recall costs no embedding call

        fake_ollama.call_tool("remember", fact="Their favourite food is pizza")
        fake_ollama.reply("Noted, pizza it is.")
        assert await h.say("Remember that I love pizza", user="alice") == "Noted, pizza it is."
        tool_turn = fake_ollama.chats[-1]["messages"][-1]
        assert tool_turn["role"] == "tool" and tool_turn["content"].startswith("remembered (memory")

        # Another direct chat of hers (a DM fact stays out of groups: tests/security).
        fake_ollama.reply("How about a margherita?")
        answer = await h.say("What should I eat for dinner?", user="alice", chat="kitchen")
        assert answer == "How about a margherita?"
        prompt = system_prompt(fake_ollama.chats[-1])
        assert "Their favourite food is pizza" in prompt
        assert "[memory 1]" in prompt

        # A question on another topic does not drag the fact in.
        fake_ollama.reply("Nice.")
        await h.say("I adopted a cat", user="alice")
        assert "pizza" not in system_prompt(fake_ollama.chats[-1])

        # Another person never sees alice's memory.
        fake_ollama.reply("Hm.")
        await h.say("What should I cook for dinner?", user="bob")
        assert "pizza" not in system_prompt(fake_ollama.chats[-1])


async def test_linked_accounts_share_memory_and_citations_are_stored(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama
) -> None:
    fake_ollama.embedder = topic_embedding
    async with Harness(make_settings(**open_settings())) as h:
        h.app.hooks.register(_Links({"test:alice": "p-1", "test:alice_work": "p-1"}))
        fake_ollama.call_tool("remember", fact="Their dog is called Rex")
        fake_ollama.reply("Got it.")
        await h.say("my dog is Rex", user="alice")

        fake_ollama.reply("Rex, of course.")
        await h.say("what is my pet's name?", user="alice_work")
        assert "Their dog is called Rex" in system_prompt(fake_ollama.chats[-1])

        store = h.app.extras["memory"]
        [memory] = await store.list_of("p-1")
        reply = await h.app.store.last_reply("test:alice_work")
        citations = await store.citations(reply.run_id)
        assert citations and citations[0]["id"] == memory.id
        assert citations[0]["score"] > 0.9


async def test_memory_command_lists_edits_deletes_and_forget_hook_clears(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama
) -> None:
    fake_ollama.embedder = topic_embedding
    async with Harness(make_settings(**open_settings())) as h:
        assert "don't remember" in await h.command("memory")
        assert await h.command("memory", "add I play jazz in a band") == "Remembered #1."
        assert await h.command("memory", "add I work at the harbour office") == "Remembered #2."
        listing = await h.command("memory", "list")
        assert (
            "#1 I play jazz in a band" in listing and "#2 I work at the harbour office" in listing
        )
        assert await h.command("memory", "edit 2 I work from home") == "Updated #2."
        assert await h.command("memory", "edit 2 stolen", user="mallory") == (
            "You have no memory #2."
        )
        assert "#2 I work from home" in await h.command("memory")
        assert await h.command("memory", "delete 1") == "Deleted 1 memory."
        assert "jazz" not in await h.command("memory")

        fake_ollama.reply("ok")
        await h.say("any news about my work?")
        assert "I work from home" in system_prompt(fake_ollama.chats[-1])

        found = h.app.hooks.call.oc_forget(person="test:alice", accounts=["test:alice"])
        lines = [await result for result in found]
        assert "1 memories" in lines
        assert "don't remember" in await h.command("memory")
        fake_ollama.reply("ok")
        await h.say("any news about my work?")
        assert "I work from home" not in system_prompt(fake_ollama.chats[-1])
