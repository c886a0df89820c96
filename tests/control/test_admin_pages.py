"""Plugins, people, schedules, charts and tool calls in the control room: each action is the
same service call as its chat command or CLI (its effect is checked in the service and the
database) and is audited under the admin; nothing answers without a session, nothing changes
without the CSRF token.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from opencomputer.bot import audit
from opencomputer.bot.config import Settings
from opencomputer.bot.control.activity import since
from opencomputer.bot.control.pages import turn_steps
from opencomputer.bot.events import Address, User
from opencomputer.bot.plugins.grants import SERVER_SECRET
from opencomputer.bot.schedules.models import ScheduleRow
from opencomputer.bot.storage.models import ReplyRow
from opencomputer.bot.testing import FakeOllama

from .kit import ADMIN, Served, browser, control_settings, logged_in, served

pytestmark = pytest.mark.timeout(30)

BOSS = f"test:{ADMIN}"
HOSTILE = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'
READS = ["plugins", "people", "memories?person=test:alice", "schedules", "activity"]
CHANGES = [
    ("plugins/calculator", {"action": "disable"}),
    ("pairing/test:carol", {"decision": "approve"}),
    ("memories/1", {"person": "test:alice"}),
    ("schedules/1", {"action": "cancel"}),
]


def sneaky_plugin(folder: Path) -> Path:
    """A plugin from OC_PLUGIN_DIRS with a secret and a hostile description."""
    plugin = folder / "sneaky"
    plugin.mkdir(parents=True)
    manifest = {
        "name": "sneaky",
        "version": "0.1.0",
        "description": HOSTILE,
        "module": "tools",
        "permissions": {"network": ["example.org"], "secrets": ["OC_SNEAKY_TOKEN"]},
        "settings": {"OC_SNEAKY_TOKEN": {"secret": True}},
        "tools": [{"name": "peek", "description": "Peek."}],
    }
    (plugin / "plugin.json").write_text(json.dumps(manifest))
    (plugin / "tools.py").write_text(
        "from opencomputer import tool\n\n\n@tool\ndef peek() -> str:\n"
        '    """Peek."""\n    return "ok"\n'
    )
    return folder


async def actions(h: Served) -> list[tuple[str, str, dict[str, Any]]]:
    return [(e.actor, e.action, e.detail) for e in await audit.recent(h.app.store, 30)]


async def send(
    http: aiohttp.ClientSession, h: Served, path: str, data: dict[str, Any], csrf: str
) -> tuple[int, dict[str, Any]]:
    async with http.post(f"{h.base}/ui/api/{path}", json=data, headers={"X-CSRF-Token": csrf}) as r:
        return r.status, await r.json()


async def test_no_session_401_no_csrf_403(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama
) -> None:
    async with served(control_settings(make_settings)) as h, browser() as http:
        for path in READS:
            async with http.get(f"{h.base}/ui/api/{path}") as r:
                assert r.status == 401, path
        for path, data in CHANGES:
            async with http.post(f"{h.base}/ui/api/{path}", json=data) as r:
                assert r.status == 401, path
        await logged_in(h, http)
        for path, data in CHANGES:
            async with http.post(f"{h.base}/ui/api/{path}", json=data) as r:
                assert r.status == 403, path
            async with http.post(
                f"{h.base}/ui/api/{path}", json=data, headers={"X-CSRF-Token": "forged"}
            ) as r:
                assert r.status == 403, path
        system = h.app.extras["plugins"]
        assert system.enablement.is_enabled("calculator")  # nothing changed


async def test_plugins_enable_disable_grant_revoke_consent(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama, tmp_path: Path
) -> None:
    settings = control_settings(make_settings, OC_PLUGIN_DIRS=str(sneaky_plugin(tmp_path)))
    async with served(settings) as h, browser() as http:
        csrf = await logged_in(h, http)
        system = h.app.extras["plugins"]
        async with http.get(f"{h.base}/ui/api/plugins") as r:
            listed = {p["name"]: p for p in (await r.json())["plugins"]}
        sneaky = listed["sneaky"]
        assert sneaky["description"] == HOSTILE and sneaky["source"] == "dir"
        assert sneaky["new"] and not sneaky["enabled"] and sneaky["sandboxed"]
        assert sneaky["permissions"]["network"] == ["example.org"]
        assert sneaky["secrets"] == {"OC_SNEAKY_TOKEN": False}
        assert listed["calculator"]["enabled"] and not listed["calculator"]["new"]

        alice = Address("test", "alice")
        assert await send(http, h, "plugins/calculator", {"action": "disable"}, csrf) == (
            200,
            {"ok": True, "plugin": {**listed["calculator"], "enabled": False}},
        )
        assert not system.enabled("calculator", alice)
        status, _ = await send(
            http, h, "plugins/calculator", {"action": "enable", "chat": "test:alice"}, csrf
        )
        assert status == 200 and system.enabled("calculator", alice)
        assert not system.enabled("calculator", Address("test", "bob"))
        tools = [t.name for t in system.tools_for(alice)]
        assert "calculate" in tools

        status, body = await send(http, h, "plugins/sneaky", {"action": "consent"}, csrf)
        assert status == 200 and body["plugin"]["enabled"] and not body["plugin"]["new"]
        assert body["plugin"]["secret_notes"] == {
            "OC_SNEAKY_TOKEN": "not set: put OC_SNEAKY_TOKEN in the server's environment or .env"
        }
        assert system.enablement.is_granted("sneaky", "OC_SNEAKY_TOKEN")
        assert system.enabled("sneaky", alice)
        token = {"action": "revoke", "secret": "OC_SNEAKY_TOKEN"}
        assert (await send(http, h, "plugins/sneaky", token, csrf))[0] == 200
        assert not system.enablement.is_granted("sneaky", "OC_SNEAKY_TOKEN")

        # refusals: one line each, nothing changed
        for path, data, code in [
            ("plugins/calculator", {"action": "enable", "chat": "alice"}, 400),
            ("plugins/calculator", {"action": "enable", "chat": "nowhere:1"}, 400),
            ("plugins/calculator", {"action": "explode"}, 400),
            ("plugins/sneaky", {"action": "grant", "secret": "TELEGRAM_BOT_TOKEN"}, 400),
            ("plugins/nothere", {"action": "enable"}, 404),
        ]:
            status, body = await send(http, h, path, data, csrf)
            assert status == code and body["ok"] is False and "\n" not in body["error"], path
        assert "TELEGRAM_BOT_TOKEN" not in system.enablement.grants("sneaky")

        done = await actions(h)
        web = {"via": "web"}
        assert (BOSS, "plugin.disable", {"plugin": "calculator", "scope": "*", **web}) in done
        scope = {"plugin": "calculator", "scope": "test:alice", **web}
        assert (BOSS, "plugin.enable", scope) in done
        assert (BOSS, "plugin.enable", {"plugin": "sneaky", "scope": "*", **web}) in done
        secret = {"plugin": "sneaky", "secret": "OC_SNEAKY_TOKEN", **web}
        assert (BOSS, "plugin.grant", secret) in done
        assert (BOSS, "plugin.revoke", secret) in done
        # stored, so the CLI and other processes read the same decisions
        await system.enablement.refresh()
        assert system.enablement.decisions("calculator") == {"*": False, "test:alice": True}


async def test_a_grant_from_the_page_needs_csrf_and_says_why_a_secret_is_withheld(
    make_settings: Callable[..., Settings],
    fake_ollama: FakeOllama,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Granting a secret is ``opencomputer plugins grant``: refused without the CSRF token,
    audited under the admin, and like the CLI it says when a granted secret still does not
    reach the plugin (here its value is the server's own bot token).
    """
    token = "123456:the-servers-own-bot-token"
    monkeypatch.setenv("OC_SNEAKY_TOKEN", token)
    settings = control_settings(
        make_settings, OC_PLUGIN_DIRS=str(sneaky_plugin(tmp_path)), TELEGRAM_BOT_TOKEN=token
    )
    async with served(settings) as h, browser() as http:
        csrf = await logged_in(h, http)
        system = h.app.extras["plugins"]
        grant = {"action": "grant", "secret": "OC_SNEAKY_TOKEN"}
        async with http.post(f"{h.base}/ui/api/plugins/sneaky", json=grant) as r:
            assert r.status == 403 and "CSRF" in (await r.json())["error"]
        for forged in ("", csrf[:-1] + ("0" if csrf[-1] != "0" else "1")):
            async with http.post(
                f"{h.base}/ui/api/plugins/sneaky", json=grant, headers={"X-CSRF-Token": forged}
            ) as r:
                assert r.status == 403
        assert not system.enablement.is_granted("sneaky", "OC_SNEAKY_TOKEN")
        assert not [a for a in await actions(h) if a[1] == "plugin.grant"]

        status, body = await send(http, h, "plugins/sneaky", grant, csrf)
        assert status == 200 and body["plugin"]["secrets"] == {"OC_SNEAKY_TOKEN": True}
        assert body["plugin"]["secret_notes"] == {"OC_SNEAKY_TOKEN": SERVER_SECRET}
        assert system.enablement.is_granted("sneaky", "OC_SNEAKY_TOKEN")
        secret = {"plugin": "sneaky", "secret": "OC_SNEAKY_TOKEN", "via": "web"}
        assert (BOSS, "plugin.grant", secret) in await actions(h)
        status, body = await send(http, h, "plugins/sneaky", {**grant, "action": "revoke"}, csrf)
        assert status == 200 and body["plugin"]["secret_notes"] == {}  # not granted: no note


