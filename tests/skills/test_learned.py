"""Learned skills in real turns: proposed from a liked multi-tool turn, held for approval after
outside content, offered in a share of matching turns, promoted or retired by reactions, capped,
steered by admins (audited); missing capabilities grouped, with examples for admins in DMs only.
"""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from opencomputer.bot.audit import recent
from opencomputer.bot.config import Settings
from opencomputer.bot.skills.evidence import Rule
from opencomputer.bot.skills.learned import LearnedSkills
from opencomputer.bot.skills.learned_models import Status
from opencomputer.bot.skills.learning import Learning
from opencomputer.bot.skills.service import SkillService
from opencomputer.bot.testing import FakeOllama
from opencomputer.bot.testing.harness import Harness
from opencomputer.bot.tools import Tool
from tests.skills.helpers import system_prompt

ADMIN = "root"
# Decisions on a few ratings (the default rule waits for dozens: bench/skills_sim.py); the
# confidences and margins are the defaults. Half of a live skill's turns are held back.
FAST = Rule(promote_min=3, retire_min=3, holdout=0.5, watch_min=3)
STR = {"type": "string"}
WEATHER = """---
name: weather-forecast
description: Give a city's weather forecast. Use when asked about the weather or a forecast.
---
1. Call lookup with the city.
2. Call lookup with "forecast" and the city.
3. Answer in one sentence.
"""


def _params(*names: str) -> dict[str, Any]:
    return {"type": "object", "properties": {n: STR for n in names}, "required": list(names)}


def _tools(h: Harness) -> None:
    async def lookup(q: str) -> str:
        return f"found: {q}"

    async def fetch_page(url: str) -> str:
        return "<p>a stranger's page</p>"

    h.app.tools.add(
        Tool(
            "lookup",
            "Look a fact up.",
            _params("q"),
            lookup,
            effects=frozenset(),
            trusted_output=True,
        )
    )
    h.app.tools.add(  # reads outside content: its output taints the thread
        Tool("fetch_page", "Read a web page.", _params("url"), fetch_page, effects=frozenset())
    )


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "OC_ADMINS": f"test:{ADMIN}",
            "OC_PLUGIN_SANDBOX": "off",
            "OC_SKILLS_GAPS_REPORT_DAYS": "0",
        }
        values.update(overrides)
        return make_settings(**values)

    return make


@pytest.fixture
async def h(settings: Callable[..., Settings], fake_ollama: FakeOllama) -> AsyncIterator[Harness]:
    harness = Harness(settings())
    harness.app.extras["skills_rng"] = random.Random(3)
    harness.app.extras["skills_rule"] = FAST
    async with harness:
        _tools(harness)
        yield harness


def _parts(h: Harness) -> tuple[LearnedSkills, Learning]:
    service = h.app.extras["skills"]
    assert isinstance(service, SkillService) and service.learned is not None
    return service.learned, service.learning


async def _liked_turn(h: Harness, fake: FakeOllama, draft: str, *, first: str = "lookup") -> Any:
    """A turn with two tool calls, a 👍 by the asker, and the model's draft; the stored row."""
    learned, learning = _parts(h)
    fake.call_tool(first, **({"q": "Berlin"} if first == "lookup" else {"url": "http://x"}))
    fake.call_tool("lookup", q="forecast Berlin")
    fake.reply("Sunny in Berlin.")
    await h.say("what is the weather forecast for Berlin?")
    fake.reply(draft)
    await h.react(h.last_message_id, "👍")
    await learning.settle()
    return {r.name: r for r in await learned.all_rows()}


async def _actions(h: Harness) -> list[tuple[str, str]]:
    return [(e.action, e.actor) for e in await recent(h.app.store, 50)]


