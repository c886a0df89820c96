"""The Telegram connector: long polling or a webhook in, rate-limited Bot API calls out.

One ``telegram.Bot`` (python-telegram-bot) is opened in ``start`` and closed in ``stop``.
Polling runs in a background task that survives network errors and a rejected token with capped,
jittered exponential backoff; ``state`` says how it is going. Update offsets are stored in the
data directory after every batch, so a restart neither answers an update twice nor skips one.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from aiohttp import web
from telegram import Bot, Update
from telegram.error import Conflict, InvalidToken, NetworkError, TelegramError
from telegram.request import HTTPXRequest

from opencomputer.bot.attachments import AttachmentError, Downloader, too_large
from opencomputer.bot.config import Settings
from opencomputer.bot.connector import (
    Capabilities,
    CommandSpec,
    ConnectorState,
    Emit,
    Formatting,
    RuntimeStopped,
)
from opencomputer.bot.events import Address, Attachment, Command, Message, Reaction
from opencomputer.bot.outfiles import OutFile
from opencomputer.bot.quarantine import FailureCounter, PoisonEvent, Quarantine
from opencomputer.bot.storage.engine import is_transient
from opencomputer.bot.text import clean_event, clean_text
from opencomputer.connectors.telegram.chunks import render_chunks
from opencomputer.connectors.telegram.joiner import SplitJoiner
from opencomputer.connectors.telegram.limiter import LimiterConfig, OutboundLimiter
from opencomputer.connectors.telegram.offsets import OffsetFile
from opencomputer.connectors.telegram.outbound import FILE_LIMIT, TelegramOutbound
from opencomputer.connectors.telegram.parsing import UpdatesRequest, parse_update
from opencomputer.connectors.telegram.render import TELEGRAM_LIMIT
from opencomputer.connectors.telegram.translate import (
    ALLOWED_UPDATES,
    PLATFORM,
    BotIdentity,
    translate_update,
)

__all__ = ["TelegramConnector", "TelegramOptions", "api_base_url"]

logger = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
_RECENT = 4096  # update ids remembered to drop redeliveries


@dataclass(frozen=True, slots=True)
class TelegramOptions:
    """Timing knobs; the defaults suit production, tests shrink them."""

    poll_timeout: int = 30
    join_window: float = 1.0
    join_threshold: int = 3500
    retry_base: float = 1.0
    retry_cap: float = 120.0
    handover_cap: float = 5.0
    """Longest wait before offering an update the runtime refused (a full disk) again: the
    runtime recovers by itself, and one more ``getUpdates`` costs little."""
    request_timeout: float = 20.0
    limits: LimiterConfig = field(default_factory=LimiterConfig)


def api_base_url(value: str) -> str:
    """``TELEGRAM_BASE_URL`` as python-telegram-bot wants it: ``.../bot`` (the token follows).

    A bare server address (``http://127.0.0.1:8081``, what a local Bot API server prints) gets
    the ``/bot`` path added; ``{token}`` templates are left alone.
    """
    value = value.strip()
    if "{token}" in value or value.endswith("/bot"):
        return value
    return value.rstrip("/") + "/bot"


class _Handover(Exception):
    """The runtime did not accept an event; the update is fetched and offered again."""


class TelegramConnector:
    """Telegram through the Bot API (python-telegram-bot), polling or webhook."""

    platform = PLATFORM
    capabilities = Capabilities(
        max_length=TELEGRAM_LIMIT,
        formatting=Formatting.HTML,
        edit_interval=1.0,
        max_file_bytes=FILE_LIMIT,
        voice_notes=True,
    )

    def __init__(
        self, settings: Settings, emit: Emit, *, options: TelegramOptions | None = None
    ) -> None:
        if not settings.telegram_bot_token:
            raise ValueError("TELEGRAM_BOT_TOKEN is not set")
        self._token = settings.telegram_bot_token.get_secret_value()
        self._settings = settings
        self._emit = emit
        self.options = options or TelegramOptions()
        self.state = ConnectorState.STOPPED
        self.me: BotIdentity | None = None
        self.outbound = TelegramOutbound(OutboundLimiter(self.options.limits))
        self.joiner = SplitJoiner(
            self._deliver, window=self.options.join_window, threshold=self.options.join_threshold
        )
        bot_id = self._token.split(":", 1)[0]  # the public part of the token
        self._offsets = OffsetFile(settings.data_dir / "telegram" / f"offset-{bot_id}.json")
        self._webhook_url = settings.telegram_webhook_url
        secret = settings.telegram_webhook_secret
        self._secret = secret.get_secret_value() if secret else self._derived_secret()
        self._bot: Bot | None = None
        self._task: asyncio.Task[None] | None = None
        self._commands: list[CommandSpec] | None = None
        self._last_update: int | None = None
        self._saved_update: int | None = None
        self._recent: dict[int, None] = {}  # insertion-ordered set of recent update ids
        self.quarantine = Quarantine(settings.data_dir, PLATFORM)
        self._failures = FailureCounter(limit=3)
        self._updates_request: UpdatesRequest | None = None
        self.connected = asyncio.Event()
        self._files = Downloader()

    # --- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        """Open the Bot API client and connect in the background (never blocks on the network)."""
        if self._task is not None:
            return
        self.state = ConnectorState.STARTING
        timeout = self.options.request_timeout
        base = api_base_url(self._settings.telegram_base_url)
        self._updates_request = UpdatesRequest(
            connection_pool_size=1, read_timeout=self.options.poll_timeout + timeout
        )
        self._bot = Bot(
            self._token,
            base_url=base,
            base_file_url=base[: -len("bot")] + "file/bot" if base.endswith("/bot") else base,
            request=HTTPXRequest(connection_pool_size=16, read_timeout=timeout),
            get_updates_request=self._updates_request,
        )
        self._updates_request.bot = self._bot
        self.outbound.bot = self._bot
        self._saved_update = self._last_update = await self._offsets.load()
        self._task = asyncio.create_task(self._run(), name="telegram-connector")

    async def stop(self) -> None:
        """Stop polling, hand over held messages, store the offset, close the client."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self.joiner.drain()
        await self._save_offset()
        if self._bot is not None:
            await self._bot.shutdown()
            self._bot = self.outbound.bot = None
        await self._files.close()
        self.connected.clear()
        self.state = ConnectorState.STOPPED

    async def fetch_attachment(self, attachment: Attachment, max_bytes: int) -> bytes:
        """Download a file: ``getFile`` names its path, the file URL (under
        ``TELEGRAM_BASE_URL``, token included) serves it, read up to ``max_bytes``.
        """
        if self._bot is None:
            raise AttachmentError("telegram is not connected; try again later")
        try:
            info = await self._bot.get_file(attachment.handle)
        except TelegramError as exc:
            raise AttachmentError(f"telegram could not give {attachment.name}: {exc}") from exc
        if info.file_size is not None and info.file_size > max_bytes:
            raise too_large(attachment, max_bytes)
        url = info.file_path or ""
        if not url.startswith(("http://", "https://")):
            raise AttachmentError(
                f"telegram gave no download address for {attachment.name} (a local Bot API "
                "server in --local mode keeps files on its own disk)"
            )
        return await self._files.get(url, attachment, max_bytes)

    async def _run(self) -> None:
        attempt = 0
        while True:
            try:
                if self.me is None or not self.connected.is_set():
                    await self._connect()
                    if attempt:
                        logger.info("telegram: connected again as @%s", self._username)
                    attempt = 0
                if self._webhook_url:
                    return  # updates now arrive through routes()
                await self._poll_once()
                attempt = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                attempt += 1
                delay = self._backoff(attempt)
                if isinstance(exc, _Handover):
                    delay = min(delay, self.options.handover_cap)
                self._report(exc, attempt, delay)
                await asyncio.sleep(delay)

    async def _connect(self) -> None:
        assert self._bot is not None
        await self._bot.initialize()  # getMe: fails fast on a bad token
        user = self._bot.bot
        self.me = BotIdentity(user.id, user.username or "")
        if self._webhook_url:
            await self._bot.set_webhook(
                self._webhook_url, secret_token=self._secret, allowed_updates=ALLOWED_UPDATES
            )
        else:
            await self._bot.delete_webhook(drop_pending_updates=False)
        self.state = ConnectorState.CONNECTED
        self.connected.set()
        logger.info(
            "telegram: connected as @%s (%s)",
            self._username,
            "webhook" if self._webhook_url else "polling",
        )
        await self._publish_commands()

    async def _poll_once(self) -> None:
        assert self._bot is not None
        offset = None if self._last_update is None else self._last_update + 1
        updates = await self._bot.get_updates(
            offset=offset, timeout=self.options.poll_timeout, allowed_updates=ALLOWED_UPDATES
        )
        self.state = ConnectorState.CONNECTED
        poisoned = self._updates_request.poisoned if self._updates_request else {}
        try:
            for key in [k for k in poisoned if isinstance(k, str)]:  # no update_id at all
                await self.quarantine.hold(key, *poisoned[key])
                del poisoned[key]
            for update in updates:
                bad = poisoned.pop(update.update_id, None)
                if bad is not None:
                    await self.quarantine.hold(str(update.update_id), *bad)
                else:
                    await self._handle(update)
                self._last_update = update.update_id
        finally:
            try:
                await self._save_offset()
            except OSError as exc:  # a full disk: getUpdates' offset confirms it all the same
                logger.debug("telegram: offset not saved yet: %s", exc)

    def _backoff(self, attempt: int) -> float:
        """Capped exponential backoff with jitter (half fixed, half random)."""
        ceiling = min(self.options.retry_cap, self.options.retry_base * 2.0 ** (attempt - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def _report(self, exc: Exception, attempt: int, delay: float) -> None:
        """One clear line per failure streak (repeats go to debug); never the token."""
        reason = self._redact(str(exc))
        if isinstance(exc, _Handover):
            line, level = (
                f"telegram: the runtime did not take an update yet ({reason})",
                logging.INFO,
            )
        elif isinstance(exc, InvalidToken):
            self.state = ConnectorState.FAILED
            self.connected.clear()
            line = "telegram: the Bot API rejected TELEGRAM_BOT_TOKEN (get one from @BotFather)"
            level = logging.ERROR
        elif isinstance(exc, Conflict):
            self.state = ConnectorState.RECONNECTING
            line = f"telegram: another process uses this bot token ({reason})"
            level = logging.ERROR
        elif isinstance(exc, NetworkError):
            self.state = ConnectorState.RECONNECTING
            line = f"telegram: cannot reach {self._settings.telegram_base_url} ({reason})"
            level = logging.WARNING
        else:
            self.state = ConnectorState.RECONNECTING
            line, level = f"telegram: {type(exc).__name__}: {reason}", logging.ERROR
        logger.log(level if attempt == 1 else logging.DEBUG, "%s; retrying in %.1fs", line, delay)

    # --- inbound -----------------------------------------------------------------------
    async def _handle(self, update: Update) -> None:
        """Turn one update into events and hand them over; a redelivered update is skipped."""
        uid = update.update_id
        if uid in self._recent:  # also covers a concurrent webhook retry of the same update
            logger.debug("telegram update %s delivered again; skipped", uid)
            return
        self._recent[uid] = None
        if len(self._recent) > _RECENT:
            del self._recent[next(iter(self._recent))]
        assert self.me is not None
        try:
            events = [clean_event(e) for e in translate_update(update, self.me)]
        except Exception as exc:  # a bug or an odd update must not block the ones after it
            await self.quarantine.hold(str(uid), update, f"translation failed: {exc!r}")
            return
        try:
            for event in events:
                if isinstance(event, Message):
                    await self.joiner.offer(event)
                else:
                    if isinstance(event, Command):
                        await self.joiner.flush_for(event.chat.id, event.user.id, event.thread_id)
                    await self._deliver(event)
        except Exception as exc:
            self._recent.pop(uid, None)  # not handled: let its next delivery through
            if self._poison(exc, uid):
                reason = f"not taken {self._failures.limit} times: {type(exc).__name__}: {exc}"
                await self.quarantine.hold(str(uid), update, reason)
                self._recent[uid] = None
                return
            raise _Handover(f"update {uid}: {exc}") from exc
        self._failures.forget(str(uid))

    def _poison(self, exc: Exception, uid: int) -> bool:
        """Whether this failure makes the update poison: only the update's own failures count,
        not a shutdown or a database that cannot be reached (those are retried, never dropped).
        """
        if isinstance(exc, RuntimeStopped) or is_transient(exc):
            return False
        if self._failures.failed(str(uid)):
            self._failures.forget(str(uid))
            return True
        return False

    async def _deliver(self, event: Message | Reaction | Command) -> None:
        await self._emit(event)

    async def _save_offset(self) -> None:
        if self._last_update is not None and self._last_update != self._saved_update:
            await self._offsets.save(self._last_update)
            self._saved_update = self._last_update

    def routes(self) -> list[web.RouteDef]:
        """Return the webhook route (webhook mode only), at the path of ``TELEGRAM_WEBHOOK_URL``."""
        if not self._webhook_url:
            return []
        path = urlsplit(self._webhook_url).path or "/telegram/webhook"
        return [web.post(path, self._on_webhook)]

    async def _on_webhook(self, request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, self._secret.encode()):
            logger.warning("telegram webhook call with a wrong secret token rejected")
            return web.Response(status=401, text="wrong secret token")
        if self._bot is None or self.me is None:
            return web.Response(status=503, text="not connected yet")  # Telegram retries
        body = await request.read()
        try:
            data = json.loads(body)
        except ValueError:
            data = body.decode("utf-8", "backslashreplace")
        try:
            update = parse_update(data, self._bot)
        except PoisonEvent as exc:
            # Acknowledged (200) once kept: Telegram would otherwise send it again and again.
            key = str(data.get("update_id")) if isinstance(data, dict) else "webhook-body"
            try:
                await self.quarantine.hold(key, data, str(exc))
            except OSError as err:
                logger.error("telegram: cannot keep a poisoned update (%s); not acknowledged", err)
                return web.Response(status=503, text="try again")
            return web.Response(text="ok")
        try:
            await self._handle(update)
        except _Handover as exc:
            logger.warning("telegram: %s; Telegram will deliver it again", self._redact(str(exc)))
            return web.Response(status=503, text="try again")
        return web.Response(text="ok")

    # --- outbound ----------------------------------------------------------------------
    def render(self, markdown: str) -> list[str]:
        """Markdown to Telegram HTML chunks of at most 4096 characters."""
        return render_chunks(clean_text(markdown), TELEGRAM_LIMIT)

    async def send(self, address: Address, text: str, *, reply_to: str | None = None) -> str:
        """Post one rendered chunk (HTML) and return its message id."""
        return await self.outbound.send(address, text, reply_to)

    async def send_file(
        self, address: Address, file: OutFile, *, reply_to: str | None = None
    ) -> str:
        """Upload a file natively (photo, voice note, audio or document) with its caption."""
        return await self.outbound.send_file(address, file, reply_to)

    async def edit(self, address: Address, message_id: str, text: str) -> None:
        """Replace a sent message's text."""
        await self.outbound.edit(address, message_id, text)

    async def react(self, address: Address, message_id: str, emoji: str) -> None:
        """Put the bot's reaction on a message."""
        await self.outbound.react(address, message_id, emoji)

    async def typing(self, address: Address) -> None:
        """Send the "typing" chat action."""
        await self.outbound.typing(address)

    async def register_commands(self, commands: Sequence[CommandSpec]) -> None:
        """Publish the menu now if connected, else as soon as the connection is up."""
        self._commands = list(commands)
        if self.connected.is_set():
            await self._publish_commands()

    async def _publish_commands(self) -> None:
        if self._commands is None:
            return
        try:
            await self.outbound.set_commands(self._commands, self._settings.admins)
        except Exception as exc:  # a menu is not worth failing the connection over
            logger.warning("telegram: command menu not published: %s", self._redact(str(exc)))

    # --- helpers -----------------------------------------------------------------------
    @property
    def _username(self) -> str:
        return self.me.username if self.me else "?"

    def _redact(self, text: str) -> str:
        return text.replace(self._token, "***")

    def _derived_secret(self) -> str:
        """Derive a stable webhook secret when none is configured: verification is never off."""
        return hashlib.sha256(b"opencomputer-telegram-webhook:" + self._token.encode()).hexdigest()