async def test_people_pairing_and_memories(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama
) -> None:
    async with served(control_settings(make_settings)) as h, browser() as http:
        csrf = await logged_in(h, http)
        policy = h.app.extras["admin"].policy
        assert "/allow" in await h.say("hi", user="carol")
        await h.say("hi", user="dave")
        async with http.get(f"{h.base}/ui/api/people") as r:
            people = await r.json()
        assert [p["user"] for p in people["pairing"]] == ["test:carol", "test:dave"]
        assert "code" not in people["pairing"][0]  # the page never needs the code itself

        before = len(h.conn.calls)
        assert (await send(http, h, "pairing/test:carol", {"decision": "approve"}, csrf))[0] == 200
        assert policy.role("user:test:carol") == "allowed"
        assert "You're in" in h.last_text(since=before)  # told in her chat, as after /allow
        status, body = await send(http, h, "pairing/test:carol", {"decision": "approve"}, csrf)
        assert status == 409 and "no pending pairing request" in body["error"]
        assert (await send(http, h, "pairing/test:dave", {"decision": "deny"}, csrf))[0] == 200
        assert policy.is_denied(User("test", "dave", "Dave"))
        assert (await send(http, h, "pairing/test:boss", {"decision": "deny"}, csrf))[0] == 409

        memory = h.app.extras["memory"]
        kept = await memory.add("test:alice", "likes tea")
        gone = await memory.add("test:alice", HOSTILE)
        async with http.get(f"{h.base}/ui/api/people") as r:
            people = await r.json()
        by_person = {p["person"]: p for p in people["people"]}
        assert by_person["test:alice"]["memories"] == 2
        assert {"key": BOSS, "role": "admin (OC_ADMINS)"} in by_person[BOSS]["accounts"]
        assert {"subject": "user:test:dave", "role": "denied"} in people["grants"]
        async with http.get(f"{h.base}/ui/api/memories", params={"person": "test:alice"}) as r:
            texts = [m["text"] for m in (await r.json())["memories"]]
        assert texts == ["likes tea", HOSTILE]
        status, _ = await send(http, h, f"memories/{gone.id}", {"person": "test:bob"}, csrf)
        assert status == 404  # not bob's: an id alone deletes nothing
        status, _ = await send(http, h, f"memories/{gone.id}", {"person": "test:alice"}, csrf)
        assert status == 200
        assert [m.id for m in await memory.list_of("test:alice")] == [kept.id]

        done = await actions(h)
        assert (BOSS, "access.allow", {"subject": "user:test:carol", "via": "web"}) in done
        assert (BOSS, "access.deny", {"subject": "user:test:dave", "via": "web"}) in done
        detail = {"person": "test:alice", "id": gone.id, "via": "web"}
        assert (BOSS, "memory.deleted", detail) in done


