"""Skills in real turns: only names and descriptions in the prompt until the model uses one;
a person's own skill stays theirs; ``/skills`` lists, shows and (admins) switches.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from opencomputer.bot.audit import recent
from opencomputer.bot.config import Settings
from opencomputer.bot.testing import FakeOllama
from opencomputer.bot.testing.harness import Harness
from tests.skills.helpers import copy_fixtures, system_prompt, tool_names, write_skill

ADMIN = "root"


def _settings(make: Callable[..., Settings], tmp_path: Path) -> Settings:
    skills = copy_fixtures(tmp_path / "skills")
    return make(OC_SKILL_DIRS=str(skills), OC_ADMINS=f"test:{ADMIN}")


async def test_progressive_disclosure_then_use_skill(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama, tmp_path: Path
) -> None:
    async with Harness(_settings(make_settings, tmp_path)) as h:
        fake_ollama.reply("Hello!")
        await h.say("hi")
        first = fake_ollama.chats[-1]
        prompt = system_prompt(first)
        assert "## Skills you can use" in prompt
        assert "- haiku: Write a haiku (5-7-5 syllables)" in prompt
        assert "- api-style-guide: Review HTTP API designs" in prompt
        for marker in ("PDF-BODY-MARKER", "STYLE-BODY-MARKER", "HAIKU-BODY-MARKER", "NAMING-"):
            assert marker not in prompt  # bodies and files stay out until used
        assert {"use_skill", "read_skill_file"} <= tool_names(first)

        fake_ollama.call_tool("use_skill", skill="api-style-guide")
        fake_ollama.call_tool(
            "read_skill_file", skill="api-style-guide", path="references/naming.md"
        )
        fake_ollama.call_tool(
            "read_skill_file", skill="api-style-guide", path="../pdf-tools/SKILL.md"
        )
        fake_ollama.reply("Use /invoices.")
        assert await h.say("review my endpoint GET /Invoice") == "Use /invoices."
        results = [m["content"] for m in fake_ollama.chats[-1]["messages"] if m["role"] == "tool"]
        assert "STYLE-BODY-MARKER" in results[-3] and "- references/naming.md" in results[-3]
        assert "NAMING-REFERENCE-MARKER" in results[-2]
        assert "'..' is not allowed" in results[-1] and "PDF-BODY-MARKER" not in results[-1]
        assert "STYLE-BODY-MARKER" not in system_prompt(fake_ollama.chats[-1])

        fake_ollama.call_tool("use_skill", skill="no-such-skill")
        fake_ollama.reply("ok")
        await h.say("use a skill")
        last = fake_ollama.chats[-1]["messages"][-1]
        assert last["role"] == "tool" and "no skill named 'no-such-skill' here" in last["content"]


async def test_no_skills_no_change(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama
) -> None:
    async with Harness(make_settings()) as h:
        fake_ollama.reply("Hello!")
        await h.say("hi")
        body = fake_ollama.chats[-1]
        assert "Skills you can use" not in system_prompt(body)
        assert not {"use_skill", "read_skill_file"} & tool_names(body)


async def test_own_skill_is_visible_only_to_its_person_in_direct_chats(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama, tmp_path: Path
) -> None:
    settings = _settings(make_settings, tmp_path)
    people = settings.data_dir / "skills" / "people"
    write_skill(
        people / quote("test:alice", safe=""),
        "grocery-list",
        "---\nname: grocery-list\ndescription: Keep Alice's grocery list.\n---\nALICE-PRIVATE\n",
    )
    async with Harness(settings) as h:
        fake_ollama.reply("Hi Alice")
        await h.say("hi", user="alice")
        assert "- grocery-list: Keep Alice's grocery list." in system_prompt(fake_ollama.chats[-1])

        fake_ollama.reply("Hi Bob")
        await h.say("hi", user="bob")
        assert "grocery-list" not in system_prompt(fake_ollama.chats[-1])
        fake_ollama.call_tool("use_skill", skill="grocery-list")
        fake_ollama.reply("nothing")
        await h.say("use grocery-list", user="bob")
        result = fake_ollama.chats[-1]["messages"][-1]["content"]
        assert "no skill named 'grocery-list'" in result and "ALICE-PRIVATE" not in result

        # alice in a group: her own skill stays out, for her too
        fake_ollama.call_tool("use_skill", skill="grocery-list")
        fake_ollama.reply("group answer")
        await h.say("use my grocery list", user="alice", chat="family", group=True)
        body = fake_ollama.chats[-1]
        assert "grocery-list" not in system_prompt(body)
        assert "ALICE-PRIVATE" not in body["messages"][-1]["content"]
        assert "grocery-list" not in await h.command(
            "skills", user="alice", chat="family", group=True
        )
        assert "grocery-list (on, yours)" in await h.command("skills", user="alice")
        assert "no skill 'grocery-list'" in await h.command(
            "skills", "show grocery-list", user="bob"
        )


async def test_skills_command_list_show_and_admin_switches(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama, tmp_path: Path
) -> None:
    async with Harness(_settings(make_settings, tmp_path)) as h:
        listing = await h.command("skills")
        assert "- haiku (on): Write a haiku" in listing and "- pdf-tools (on)" in listing
        shown = await h.command("skills", "show pdf-tools")
        assert "PDF-BODY-MARKER" in shown and "files: scripts/extract.py" in shown
        assert "allowed tools: Bash(python3:*) Read" in shown

        assert "for admins only" in await h.command("skills", "disable haiku", user="mallory")
        assert "haiku (on)" in await h.command("skills")

        answer = await h.command("skills", "disable haiku global", user=ADMIN)
        assert answer == "Skill haiku disabled everywhere."
        assert "haiku (off)" in await h.command("skills")
        fake_ollama.reply("ok")
        await h.say("a poem please")
        assert "haiku" not in system_prompt(fake_ollama.chats[-1])
        fake_ollama.call_tool("use_skill", skill="haiku")  # a disabled skill cannot be loaded
        fake_ollama.reply("ok")
        await h.say("a poem please")
        assert "HAIKU-BODY-MARKER" not in fake_ollama.chats[-1]["messages"][-1]["content"]

        # on again, in one chat only
        assert "in this chat" in await h.command("skills", "enable haiku", user=ADMIN, chat="alice")
        fake_ollama.reply("ok")
        await h.say("a poem please", user="alice")
        assert "- haiku:" in system_prompt(fake_ollama.chats[-1])
        fake_ollama.reply("ok")
        await h.say("a poem please", user="bob")
        assert "- haiku:" not in system_prompt(fake_ollama.chats[-1])

        entries = await recent(h.app.store, 10)
        actions = [(e.action, e.actor) for e in entries]
        assert ("skill.disable", f"test:{ADMIN}") in actions
        assert ("skill.enable", f"test:{ADMIN}") in actions
