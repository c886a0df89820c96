"""Who gets into the control room: one-time links, sessions, CSRF, and the attacks on them."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import select
from yarl import URL

from opencomputer.bot import audit
from opencomputer.bot.config import Settings
from opencomputer.bot.control.auth import Logins, digest
from opencomputer.bot.control.models import LoginLinkRow, SessionRow
from opencomputer.bot.events import User
from opencomputer.bot.testing import FakeOllama

from .kit import ADMIN, browser, control_settings, logged_in, login, served

pytestmark = pytest.mark.timeout(30)

PAGES = [
    "/ui/api/session",
    "/ui/api/overview",
    "/ui/api/approvals",
    "/ui/api/audit",
    "/ui/api/audit/verify",
    "/ui/api/audit/export",
    "/ui/api/events",
    "/ui/api/conversations",
    "/ui/api/transcript?conversation=test:alice",
    "/ui/api/prompts",
]
CHANGES = ["/ui/api/logout", "/ui/api/approvals/1", "/ui/api/prompts/1"]


async def test_a_link_logs_in_once(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama
) -> None:
    async with served(control_settings(make_settings)) as h, browser() as http, browser() as thief:
        token = await h.link()
        # Only the digest is stored: a copy of the database logs nobody in.
        async with h.app.store.engine.connect() as conn:
            rows = list(await conn.execute(select(LoginLinkRow.__table__)))  # type: ignore[attr-defined]
        assert [r.digest for r in rows] == [digest(token)] and token not in str(rows)

        # Links dead for over a day are pruned when someone logs in.
        ancient = await Logins(h.app.store.engine).issue_link(
            User("test", ADMIN, "Boss"), ttl=-2 * 86400
        )

        # A link preview fetches the page: it does not spend the token (it is in the fragment).
        async with http.get(f"{h.base}/ui/login") as r:
            assert r.status == 200 and "Content-Security-Policy" in r.headers
        async with http.post(f"{h.base}/ui/api/login", json={"token": token}) as r:
            status, body = r.status, await r.json()
            set_cookie = r.headers["Set-Cookie"]
        assert status == 200 and body["user"] == f"test:{ADMIN}"
        assert set_cookie.startswith("oc_ui=")
        for attribute in ("HttpOnly", "SameSite=Strict", "Path=/ui", "Max-Age="):
            assert attribute in set_cookie, set_cookie
        assert "Secure" not in set_cookie  # plain HTTP on loopback; behind TLS, auto sets it
        async with http.get(f"{h.base}/ui/", allow_redirects=False) as r:
            assert r.status == 200 and "text/html" in r.headers["Content-Type"]
        async with http.get(f"{h.base}/ui/api/session") as r:
            assert (await r.json())["csrf"] == body["csrf"]

        async with h.app.store.engine.connect() as conn:
            kept = {r.digest for r in await conn.execute(select(LoginLinkRow.__table__))}  # type: ignore[attr-defined]
        assert digest(token) in kept and digest(ancient) not in kept

        # Behind a TLS proxy (OC_WEB_COOKIE_SECURE=auto) the cookie is Secure.
        headers = {"X-Forwarded-Proto": "https"}
        async with thief.post(
            f"{h.base}/ui/api/login", json={"token": await h.link()}, headers=headers
        ) as r:
            assert r.status == 200 and "Secure" in r.headers["Set-Cookie"]

        # The same link again (someone who saw it later) is refused.
        status, body = await login(h, http, token)
        assert status == 401 and "used or expired" in body["error"]
        actions = [(e.actor, e.action) for e in await audit.recent(h.app.store, 10)]
        assert (f"test:{ADMIN}", "control.login") in actions
        assert (f"test:{ADMIN}", "control.link") in actions
        assert ("ui", "control.login_refused") in actions


async def test_expired_and_wrong_links_are_refused_and_attempts_limited(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama
) -> None:
    async with served(control_settings(make_settings)) as h, browser() as http:
        expired = await Logins(h.app.store.engine).issue_link(User("test", ADMIN, "Boss"), ttl=-1)
        assert (await login(h, http, expired))[0] == 401
        for attempt in ("", "x" * 43, "A" * 500, expired):
            assert (await login(h, http, attempt))[0] == 401
        async with http.post(f"{h.base}/ui/api/login", data=b"not json") as r:
            assert r.status == 401
        # 10 attempts a minute per address: the next ones are refused without a look, even
        # with a good token.
        good = await h.link()
        for _ in range(4):
            await login(h, http, "guess")
        status, body = await login(h, http, good)
        assert status == 429 and "too many" in body["error"]
        assert await _sessions(h) == []  # no attempt opened a session


async def _sessions(h: object) -> list[object]:
    async with h.app.store.engine.connect() as conn:  # type: ignore[attr-defined]
        return list(await conn.execute(select(SessionRow.__table__)))  # type: ignore[attr-defined]


async def test_without_a_session_every_route_is_closed(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama
) -> None:
    async with served(control_settings(make_settings)) as h, browser() as http:
        for path in ("/ui", "/ui/"):
            async with http.get(f"{h.base}{path}", allow_redirects=False) as r:
                assert r.status == 302, path
        async with http.get(f"{h.base}/ui/", allow_redirects=True) as r:
            assert r.url.path == "/ui/login"
        for path in PAGES:
            async with http.get(f"{h.base}{path}") as r:
                assert r.status == 401, path
        for path in CHANGES:
            async with http.post(f"{h.base}{path}", json={"decision": "approve"}) as r:
                assert r.status == 401, path
        # A forged cookie is nobody.
        http.cookie_jar.update_cookies({"oc_ui": "A" * 43}, URL(f"{h.base}/ui/login"))
        async with http.get(f"{h.base}/ui/api/session") as r:
            assert r.status == 401


async def test_csrf_logout_fixation_and_revoked_admins(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama
) -> None:
    async with served(control_settings(make_settings)) as h, browser() as http, browser() as other:
        # Session fixation: a cookie planted before the login is never adopted.
        http.cookie_jar.update_cookies(
            {"oc_ui": "planted-by-an-attacker"}, URL(f"{h.base}/ui/login")
        )
        csrf = await logged_in(h, http)
        assert (
            http.cookie_jar.filter_cookies(URL(f"{h.base}/ui/"))["oc_ui"].value
            != "planted-by-an-attacker"
        )
        other_csrf = await logged_in(h, other)
        assert other_csrf != csrf

        for headers in ({}, {"X-CSRF-Token": ""}, {"X-CSRF-Token": other_csrf}):
            for path in CHANGES:
                async with http.post(f"{h.base}{path}", json={}, headers=headers) as r:
                    assert r.status == 403, (path, headers)
                    assert "CSRF" in (await r.json())["error"]

        async with http.post(f"{h.base}/ui/api/logout", headers={"X-CSRF-Token": csrf}) as r:
            assert r.status == 200
        # The session is dead in the database, not just forgotten by this browser.
        assert sorted(row.ended_at is not None for row in await _sessions(h)) == [False, True]
        async with other.post(f"{h.base}/ui/api/logout", headers={"X-CSRF-Token": other_csrf}):
            pass
        async with other.get(f"{h.base}/ui/api/session") as r:
            assert r.status == 401
        assert (f"test:{ADMIN}", "control.logout") in [
            (e.actor, e.action) for e in await audit.recent(h.app.store, 10)
        ]

        # An admin whose rights are taken away is out at once, session or not.
        await h.command("admins", "add test:carol", user=ADMIN)
        async with browser() as carol:
            await logged_in(h, carol, user="carol")
            async with carol.get(f"{h.base}/ui/api/overview") as r:
                assert r.status == 200
            await h.command("admins", "remove test:carol", user=ADMIN)
            async with carol.get(f"{h.base}/ui/api/overview") as r:
                assert r.status == 401


async def test_only_an_admin_in_a_dm_gets_a_link(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama
) -> None:
    async with served(control_settings(make_settings)) as h:
        await h.command("allow", "test:alice", user=ADMIN)
        refused = await h.command("web", user="alice")
        assert "admins only" in refused and "/ui/login" not in refused
        in_group = await h.command("web", user=ADMIN, chat="team", group=True)
        assert "direct message" in in_group and "/ui/login" not in in_group
        async with h.app.store.engine.connect() as conn:
            assert list(await conn.execute(select(LoginLinkRow.__table__))) == []  # type: ignore[attr-defined]
        assert ("test:alice", "command.denied") in [
            (e.actor, e.action) for e in await audit.recent(h.app.store, 10)
        ]
