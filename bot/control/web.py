"""The control room's HTTP side: pages, login, logout, and the guard every other route passes.

Every route but the login page, its POST and the static files needs a live session of a
person who is *still* an admin (a revoked admin's session stops working at once); every
request that changes state also needs the session's CSRF token in ``X-CSRF-Token``. Pages
without a session redirect to the login page, API calls answer 401. The data routes are in
bot/control/api.py.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import TYPE_CHECKING, Any

from aiohttp import web

from opencomputer.bot.control.auth import SESSION_TTL, Admin, Logins
from opencomputer.bot.http import PAGE_HEADERS
from opencomputer.bot.ratelimit import Bucket, LocalLimiter, client_network

if TYPE_CHECKING:
    from opencomputer.bot.features import Host

__all__ = ["COOKIE", "HEADERS", "ControlWeb", "body", "error", "ok"]

logger = logging.getLogger(__name__)

COOKIE = "oc_ui"
LOGIN_RATE = Bucket(10, 60)
"""Login attempts per client address (an IPv6 client's /64): 10 a minute (a token has 256
bits; this stops floods). The limiter tracks a bounded number of addresses (``LocalLimiter``)."""
STATIC = {
    "app.js": "text/javascript",
    "login.js": "text/javascript",
    "rooms.js": "text/javascript",
    "style.css": "text/css",
    "icon.svg": "image/svg+xml",
}
HEADERS = {**PAGE_HEADERS, "Cache-Control": "no-store"}

Handler = Callable[[web.Request, Admin], Awaitable[web.StreamResponse]]


def error(status: int, text: str) -> web.Response:
    """A refusal: ``{"ok": false, "error": "<one line>"}``."""
    return web.json_response({"ok": False, "error": text}, status=status, headers=HEADERS)


def ok(data: dict[str, Any] | None = None) -> web.Response:
    """A success: ``{"ok": true, ...data}``."""
    return web.json_response({"ok": True, **(data or {})}, headers=HEADERS)


async def body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object, or ``{}`` (a missing or malformed body is a 400 later)."""
    try:
        data = await request.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _files() -> dict[str, bytes]:
    folder = resources.files("opencomputer.bot.control") / "static"
    return {name: (folder / name).read_bytes() for name in ("index.html", "login.html", *STATIC)}


