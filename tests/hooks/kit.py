"""The real app with the hook channel on its HTTP server, a recording target platform, and a
signer that computes signatures exactly as docs/webhooks.md tells senders to.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp

from opencomputer.bot.app import App
from opencomputer.bot.config import Settings
from opencomputer.bot.events import Address
from opencomputer.bot.testing.harness import RecordingConnector
from opencomputer.connectors.hooks.connector import HookConnector

SECRET = "hook-secret-0123456789abcdef"
GH_SECRET = "github-secret-0123456789abcdef"
ROOM = Address("test", "room1")
OPS = Address("test", "room2")
HOOKS = json.dumps(
    [
        {"name": "ci", "mode": "post", "target": "test:room1"},
        {"name": "bot", "mode": "turn", "target": "test:room2"},
        {"name": "gh", "mode": "post", "target": "test:room1", "github": True},
        {"name": "broken", "mode": "post", "target": "test:room3"},  # no secret set
        {"name": "lost", "mode": "post", "target": "nowhere:1"},  # no such platform runs
    ]
)
SECRETS = {
    "OC_HOOK_CI_SECRET": SECRET,
    "OC_HOOK_BOT_SECRET": SECRET,
    "OC_HOOK_GH_SECRET": GH_SECRET,
    "OC_HOOK_LOST_SECRET": SECRET,
}


def signed(
    body: bytes,
    *,
    secret: str = SECRET,
    at: float | None = None,
    content_type: str = "application/json",
    **extra: str,
) -> dict[str, str]:
    """Headers of a request signed as the docs say: HMAC-SHA256 over ``<ts>.<body>``."""
    stamp = str(int(time.time() if at is None else at))
    digest = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    headers = {
        "X-OC-Timestamp": stamp,
        "X-OC-Signature": f"sha256={digest}",
        "Content-Type": content_type,
    }
    headers.update(extra)
    return headers


def github_signed(
    body: bytes, event: str, delivery: str, secret: str = GH_SECRET
) -> dict[str, str]:
    """Headers as GitHub sends them (no timestamp)."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "X-Hub-Signature-256": f"sha256={digest}",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "Content-Type": "application/json",
    }


class FlakyTarget(RecordingConnector):
    """A target platform whose next ``fail`` posts fail (an outage), or that waits for ``hold``."""

    fail = 0
    hold: asyncio.Event | None = None
    """Set: posts wait for it (a slow platform)."""

    @property
    def entered(self) -> asyncio.Event:
        """Set once a post has begun."""
        if not hasattr(self, "_entered"):
            self._entered = asyncio.Event()
        return self._entered

    async def send(self, address: Address, text: str, *, reply_to: str | None = None) -> str:
        self.entered.set()
        if self.hold is not None:
            await self.hold.wait()
        if self.fail:
            self.fail -= 1
            raise ConnectionError("platform unreachable")
        return await super().send(address, text, reply_to=reply_to)


@dataclass
class Served:
    """A running app and a client pointed at it."""

    app: App
    target: FlakyTarget
    hook: HookConnector
    http: aiohttp.ClientSession
    base: str

    async def post(
        self, name: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        url = f"{self.base}/hooks/{name}"
        async with self.http.post(url, data=io.BytesIO(body), headers=headers) as r:
            text = await r.text()
            try:
                return r.status, json.loads(text)
            except ValueError:  # the HTTP app's own refusals (413 before a hook sees it)
                return r.status, {"text": text}

    def texts(self, address: Address) -> list[str]:
        """Final text of every message the target platform got in that chat."""
        return [
            self.target.messages[c.message_id]
            for c in self.target.calls
            if c.action == "send" and c.address == address
        ]


@asynccontextmanager
async def serve(make_settings: Callable[..., Settings], **overrides: Any) -> AsyncIterator[Served]:
    """Start the real app (storage, runtime, HTTP server) with the hook channel in it."""
    settings = make_settings(OC_HOOKS=HOOKS, OC_PLANNING="false", **overrides)
    app = App(settings)
    made: dict[str, Any] = {}

    def connectors(s: Settings, runtime: Any) -> list[Any]:
        made["target"] = FlakyTarget(runtime.emit, platform="test")
        # The app's own wiring: the channel found through its entry point, given the services
        (made["hook"],) = app.channel_connectors(s, runtime)
        return [made["target"], made["hook"]]

    await app.start(connectors)
    try:
        assert app.http is not None
        async with aiohttp.ClientSession() as http:
            base = f"http://127.0.0.1:{app.http.port}"
            yield Served(app, made["target"], made["hook"], http, base)
    finally:
        await app.stop()
