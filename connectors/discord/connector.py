"""The Discord connector: one discord.py gateway client plus REST, behind the core interface.

Inbound, gateway events are queued in arrival order and translated by one consumer task, so
the core sees them in order even when a thread's parent needs a REST lookup. Outbound, the
core's ``send``/``edit`` become REST calls; discord.py waits out 429s and per-route buckets
itself. A slash command's reply is routed through its interaction (see ``commands.py``).

The connection is supervised by one task: discord.py resumes the gateway after every close it
can handle (spaced by :class:`ReconnectPolicy`), and this task re-logs in after the failures
that end ``Client.connect``. Only a rejected token or missing privileged intent stops it for
good; the state says FAILED and the rest of the process carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import aiohttp
import discord

from opencomputer.bot.attachments import Downloader, DownloadRefused
from opencomputer.bot.connector import Capabilities, CommandSpec, ConnectorState, Emit, Formatting
from opencomputer.bot.events import Address, Attachment
from opencomputer.bot.outfiles import OutFile
from opencomputer.bot.quarantine import Quarantine
from opencomputer.bot.text import split_markdown
from opencomputer.connectors.discord.client import GatewayClient
from opencomputer.connectors.discord.commands import install, sync
from opencomputer.connectors.discord.files import fresh_url, parse_handle, renewable
from opencomputer.connectors.discord.gateway import Endpoints, ReconnectPolicy
from opencomputer.connectors.discord.inbound import Inbound, Lru
from opencomputer.connectors.discord.interactions import InteractionReplies
from opencomputer.connectors.discord.places import Places
from opencomputer.connectors.discord.translate import (
    PLATFORM,
    to_command,
)

if TYPE_CHECKING:
    from aiohttp import web

    from opencomputer.bot.config import Settings

__all__ = ["DiscordConnector"]

logger = logging.getLogger(__name__)

_FATAL_CLOSE = {
    4004: "DISCORD_BOT_TOKEN was rejected by the gateway (4004 authentication failed)",
    4010: "the gateway refused the shard settings (4010)",
    4011: "the bot is in too many guilds to run unsharded (4011)",
    4012: "the gateway refused the API version (4012)",
    4013: "the gateway refused the requested intents (4013)",
}
_BAD_TOKEN = (
    "Discord: DISCORD_BOT_TOKEN was rejected (401 Unauthorized); reset the token in the "
    "Developer Portal (Bot > Reset Token) and update the setting. Discord stays off; other "
    "connectors keep running."
)
_NO_INTENT = (
    "Discord: the Message Content intent is not enabled for this bot; turn it on in the "
    "Developer Portal (Bot > Privileged Gateway Intents). Discord stays off; other connectors "
    "keep running."
)


FILE_LIMIT = 10 * 1024 * 1024
"""Discord's upload limit for a bot in a server without boosts (and in DMs)."""