async def test_a_liked_multi_tool_turn_proposes_a_candidate(
    h: Harness, fake_ollama: FakeOllama, caplog: pytest.LogCaptureFixture
) -> None:
    learned, learning = _parts(h)
    # one tool call and a 👍: nothing to learn
    fake_ollama.call_tool("lookup", q="Berlin")
    fake_ollama.reply("Berlin.")
    await h.say("where is Berlin?")
    await h.react(h.last_message_id, "👍")
    await learning.settle()
    assert await learned.all_rows() == []

    # an invalid draft is dropped with one line
    caplog.set_level(logging.WARNING, "opencomputer.bot.skills.learning")
    rows = await _liked_turn(h, fake_ollama, "---\nname: Bad Name\ndescription: x\n---\nbody")
    assert rows == {}
    [line] = [r.getMessage() for r in caplog.records if "draft dropped" in r.getMessage()]
    assert "the name 'Bad Name'" in line

    rows = await _liked_turn(h, fake_ollama, f"```markdown\n{WEATHER}```")
    liked = h.last_message_id
    row = rows["weather-forecast"]
    assert (row.status, row.owner, row.tainted) == (Status.CANDIDATE, "test:alice", False)
    request = fake_ollama.chats[-1]["messages"]
    assert "You write reusable skills" in request[0]["content"]
    assert "lookup({'q': 'forecast Berlin'}) -> found: forecast Berlin" in request[1]["content"]
    assert ("skill.learned.proposed", "model") in await _actions(h)

    # drafted from alice's turn: hers alone, and only in her direct chats
    for who in ({"user": "bob"}, {"user": "alice", "chat": "team", "group": True}):
        for _ in range(3):
            assert not await _offered(h, fake_ollama, "weather forecast?", row.name, **who)
    # one reply proposes once; a bystander's 👍 proposes nothing
    before = len(fake_ollama.chats)
    await h.react(liked, "❤️")
    fake_ollama.call_tool("lookup", q="Rome")
    fake_ollama.call_tool("lookup", q="forecast Rome")
    fake_ollama.reply("Rain in Rome.")
    await h.say("and the forecast for Rome?")
    await h.react(h.last_message_id, "👍", user="bob", chat="alice")
    await learning.settle()
    assert len(fake_ollama.chats) == before + 3  # the turn's three model calls, no draft


async def test_a_tainted_turns_proposal_waits_for_an_admin(
    h: Harness, fake_ollama: FakeOllama
) -> None:
    learned, _learning = _parts(h)
    rows = await _liked_turn(h, fake_ollama, WEATHER, first="fetch_page")
    assert (rows["weather-forecast"].status, rows["weather-forecast"].tainted) == (
        Status.PENDING, True,
    )  # fmt: skip
    for _ in range(4):  # never offered while pending, whatever the draw
        fake_ollama.reply("ok")
        await h.say("weather forecast for Paris?")
        assert "weather-forecast" not in system_prompt(fake_ollama.chats[-1])
    fake_ollama.call_tool("use_skill", skill="weather-forecast")
    fake_ollama.reply("ok")
    await h.say("weather please")
    assert "no skill named 'weather-forecast'" in fake_ollama.chats[-1]["messages"][-1]["content"]

    assert "waiting for approval" in await h.command("skills", user=ADMIN)
    assert "waiting for approval" not in await h.command("skills")
    assert "for admins only" in await h.command("skills", "approve weather-forecast")
    assert "approved" in await h.command("skills", "approve weather-forecast", user=ADMIN)
    assert (await learned.get("weather-forecast")).status == Status.CANDIDATE
    assert ("skill.learned.approved", f"test:{ADMIN}") in await _actions(h)


async def test_hostile_drafts_are_dropped(
    h: Harness, fake_ollama: FakeOllama, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "opencomputer.bot.skills.learning")
    await _liked_turn(h, fake_ollama, WEATHER)
    tag = "---\nname: evil\ndescription: !!python/object/apply:os.system ['id']\n---\nx"
    for draft in (WEATHER, tag, "Sure! Here is a skill: do things.", ""):
        rows = await _liked_turn(h, fake_ollama, draft)
        assert set(rows) == {"weather-forecast"}
    lines = [r.getMessage() for r in caplog.records if "draft dropped" in r.getMessage()]
    assert len(lines) == 4
    assert "the name 'weather-forecast' is taken" in lines[0]
    assert "not valid YAML" in lines[1] and "no front matter" in lines[2] + lines[3]


