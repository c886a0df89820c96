"""The control room feature: ``/web`` for a login link, and the ``/ui`` routes.

The ``control`` entry point of ``opencomputer.features``. It needs the admin feature (who is an
admin, ``decide``), which every installation has (it cannot be turned off).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from opencomputer.bot.commands import CommandContext, CommandRouter
from opencomputer.bot.control.activity import ActivityChart
from opencomputer.bot.control.api import ControlApi
from opencomputer.bot.control.auth import LINK_TTL, Logins
from opencomputer.bot.control.pages import ControlPages
from opencomputer.bot.control.people import PeoplePage
from opencomputer.bot.control.plugins_page import PluginsPage
from opencomputer.bot.control.schedules_page import SchedulesPage
from opencomputer.bot.control.web import ControlWeb
from opencomputer.bot.events import ChatKind
from opencomputer.bot.hooks import hookimpl

if TYPE_CHECKING:
    from opencomputer.bot.config import Settings
    from opencomputer.bot.features import Host

__all__ = ["base_url", "login_url", "setup"]

logger = logging.getLogger(__name__)


def base_url(settings: Settings, port: int | None = None) -> str:
    """Where people open the HTTP app: ``OC_PUBLIC_URL``, else the address it listens on."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    host = settings.http_host
    if host in ("0.0.0.0", "::", ""):  # listening everywhere: this machine can use loopback
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port or settings.http_port}"


def login_url(base: str, token: str) -> str:
    """The one-time link: the token rides in the fragment, which browsers never send."""
    return f"{base}/ui/login#{token}"


class _Control:
    """The feature on the seam: the ``/web`` command and the HTTP routes."""

    def __init__(self, app: Host, logins: Logins) -> None:
        self.app = app
        self.logins = logins
        self.web = ControlWeb(app, logins)
        self.pages = ControlPages(app, self.web)
        self.plugins = PluginsPage(app, self.web)
        self.people = PeoplePage(app, self.web)
        self.schedules = SchedulesPage(app, self.web)
        self.api = ControlApi(
            app,
            self.web,
            {
                "plugins": self.plugins.data,
                "people": self.people.data,
                "schedules": self.schedules.data,
                "conversations": self.pages.changes,
                "prompts": self.pages.prompt_changes,
                "audit": self.pages.audit_changes,
            },
        )
        self.activity = ActivityChart(app, self.web)

    @hookimpl
    def oc_http_routes(self) -> Sequence[Any]:
        return [
            *self.web.routes(),
            *self.api.routes(),
            *self.pages.routes(),
            *self.plugins.routes(),
            *self.people.routes(),
            *self.schedules.routes(),
            *self.activity.routes(),
        ]

    @hookimpl
    def oc_commands(self, router: CommandRouter) -> None:
        app, logins = self.app, self.logins

        @router.command("web", admin=True)
        async def web(ctx: CommandContext) -> str:
            """A one-time link to the web control room (direct messages only)."""
            if ctx.event.chat.kind is not ChatKind.DIRECT:
                return "Send /web in a direct message with me: others must not see a login link."
            token = await logins.issue_link(ctx.event.user)
            from opencomputer.bot import audit

            await audit.audit(app.store, ctx.event.user.key, "control.link", {"via": "chat"})
            http = getattr(app, "http", None)  # the port it really listens on (0 = any)
            url = login_url(base_url(app.settings, getattr(http, "port", None)), token)
            minutes = int(LINK_TTL // 60)
            return (
                f"Your login link for the control room (works once, for {minutes} minutes; "
                f"do not share it):\n{url}"
            )


async def setup(app: Host) -> None:
    """Feature entry point."""
    if "admin" not in app.extras:
        raise RuntimeError("the control room needs the admin feature")
    control = _Control(app, Logins(app.store.engine))
    app.hooks.register(control, "control")

    async def close_streams() -> None:
        control.api.closing.set()
        await control.api.feed.stop()

    app.on_stop.append(close_streams)
