"""Pairing, allow/deny, group policy and admin-only commands through the real app."""

from __future__ import annotations

import re
from collections.abc import Callable

from sqlalchemy import select

from opencomputer.bot.audit import recent
from opencomputer.bot.config import Settings
from opencomputer.bot.storage.models import InboundRow
from opencomputer.bot.testing import FakeOllama
from opencomputer.bot.testing.harness import Harness

from .conftest import ADMIN


async def _stored_texts(h: Harness) -> list[str]:
    async with h.app.store.engine.connect() as conn:
        return [row.text for row in await conn.execute(select(InboundRow.__table__))]


async def test_pairing_code_then_allow(harness: Harness, fake_ollama: FakeOllama) -> None:
    answer = await harness.say("hello there", user="carol")
    code = re.search(r"/allow (\w+)", answer)
    assert code is not None, answer
    assert "does not know you yet" in answer
    # A second message gets no second code (no flood), and nothing of a stranger is stored.
    assert await harness.say("anyone?", user="carol") == ""
    assert await _stored_texts(harness) == []
    assert fake_ollama.chats == []

    # A stranger's command is stopped before the router (he gets his own code instead)...
    stranger = await harness.command("allow", code.group(1), user="dave")
    assert "does not know you yet" in stranger and code.group(1) not in stranger
    # ...and an allowed user who is not an admin is refused.
    await harness.command("allow", "test:dave", user=ADMIN)
    assert (
        await harness.command("allow", code.group(1), user="dave") == "/allow is for admins only."
    )
    granted = await harness.command("allow", code.group(1), user=ADMIN)
    assert "Allowed Carol (test:carol)" in granted
    welcome = [c for c in harness.conn.calls if c.text.startswith("You're in")]
    assert welcome and welcome[0].address.chat_id == "carol"

    assert await harness.say("hello again", user="carol") == "echo: hello again"
    # The code was single-use.
    again = await harness.command("allow", code.group(1), user=ADMIN)
    assert "unknown or expired" in again
    actions = [e.action for e in await recent(harness.app, 10)]
    assert "access.allow" in actions and "command.allow" in actions


async def test_allow_and_deny_by_account(harness: Harness) -> None:
    assert "Allowed test:erin" in await harness.command("allow", "test:erin", user=ADMIN)
    assert await harness.say("hi", user="erin") == "echo: hi"
    assert "Denied test:erin" in await harness.command("deny", "test:erin", user=ADMIN)
    assert await harness.say("hi?", user="erin") == ""
    # A configured admin cannot be denied from chat.
    assert "OC_ADMINS" in await harness.command("deny", f"test:{ADMIN}", user=ADMIN)


async def test_allowlist_policy_refuses_once(
    admin_settings: Callable[..., Settings], fake_ollama: FakeOllama
) -> None:
    async with Harness(admin_settings(OC_DM_POLICY="allowlist")) as h:
        first = await h.say("hi", user="frank")
        assert "only answers people its admin allowed" in first
        assert await h.say("hi again", user="frank") == ""
        assert "/allow" not in first


async def test_open_policy_answers_everyone(
    admin_settings: Callable[..., Settings], fake_ollama: FakeOllama
) -> None:
    async with Harness(admin_settings(OC_DM_POLICY="open")) as h:
        assert await h.say("hi", user="gina") == "echo: hi"
        await h.command("deny", "test:gina", user=ADMIN)
        assert await h.say("hi", user="gina") == ""


async def test_group_answers_only_when_allowed(harness: Harness) -> None:
    await harness.command("allow", "test:hank", user=ADMIN)
    assert await harness.say("in the group", user="hank", chat="room1", group=True) == ""
    allowed = await harness.command("allow", "", user=ADMIN, chat="room1", group=True)
    assert "This chat is allowed" in allowed
    # Now anyone in that group is answered, even a stranger.
    assert await harness.say("yo", user="ivy", chat="room1", group=True) == "echo: yo"
    assert await harness.say("yo", user="ivy", chat="room2", group=True) == ""
    await harness.command("deny", "", user=ADMIN, chat="room1", group=True)
    assert await harness.say("still?", user="hank", chat="room1", group=True) == ""


async def test_admin_commands_hidden_refused_and_audited(harness: Harness) -> None:
    await harness.command("allow", "test:judy", user=ADMIN)
    help_user = await harness.command("help", user="judy")
    help_admin = await harness.command("help", user=ADMIN)
    for name in ("/status", "/allow", "/deny", "/admins", "/broadcast", "/audit", "/model"):
        assert name not in help_user
        assert name in help_admin
    for name in ("/forget", "/export", "/link", "/approve"):
        assert name in help_user
    assert await harness.command("status", user="judy") == "/status is for admins only."
    entries = await recent(harness.app, 5, actor="test:judy")
    assert [(e.action, e.detail) for e in entries][:1] == [
        ("command.denied", {"command": "status"})
    ]
    # Connectors are told which commands are admin-only (for admin scopes / menus).
    admin_specs = {s.name for s in harness.conn.commands if s.admin}
    assert {"status", "allow", "deny", "admins", "broadcast", "audit", "model"} <= admin_specs
    assert not any(s.admin for s in harness.conn.commands if s.name in ("forget", "link", "help"))


async def test_granted_admin(harness: Harness) -> None:
    await harness.command("allow", "test:kim", user=ADMIN)
    assert "now an admin" in await harness.command("admins", "add test:kim", user=ADMIN)
    status = await harness.command("status", user="kim")
    assert "queue depth: 0" in status and "turns today:" in status and "test: connected" in status
    listing = await harness.command("admins", user="kim")
    assert f"test:{ADMIN} (OC_ADMINS)" in listing and "test:kim (granted)" in listing
    await harness.command("admins", "remove test:kim", user=ADMIN)
    assert await harness.command("status", user="kim") == "/status is for admins only."