async def _seed(h: Harness, name: str, description: str, body: str = "Do it well.") -> None:
    from opencomputer.bot.skills.format import Skill

    learned, _ = _parts(h)
    skill = Skill(name, description, body, h.settings.data_dir, source="learned")
    await learned.add(skill, owner=None, tainted=False, actor="test")


async def _offered(h: Harness, fake: FakeOllama, text: str, name: str, **who: Any) -> bool:
    fake.reply("answer")
    await h.say(text, **who)
    return f"- {name}:" in system_prompt(fake.chats[-1])


async def test_a_candidate_is_offered_in_a_share_of_matching_turns(
    h: Harness, fake_ollama: FakeOllama
) -> None:
    learned, _ = _parts(h)
    await _seed(h, "weather-forecast", "Give a city's weather forecast.")
    offered = [await _offered(h, fake_ollama, "weather in Rome?", "weather-forecast")
               for _ in range(16)]  # fmt: skip
    assert 4 <= sum(offered) <= 12  # OC_SKILLS_CANDIDATE_SHARE=0.5
    assert not await _offered(h, fake_ollama, "tell me a joke", "weather-forecast")
    fake_ollama.call_tool("use_skill", skill="weather-forecast")
    fake_ollama.reply("ok")
    await h.say("weather in Oslo?")
    assert "Do it well." in fake_ollama.chats[-1]["messages"][-1]["content"]
    async with h.app.store.engine.connect() as conn:
        from sqlalchemy import text

        rows = (await conn.execute(text("select offered, used from learned_skill_turns"))).all()
    assert len(rows) == 17 and sum(r.offered for r in rows[:16]) == sum(offered)
    assert rows[-1].used  # use_skill loaded it in the last turn
    arms = await learned.arms("weather-forecast")
    assert (arms.offered.n, arms.held_back.n, arms.used) == (0, 0, 1)  # no rating yet


async def _rate(
    h: Harness, fake: FakeOllama, text: str, name: str, good_when_offered: bool
) -> None:
    offered = await _offered(h, fake, text, name)
    await h.react(h.last_message_id, "👍" if offered == good_when_offered else "👎")


async def test_ratings_promote_a_helpful_and_retire_a_harmful_candidate(
    h: Harness, fake_ollama: FakeOllama
) -> None:
    learned, _ = _parts(h)
    await _seed(h, "weather-forecast", "Give a city's weather forecast.")
    await _seed(h, "recipe-ideas", "Suggest a recipe.")
    for _ in range(30):
        if (await learned.get("weather-forecast")).status == Status.LIVE:
            break
        await _rate(h, fake_ollama, "weather in Rome?", "weather-forecast", True)
    assert (await learned.get("weather-forecast")).status == Status.LIVE
    for _ in range(30):
        if (await learned.get("recipe-ideas")).status == Status.RETIRED:
            break
        await _rate(h, fake_ollama, "a recipe for dinner?", "recipe-ideas", False)
    assert (await learned.get("recipe-ideas")).status == Status.RETIRED
    # live: offered in every turn; retired: in none
    assert await _offered(h, fake_ollama, "a recipe and the weather?", "weather-forecast")
    assert not await _offered(h, fake_ollama, "a recipe and the weather?", "recipe-ideas")
    actions = await _actions(h)
    assert ("skill.learned.promoted", "tuner") in actions
    assert ("skill.learned.retired", "tuner") in actions


