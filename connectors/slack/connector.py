"""The Slack connector: slack-bolt (async) for inbound, one Web API client for outbound.

Inbound arrives either as HTTP Events API requests on the shared HTTP app (``/slack/events``,
signature checked by Bolt) or over Socket Mode when an app-level token is configured. Bolt runs
with ``process_before_response``: the listener hands the event to ``emit`` (which returns once it
is persisted, in milliseconds) and only then is Slack answered 200. So an acked event is never
lost, a failed persist makes Slack retry, and the turn itself runs after the ack. Slack's retries
carry the same ``event_id``, which becomes the core event id the runtime dedupes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import hmac
import logging
import re
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from yarl import URL

from opencomputer.bot.attachments import AttachmentError, Downloader
from opencomputer.bot.connector import (
    Capabilities,
    CommandSpec,
    ConnectorState,
    Emit,
    Formatting,
    RuntimeStopped,
)
from opencomputer.bot.events import Attachment
from opencomputer.bot.outfiles import OutFile
from opencomputer.bot.quarantine import FailureCounter, Quarantine
from opencomputer.bot.storage.engine import is_transient
from opencomputer.bot.text import clean_event, clean_text
from opencomputer.connectors.slack.backoff import Backoff
from opencomputer.connectors.slack.limiter import OutboundLimiter
from opencomputer.connectors.slack.mrkdwn import HARD_LIMIT, render_chunks
from opencomputer.connectors.slack.outbound import REJECTED, SlackOutbound, describe
from opencomputer.connectors.slack.translate import (
    PLATFORM,
    BotIdentity,
    translate_command,
    translate_event,
)

if TYPE_CHECKING:
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    from opencomputer.bot.config import Settings
    from opencomputer.bot.events import Address, Command, Message, Reaction

__all__ = ["EVENTS_PATH", "SlackConnector"]

logger = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"


def _request_id(request: Any) -> str:
    """``cmd:`` and a hash of the request's timestamp header and raw body."""
    stamp = (request.headers.get("x-slack-request-timestamp") or [""])[0]
    raw = request.raw_body if isinstance(request.raw_body, str) else str(request.body)
    return "cmd:" + hashlib.sha256(f"{stamp}\n{raw}".encode()).hexdigest()


class _NotReady(RuntimeError):
    """An event arrived before ``auth.test`` succeeded: answer 500 so Slack redelivers it."""


