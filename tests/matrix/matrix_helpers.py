"""Test doubles for the Matrix tests: the sink the bot emits into, and a human on Synapse."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from nio import AsyncClient, AsyncClientConfig, RoomCreateResponse, RoomSendResponse, SyncResponse

from opencomputer.bot.events import Command, Message, Reaction
from opencomputer.connectors.matrix import MatrixConnector
from tests.matrix.synapse_server import Account

TIMEOUT = 15.0

BotFactory = Callable[..., Awaitable[MatrixConnector]]


class Sink:
    """The connector's ``emit``: records events and lets a test await the one it expects."""

    def __init__(self) -> None:
        self.events: list[Message | Reaction | Command] = []
        self._changed = asyncio.Event()
        self.fail_with: Exception | None = None

    async def __call__(self, event: Message | Reaction | Command) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.events.append(event)
        self._changed.set()

    async def wait_for(self, predicate: Callable[[Any], bool], within: float = TIMEOUT) -> Any:
        async def poll() -> Any:
            while True:
                for event in self.events:
                    if predicate(event):
                        return event
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(poll(), within)

    def messages(self) -> list[Message]:
        return [e for e in self.events if isinstance(e, Message)]


class Human:
    """A person on the homeserver, driven by a plain nio client."""

    def __init__(self, url: str, account: Account, *, store: Path | None = None) -> None:
        self.account = account
        self.user_id = account.user_id
        # With ``store`` the client is an encrypting one (needs matrix-nio[e2e]).
        config = AsyncClientConfig(encryption_enabled=store is not None, store_sync_tokens=False)
        self.client = AsyncClient(
            url, account.user_id, store_path=str(store) if store else "", config=config
        )
        if store is not None:
            store.mkdir(parents=True, exist_ok=True)
            self.client.restore_login(account.user_id, account.device_id, account.access_token)
        else:
            self.client.user_id = account.user_id
            self.client.device_id = account.device_id
            self.client.access_token = account.access_token
        self.seen: list[tuple[str, dict[str, Any]]] = []  # (room id, raw event) in order
        self.typing: list[tuple[str, list[str]]] = []

    async def sync(self, timeout_ms: int = 500) -> None:
        resp = await self.client.sync(timeout=timeout_ms)
        assert isinstance(resp, SyncResponse), resp
        for room_id, info in resp.rooms.join.items():
            # Decrypted events carry the plaintext event as their source.
            self.seen.extend((room_id, e.source) for e in info.timeline.events)
            for eph in info.ephemeral:
                users = getattr(eph, "users", None)
                if users is not None:
                    self.typing.append((room_id, list(users)))
        if self.client.olm is not None:
            if self.client.should_upload_keys:
                await self.client.keys_upload()
            if self.client.should_query_keys:
                await self.client.keys_query()
            if self.client.should_claim_keys:
                await self.client.keys_claim(self.client.get_users_for_key_claiming())
            await self.client.send_to_device_messages()

    async def wait_for(
        self, predicate: Callable[[str, dict[str, Any]], bool], within: float = TIMEOUT
    ) -> dict[str, Any]:
        """The first event (raw dict) seen so far or later that matches."""

        async def poll() -> dict[str, Any]:
            while True:
                for room_id, event in self.seen:
                    if predicate(room_id, event):
                        return event
                await self.sync()

        return await asyncio.wait_for(poll(), within)

    async def wait_typing(self, room_id: str, user_id: str | None, within: float = TIMEOUT) -> None:
        """Until ``user_id`` is typing (None: until nobody is typing) in the room."""

        def shown() -> bool:
            latest = [u for r, u in self.typing if r == room_id]
            if user_id is None:
                return bool(latest) and not latest[-1]
            return any(user_id in u for u in latest)

        async def poll() -> None:
            while not shown():
                await self.sync()

        await asyncio.wait_for(poll(), within)

    async def create_room(self, invite: list[str], *, direct: bool = False, **kw: Any) -> str:
        resp = await self.client.room_create(invite=invite, is_direct=direct, **kw)
        assert isinstance(resp, RoomCreateResponse), resp
        return resp.room_id

    async def wait_membership(self, room_id: str, user_id: str, membership: str) -> None:
        await self.wait_for(
            lambda r, e: (
                r == room_id
                and e["type"] == "m.room.member"
                and e.get("state_key") == user_id
                and e["content"].get("membership") == membership
            )
        )

    async def send(
        self, room_id: str, content: dict[str, Any], kind: str = "m.room.message"
    ) -> str:
        resp = await self.client.room_send(room_id, kind, content, ignore_unverified_devices=True)
        assert isinstance(resp, RoomSendResponse), resp
        return resp.event_id

    async def say(self, room_id: str, body: str, **extra: Any) -> str:
        return await self.send(room_id, {"msgtype": "m.text", "body": body, **extra})


class TcpProxy:
    """A loopback TCP forwarder that a test can cut and restore: a homeserver outage."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        """Refuse new connections and drop the open ones."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update({writer, up_writer})

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers.difference_update({writer, up_writer})


async def wait_until(condition: Callable[[], bool], within: float = TIMEOUT) -> None:
    """Poll a condition that has no event to await (a connector's ``state``)."""

    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), within)