async def test_schedules_cancel(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama
) -> None:
    async with served(control_settings(make_settings)) as h, browser() as http:
        csrf = await logged_in(h, http)
        scheduler = h.app.extras["scheduler"]
        values = {
            "person": "test:alice",
            "platform": "test",
            "chat_id": "alice",
            "user_id": "alice",
            "user_name": "Alice",
            "text": HOSTILE,
            "repeat": "0 9 * * MON",
            "next_run": time.time() + 86400,
        }
        schedule_id = await scheduler.add(values)
        async with http.get(f"{h.base}/ui/api/schedules") as r:
            (listed,) = (await r.json())["schedules"]
        assert listed["id"] == schedule_id and listed["text"] == HOSTILE
        assert listed["chat"] == "test:alice" and listed["repeat"]
        path = f"schedules/{schedule_id}"
        assert (await send(http, h, path, {"action": "explode"}, csrf))[0] == 400
        assert (await send(http, h, path, {"action": "cancel"}, csrf))[0] == 200
        assert await scheduler.active() == []
        table = ScheduleRow.__table__  # type: ignore[attr-defined]
        async with h.app.store.engine.connect() as conn:
            status = await conn.scalar(select(table.c.status).where(table.c.id == schedule_id))
        assert status == "cancelled"
        assert (await send(http, h, path, {"action": "cancel"}, csrf))[0] == 409
        detail = {"id": schedule_id, "person": "test:alice", "via": "web"}
        assert (BOSS, "schedule.cancelled", detail) in await actions(h)


