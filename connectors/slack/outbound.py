"""Everything the connector sends to Slack: posts, edits, reactions, slash-command responses.

All Web API calls go through the one :class:`~connectors.slack.limiter.OutboundLimiter`. A slash
command typed in a channel the bot is not a member of (or in a DM between two people) cannot be
answered with ``chat.postMessage``; for those the command's ``response_url`` is used instead.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from opencomputer.bot.events import Address
from opencomputer.bot.outfiles import OutFile
from opencomputer.connectors.slack.limiter import OutboundLimiter
from opencomputer.connectors.slack.translate import emoji_name

__all__ = ["REJECTED", "SlackOutbound", "describe"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

REJECTED = frozenset(
    {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"}
)
"""Slack errors that mean the token itself is no good."""
_NOT_MEMBER = frozenset({"not_in_channel", "channel_not_found"})
_HOOK_PREFIX = "response_url:"
_RESPONSE_URL_TTL = 25 * 60  # Slack accepts a response_url for 30 minutes
_THREADS_KEPT = 10_000


def describe(exc: BaseException) -> str:
    """Summarise an error without secrets: Slack's error code, or the exception's text."""
    if isinstance(exc, SlackApiError) and exc.response is not None:
        return str(exc.response.get("error") or f"HTTP {exc.response.status_code}")
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class SlackOutbound:
    """Outbound calls for one connected workspace.

    Args:
        client: the Web API client (bot token, ``SLACK_API_URL``).
        session: the connector's HTTP session, reused for ``response_url`` posts.
        limiter: waits out 429s.
        on_rejected: called with (method, error) when Slack rejects the token.
    """

    def __init__(
        self,
        client: AsyncWebClient,
        session: aiohttp.ClientSession,
        limiter: OutboundLimiter,
        on_rejected: Callable[[str, str], None],
    ) -> None:
        self.client = client
        self.limiter = limiter
        self._session = session
        self._on_rejected = on_rejected
        self.threads: OrderedDict[tuple[str, str], None] = OrderedDict()
        """(channel, thread_ts) the bot posted in: follow-ups there are addressed to it."""
        self._response_urls: dict[str, tuple[str, float]] = {}
        self._hook_ids = itertools.count(1)

    async def post(self, address: Address, text: str) -> str:
        """``chat.postMessage`` (in the thread when the address has one); returns its ts."""
        args: dict[str, Any] = {
            "channel": address.chat_id,
            "text": text,
            "mrkdwn": True,
            "unfurl_links": False,
            "unfurl_media": False,
        }
        if address.thread_id:
            args["thread_ts"] = address.thread_id
            self._remember_thread(address.chat_id, address.thread_id)
        try:
            response = await self.call(
                "chat.postMessage", lambda: self.client.chat_postMessage(**args)
            )
        except SlackApiError as exc:
            url = self._response_url(address.chat_id)
            if url is None or describe(exc) not in _NOT_MEMBER:
                raise
            await self._respond(url, text, replace=False)
            return f"{_HOOK_PREFIX}{next(self._hook_ids)}"
        return str(response["ts"])

    async def upload(self, address: Address, file: OutFile) -> str:
        """Share a file in the channel (thread) with its caption; returns the file's id.

        slack_sdk's ``files_upload_v2`` is Slack's current flow: ``files.getUploadURLExternal``,
        the bytes POSTed to the URL it gives, then ``files.completeUploadExternal`` sharing it
        (the older ``files.upload`` method is retired).
        """
        args: dict[str, Any] = {
            "channel": address.chat_id,
            "file": file.data,
            "filename": file.name,
            "title": file.name,
        }
        if file.caption:
            args["initial_comment"] = file.caption
        if address.thread_id:
            args["thread_ts"] = address.thread_id
        response = await self.call("files.upload", lambda: self.client.files_upload_v2(**args))
        shared = response.get("files") or [{}]
        return str(shared[0].get("id") or "")

    async def update(self, address: Address, message_id: str, text: str) -> None:
        """``chat.update``, or a replacement through the ``response_url`` that posted it."""
        if message_id.startswith(_HOOK_PREFIX):
            url = self._response_url(address.chat_id)
            if url is not None:
                await self._respond(url, text, replace=True)
            return
        await self.call(
            "chat.update",
            lambda: self.client.chat_update(channel=address.chat_id, ts=message_id, text=text),
        )

    async def react(self, address: Address, message_id: str, emoji: str) -> None:
        """``reactions.add``; reacting twice with the same emoji is not an error."""
        if message_id.startswith(_HOOK_PREFIX):
            return  # ephemeral responses cannot carry reactions
        try:
            await self.call(
                "reactions.add",
                lambda: self.client.reactions_add(
                    channel=address.chat_id, timestamp=message_id, name=emoji_name(emoji)
                ),
            )
        except SlackApiError as exc:
            if describe(exc) != "already_reacted":
                raise

    async def call(self, method: str, fn: Callable[[], Awaitable[T]]) -> T:
        """One Web API call through the limiter, reporting a rejected token."""
        try:
            return await self.limiter.call(method, fn)
        except SlackApiError as exc:
            reason = describe(exc)
            if reason in REJECTED:
                self._on_rejected(method, reason)
            raise

    def remember_response_url(self, channel: str, url: str) -> None:
        """Keep a slash command's ``response_url`` to answer where posting is impossible."""
        self._response_urls[channel] = (url, time.monotonic() + _RESPONSE_URL_TTL)

    def _response_url(self, channel: str) -> str | None:
        url, expires = self._response_urls.get(channel, ("", 0.0))
        return url if url and expires > time.monotonic() else None

    async def _respond(self, url: str, text: str, *, replace: bool) -> None:
        hook = AsyncWebhookClient(url, session=self._session)
        response = await hook.send(text=text, response_type="ephemeral", replace_original=replace)
        if response.status_code != 200:
            raise RuntimeError(f"response_url answered HTTP {response.status_code}")

    def _remember_thread(self, channel: str, thread_ts: str) -> None:
        self.threads[(channel, thread_ts)] = None
        self.threads.move_to_end((channel, thread_ts))
        while len(self.threads) > _THREADS_KEPT:
            self.threads.popitem(last=False)