async def test_cap_pin_edit_delete(
    settings: Callable[..., Settings], fake_ollama: FakeOllama
) -> None:
    h = Harness(settings(OC_SKILLS_LIVE_MAX="1"))
    h.app.extras["skills_rng"] = random.Random(5)
    h.app.extras["skills_rule"] = FAST
    async with h:
        learned, _ = _parts(h)
        await _seed(h, "weather-forecast", "Give a city's weather forecast.")
        await _seed(h, "recipe-ideas", "Suggest a recipe.")
        assert "for admins only" in await h.command("skills", "pin recipe-ideas")
        assert "pinned" in await h.command("skills", "pin recipe-ideas", user=ADMIN)
        for _ in range(30):
            if (await learned.get("weather-forecast")).status != Status.CANDIDATE:
                break
            await _rate(h, fake_ollama, "weather in Rome?", "weather-forecast", True)
        # promoted, then over the cap of 1: the pinned one stays, the new one retires
        assert (await learned.get("weather-forecast")).status == Status.RETIRED
        assert (await learned.get("recipe-ideas")).status == Status.LIVE
        entries = await recent(h.app.store, 50)
        [capped] = [e for e in entries if e.detail.get("skill") == "weather-forecast"
                    and e.action == "skill.learned.retired"]  # fmt: skip
        assert "the global cap (1)" in str(capped.detail["reason"])

        answer = await h.command(
            "skills", "edit recipe-ideas Step 1: ask about allergies.", user=ADMIN
        )
        assert "replaced" in answer
        assert (await learned.get("recipe-ideas")).body == "Step 1: ask about allergies."
        assert "in a DM" in await h.command("skills", "learned", user=ADMIN, chat="g", group=True)
        listing = await h.command("skills", "learned", user=ADMIN)
        assert "- recipe-ideas (live, pinned; for everyone)" in listing
        assert "- weather-forecast (retired; for everyone): offered 👍" in listing
        assert "deleted" in await h.command("skills", "delete recipe-ideas", user=ADMIN)
        assert "no learned skill 'recipe-ideas'" in await h.command(
            "skills", "pin recipe-ideas", user=ADMIN
        )
        actions = await _actions(h)
        for kind in ("pinned", "edited", "deleted"):
            assert (f"skill.learned.{kind}", f"test:{ADMIN}") in actions


async def test_missing_capabilities_grouped_examples_for_admins_in_dms(
    h: Harness, fake_ollama: FakeOllama
) -> None:
    fake_ollama.reply("I can't read calendar invites, sorry.")
    await h.say("can you read my calendar invites?", user="bob")
    fake_ollama.call_tool("calendar_reader", q="work")  # a tool nobody has
    fake_ollama.reply("That did not work.")
    await h.say("read the calendar invite from work", user="carol")
    fake_ollama.reply("Unfortunately that is not possible.")  # a hedge: counts after a 👎
    await h.say("open my calendar invite please", user="dave", chat="team", group=True)
    hedged = h.last_message_id
    fake_ollama.reply("Unfortunately it rains.")  # a hedge liked: not a gap
    await h.say("weather?", user="erin")
    await h.react(h.last_message_id, "👍", user="erin")
    fake_ollama.reply("Paris.")
    await h.say("capital of France?", user="frank")
    await h.react(hedged, "👎", user="dave", chat="team")

    assert "for admins only" in await h.command("skills", "gaps", user="bob")
    dm = await h.command("skills", "gaps", user=ADMIN)
    assert '- 3 people asked about "calendar invite"; no tool could do it' in dm
    assert "“can you read my calendar invites?”" in dm and "“open my calendar invite please”" in dm
    assert "weather" not in dm and "France" not in dm
    group = await h.command("skills", "gaps", user=ADMIN, chat="team", group=True)
    assert '3 people asked about "calendar invite"' in group
    assert "can you read" not in group and "shown to admins in a direct chat only" in group

    _, learning = _parts(h)
    before = len(h.conn.calls)
    assert await learning.send_report() == 1
    [sent] = [c for c in h.conn.calls[before:] if c.action == "send"]
    assert (
        sent.address.chat_id == ADMIN
        and "“read the calendar invite from work”" in (h.conn.messages[sent.message_id])
    )


