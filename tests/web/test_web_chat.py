"""The web chat over HTTP against the real app: a visitor as its page behaves, and as an
attacker would behave (no token, someone else's token, a forged cookie, oversized or broken
bodies), pairing under the default policy, votes reaching the feedback tables, and the
conversation read back after a restart.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from opencomputer.bot.app import App
from opencomputer.bot.config import Settings
from opencomputer.bot.feedback.models import FeedbackVoteRow
from opencomputer.bot.storage.models import InboundRow, ReactionRow
from opencomputer.bot.testing import FakeOllama
from opencomputer.connectors.web.channel import WEB
from opencomputer.connectors.web.connector import client_network
from opencomputer.connectors.web.log import REPLAY, REPLAY_CHATS, Listeners
from opencomputer.connectors.web.session import COOKIE, Sessions, load_secret
from opencomputer.connectors.web.wire import CSP, MAX_BODY, NEW_VISITORS
from tests.web.kit import bot_messages, serve, settings_for, visitor

pytestmark = pytest.mark.timeout(60)

MakeSettings = Callable[..., Settings]
_REACT = ReactionRow.__table__  # type: ignore[attr-defined]
_VOTE = FeedbackVoteRow.__table__  # type: ignore[attr-defined]
_IN = InboundRow.__table__  # type: ignore[attr-defined]


def _final(text: str) -> Callable[[list[tuple[str, dict[str, Any]]]], Any]:
    def check(events: list[tuple[str, dict[str, Any]]]) -> Any:
        return next((m for m in bot_messages(events) if m["text"] == text), None)

    return check


def _no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    for record in caplog.records:
        assert record.exc_info is None, record.getMessage()


async def test_the_page_and_its_assets_carry_a_strict_policy(
    make_settings: MakeSettings,
) -> None:
    async with serve(settings_for(make_settings)) as (_app, base), visitor(base) as v:
        async with v.http.get(f"{base}/chat") as r:
            assert r.status == 200
            assert r.headers["Content-Security-Policy"] == CSP
            assert "'unsafe-inline'" not in CSP and "default-src 'none'" in CSP
            assert r.headers["X-Frame-Options"] == "DENY"
            page = await r.text()
            assert '<script src="chat/static/app.js"' in page and "http" not in page.lower()
            assert COOKIE not in r.cookies  # only the session call issues an identity
        for name, kind in (("app.js", "text/javascript"), ("style.css", "text/css")):
            async with v.http.get(f"{base}/chat/static/{name}") as r:
                assert (r.status, r.content_type) == (200, kind)
                assert r.headers["X-Content-Type-Options"] == "nosniff"
                code = await r.text()
                assert not re.search(
                    r"\.(inner|outer)HTML\s*=|insertAdjacentHTML|document\.write", code
                )
        for name in ("../channel.py", "index.html.bak", "%2e%2e%2fconnector.py"):
            async with v.http.get(f"{base}/chat/static/{name}") as r:
                assert r.status == 404
        async with v.http.get(f"{base}/chat/", allow_redirects=False) as r:
            assert r.status == 302
        body = await v.session()
        [cookie] = [c for c in v.http.cookie_jar if c.key == COOKIE]
        assert cookie["httponly"] and cookie["samesite"] == "Strict" and not cookie["secure"]
        assert body["user"] == f"web:{cookie.value.partition('.')[0]}"
        again = await v.session()  # the same browser keeps its identity
        assert again["user"] == body["user"] and again["csrf"] == body["csrf"]
        # behind a TLS proxy the cookie is Secure
        async with visitor(base) as proxied:
            async with proxied.http.get(
                f"{base}/chat/session", headers={"X-Forwarded-Proto": "https"}
            ) as r:
                assert r.cookies[COOKIE]["secure"]


async def test_forged_and_malformed_posts_are_refused_with_one_line(
    make_settings: MakeSettings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with (
        serve(settings_for(make_settings, OC_WEB_MAX_CHARS="100")) as (app, base),
        visitor(base) as alice,
        visitor(base) as mallory,
        visitor(base) as stranger,
    ):
        await alice.session()
        await mallory.session()
        good = {"id": "a1b2c3d4e5", "text": "hello"}
        forged = alice.csrf[:-1] + ("0" if alice.csrf[-1] != "0" else "1")
        cases: list[tuple[Any, bytes | dict[str, Any], str | None, dict[str, str], int, str]] = [
            (stranger, good, "", {}, 403, "no chat session"),
            (alice, good, "", {}, 403, "CSRF"),
            (alice, good, forged, {}, 403, "CSRF"),
            (alice, good, mallory.csrf, {}, 403, "CSRF"),  # another visitor's token
            (alice, good, None, {"Sec-Fetch-Site": "cross-site"}, 403, "cross-site"),
            (
                alice,
                b"text=hello",
                None,
                {"Content-Type": "application/x-www-form-urlencoded"},
                415,
                "JSON",
            ),
            (alice, b"{not json", None, {}, 400, "not valid JSON"),
            (alice, b"[1, 2]", None, {}, 400, "JSON object"),
            (alice, {"id": "x", "text": "hi"}, None, {}, 400, "'id'"),
            (alice, {"id": "a1b2c3d4e5", "text": "   "}, None, {}, 400, "'text'"),
            (alice, {"id": "a1b2c3d4e5", "text": 5}, None, {}, 400, "'text'"),
            (alice, {"id": "a1b2c3d4e5", "text": "x" * 101}, None, {}, 413, "100 characters"),
            (
                alice,
                b'{"id": "a1b2c3d4e5", "text": "' + b"y" * MAX_BODY + b'"}',
                None,
                {},
                413,
                "larger than",
            ),
            (  # over the HTTP app's 1 MiB: refused before reading, in the same one line
                alice,
                b'{"id": "a1b2c3d4e5", "text": "' + b"z" * (1100 * 1024) + b'"}',
                None,
                {},
                413,
                "request larger than 1024 KiB; shorten the message",
            ),
        ]
        for who, body, csrf, headers, status, reason in cases:
            code, answer = await who.post("/chat/messages", body, csrf=csrf, headers=headers)
            assert (code, answer["ok"]) == (status, False), (reason, answer)
            assert reason in answer["error"], answer
        # a cookie the server did not sign is no session
        sessions = Sessions(b"not-the-server-secret-0123456789abcdef")
        _visitor, fake = sessions.issue()
        async with visitor(base) as forger:
            forger.http.cookie_jar.update_cookies({COOKIE: fake})
            forger.csrf = sessions.csrf(_visitor)
            code, answer = await forger.say("hello")
            assert (code, "no chat session" in answer["error"]) == (403, True)
            async with forger.http.get(f"{base}/chat/events") as r:
                assert r.status == 403
            async with forger.http.get(f"{base}/chat/history") as r:
                assert r.status == 403
        # reactions: only the visitor's own bot messages, only 👍/👎
        assert await alice.vote("b" + "0" * 32, "👍") == 404
        assert await alice.vote("a1b2c3d4e5", "👍") == 400
        code, answer = await alice.post(
            "/chat/reactions", {"message_id": "b" + "0" * 32, "emoji": "🔥"}
        )
        assert (code, "'emoji'" in answer["error"]) == (400, True)
        assert await alice.vote("b" + "0" * 32, "👍") == 404
        assert await app.store.count_inbound() == 0
        async with alice.http.get(f"{base}/healthz") as r:
            assert r.status == 200
    _no_tracebacks(caplog)


async def test_a_message_streams_its_answer_and_votes_reach_the_tuner(
    make_settings: MakeSettings, fake_ollama: FakeOllama
) -> None:
    answer = "Hello **there**, " + " ".join(f"word{i}" for i in range(30)) + "."
    async with serve(settings_for(make_settings)) as (app, base), visitor(base) as v:
        await v.session()
        async with v.stream() as events:
            await events.wait(lambda ev: any(k == "history" for k, _ in ev))
            assert events.events[0] == ("history", {"messages": []})
            fake_ollama.reply(answer, chunks=12, pace=0.03)
            code, body = await v.say("hi there", "first-message-1")
            assert (code, body) == (202, {"ok": True, "id": "first-message-1"})
            # stored before the 202
            async with app.store.engine.connect() as conn:
                row = (await conn.execute(select(_IN).where(_IN.c.platform == "web"))).one()
            assert (row.user_id, row.chat_id, row.text) == (v.user[4:], v.user[4:], "hi there")
            final = await events.wait(_final(answer))
            shown = events.texts(final["id"])
            assert len(shown) >= 3 and shown[0] == "…", shown  # placeholder, partial, final
            assert any(answer.startswith(t) and t != answer for t in shown[1:]), shown
            # the same message again (the page retried): stored and answered once
            code, _ = await v.say("hi there", "first-message-1")
            assert code == 202
            assert await app.store.count_inbound() == 1
            # native commands
            code, _ = await v.say("/help")
            assert code == 202
            await events.wait(
                lambda ev: any(m["text"].startswith("Commands:") for m in bot_messages(ev))
            )
        assert len(fake_ollama.chats) == 1
        assert await v.vote(final["id"], "👍") == 202
        async with app.store.engine.connect() as conn:
            reactions = (await conn.execute(select(_REACT))).all()
            votes = (await conn.execute(select(_VOTE))).all()
        assert [(r.emoji, r.reply_id is not None) for r in reactions] == [("👍", True)]
        assert [(x.score, x.user_key) for x in votes] == [(1, v.user)]
        assert await v.vote(final["id"], "👎") == 202  # the other vote is taken back
        async with app.store.engine.connect() as conn:
            reactions = (await conn.execute(select(_REACT))).all()
            votes = (await conn.execute(select(_VOTE))).all()
        assert [r.emoji for r in reactions] == ["👎"]
        assert [x.score for x in votes] == [-1]
        history = await v.history()
        assert [(m["role"], m["text"]) for m in history][:2] == [
            ("user", "hi there"),
            ("bot", answer),
        ]
        assert history[1]["vote"] == "👎"


async def test_pairing_under_the_default_policy(
    make_settings: MakeSettings, fake_ollama: FakeOllama, tmp_path: Any
) -> None:
    # The admin is a web visitor too: its identity is minted with the server's own secret.
    sessions = Sessions(load_secret(tmp_path / "data"))
    admin_id, admin_cookie = sessions.issue()
    settings = settings_for(make_settings, OC_DM_POLICY="pairing", OC_ADMINS=f"web:{admin_id}")
    assert settings.data_dir == tmp_path / "data"
    async with serve(settings) as (app, base), visitor(base) as v, visitor(base) as admin:
        admin.http.cookie_jar.update_cookies({COOKIE: admin_cookie})
        await admin.session()
        assert admin.user == f"web:{admin_id}"
        await v.session()
        async with v.stream() as events:
            code, body = await v.say("hello?")
            assert code == 403 and "pairing code" in body["error"]
            code, body = await v.say("hello??")  # no second pairing text, still one line
            assert code == 403 and "pairing code" in body["error"]
            pairing = await events.wait(
                lambda ev: next((m["text"] for m in bot_messages(ev) if "/allow" in m["text"]), "")
            )
            code_match = re.search(r"/allow (\w{6})", pairing)
            assert code_match is not None, pairing
            assert await app.store.count_inbound() == 0
            async with admin.stream() as admin_events:
                assert (await admin.say(f"/allow {code_match.group(1)}"))[0] == 202
                await admin_events.wait(
                    lambda ev: any("Allowed" in m["text"] for m in bot_messages(ev))
                )
            await events.wait(lambda ev: any("You're in" in m["text"] for m in bot_messages(ev)))
            fake_ollama.reply("Welcome aboard.")
            assert (await v.say("hello again"))[0] == 202
            await events.wait(_final("Welcome aboard."))


async def test_the_conversation_survives_a_restart(
    make_settings: MakeSettings, fake_ollama: FakeOllama
) -> None:
    settings = settings_for(make_settings)
    first = App(settings)
    await first.start()
    stopped = False
    try:
        assert first.http is not None
        async with visitor(f"http://127.0.0.1:{first.http.port}") as v:
            await v.session()
            async with v.stream() as events:
                assert (await v.say("remember this exchange"))[0] == 202  # answered: echo
                final = await events.wait(_final("echo: remember this exchange"))
                assert await v.vote(final["id"], "👍") == 202
                # the server stops with the page's event stream open: it ends the stream
                # rather than wait for the HTTP server's shutdown timeout
                started = time.monotonic()
                await first.stop()
                stopped = True
                assert time.monotonic() - started < 3
                assert events._task is not None
                await asyncio.wait_for(events._task, 2)
            user = v.user
            [cookie] = [c.value for c in v.http.cookie_jar if c.key == COOKIE]
    finally:
        if not stopped:
            await first.stop()
    async with serve(settings) as (app, base), visitor(base) as v:
        v.http.cookie_jar.update_cookies({COOKIE: cookie})  # the browser kept it
        await v.session()
        assert v.user == user  # the same cookie, the same secret: the same visitor
        expected = [
            ("user", "remember this exchange", None),
            ("bot", "echo: remember this exchange", "👍"),
        ]
        history = await v.history()
        assert [(m["role"], m["text"], m["vote"]) for m in history] == expected
        async with v.stream() as events:
            first = await events.wait(lambda ev: ev[0] if ev else None)
            assert first[0] == "history"
            assert [(m["role"], m["text"], m["vote"]) for m in first[1]["messages"]] == expected
        # the vote given before the restart still counts, and still works
        assert await v.vote(final["id"], "👎") == 202
        async with app.store.engine.connect() as conn:
            assert [x.score for x in (await conn.execute(select(_VOTE))).all()] == [-1]


async def test_doctor_says_where_the_chat_is_and_warns_about_open_exposure(
    make_settings: MakeSettings,
) -> None:
    [check] = await WEB.diagnose(settings_for(make_settings, OC_DM_POLICY="pairing"))
    assert check.ok and "/chat" in check.detail and "pairing" in check.detail
    exposed = settings_for(make_settings, OC_HTTP_HOST="0.0.0.0", OC_DM_POLICY="open")
    _, access, tls = await WEB.diagnose(exposed)
    assert (access.warning, "OC_DM_POLICY=pairing" in access.detail) == (True, True)
    assert (tls.warning, "OC_WEB_COOKIE_SECURE=true" in tls.detail) == (True, True)
    proxied = settings_for(make_settings, OC_HTTP_HOST="::", OC_WEB_COOKIE_SECURE="true")
    assert [c.name for c in await WEB.diagnose(proxied)] == ["web chat", "web chat access"]


async def test_each_visitor_is_rate_limited_by_the_inbound_rules(
    make_settings: MakeSettings,
) -> None:
    settings = settings_for(make_settings, OC_RATE_LIMIT_USER="2/60")
    async with serve(settings) as (app, base), visitor(base) as v, visitor(base) as other:
        await v.session()
        await other.session()
        assert [(await v.say(f"message {i}"))[0] for i in range(2)] == [202, 202]
        code, body = await v.say("one too many")
        assert (code, "too fast" in body["error"]) == (429, True)
        code, body = await v.say("and another")  # refused silently now: still one clear line
        assert (code, "too fast" in body["error"]) == (403, True)
        assert (await other.say("someone else is not slowed down"))[0] == 202
        assert await app.store.count_inbound() == 3


async def test_a_chat_that_cannot_start_answers_one_line(
    make_settings: MakeSettings, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "web-chat.key").write_text("short\n")  # a broken secret file
    async with serve(settings_for(make_settings)) as (app, base), visitor(base) as v:
        assert (await app.readiness())["web"] == "failed"
        for path in ("/chat", "/chat/static/app.js", "/chat/session"):
            async with v.http.get(f"{base}{path}") as r:
                assert r.status == 503
                assert "not ready" in (await r.json())["error"]
    assert any("web-chat.key" in r.getMessage() for r in caplog.records)
    _no_tracebacks(caplog)


async def test_forget_and_export_reach_the_web_chat_log(
    make_settings: MakeSettings, fake_ollama: FakeOllama
) -> None:
    """The browser's copy of a chat is data about the visitor: /export lists it, /forget
    deletes it (the channel registers its DataRights through ChannelServices)."""
    from opencomputer.bot.admin.data import export_person, forget_person

    async with serve(settings_for(make_settings)) as (app, base), visitor(base) as v:
        await v.session()
        async with v.stream() as events:
            await events.wait(lambda ev: any(k == "history" for k, _ in ev))
            fake_ollama.reply("PRIVATE-ANSWER")
            assert (await v.say("PRIVATE-QUESTION"))[0] == 202
            await events.wait(_final("PRIVATE-ANSWER"))
        exported = await export_person(app, v.user, [v.user])
        assert [m["text"] for m in exported["web_chat"]] == ["PRIVATE-QUESTION", "PRIVATE-ANSWER"]
        done = await forget_person(app, v.user, [v.user])
        assert "2 web chat messages" in done
        assert await v.history() == []
        async with app.store.engine.connect() as conn:
            rows = (await conn.execute(select(_IN).where(_IN.c.platform == "web"))).all()
        assert rows == []


async def test_a_lone_surrogate_is_stored_replaced_and_answered(
    make_settings: MakeSettings, fake_ollama: FakeOllama
) -> None:
    """Half a UTF-16 pair escaped in the JSON (valid JSON, not Unicode) and a NUL: the message
    is kept with U+FFFD, the model gets clean text, the chat answers and shows it back."""
    async with serve(settings_for(make_settings)) as (app, base), visitor(base) as v:
        await v.session()
        async with v.stream() as events:
            await events.wait(lambda ev: any(k == "history" for k, _ in ev))
            fake_ollama.reply("got it")
            raw = b'{"id": "odd-message-1", "text": "half \\ud83d pair \\u0000 end"}'
            code, _ = await v.post("/chat/messages", raw)
            assert code == 202
            await events.wait(_final("got it"))
        async with app.store.engine.connect() as conn:
            row = (await conn.execute(select(_IN).where(_IN.c.platform == "web"))).one()
        assert "\ud83d" not in row.text and "\ufffd" in row.text and "end" in row.text
        sent = fake_ollama.chats[-1]["messages"][-1]["content"]
        assert "\ud83d" not in sent and "\x00" not in sent
        assert [m["text"] for m in await v.history()][-1] == "got it"


async def test_one_address_cannot_mint_endless_visitors(make_settings: MakeSettings) -> None:
    """Each new visitor can make a pairing request: past NEW_VISITORS new sessions an hour
    from one address, a new one is 429 with one line; a known visitor and other addresses go on.
    """
    async with serve(settings_for(make_settings)) as (app, base):
        async with visitor(base) as known:
            await known.session()
            for _ in range(int(NEW_VISITORS.capacity) - 1):  # cookie-less clients: one each
                async with aiohttp.ClientSession() as fresh:
                    async with fresh.get(f"{base}/chat/session") as r:
                        assert r.status == 200
            async with aiohttp.ClientSession() as fresh:
                async with fresh.get(f"{base}/chat/session") as r:
                    answer = await r.json()
                    assert r.status == 429 and int(r.headers["Retry-After"]) > 0
                    assert "Set-Cookie" not in r.headers
            assert answer["ok"] is False
            assert answer["error"].startswith("too many new chat sessions from your address")
            assert "\n" not in answer["error"]
            assert (await known.session())["user"] == known.user  # a kept cookie still works
            assert (await known.say("hello"))[0] == 202  # and talks
        elsewhere = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
        async with aiohttp.ClientSession(connector=elsewhere) as other:
            async with other.get(f"{base}/chat/session") as r:
                assert r.status == 200, await r.text()
        assert await app.store.count_inbound() == 1


async def test_a_page_that_reconnects_gets_only_what_it_missed(
    make_settings: MakeSettings, fake_ollama: FakeOllama
) -> None:
    """An EventSource sends back the last id it saw: the stream then carries only the
    messages that changed since, in their final form; an id it cannot place is the history.
    """
    async with serve(settings_for(make_settings)) as (app, base), visitor(base) as v:
        await v.session()
        fake_ollama.reply("First answer.")
        async with v.stream() as events:
            await events.wait(lambda ev: ev and ev[0][0] == "history")
            assert (await v.say("one", "message-one"))[0] == 202
            await events.wait(
                lambda ev: (
                    _final("First answer.")(ev) and any(d.get("id") == "message-one" for _, d in ev)
                )
            )
            numbered = [
                i for (k, _), i in zip(events.events, events.ids, strict=True) if k != "typing"
            ]
            assert all(numbered) and len(set(numbered)) == len(numbered)  # typing has none
            last = events.last_id
        # the page is away (a phone asleep) while a question is asked and answered elsewhere
        second = "Second answer, " + " ".join(["streamed"] * 20) + "."
        fake_ollama.reply(second, chunks=8, pace=0.01)
        async with visitor(base, v.http.cookie_jar) as other_tab:
            other_tab.csrf = v.csrf
            assert (await other_tab.say("two", "message-two"))[0] == 202
        await app.runtime.wait_idle()
        async with v.stream(last) as events:
            final = await events.wait(_final(second))
            kinds = [k for k, _ in events.events]
            assert "history" not in kinds  # no full history: only what changed
            assert [(d["id"], d["role"]) for _, d in events.events] == [
                ("message-two", "user"),
                (final["id"], "bot"),  # once, in its final form, not every streamed step
            ]
            assert events.texts("message-one") == []
            resume = events.last_id
        async with v.stream(resume) as events:  # nothing new: nothing sent
            fake_ollama.reply("Third.")
            assert (await v.say("three", "message-three"))[0] == 202
            await events.wait(
                lambda ev: (
                    _final("Third.")(ev) and any(d.get("id") == "message-three" for _, d in ev)
                )
            )
            shown = {d["id"] for k, d in events.events if k != "typing"}
            assert "message-three" in shown  # only the new ones, nothing resent
            assert not shown & {"message-one", "message-two", final["id"]}
        for unknown in ("ffffffff-1", "garbage", f"{last.split('-')[0]}-999999"):
            async with v.stream(unknown) as events:
                kind, data = await events.wait(lambda ev: ev and ev[0])
                assert kind == "history" and len(data["messages"]) == 6


def test_the_replay_memory_is_bounded_per_chat_and_in_chats() -> None:
    listeners = Listeners()
    for n in range(REPLAY + 6):  # 70 changes of three messages in chat a
        listeners.push("a", {"type": "message", "id": f"m{n % 3}", "text": str(n)})
    listeners.push("a", {"type": "typing"})  # not numbered, not replayed
    assert listeners.seq == REPLAY + 6
    assert listeners.since("a", listeners.event_id(5)) is None  # change 6 was dropped
    assert listeners.since("a", listeners.event_id(6)) == ["m1", "m2", "m0"]
    assert listeners.since("a", listeners.event_id(REPLAY + 5)) == ["m0"]  # change 70: n=69
    assert listeners.since("a", listeners.event_id()) == []
    assert listeners.since("b", listeners.event_id()) == []  # no news in b since then
    assert listeners.since("b", listeners.event_id(1)) is None  # b's past is not known here
    for n in range(REPLAY_CHATS):  # news in as many other chats: a's memory goes
        listeners.push(f"c{n}", {"type": "message", "id": "x", "text": ""})
    assert listeners.since("a", listeners.event_id(REPLAY + 5)) is None
    assert listeners.since("c5", listeners.event_id(REPLAY + 6 + 5)) == ["x"]  # its news


def test_the_new_visitor_limit_counts_an_ipv6_client_by_its_64() -> None:
    assert client_network("2001:db8:1:2:aaaa::1") == client_network("2001:db8:1:2:ffff::9")
    assert client_network("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert client_network("2001:db8:1:3::1") != client_network("2001:db8:1:2::1")
    assert client_network("::ffff:192.0.2.7") == client_network("192.0.2.7") == "192.0.2.7"
    assert client_network("fe80::1%eth0") == "fe80::/64"
    assert client_network(None) == "?" and client_network("unix") == "unix"
