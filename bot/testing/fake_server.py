"""What the fake servers share: an aiohttp app on 127.0.0.1 that a test starts, stops (the port
then refuses connections, like a stopped server) and starts again on the same port.
"""

from __future__ import annotations

from typing import Self

from aiohttp import web

__all__ = ["FakeServer"]


class FakeServer:
    """Subclasses give their routes (``app``) and the part of the URL after the port."""

    path = ""

    def __init__(self) -> None:
        self.url = ""
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        """The routes this fake serves."""
        raise NotImplementedError

    async def start(self, port: int = 0) -> str:
        """Serve on 127.0.0.1 (a free port unless one is given); returns the base URL."""
        self._runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=0.2)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}{self.path}"
        return self.url

    async def stop(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
