"""Linking the terminal and a messenger to one person; /export; /forget leaving nothing behind."""

from __future__ import annotations

import io
import re
import sqlite3

import orjson
import pytest
from sqlalchemy import select
from sqlmodel import SQLModel

from opencomputer.bot.events import User
from opencomputer.bot.hooks import DataRights
from opencomputer.bot.identity import IdentityLinks, Redeemed
from opencomputer.bot.testing.harness import Harness
from opencomputer.connectors.terminal import TerminalConnector

from .conftest import ADMIN

SECRET_TEXT = "my plan is PURPLE-ELEPHANT-42"


async def _terminal(h: Harness, *lines: str) -> str:
    """Type lines into a terminal channel attached to the same app; return what it printed."""
    out = io.StringIO()
    runtime = h.app.runtime
    terminal = TerminalConnector(
        runtime.emit,
        wait_idle=runtime.wait_idle,
        stdin=io.StringIO("\n".join(lines) + "\n"),
        stdout=out,
        interactive=False,
        user="owner",
    )
    runtime.add_connector(terminal)
    await terminal.start()
    await terminal.run()
    return out.getvalue()


async def test_link_terminal_and_messenger_to_one_person(harness: Harness) -> None:
    printed = await _terminal(harness, "/link")
    code = re.search(r"/link (\w{8})`", printed)
    assert code is not None, printed
    runtime = harness.app.runtime
    zoe, owner = User("test", "zoe"), User("terminal", "owner")
    assert await runtime.person_of(zoe) != await runtime.person_of(owner)

    # zoe is a stranger here: a valid code only asks the owner, who confirms on the terminal.
    asked = await harness.command("link", code.group(1), user="zoe")
    assert "asked the account that made this code to confirm" in asked
    assert "terminal:owner" not in asked  # the code's maker stays unnamed until confirmed
    assert await runtime.person_of(zoe) == "test:zoe"
    printed = await _terminal(harness, "/link confirm")
    assert "Linked: this account and test:zoe" in printed, printed
    assert harness.last_text().endswith(
        "Linked: this account and terminal:owner are now one person (shared memory and settings)."
    )
    assert await runtime.person_of(zoe) == await runtime.person_of(owner) == "terminal:owner"
    assert await harness.say("hi", user="zoe") == "echo: hi"
    # Linking does not make zoe an admin.
    assert await harness.command("status", user="zoe") == "/status is for admins only."

    # The code was single-use.
    reused = await harness.command("link", code.group(1), user="yan")
    assert "unknown, expired or already used" in reused

    assert "on its own again" in await harness.command("unlink", user="zoe")
    assert await runtime.person_of(zoe) == "test:zoe"
    assert "does not know you yet" in await harness.say("hello?", user="zoe")


async def test_link_codes_expire(harness: Harness) -> None:
    links = IdentityLinks(harness.app.store.engine, code_ttl=-1)
    code = await links.new_code(User("test", "a"))
    assert await links.redeem(code, User("test", "b")) == (Redeemed.UNKNOWN, None)
    own = await IdentityLinks(harness.app.store.engine).new_code(User("test", "a"))
    assert await links.redeem(own, User("test", "a")) == (Redeemed.OWN, None)  # not yourself


async def _everything(h: Harness) -> dict[str, str]:
    """Every row of every table, as text, by table name."""
    dump: dict[str, str] = {}
    async with h.app.store.engine.connect() as conn:
        for table in SQLModel.metadata.sorted_tables:
            try:
                rows = await conn.execute(select(table))
            except Exception:
                continue  # a table another feature declares but did not create here
            dump[table.name] = "\n".join(str(tuple(r)) for r in rows)
    return dump


def _checkpoint_blobs(h: Harness) -> bytes:
    path = h.settings.data_dir / "opencomputer-checkpoints.db"
    conn = sqlite3.connect(path)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        data = b""
        for table in tables:
            for row in conn.execute(f"SELECT * FROM {table}"):
                data += b"".join(v if isinstance(v, bytes) else str(v).encode() for v in row)
        return data
    finally:
        conn.close()