async def test_charts_and_tool_calls_in_the_transcript(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama
) -> None:
    async with served(control_settings(make_settings)) as h, browser() as http:
        await logged_in(h, http)
        await h.command("allow", "test:alice", user=ADMIN)
        fake_ollama.call_tool("calculate", expression="6*7")
        fake_ollama.reply("It is 42.")
        assert await h.say("what is six times seven?") == "It is 42."
        await h.say("thanks")
        fake_ollama.reply(status=500, error="the model fell over")
        await h.say("and now?")
        async with http.get(f"{h.base}/ui/api/activity") as r:
            chart = await r.json()
        assert len(chart["turns"]) == len(chart["errors"]) == 60 and chart["step"] == 60
        assert sum(chart["turns"]) == 3  # the apology for the failed turn is a turn too
        assert sum(chart["errors"]) == 1  # one failed turn, counted once
        assert chart["turns"][-1] + chart["turns"][-2] == sum(chart["turns"])  # this minute
        assert chart["start"] <= time.time() < chart["start"] + 3600
        replies = ReplyRow.__table__  # type: ignore[attr-defined]
        async with h.app.store.engine.connect() as conn:  # read back in chunks: same rows
            at = replies.c.created_at
            whole = await since(conn, replies, at, chart["start"])
            assert len(whole) == 3
            assert await since(conn, replies, at, chart["start"], chunk=1) == whole
            assert await since(conn, replies, at, time.time() + 60, chunk=1) == []

        query = {"conversation": "test:alice"}
        async with http.get(f"{h.base}/ui/api/transcript", params=query) as r:
            items = (await r.json())["items"]
        asked = next(i for i in items if i["text"] == "what is six times seven?")
        call, result = asked["tools"]
        assert call == {"kind": "call", "name": "calculate", "text": '{"expression":"6*7"}'}
        assert result["kind"] == "result" and "42" in result["text"]
        thanks = next(i for i in items if i["text"] == "thanks")
        assert "tools" not in thanks


def test_turn_steps_cut_long_results_and_skip_what_came_before_a_user() -> None:
    history = [
        {"role": "system", "content": "rules"},
        {"role": "user", "content": "fetch it"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "fetch_url", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_name": "fetch_url", "content": "x" * 5000},
        {"role": "assistant", "content": "done"},
        {"role": "user", "content": "thanks"},
    ]
    (said, steps), (after, none) = turn_steps(history)
    assert (said, after, none) == ("fetch it", "thanks", [])
    assert steps[0] == {"kind": "call", "name": "fetch_url", "text": "{}"}
    assert steps[1]["name"] == "fetch_url"
    assert steps[1]["text"] == "x" * 2000 + "… [5000 characters]"