class SlackConnector:
    """One Slack workspace, over the Events API (HTTP) or Socket Mode."""

    platform = PLATFORM
    capabilities = Capabilities(
        max_length=HARD_LIMIT,
        can_edit=True,
        can_react=True,
        can_type=False,  # bots have no typing indicator outside the legacy RTM API
        formatting=Formatting.MRKDWN,
        edit_interval=1.2,  # chat.update is Tier 3 (~50/min per workspace)
        max_file_bytes=1024**3,  # Slack's limit per file
        voice_notes=False,  # bots cannot post Slack's voice clips: audio goes as a file
    )

    def __init__(
        self,
        settings: Settings,
        emit: Emit,
        *,
        retry_initial: float = 1.0,
        retry_cap: float = 300.0,
        start_timeout: float = 5.0,
        limiter: OutboundLimiter | None = None,
        socket_ping_interval: float = 10.0,
    ) -> None:
        if settings.slack_bot_token is None:
            raise ValueError("SLACK_BOT_TOKEN is not set")
        self._settings = settings
        self._emit = emit
        self._token = settings.slack_bot_token.get_secret_value()
        secret = settings.slack_signing_secret
        self._signing_secret = secret.get_secret_value() if secret else None
        app_token = settings.slack_app_token
        self._app_token = app_token.get_secret_value() if app_token else None
        if self._app_token is None and self._signing_secret is None:
            raise ValueError(
                "set SLACK_SIGNING_SECRET (Events API) or SLACK_APP_TOKEN (Socket Mode)"
            )
        self.socket_mode = self._app_token is not None
        self._state = ConnectorState.STOPPED
        self._ping_interval = socket_ping_interval
        self.last_error: str | None = None
        self.me: BotIdentity | None = None
        self.limiter = limiter or OutboundLimiter()
        self._backoff = Backoff(retry_initial, retry_cap)
        self._start_timeout = start_timeout
        self._session: aiohttp.ClientSession | None = None
        self._out: SlackOutbound | None = None
        self._bolt: AsyncApp | None = None
        self._socket: AsyncSocketModeHandler | None = None
        self._task: asyncio.Task[None] | None = None
        self._attempted = asyncio.Event()
        self.connected = asyncio.Event()
        self.quarantine = Quarantine(settings.data_dir, PLATFORM)
        self._failures = FailureCounter(limit=3)
        """Set while ``auth.test`` (and the Socket Mode connection) succeeded."""
        self._files = Downloader()

    @property
    def state(self) -> ConnectorState:
        """Connection health, as ``/readyz`` shows it.

        In Socket Mode a dropped WebSocket shows as ``reconnecting`` while the SDK re-opens it.
        """
        if self._state is ConnectorState.CONNECTED and self._socket is not None:
            client = self._socket.client
            session = client.current_session
            if session is None or session.closed or client.stale:
                return ConnectorState.RECONNECTING
        return self._state

    @state.setter
    def state(self, value: ConnectorState) -> None:
        self._state = value

    # --- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        """Open the client and connect in the background; wait briefly for the first try.

        Never raises for a Slack that is down or a token it rejects: the connector keeps
        retrying with backoff and ``state`` says where it stands.
        """
        if self._task is not None:
            return
        self.state = ConnectorState.STARTING
        self._session = aiohttp.ClientSession()
        base_url = self._settings.slack_api_url
        client = AsyncWebClient(
            token=self._token, base_url=base_url, session=self._session, timeout=15
        )
        self._out = SlackOutbound(client, self._session, self.limiter, self._token_rejected)
        self._bolt = self._build_bolt(AsyncWebClient(base_url=base_url, session=self._session))
        self._attempted.clear()
        self._task = asyncio.create_task(self._connect_loop(), name="slack-connect")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._attempted.wait(), self._start_timeout)

    async def stop(self) -> None:
        """Disconnect Socket Mode, stop retrying, close the HTTP session. Safe to call twice."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        socket, self._socket = self._socket, None
        if socket is not None:
            with contextlib.suppress(Exception):
                await socket.close_async()  # type: ignore[no-untyped-call]
        session, self._session = self._session, None
        if session is not None:
            await session.close()
        self._bolt = None
        self._out = None
        self.me = None
        await self._files.close()
        self.connected.clear()
        self.state = ConnectorState.STOPPED

    async def fetch_attachment(self, attachment: Attachment, max_bytes: int) -> bytes:
        """Download a shared file from its ``url_private`` with the bot token.

        The token goes only to Slack's own hosts (or the host of ``SLACK_API_URL``, a proxy or
        test server): a file URL pointing elsewhere is refused, and a redirect to another host
        is followed without the token.
        """
        url = URL(attachment.handle)
        host = (url.host or "").lower()
        api_host = (URL(self._settings.slack_api_url).host or "").lower()
        slack = host == "slack.com" or host.endswith(".slack.com")
        if (
            not url.absolute
            or url.scheme not in ("https", "http")
            or not (slack or host == api_host)
        ):
            raise AttachmentError(
                f"{attachment.name}: not a Slack file address ({host or 'no host'}); not fetched"
            )
        auth = {"Authorization": f"Bearer {self._token}"}
        return await self._files.get(str(url), attachment, max_bytes, headers=auth)

    async def _connect_loop(self) -> None:
        while True:
            try:
                await self._connect()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.last_error = describe(exc)
                rejected = isinstance(exc, SlackApiError) and self.last_error in REJECTED
                self.state = ConnectorState.FAILED if rejected else ConnectorState.RECONNECTING
                wait = self._backoff.next()
                logger.error(
                    "Slack connector %s (%s); retrying in %.1f s",
                    "was rejected by Slack" if rejected else "cannot connect",
                    self.last_error,
                    wait,
                )
                self._attempted.set()
                await asyncio.sleep(wait)
                continue
            self._backoff.reset()
            self.last_error = None
            self.state = ConnectorState.CONNECTED
            self.connected.set()
            self._attempted.set()
            logger.info(
                "Slack connected as %s (%s)",
                self.me.user_id if self.me else "?",
                "Socket Mode" if self.socket_mode else f"Events API at {EVENTS_PATH}",
            )
            return

    async def _connect(self) -> None:
        auth = await self._api.auth_test()
        self.me = BotIdentity(
            user_id=str(auth.get("user_id", "")),
            bot_id=str(auth.get("bot_id", "") or ""),
            team_id=str(auth.get("team_id", "") or ""),
        )
        if self._app_token is not None and self._socket is None:
            from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

            assert self._bolt is not None
            # Ask for the WebSocket URL ourselves: the SDK's own connect() would retry a
            # rejected app token forever at a fixed pace, logging a traceback each time.
            opened = await self._api.apps_connections_open(app_token=self._app_token)
            handler = AsyncSocketModeHandler(
                self._bolt, self._app_token, web_client=self._api, ping_interval=self._ping_interval
            )
            handler.client.wss_uri = str(opened["url"])
            try:
                await asyncio.wait_for(handler.connect_async(), 15)  # type: ignore[no-untyped-call]
            except BaseException:
                with contextlib.suppress(Exception):
                    await handler.close_async()  # type: ignore[no-untyped-call]
                raise
            self._socket = handler

    @property
    def _api(self) -> AsyncWebClient:
        return self._outbound.client

    @property
    def _outbound(self) -> SlackOutbound:
        if self._out is None:
            raise RuntimeError("SlackConnector.start() was not called")
        return self._out

    def _token_rejected(self, method: str, reason: str) -> None:
        """An outbound call found the token revoked: go back to connecting (with backoff)."""
        if self._task is None or not self._task.done():
            return  # stopped, or already reconnecting
        logger.error("Slack rejected the bot token on %s (%s); reconnecting", method, reason)
        self.state = ConnectorState.FAILED
        self.connected.clear()
        self._task = asyncio.create_task(self._connect_loop(), name="slack-connect")

    # --- inbound -----------------------------------------------------------------------
    def _build_bolt(self, client: AsyncWebClient) -> AsyncApp:
        # Bolt injects listener arguments by parameter name, so it gets plain closures
        # (a bound method's ``self`` would confuse it).
        async def authorize(team_id: str | None) -> AuthorizeResult:
            me = self._identity()
            return AuthorizeResult(
                enterprise_id=None,
                team_id=me.team_id or team_id,
                bot_user_id=me.user_id,
                bot_id=me.bot_id,
                bot_token=self._token,
            )

        async def on_event(body: dict[str, Any]) -> BoltResponse | None:
            me = self._identity()  # not ready: 500, Slack delivers it again later
            try:
                event = translate_event(body, me, self._outbound.threads)
            except Exception as exc:  # an odd event must not be retried for ever
                key = str(body.get("event_id") or "unknown")
                await self.quarantine.hold(key, body, f"cannot translate: {exc}")
                return None
            if event is None:
                logger.debug("Slack event %s ignored", body.get("event_id"))
                return None
            return await self._deliver(event)

        async def on_command(ack: Any, body: dict[str, Any], request: Any) -> BoltResponse | None:
            await ack()
            if body.get("response_url") and body.get("channel_id"):
                self._outbound.remember_response_url(body["channel_id"], body["response_url"])
            command = translate_command(body)
            if not body.get("trigger_id"):
                # Slash commands carry no event id; without a trigger id, the signed request
                # itself is the id, so a replay of it is the same command (bot/dedupe.py).
                command = dataclasses.replace(command, event_id=_request_id(request))
            return await self._deliver(command)

        async def ignore() -> None:
            return None

        app = AsyncApp(
            name="opencomputer",
            client=client,
            signing_secret=self._signing_secret,
            authorize=authorize,
            process_before_response=True,
            request_verification_enabled=not self.socket_mode,
            logger=logging.getLogger("opencomputer.connectors.slack.bolt"),
        )
        for kind in ("message", "app_mention", "reaction_added", "reaction_removed"):
            app.event(kind)(on_event)
        app.command("/oc")(on_command)
        # Events we did not subscribe to deliberately still get a 200, so Slack does not
        # count them as failures (and eventually switch the subscription off).
        app.event(re.compile(".*"))(ignore)
        return app

    async def _deliver(self, event: Message | Reaction | Command) -> BoltResponse | None:
        """Hand an event to the sink; if it is not accepted, answer 503 so Slack redelivers.

        An event refused three times for a reason of its own (not a shutdown, not an
        unreachable database) is quarantined and acknowledged instead.
        """
        event = clean_event(event)
        try:
            await self._emit(event)
        except Exception as exc:
            if (
                not isinstance(exc, RuntimeStopped)
                and not is_transient(exc)
                and self._failures.failed(event.event_id)
            ):
                self._failures.forget(event.event_id)
                reason = f"not taken {self._failures.limit} times: {describe(exc)}"
                await self.quarantine.hold(event.event_id, event.raw, reason)
                return None
            logger.warning(
                "Slack event %s not accepted (%s); Slack will deliver it again",
                event.event_id,
                describe(exc),
            )
            return BoltResponse(status=503, body="")
        return None

    def _identity(self) -> BotIdentity:
        if self.me is None:
            raise _NotReady("Slack event before auth.test succeeded")
        return self.me

    def routes(self) -> list[web.RouteDef]:
        """Return ``POST /slack/events`` (events and slash commands); none in Socket Mode."""
        return [] if self.socket_mode else [web.post(EVENTS_PATH, self._handle_http)]

    async def _handle_http(self, request: web.Request) -> web.StreamResponse:
        # The signature is checked on the raw bytes before anything parses them: junk from
        # anyone is a 401, never a parser's 500 with a traceback.
        raw = await request.read()
        if not self._signed(raw, request.headers.get("X-Slack-Request-Timestamp"), request):
            return web.Response(status=401, text="invalid signature")
        bolt = self._bolt
        if bolt is None or self.me is None:
            # Not started, or auth.test has not succeeded yet: Slack redelivers non-2xx.
            return web.Response(status=503, text="not connected to Slack yet")
        try:
            bolt_request = AsyncBoltRequest(
                body=raw.decode("utf-8"),
                query=request.query_string,
                headers=dict(request.headers),  # type: ignore[arg-type]
            )
        except Exception as exc:  # signed, yet not UTF-8 JSON / form: nothing to retry
            logger.warning("Slack: a signed request with an unreadable body (%s); 400", exc)
            return web.Response(status=400, text="unreadable body")
        payload = bolt_request.body
        if not isinstance(payload, dict):
            return web.Response(status=400, text="not an object")
        event = payload.get("event")
        if event is not None and not isinstance(event, dict):
            # Bolt's own middleware would fail on it (a 500 Slack retries): keep and ack it.
            key = str(payload.get("event_id") or "unknown")
            await self.quarantine.hold(key, payload, f"event is a {type(event).__name__}")
            return web.Response(status=200)
        return await to_aiohttp_response(await bolt.async_dispatch(bolt_request))

    def _signed(self, raw: bytes, stamp: str | None, request: web.Request) -> bool:
        """Whether ``raw`` carries a valid Slack v0 signature, computed on the raw bytes.

        slack_sdk's ``SignatureVerifier`` decodes the body as UTF-8 first (and ``int()``s the
        timestamp unguarded), so junk would raise instead of failing the check.
        """
        signature = request.headers.get("X-Slack-Signature", "")
        if not stamp or not stamp.isdigit() or len(stamp) > 12 or not self._signing_secret:
            return False
        if abs(time.time() - int(stamp)) > 5 * 60:
            return False  # stale: a replay
        base = b"v0:" + stamp.encode() + b":" + raw
        digest = hmac.new(self._signing_secret.encode(), base, hashlib.sha256).hexdigest()
        return hmac.compare_digest(f"v0={digest}".encode(), signature.encode("utf-8", "replace"))

    # --- outbound ----------------------------------------------------------------------
    def render(self, markdown: str) -> list[str]:
        """Markdown to mrkdwn, in chunks Slack shows whole (<= ``HARD_LIMIT`` characters)."""
        return render_chunks(clean_text(markdown))

    async def send(self, address: Address, text: str, *, reply_to: str | None = None) -> str:
        """Post with ``chat.postMessage``, in the address's thread when it has one.

        ``reply_to`` is unused: outside threads Slack has no reply-to.
        """
        return await self._outbound.post(address, text)

    async def send_file(
        self, address: Address, file: OutFile, *, reply_to: str | None = None
    ) -> str:
        """Upload and share a file (``files_upload_v2``), the caption as its comment."""
        return await self._outbound.upload(address, file)

    async def edit(self, address: Address, message_id: str, text: str) -> None:
        """``chat.update`` of one of the bot's messages."""
        await self._outbound.update(address, message_id, text)

    async def react(self, address: Address, message_id: str, emoji: str) -> None:
        """``reactions.add`` (unicode emoji are sent as Slack's names)."""
        await self._outbound.react(address, message_id, emoji)

    async def typing(self, address: Address) -> None:
        """Slack offers bots no typing indicator over the Web API; nothing to do."""

    async def register_commands(self, commands: Sequence[CommandSpec]) -> None:
        """Slack slash commands live in the app manifest (``/oc <command>``), not an API."""
        logger.debug("Slack: %d commands reachable as /oc <command>", len(commands))