def test_cli_learned_pin_delete_gaps(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, make_settings: Callable[..., Settings]
) -> None:
    import asyncio

    from typer.testing import CliRunner

    from opencomputer.bot.cli import app
    from opencomputer.bot.skills.format import Skill
    from opencomputer.bot.skills.gaps import CapabilityGaps
    from opencomputer.bot.storage import SqlStore

    settings = make_settings()
    monkeypatch.setenv("OC_DATA_DIR", str(settings.data_dir))
    url = settings.resolved_database_url

    async def seed() -> None:
        store = SqlStore(url)
        await store.start()
        try:
            learned = LearnedSkills(store.engine, settings, audit_to=store)
            skill = Skill("weather-forecast", "Give a forecast.", "1. look", tmp_path, "learned")
            await learned.add(skill, owner="test:alice", tainted=True, actor="model")
            await CapabilityGaps(store.engine).add(
                person="test:bob", account="test:bob", conversation="test:bob", direct=True,
                kind="cannot", text="read my calendar invites", reply_id=None,
            )  # fmt: skip
        finally:
            await store.stop()

    async def audited() -> list[tuple[str, str]]:
        store = SqlStore(url)
        await store.start()
        try:
            return [(e.action, e.actor) for e in await recent(store, 20)]
        finally:
            await store.stop()

    asyncio.run(seed())
    runner = CliRunner()
    listed = runner.invoke(app, ["skills", "learned"])
    assert listed.exit_code == 0, listed.output
    assert "- weather-forecast (pending, tainted; for test:alice)" in listed.output
    pinned = runner.invoke(app, ["skills", "pin", "weather-forecast"])
    assert pinned.exit_code == 1 and "opencomputer skills approve weather-forecast" in pinned.output
    assert runner.invoke(app, ["skills", "approve", "weather-forecast"]).exit_code == 0
    assert runner.invoke(app, ["skills", "pin", "weather-forecast"]).exit_code == 0
    assert "(live, pinned, tainted" in runner.invoke(app, ["skills", "learned"]).output
    assert runner.invoke(app, ["skills", "delete", "weather-forecast"]).exit_code == 0
    missing = runner.invoke(app, ["skills", "delete", "weather-forecast"])
    assert missing.exit_code == 1 and "no learned skill 'weather-forecast'" in missing.output
    gaps = runner.invoke(app, ["skills", "gaps"])
    assert '1 person asked about "calendar invite"' in gaps.output
    assert "“read my calendar invites”" in gaps.output
    actions = asyncio.run(audited())
    for kind in ("approved", "pinned", "deleted"):
        assert (f"skill.learned.{kind}", "cli") in actions


async def test_export_and_forget_reach_gaps_and_learned_skills(
    h: Harness, fake_ollama: FakeOllama
) -> None:
    learned, _ = _parts(h)
    await _liked_turn(h, fake_ollama, WEATHER)
    fake_ollama.reply("I cannot read calendar invites.")
    await h.say("read my calendar invites")
    fake_ollama.reply("I cannot read calendar invites.")
    await h.say("read my calendar invites, please", user="bob")

    results = h.app.hooks.call.oc_export(person="test:alice", accounts=["test:alice"])
    body: dict[str, Any] = {}
    for result in results:  # what /export collects from every feature
        body.update(await result)
    assert [g["example"] for g in body["capability_gaps"]] == ["read my calendar invites"]
    assert [s["name"] for s in body["learned_skills"]] == ["weather-forecast"]

    await h.command("forget")
    done = await h.command("forget", "confirm")
    assert "1 missing-capability examples and 1 learned skills" in done
    assert await learned.all_rows() == []
    report = await h.command("skills", "gaps", user=ADMIN)
    assert (
        "1 person asked" in report
        and "please" in report
        and "“read my calendar invites”" not in report
    )


