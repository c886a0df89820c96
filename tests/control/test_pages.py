"""Conversations and prompts in the control room: transcripts with votes, prompt moves that
are the same operations as ``/prompt`` (audited under the admin, and served afterwards).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from opencomputer.bot import audit
from opencomputer.bot.config import Settings
from opencomputer.bot.testing import FakeOllama

from .kit import ADMIN, browser, control_settings, logged_in, served

pytestmark = pytest.mark.timeout(30)

HOSTILE = "<b>hi</b> <script>alert(1)</script>"


async def test_conversations_and_a_transcript_with_votes(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama
) -> None:
    async with served(control_settings(make_settings)) as h, browser() as http:
        await logged_in(h, http)
        await h.command("allow", "test:alice", user=ADMIN)
        assert await h.say(HOSTILE) == f"echo: {HOSTILE}"
        await h.react(h.last_message_id, "👍")
        await h.app.runtime.wait_idle()
        async with http.get(f"{h.base}/ui/api/conversations") as r:
            keys = [c["key"] for c in (await r.json())["conversations"]]
        assert "test:alice" in keys
        async with http.get(f"{h.base}/ui/api/conversations", params={"q": "script>al"}) as r:
            assert [c["key"] for c in (await r.json())["conversations"]] == ["test:alice"]
        async with http.get(f"{h.base}/ui/api/conversations", params={"q": "100%_"}) as r:
            assert (await r.json())["conversations"] == []  # LIKE wildcards are literal
        query = {"conversation": "test:alice"}
        async with http.get(f"{h.base}/ui/api/transcript", params=query) as r:
            items = (await r.json())["items"]
        said = [(i["role"], i["text"]) for i in items]
        assert ("user", HOSTILE) in said and ("assistant", f"echo: {HOSTILE}") in said
        answer = next(i for i in items if i["text"] == f"echo: {HOSTILE}")
        assert answer["votes"] == {"👍": 1}
        async with http.get(f"{h.base}/ui/api/transcript", params={"conversation": "x:y"}) as r:
            assert r.status == 404


async def test_promote_from_the_browser_is_served_and_audited(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama
) -> None:
    async with served(control_settings(make_settings)) as h, browser() as http:
        csrf = await logged_in(h, http)
        await h.command("prompt", "add --name=brief Answer in one sentence.", user=ADMIN)
        async with http.get(f"{h.base}/ui/api/prompts") as r:
            variants = {v["id"]: v for v in (await r.json())["variants"]}
        assert variants[2]["status"] == "candidate"
        assert variants[2]["template"] == "Answer in one sentence."
        url = f"{h.base}/ui/api/prompts/2"
        async with http.post(url, json={"action": "promote"}) as r:
            assert r.status == 403  # no CSRF token
        headers = {"X-CSRF-Token": csrf}
        async with http.post(url, json={"action": "explode"}, headers=headers) as r:
            assert r.status == 400
        async with http.post(url, json={"action": "promote"}, headers=headers) as r:
            assert (await r.json()) == {"ok": True, "event": "promoted", "variant": 2}
        async with http.post(url, json={"action": "promote"}, headers=headers) as r:
            assert r.status == 409 and "already active" in (await r.json())["error"]
        async with http.post(
            f"{h.base}/ui/api/prompts/42", json={"action": "pin"}, headers=headers
        ) as r:
            assert r.status == 409
        actions = [(e.actor, e.action) for e in await audit.recent(h.app.store, 10)]
        assert (f"test:{ADMIN}", "prompt.promoted") in actions

        await h.command("allow", "test:alice", user=ADMIN)
        await h.say("hello")
        system = fake_ollama.chats[-1]["messages"][0]
        assert system["role"] == "system" and "Answer in one sentence." in system["content"]