class ControlWeb:
    """Login, logout, the pages, and :meth:`guard` for the API routes."""

    def __init__(self, app: Host, logins: Logins) -> None:
        self.app = app
        self.logins = logins
        self.limiter = LocalLimiter()
        self.files = _files()

    # --- the guard ---------------------------------------------------------------------
    async def admin_of(self, request: web.Request) -> Admin | None:
        """The session's admin, if the session is live and the account still an admin."""
        admin = await self.logins.session(request.cookies.get(COOKIE))
        if admin is None or not self.app.runtime.is_admin(admin.user):
            return None
        return admin

    def guard(self, handler: Handler, *, changes: bool = False) -> Callable[..., Any]:
        """Wrap an API handler: 401 without a session, 403 without the CSRF token."""

        async def guarded(request: web.Request) -> web.StreamResponse:
            admin = await self.admin_of(request)
            if admin is None:
                return error(401, "not logged in: ask the bot for a link with /web")
            if changes and not self.logins.csrf_ok(
                request.cookies.get(COOKIE, ""), request.headers.get("X-CSRF-Token")
            ):
                return error(403, "missing or wrong CSRF token: reload the page")
            return await handler(request, admin)

        return guarded

    # --- pages -------------------------------------------------------------------------
    def routes(self) -> list[web.RouteDef]:
        """The page, login and session routes (the API's are added by bot/control/api.py)."""
        return [
            web.get("/ui", self.slash),
            web.get("/ui/", self.page),
            web.get("/ui/login", self.login_page),
            web.get("/ui/static/{name}", self.static),
            web.post("/ui/api/login", self.login),
            web.get("/ui/api/session", self.guard(self.session)),
            web.post("/ui/api/logout", self.guard(self.logout, changes=True)),
        ]

    async def slash(self, _request: web.Request) -> web.StreamResponse:
        """``/ui`` -> ``/ui/`` (relative, so a proxy may serve it under a prefix)."""
        raise web.HTTPFound("ui/", headers=HEADERS)

    async def page(self, request: web.Request) -> web.StreamResponse:
        """The control room (one page; each view is drawn by app.js)."""
        if await self.admin_of(request) is None:
            raise web.HTTPFound("login", headers=HEADERS)
        return self._file("index.html", "text/html")

    async def login_page(self, _request: web.Request) -> web.StreamResponse:
        """The page a login link opens; its script posts the token from the URL fragment."""
        return self._file("login.html", "text/html")

    async def static(self, request: web.Request) -> web.StreamResponse:
        """The pages' scripts and styles (shipped in the package, no CDN)."""
        name = request.match_info["name"]
        if name not in STATIC:
            return error(404, "no such file")
        return self._file(name, STATIC[name])

    def _file(self, name: str, content_type: str) -> web.Response:
        return web.Response(
            body=self.files[name], content_type=content_type, charset="utf-8", headers=HEADERS
        )

    # --- login, session, logout --------------------------------------------------------
    async def login(self, request: web.Request) -> web.StreamResponse:
        """Spend a login link's token and open a session (rate limited per client address)."""
        decision = await self.limiter.take(f"ui-login:{client_network(request.remote)}", LOGIN_RATE)
        if not decision.allowed:
            seconds = max(1, round(decision.retry_after))
            response = error(429, f"too many login attempts; try again in {seconds} s")
            response.headers["Retry-After"] = str(seconds)
            return response
        try:
            body = await request.json()
            token = str(body.get("token", "")) if isinstance(body, dict) else ""
        except ValueError:
            token = ""
        admin = await self.logins.spend_link(token)
        if admin is None or not self.app.runtime.is_admin(admin.user):
            await self._audit("ui", "control.login_refused", {"from": request.remote or ""})
            return error(401, "this login link is wrong, used or expired: ask for a new one")
        session = await self.logins.open_session(admin)
        await self._audit(admin.key, "control.login", {"from": request.remote or ""})
        response = web.json_response(
            {"ok": True, "user": admin.key, "csrf": self.logins.csrf(session)}, headers=HEADERS
        )
        response.set_cookie(
            COOKIE,
            session,
            path="/ui",
            max_age=int(SESSION_TTL),
            httponly=True,
            samesite="Strict",
            secure=self._secure(request),
        )
        return response

    async def session(self, request: web.Request, admin: Admin) -> web.StreamResponse:
        """Who is logged in, and the CSRF token the page sends with every change."""
        token = self.logins.csrf(request.cookies.get(COOKIE, ""))
        return web.json_response(
            {"ok": True, "user": admin.key, "name": admin.name, "csrf": token}, headers=HEADERS
        )

    async def logout(self, request: web.Request, admin: Admin) -> web.StreamResponse:
        """End the session here and in the database."""
        await self.logins.end_session(request.cookies.get(COOKIE, ""))
        await self._audit(admin.key, "control.logout")
        response = web.json_response({"ok": True}, headers=HEADERS)
        response.del_cookie(COOKIE, path="/ui")
        return response

    def _secure(self, request: web.Request) -> bool:
        """``OC_WEB_COOKIE_SECURE``: ``auto`` = Secure behind HTTPS or a TLS proxy."""
        choice = self.app.settings.web_cookie_secure
        if choice != "auto":
            return choice == "true"
        forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
        return request.secure or forwarded == "https"

    async def _audit(self, actor: str, action: str, detail: dict[str, Any] | None = None) -> None:
        from opencomputer.bot import audit

        await audit.audit(self.app.store, actor, action, detail)
