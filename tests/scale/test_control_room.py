"""The control room on a scale-out gateway: ``opencomputer gateway`` starts the app in the
gateway role with its HTTP server and every feature's routes, so ``/ui`` is served there. A
one-time link logs an admin in over HTTP, and the overview reads the gateway's connectors and
its Redis; on the real PostgreSQL and a private Redis.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from opencomputer.bot.app import App
from opencomputer.bot.control.auth import Logins
from opencomputer.bot.control.feature import base_url, login_url
from opencomputer.bot.events import User
from opencomputer.bot.testing.harness import RecordingConnector
from tests.scale.cluster import Cluster

pytestmark = pytest.mark.timeout(120)

ADMIN = User("test", "boss", "Boss")


async def test_an_admin_logs_in_to_the_gateways_control_room(cluster: Cluster) -> None:
    def factory(_settings: Any, runtime: Any) -> list[Any]:
        cluster.connector = RecordingConnector(runtime.emit, edit_interval=0.0)
        return [cluster.connector]

    gateway = App(cluster.settings(OC_ADMINS=ADMIN.key), role="gateway")
    cluster.gateway = gateway  # stopped by the fixture
    await gateway.start(factory)  # as `opencomputer gateway` does: HTTP on
    assert gateway.http is not None
    base = base_url(gateway.settings, gateway.http.port)
    link = login_url(base, await Logins(gateway.store.engine).issue_link(ADMIN))
    page, _, token = link.partition("#")

    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.get(f"{base}/ui/api/overview") as r:
            assert r.status == 401  # nothing without a session
        async with http.get(page) as r:
            assert r.status == 200 and "text/html" in r.headers["Content-Type"]
        async with http.post(f"{base}/ui/api/login", json={"token": token}) as r:
            assert r.status == 200, await r.text()
            assert (await r.json())["user"] == ADMIN.key
        async with http.get(f"{base}/ui/", allow_redirects=False) as r:
            assert r.status == 200 and "text/html" in r.headers["Content-Type"]
        async with http.get(f"{base}/ui/api/overview") as r:
            assert r.status == 200, await r.text()
            overview = await r.json()
        async with http.post(f"{base}/ui/api/login", json={"token": token}) as r:
            assert r.status == 401  # the link worked once

    assert overview["ok"] is True
    assert overview["connectors"] == {"test": "connected"}
    assert overview["checks"]["redis"] == "ok", overview["checks"]
    assert overview["checks"]["database"] == "ok", overview["checks"]
