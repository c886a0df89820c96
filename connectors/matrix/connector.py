"""The Matrix connector: one nio client, a sync loop with backoff, and outbound actions.

The loop is ours rather than nio's ``sync_forever`` because the sync token may only advance
once the sink accepted a batch, and because failures must show up in ``state`` and back off
with jitter instead of retrying forever in silence.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from nio import (
    AsyncClient,
    AsyncClientConfig,
    MatrixRoom,
    RoomSendError,
    RoomTypingError,
    SyncError,
)
from nio.crypto import ENCRYPTION_ENABLED
from nio.crypto.attachments import decrypt_attachment
from nio.exceptions import EncryptionError
from yarl import URL

from opencomputer.bot.attachments import AttachmentError, Downloader, DownloadRefused
from opencomputer.bot.config import Settings
from opencomputer.bot.connector import Capabilities, CommandSpec, ConnectorState, Emit, Formatting
from opencomputer.bot.events import Address, Attachment
from opencomputer.bot.outfiles import OutFile
from opencomputer.bot.quarantine import Quarantine
from opencomputer.connectors.matrix.access import may_invite
from opencomputer.connectors.matrix.files import FILE_LIMIT, media_content, upload
from opencomputer.connectors.matrix.inbound import DeliveryError, Inbound
from opencomputer.connectors.matrix.render import (
    MAX_CHARS,
    edit_content,
    message_content,
    reaction_content,
    render_chunks,
)
from opencomputer.connectors.matrix.session import LoginRefused, TokenRejected, log_in
from opencomputer.connectors.matrix.state import StateFiles, SyncState

if TYPE_CHECKING:
    from aiohttp import web

__all__ = ["ENCRYPTED_NOTICE", "MatrixConnector", "MatrixSendError"]

logger = logging.getLogger(__name__)

ENCRYPTED_NOTICE = (
    "This room is end-to-end encrypted, and this bot runs without encryption support, so it "
    "cannot read messages here. Its operator can add it with: pip install 'opencomputer[e2e]' "
    "(or talk to the bot in a room without encryption)."
)


class MatrixSendError(Exception):
    """The homeserver refused an outbound event."""


class MatrixConnector:
    """A Matrix account (``MATRIX_USER_ID``) as the agent's face on a homeserver."""

    platform = "matrix"

    def __init__(self, settings: Settings, emit: Emit) -> None:
        if not settings.matrix_homeserver or not settings.matrix_user_id:
            raise ValueError("MATRIX_HOMESERVER and MATRIX_USER_ID must both be set")
        password, token = settings.matrix_password, settings.matrix_access_token
        if not (password or token):
            raise ValueError("set MATRIX_PASSWORD or MATRIX_ACCESS_TOKEN")
        self.settings = settings
        self.homeserver = settings.matrix_homeserver.rstrip("/")
        self.user_id = settings.matrix_user_id
        self._password = password.get_secret_value() if password else None
        self._token = token.get_secret_value() if token else None
        self._emit = emit
        self.capabilities = Capabilities(
            max_length=MAX_CHARS,
            can_edit=True,
            can_react=True,
            can_type=True,
            formatting=Formatting.MARKDOWN,
            edit_interval=1.5,
            max_file_bytes=FILE_LIMIT,
            voice_notes=True,  # m.audio marked as a voice message (MSC3245)
        )
        self.state = ConnectorState.STOPPED
        self.e2e = ENCRYPTION_ENABLED
        self.files = StateFiles(settings.data_dir, self.user_id)
        self.sync_state = SyncState()
        # Tunables (tests shorten them).
        self.poll_timeout_ms = 30_000
        self.timeline_limit = 50
        self.backoff_base = 1.0
        self.backoff_cap = 60.0
        self.refusal_cap = 5.0  # the runtime (a full disk) recovers by itself: re-sync soon
        self.start_timeout = 10.0
        self.client: AsyncClient | None = None
        self.inbound: Inbound | None = None
        self._files = Downloader()
        self._task: asyncio.Task[None] | None = None
        self._logged_in: asyncio.Event | None = None
        self._typing: set[str] = set()
        self._first_sync = True

    # --- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        """Log in (or reuse the stored device) and start syncing in the background.

        Waits up to ``start_timeout`` for the login; an unreachable homeserver is retried in
        the background rather than failing the whole process.
        """
        if self._task is not None:
            return
        self.state = ConnectorState.STARTING
        self.sync_state = self.files.load_sync()
        self._first_sync = True
        self._make_client()
        self._logged_in = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="matrix-sync")
        try:
            await asyncio.wait_for(asyncio.shield(self._logged_in.wait()), self.start_timeout)
        except TimeoutError:
            logger.warning(
                "matrix: not logged in after %.0f s; still trying in the background",
                self.start_timeout,
            )

    def _make_client(self) -> None:
        """Create the nio client and its inbound side (at start, and after a logout)."""
        config = AsyncClientConfig(
            max_timeouts=2,
            encryption_enabled=self.e2e,
            store_sync_tokens=False,
        )
        store = self.files.dir / "nio-store"
        if self.e2e:
            store.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.client = AsyncClient(
            self.homeserver, self.user_id, store_path=str(store) if self.e2e else "", config=config
        )
        self.inbound = Inbound(
            self.client,
            self._emit,
            self.sync_state,
            may_invite=lambda user: may_invite(self.settings, user),
            on_encrypted=self._on_encrypted,
            command_prefix=self.settings.matrix_command_prefix,
            quarantine=Quarantine(self.settings.data_dir, "matrix"),
        )

    async def stop(self) -> None:
        """Stop syncing and close the HTTP session. Safe to call twice."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self.client is not None:
            await self.client.close()
        await self._files.close()
        self.state = ConnectorState.STOPPED

    async def fetch_attachment(self, attachment: Attachment, max_bytes: int) -> bytes:
        """Download a file from the homeserver's media repository and decrypt it if it came
        from an encrypted room (key, IV and SHA-256 from the event, checked by nio).

        Authenticated media (``/_matrix/client/v1/media``) first, the older unauthenticated
        path for servers that lack it. nio's own ``download`` buffers the whole body, so the
        bytes come through the capped reader instead.
        """
        try:
            ref = json.loads(attachment.handle)
            mxc = URL(ref["url"])
        except (ValueError, TypeError, KeyError) as exc:
            raise AttachmentError(f"{attachment.name}: not a Matrix file reference") from exc
        media_id = mxc.path.lstrip("/")
        if mxc.scheme != "mxc" or not mxc.host or not media_id or "/" in media_id:
            raise AttachmentError(f"{attachment.name}: not an mxc:// address")
        client = await self._logged_in_client()
        server, media = quote(mxc.host, safe=""), quote(media_id, safe="")
        base = client.homeserver.rstrip("/")
        auth = {"Authorization": f"Bearer {client.access_token}"}
        try:
            url = f"{base}/_matrix/client/v1/media/download/{server}/{media}"
            data = await self._files.get(url, attachment, max_bytes, headers=auth)
        except DownloadRefused as exc:
            if exc.status not in (400, 404, 405):
                raise
            url = f"{base}/_matrix/media/v3/download/{server}/{media}"
            data = await self._files.get(url, attachment, max_bytes, headers=auth)
        if "key" not in ref:
            return data
        try:
            return bytes(
                decrypt_attachment(data, ref["key"]["k"], ref["hashes"]["sha256"], ref["iv"])
            )
        except (EncryptionError, KeyError, TypeError, ValueError) as exc:
            raise AttachmentError(
                f"{attachment.name} could not be decrypted (damaged or tampered with)"
            ) from exc

    async def _logged_in_client(self) -> AsyncClient:
        """The client once logged in (a restarted connector may still be logging in)."""
        if self._logged_in is not None and not self._logged_in.is_set():
            try:
                await asyncio.wait_for(self._logged_in.wait(), self.start_timeout)
            except TimeoutError:
                pass
        if self.client is None or not self.client.access_token:
            raise AttachmentError("Matrix is not connected; try again in a moment")
        return self.client

    # --- sync loop -----------------------------------------------------------------------
    async def _run(self) -> None:
        failures = 0
        logged_in = False
        while True:
            try:
                if not logged_in:
                    await self._log_in()
                    logged_in = True
                await self._sync_once()
            except asyncio.CancelledError:
                raise
            except LoginRefused as exc:
                self.state = ConnectorState.FAILED
                logger.error("matrix: %s; fix the credentials and restart", exc)
                assert self._logged_in is not None
                self._logged_in.set()
                return
            except TokenRejected:
                assert self.client is not None
                if self._token or not self._password:
                    self.state = ConnectorState.FAILED
                    logger.error("matrix: the access token was rejected (logged out?)")
                    return
                # The device was logged out (and deleted, keys included): start a new one.
                logger.warning("matrix: stored access token rejected; logging in again")
                await self.client.close()
                self.files.session_path.unlink(missing_ok=True)
                self._make_client()
                logged_in = False
                continue
            except Exception as exc:
                failures += 1
                delay = self._backoff(failures)
                if isinstance(exc, DeliveryError):
                    delay = min(delay, self.refusal_cap)
                self.state = ConnectorState.RECONNECTING
                what = (
                    "delivering events failed"
                    if isinstance(exc, DeliveryError)
                    else f"connection to {self.homeserver} failed"
                )
                log = logger.warning if failures == 1 else logger.debug
                log("matrix: %s (%s); retrying with backoff, next in %.1f s", what, exc, delay)
                await asyncio.sleep(delay)
                continue
            if failures:
                logger.info("matrix: sync works again after %d failed attempts", failures)
                failures = 0
            if self.state is not ConnectorState.CONNECTED:
                self.state = ConnectorState.CONNECTED
                logger.info("matrix: connected to %s as %s", self.homeserver, self.user_id)

    def _backoff(self, failures: int) -> float:
        """Capped exponential backoff with jitter (between half and all of the step)."""
        step = min(self.backoff_cap, self.backoff_base * 2 ** min(failures - 1, 16))
        return float(step) * random.uniform(0.5, 1.0)

    async def _log_in(self) -> None:
        assert self.client is not None and self._logged_in is not None and self.inbound
        await log_in(self.client, self.files, password=self._password, access_token=self._token)
        self._logged_in.set()
        resp = await self.client.get_displayname(self.user_id)
        self.inbound.translator.display_name = getattr(resp, "displayname", None) or ""

    async def _sync_once(self) -> None:
        assert self.client is not None and self.inbound is not None
        since = self.sync_state.next_batch
        self.client.next_batch = since  # nio advanced it even if our delivery failed
        resp = await self.client.sync(
            timeout=0 if since is None or self._first_sync else self.poll_timeout_ms,
            since=since,
            sync_filter=self._filter(),
            full_state=bool(since and self._first_sync),  # nio keeps no room state across runs
        )
        if isinstance(resp, SyncError):
            if resp.status_code == "M_UNKNOWN_TOKEN":
                raise TokenRejected()
            raise ConnectionError(f"sync failed: {resp}")
        await self.inbound.deliver(resp, since)
        if self.e2e:
            await self._e2e_housekeeping()
        self._first_sync = False
        if resp.next_batch != since:
            self.sync_state.next_batch = resp.next_batch
            self.files.save_sync(self.sync_state)
        self.inbound.delivered.clear()

    def _filter(self) -> dict[str, Any]:
        return {
            "room": {"timeline": {"limit": self.timeline_limit}},
            "presence": {"types": []},
        }

    async def _e2e_housekeeping(self) -> None:
        """Upload, query and claim keys, as nio's ``sync_forever`` does after each sync."""
        client = self.client
        assert client is not None
        if client.should_upload_keys:
            await client.keys_upload()
        if client.should_query_keys:
            await client.keys_query()
        if client.should_claim_keys:
            await client.keys_claim(client.get_users_for_key_claiming())
        await client.send_to_device_messages()

    async def _on_encrypted(self, room: MatrixRoom, event: Any) -> None:
        """Say so when a room is encrypted or an event cannot be decrypted; never stay silent."""
        if self.e2e:
            if event is not None:
                logger.warning(
                    "matrix: could not decrypt event %s in %s (its keys were not shared with "
                    "this device)",
                    event.event_id,
                    room.room_id,
                )
            return
        if room.room_id in self.sync_state.encrypted_notified:
            return
        logger.warning(
            "matrix: room %s is end-to-end encrypted but encryption support is not installed; "
            "messages there cannot be read. Install it with: pip install 'opencomputer[e2e]'",
            room.room_id,
        )
        await self._room_send(
            room.room_id, "m.room.message", message_content(ENCRYPTED_NOTICE, msgtype="m.notice")
        )
        self.sync_state.encrypted_notified.append(room.room_id)

    # --- outbound ------------------------------------------------------------------------
    def render(self, markdown: str) -> list[str]:
        """Markdown chunks, each small enough for one event (HTML is made in ``send``)."""
        return render_chunks(markdown)

    async def send(self, address: Address, text: str, *, reply_to: str | None = None) -> str:
        """Post one chunk as Markdown body plus HTML ``formatted_body``; return its event id."""
        client = self._client()
        room = client.rooms.get(address.chat_id)
        if reply_to and not address.thread_id and room is not None and room.member_count <= 2:
            reply_to = None  # in a DM, quoting the question above every answer is noise
        content = message_content(text, thread_id=address.thread_id, reply_to=reply_to)
        event_id = await self._room_send(address.chat_id, "m.room.message", content)
        await self._stop_typing(address.chat_id)
        return event_id

    async def send_file(
        self, address: Address, file: OutFile, *, reply_to: str | None = None
    ) -> str:
        """Upload to the media repository (encrypted in an encrypted room), then post the
        ``m.image`` / ``m.audio`` / ``m.file`` event; return its event id.
        """
        client = self._client()
        room = client.rooms.get(address.chat_id)
        uri, keys = await upload(client, file, encrypt=bool(room is not None and room.encrypted))
        content = media_content(file, uri, keys)
        if reply_to and not address.thread_id and room is not None and room.member_count <= 2:
            reply_to = None  # as in send: no quote above every answer in a DM
        relation = message_content("", thread_id=address.thread_id, reply_to=reply_to)
        if "m.relates_to" in relation:
            content["m.relates_to"] = relation["m.relates_to"]
        event_id = await self._room_send(address.chat_id, "m.room.message", content)
        await self._stop_typing(address.chat_id)
        return event_id

    async def edit(self, address: Address, message_id: str, text: str) -> None:
        """Replace a sent chunk with an ``m.replace`` edit."""
        await self._room_send(address.chat_id, "m.room.message", edit_content(message_id, text))

    async def react(self, address: Address, message_id: str, emoji: str) -> None:
        """Annotate a message with an emoji."""
        await self._room_send(address.chat_id, "m.reaction", reaction_content(message_id, emoji))

    async def typing(self, address: Address) -> None:
        """Show the bot typing for a few seconds (best effort)."""
        resp = await self._client().room_typing(address.chat_id, True, timeout=10_000)
        if isinstance(resp, RoomTypingError):
            logger.debug("matrix: typing notice in %s failed: %s", address.chat_id, resp)
        else:
            self._typing.add(address.chat_id)

    async def _stop_typing(self, room_id: str) -> None:
        """Clear the typing notice once the answer is there (it would linger up to 10 s)."""
        if room_id in self._typing:
            self._typing.discard(room_id)
            await self._client().room_typing(room_id, False)

    async def register_commands(self, commands: Sequence[CommandSpec]) -> None:
        """Matrix has no native command menu; commands are typed with the prefix."""

    def routes(self) -> list[web.RouteDef]:
        """No webhooks: the connector pulls with /sync."""
        return []

    def _client(self) -> AsyncClient:
        if self.client is None or not self.client.access_token:
            raise MatrixSendError("the Matrix connector is not logged in")
        return self.client

    async def _room_send(self, room_id: str, event_type: str, content: dict[str, Any]) -> str:
        resp = await self._client().room_send(
            room_id, event_type, content, ignore_unverified_devices=True
        )
        if isinstance(resp, RoomSendError):
            raise MatrixSendError(f"sending {event_type} to {room_id} failed: {resp}")
        if self.inbound is not None:
            self.inbound.remember_own(resp.event_id)
        return str(resp.event_id)