async def test_the_periodic_report_reaches_admins(
    settings: Callable[..., Settings], fake_ollama: FakeOllama
) -> None:
    import asyncio

    async with Harness(settings(OC_SKILLS_GAPS_REPORT_DAYS="0.00001")) as h:  # every 0.86 s
        fake_ollama.reply("I can't book flights.")
        await h.say("book a flight to Lima", user="bob")

        def report() -> list[str]:
            return [
                h.conn.messages[c.message_id]
                for c in h.conn.calls
                if c.action == "send" and c.address.chat_id == ADMIN
            ]

        async def arrived() -> None:
            while not report():
                await asyncio.sleep(0.05)

        await asyncio.wait_for(arrived(), timeout=5)
        assert '1 person asked about "book flight"' in report()[0]
        assert "“book a flight to Lima”" in report()[0]


def _told_admin(h: Harness) -> list[str]:
    """What the bot told the admin of its own accord (not answers to their commands)."""
    return [
        text
        for c in h.conn.calls
        if c.action == "send"
        and c.address.chat_id == ADMIN
        and (text := h.conn.messages[c.message_id]).startswith("Learned skills changed")
    ]


async def test_a_live_skill_that_turns_bad_is_demoted_one_that_stays_good_is_kept(
    h: Harness, fake_ollama: FakeOllama
) -> None:
    learned, _ = _parts(h)
    await _seed(h, "weather-forecast", "Give a city's weather forecast.")
    await _seed(h, "recipe-ideas", "Suggest a recipe.")
    for name in ("weather-forecast", "recipe-ideas"):  # live, and watched again once unpinned
        await h.command("skills", f"pin {name}", user=ADMIN)
        await h.command("skills", f"unpin {name}", user=ADMIN)
        assert (await learned.get(name)).status == Status.LIVE
    # a live skill is held back in a share of its matching turns (FAST: half)
    held = [not await _offered(h, fake_ollama, "weather in Oslo?", "weather-forecast")
            for _ in range(12)]  # fmt: skip
    assert 2 <= sum(held) <= 10
    assert await _offered(h, fake_ollama, "tell me a joke", "weather-forecast")  # no match: listed
    for _ in range(30):  # stays good: offered liked, held back not
        await _rate(h, fake_ollama, "weather in Rome?", "weather-forecast", True)
    for _ in range(30):  # turned bad: offered disliked, held back liked
        if (await learned.get("recipe-ideas")).status != Status.LIVE:
            break
        await _rate(h, fake_ollama, "a recipe for dinner?", "recipe-ideas", False)
    assert (await learned.get("weather-forecast")).status == Status.LIVE
    assert (await learned.get("recipe-ideas")).status == Status.RETIRED
    entries = [e for e in await recent(h.app.store, 100) if e.action == "skill.learned.demoted"]
    assert [
        (e.actor, e.detail["skill"], e.detail["before"], e.detail["after"]) for e in entries
    ] == [("tuner", "recipe-ideas", Status.LIVE, Status.RETIRED)]
    assert "since promotion P(hurts)" in str(entries[0].detail["reason"])
    [told] = _told_admin(h)
    assert "- recipe-ideas demoted (retired): since promotion P(hurts)" in told
    assert "weather-forecast" not in told
    assert not await _offered(h, fake_ollama, "a recipe for dinner?", "recipe-ideas")


async def test_a_pinned_live_skill_is_neither_held_back_nor_demoted(
    h: Harness, fake_ollama: FakeOllama
) -> None:
    learned, _ = _parts(h)
    await _seed(h, "recipe-ideas", "Suggest a recipe.")
    await h.command("skills", "pin recipe-ideas", user=ADMIN)
    for _ in range(12):  # always offered (never held back), and disliked every time
        assert await _offered(h, fake_ollama, "a recipe for dinner?", "recipe-ideas")
        await h.react(h.last_message_id, "👎")
    row = await learned.get("recipe-ideas")
    assert (row.status, row.pinned) == (Status.LIVE, True)