async def test_export_then_forget_leaves_nothing(harness: Harness) -> None:
    calls: list[tuple[str, list[str]]] = []

    async def forget_hook(person: str, accounts: list[str]) -> str:
        calls.append((person, accounts))
        return "2 memories"

    harness.app.hooks.register(DataRights(forget_hook))  # as another feature would
    for user in ("alice", "bob"):
        await harness.command("allow", f"test:{user}", user=ADMIN)
    assert await harness.say(SECRET_TEXT) == f"echo: {SECRET_TEXT}"
    await harness.react(harness.last_message_id, "👍")
    await harness.say("bob's own words", user="bob")

    exported = await harness.command("export")
    body = orjson.loads(exported.split("```json\n", 1)[1].rsplit("\n```", 1)[0])
    assert [m["text"] for m in body["messages"]] == [SECRET_TEXT]
    assert [r["text"] for r in body["replies"]] == [f"echo: {SECRET_TEXT}"]
    assert [r["emoji"] for r in body["reactions"]] == ["👍"]
    assert body["access"] == {"test:alice": "allowed"}
    history = body["conversation_history"]["test:alice#0"]
    assert history[0] == {"role": "user", "content": SECRET_TEXT}

    ask = await harness.command("forget")
    assert "/forget confirm" in ask
    assert SECRET_TEXT in (await _everything(harness))["inbound_messages"]
    done = await harness.command("forget", "confirm")
    assert "1 messages you sent" in done and "2 memories" in done and "Kept:" in done
    assert calls == [("test:alice", ["test:alice"])]

    dump = await _everything(harness)
    for table, text in dump.items():
        assert "PURPLE-ELEPHANT" not in text, table
        # Kept on purpose: the audit log and her access grant.
        if table not in ("audit_log", "access_grants"):
            assert "alice" not in text, (table, text)
    assert "bob's own words" in dump["inbound_messages"]
    assert b"PURPLE-ELEPHANT" not in _checkpoint_blobs(harness)
    assert b"bob's own words" in _checkpoint_blobs(harness)
    assert await harness.app.runtime.agent.history("test:alice#0") == []
    # She can still talk (access kept), starting from nothing.
    assert await harness.say("hello") == "echo: hello"


@pytest.mark.parametrize("arg", ["", "yes"])
async def test_forget_needs_the_exact_confirmation(harness: Harness, arg: str) -> None:
    await harness.command("allow", "test:alice", user=ADMIN)
    await harness.say(SECRET_TEXT)
    await harness.command("forget", arg)
    await harness.command("forget", "yes")
    assert SECRET_TEXT in (await _everything(harness))["inbound_messages"]


async def test_terminal_owner_is_admin(harness: Harness) -> None:
    pairing = await harness.say("let me in", user="quinn")
    code = re.search(r"/allow (\w{6})", pairing)
    assert code is not None, pairing
    printed = await _terminal(harness, f"/allow {code.group(1)}", "/status", "/admins")
    assert "Allowed Quinn (test:quinn)." in printed
    assert "queue depth:" in printed and "terminal: connected" in printed
    assert f"test:{ADMIN} (OC_ADMINS)" in printed
    assert await harness.say("thanks", user="quinn") == "echo: thanks"


async def _link(links: IdentityLinks, issuer: User, joiner: User) -> str | None:
    """Code, redemption and the issuer's confirmation; the joiner's key once linked."""
    outcome, _request = await links.redeem(await links.new_code(issuer), joiner)
    assert outcome is Redeemed.ASKED
    request = await links.confirm(issuer)
    return request.joiner if request is not None else None


async def test_persons_merge_and_unlink_keeps_the_others_together(harness: Harness) -> None:
    links = IdentityLinks(harness.app.store.engine)
    a, b, c, d = (User("test", x) for x in "abcd")
    assert await _link(links, a, b) == "test:b"  # b joins a
    assert await _link(links, c, d) == "test:d"  # d joins c
    assert await _link(links, a, c) == "test:c"  # c (with d) joins a
    assert {links.person_key(u.key) for u in (a, b, c, d)} == {"test:a"}
    assert links.accounts_of("test:d") == ["test:d", "test:a", "test:b", "test:c"]
    # a is the person id the others hang on; unlinking it keeps b, c, d together.
    assert await links.unlink("test:a")
    assert links.person_key("test:a") == "test:a"
    assert len({links.person_key(u.key) for u in (b, c, d)}) == 1
    fresh = IdentityLinks(harness.app.store.engine)  # what another process (or a restart) sees
    await fresh.load()
    assert fresh.accounts_of("test:b") == links.accounts_of("test:b")
    assert not await links.unlink("test:a")