class DiscordConnector:
    """Discord through discord.py: DMs, guild channels, threads, reactions, slash commands."""

    platform = PLATFORM
    capabilities = Capabilities(
        max_length=2000,
        formatting=Formatting.MARKDOWN,
        # One streamed message is edited at most every 1.2 s: under the 5 per 5 s per channel.
        edit_interval=1.2,
        max_file_bytes=FILE_LIMIT,
        # A native voice message needs the IS_VOICE_MESSAGE flag, a waveform and a duration,
        # which discord.py's File cannot carry: a spoken reply goes as an OGG attachment.
        voice_notes=False,
    )

    def __init__(
        self,
        settings: Settings,
        emit: Emit,
        *,
        guild_ready_timeout: float = 2.0,
        identify_delay: float = 5.0,
        defer_after: float = 2.0,
        interaction_lifetime: float = 14 * 60.0,
        reconnect: ReconnectPolicy | None = None,
    ) -> None:
        if settings.discord_bot_token is None:
            raise ValueError("DISCORD_BOT_TOKEN is not set")
        self._token = settings.discord_bot_token
        self._emit = emit
        self._trigger = settings.group_trigger
        self._guild_ids = [int(g) for g in settings.discord_guild_ids if g.strip().isdigit()]
        self._files = Downloader()
        self._endpoints = Endpoints(settings.discord_api_base_url, settings.discord_gateway_url)
        self._options: dict[str, Any] = {
            "guild_ready_timeout": guild_ready_timeout,
            "identify_delay": identify_delay,
        }
        self.reconnects = reconnect or ReconnectPolicy()
        self.reconnects.on_attempt = self._on_attempt
        self.interactions = InteractionReplies(defer_after, interaction_lifetime)
        self._state = ConnectorState.STOPPED
        self._state_changed = asyncio.Event()
        self._client: GatewayClient | None = None
        self._places: Places | None = None
        self._inbound: Inbound | None = None
        self.quarantine = Quarantine(settings.data_dir, "discord")
        self._holding: set[asyncio.Task[None]] = set()
        self._supervisor: asyncio.Task[None] | None = None
        self._pump: asyncio.Task[None] | None = None
        self._sent = Lru()  # ids of messages we posted (replies to them address the bot)
        self._specs: list[CommandSpec] = []
        self._synced: list[CommandSpec] | None = None
        self._stopping = False

    # --- lifecycle ---------------------------------------------------------------------
    @property
    def state(self) -> ConnectorState:
        """Connection health (``/readyz``, ``doctor``)."""
        return self._state

    @state.setter
    def state(self, value: ConnectorState) -> None:
        self._state = value
        self._state_changed.set()
        self._state_changed = asyncio.Event()

    async def wait_state(self, *states: ConnectorState, within: float = 10.0) -> ConnectorState:
        """Wait until the state is one of ``states``; return it."""
        async with asyncio.timeout(within):
            while True:
                changed = self._state_changed
                if self._state in states:
                    return self._state
                await changed.wait()

    @property
    def client(self) -> GatewayClient:
        """The running discord.py client."""
        if self._client is None:
            raise RuntimeError("the Discord connector is not started")
        return self._client

    async def start(self) -> None:
        """Begin logging in and connecting in the background; returns at once."""
        if self._supervisor is not None:
            return
        self._stopping = False
        self.reconnects.reset()
        self.state = ConnectorState.STARTING
        self._endpoints.apply()
        self._client = self._new_client()
        self._places = Places(self._client)
        self._inbound = Inbound(self._client, self._places, self._emit, self._trigger, self._sent)
        self._pump = asyncio.create_task(self._inbound.run(), name="discord-inbox")
        self._supervisor = asyncio.create_task(self._supervise(), name="discord-gateway")

    async def stop(self) -> None:
        """Close the gateway and REST session. Safe to call twice."""
        self._stopping = True
        client, self._client = self._client, None
        if client is not None:
            await client.close()
        for task in (self._supervisor, self._pump):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._supervisor = self._pump = None
        self._inbound = self._places = None
        self.interactions.close()
        self._endpoints.restore()
        await self._files.close()
        self.state = ConnectorState.STOPPED

    async def fetch_attachment(self, attachment: Attachment, max_bytes: int) -> bytes:
        """Download a file from its CDN URL (signed by Discord: no token is sent); an expired
        link is renewed once through the message it came with (connectors/discord/files.py).
        """
        url, channel_id, message_id = parse_handle(attachment.handle)
        try:
            return await self._files.get(url, attachment, max_bytes)
        except DownloadRefused as exc:
            if channel_id is None or message_id is None:
                raise
            if not renewable(url, exc.status, message_id):
                raise
            what = attachment.name or f"the {attachment.kind} file"
            fresh = await fresh_url(self.client, channel_id, message_id, url, what)
        return await self._files.get(fresh, attachment, max_bytes)

    async def wait_connected(self, within: float = 10.0) -> None:
        """Wait until the gateway session is up and the guild cache filled."""
        async with asyncio.timeout(within):
            state = await self.wait_state(ConnectorState.CONNECTED, ConnectorState.FAILED)
            if state is ConnectorState.FAILED:
                raise RuntimeError("the Discord connector failed; see the log")
            await self.client.wait_until_ready()

    def _new_client(self) -> GatewayClient:
        self._synced = None  # a new client: publish again once it is ready
        client = GatewayClient(self, http_trace=self.reconnects.trace_config(), **self._options)
        install(client.tree, self._specs, self._guild_ids, self._on_slash)
        return client

    async def _supervise(self) -> None:
        failures = 0
        while not self._stopping:
            client = self.client
            try:
                await client.login(self._token.get_secret_value())
                await client.connect(reconnect=True)
                return
            except discord.LoginFailure:
                return await self._fail(client, _BAD_TOKEN)
            except discord.PrivilegedIntentsRequired:
                return await self._fail(client, _NO_INTENT)
            except discord.ConnectionClosed as exc:
                if exc.code in _FATAL_CLOSE:
                    line = f"Discord: {_FATAL_CLOSE[exc.code]}. Discord stays off."
                    return await self._fail(client, line)
                problem = f"gateway closed with {exc.code}"
            except (
                OSError,
                aiohttp.ClientError,
                discord.HTTPException,
                discord.GatewayNotFound,
                TimeoutError,
            ) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            except Exception as exc:  # a bug must not end the connection for good either
                logger.exception("Discord: unexpected error in the gateway loop")
                problem = f"{type(exc).__name__}: {exc}"
            if self._stopping:
                return
            failures += 1
            delay = min(self.reconnects.cap, self.reconnects.base * 2 ** min(failures, 16))
            delay *= 0.5 + random.random() / 2
            self.state = ConnectorState.RECONNECTING
            logger.warning("Discord: %s; logging in again in %.1f s", problem, delay)
            await client.close()
            await asyncio.sleep(delay)
            if self._stopping:
                return
            # A closed discord.py client cannot log in again (its HTTP connector is closed).
            self._client = self._new_client()
            if self._places is not None and self._inbound is not None:
                self._places.client = self._inbound.client = self._client

    async def _fail(self, client: discord.Client, line: str) -> None:
        self.state = ConnectorState.FAILED
        logger.error(line)
        await client.close()

    def _on_attempt(self, attempt: int) -> None:
        if attempt > 1 and not self._stopping and self.state is not ConnectorState.FAILED:
            self.state = ConnectorState.RECONNECTING

    # --- gateway events (called by GatewayClient) --------------------------------------
    def connected(self) -> None:
        """Mark the session up (READY/RESUMED); keep resumes on the configured gateway."""
        self.reconnects.session_up()
        self.state = ConnectorState.CONNECTED
        ws = self._client.ws if self._client is not None else None
        if self._endpoints.gateway_url is not None and ws is not None:
            # READY names a resume_gateway_url; a proxy or local gateway must keep the resumes.
            # (A drop in the instant before this handler runs resumes there once; discord.py
            # then retries, and this override applies from the next session on.)
            ws.gateway = self._endpoints.gateway_url

    def disconnected(self) -> None:
        """Note that the gateway dropped; discord.py is reconnecting."""
        if not self._stopping and self.state is not ConnectorState.FAILED:
            self.state = ConnectorState.RECONNECTING

    async def ready(self) -> None:
        """Publish slash commands registered before the connection (guild cache is filled)."""
        if self._specs and self._synced != self._specs:
            await self._sync_commands()

    def poisoned(self, event: str, data: dict[str, Any], reason: str) -> None:
        """A dispatch discord.py could not parse: keep it aside; the session goes on."""
        key = f"{event}:{data.get('id', '?')}"
        task = asyncio.get_running_loop().create_task(self._hold(key, data, reason))
        self._holding.add(task)
        task.add_done_callback(self._holding.discard)

    async def _hold(self, key: str, data: dict[str, Any], reason: str) -> None:
        try:
            await self.quarantine.hold(key, data, reason)
        except OSError as exc:  # the gateway cannot redeliver it anyway: say so once
            logger.error("Discord: malformed event %s skipped, not kept (%s)", key, exc)

    def message(self, message: discord.Message) -> None:
        """Queue a MESSAGE_CREATE."""
        self._in().message(message)

    def reaction(self, payload: discord.RawReactionActionEvent, added: bool) -> None:
        """Queue a reaction add/remove."""
        self._in().reaction(payload, added)

    def _in(self) -> Inbound:
        if self._inbound is None:
            raise RuntimeError("the Discord connector is not started")
        return self._inbound

    # --- slash commands ----------------------------------------------------------------
    async def register_commands(self, commands: Sequence[CommandSpec]) -> None:
        """Publish slash commands: per guild in ``DISCORD_GUILD_IDS`` (instant), else global.

        Before the connection is ready they are only installed locally; ``ready`` publishes.
        """
        self._specs = list(commands)
        if self._client is not None:
            install(self._client.tree, self._specs, self._guild_ids, self._on_slash)
            if self._client.is_ready():
                await self._sync_commands()

    async def _sync_commands(self) -> None:
        specs = list(self._specs)
        if await sync(self.client.tree, self._guild_ids):
            self._synced = specs

    async def _on_slash(self, interaction: discord.Interaction, name: str, args: str) -> None:
        if self._places is None or self._inbound is None:
            return
        # Held first: the 3-second answer window runs while the channel is being located.
        self.interactions.add(interaction)
        if interaction.channel is not None:
            place = await self._places.of_channel(interaction.channel)
        else:
            channel_id = interaction.channel_id or 0
            place = await self._places.of_ids(channel_id, interaction.guild_id)
        self._inbound.command(to_command(interaction, place, name, args))

    # --- outbound ----------------------------------------------------------------------
    def render(self, markdown: str) -> list[str]:
        """Discord renders Markdown itself: only split at 2000, keeping code blocks whole."""
        return split_markdown(markdown.strip(), self.capabilities.max_length)  # cleans text

    def _channel(self, address: Address) -> discord.PartialMessageable:
        channel_id = int(address.thread_id or address.chat_id)
        if address.thread_id:
            if self._places is not None:
                self._places.remember_thread(address.thread_id, address.chat_id)
        return self.client.get_partial_messageable(channel_id)

    async def send(self, address: Address, text: str, *, reply_to: str | None = None) -> str:
        """Post one chunk; a slash command's reply answers its interaction."""
        answered = await self.interactions.send(text, reply_to)
        if answered is not None:
            self._sent.add(answered)
            return answered
        channel = self._channel(address)
        reference = None
        if reply_to and reply_to.isdigit():
            reference = discord.MessageReference(
                message_id=int(reply_to), channel_id=channel.id, fail_if_not_exists=False
            )
        sent = await channel.send(text, reference=reference)  # type: ignore[arg-type]
        self._sent.add(str(sent.id))
        return str(sent.id)

    async def send_file(
        self, address: Address, file: OutFile, *, reply_to: str | None = None
    ) -> str:
        """Post a message with the file attached (multipart: ``payload_json`` + ``files[0]``);
        the caption is its text. Images show inline, audio gets Discord's player.
        """
        channel = self._channel(address)
        reference = None
        if reply_to and reply_to.isdigit():
            reference = discord.MessageReference(
                message_id=int(reply_to), channel_id=channel.id, fail_if_not_exists=False
            )
        upload = discord.File(io.BytesIO(file.data), filename=file.name)
        sent = await channel.send(
            file.caption[:2000] or None,
            file=upload,
            reference=reference,  # type: ignore[arg-type]
        )
        self._sent.add(str(sent.id))
        return str(sent.id)

    async def edit(self, address: Address, message_id: str, text: str) -> None:
        """Replace the text of one of our messages."""
        if await self.interactions.edit(message_id, text):
            return
        await self._channel(address).get_partial_message(int(message_id)).edit(content=text)

    async def react(self, address: Address, message_id: str, emoji: str) -> None:
        """Add an emoji reaction."""
        await self._channel(address).get_partial_message(int(message_id)).add_reaction(emoji)

    async def typing(self, address: Address) -> None:
        """Show "typing..." for ~10 s (best effort: failures are only logged)."""
        try:
            await self._channel(address).typing()
        except (discord.HTTPException, OSError) as exc:
            logger.debug("Discord: typing indicator failed: %s", exc)

    def routes(self) -> list[web.RouteDef]:
        """None: Discord events arrive over the gateway, not webhooks."""
        return []
