"""Fetching attachments: the seam connectors implement, the size cap, safe downloads, storage.

A message's files are not downloaded when it arrives: the core may never need them, and the
stored message must stay small. Whoever needs the bytes calls :func:`fetch` with the connector
that made the attachment; the connector resolves the attachment's ``handle`` on its platform
(``fetch_attachment``) and reads at most ``max_bytes`` of it. The size a platform claims is never
trusted: the cap is enforced on the bytes as they arrive, and the MIME type comes from sniffing
them (``bot/media/sniff.py``).
"""

from __future__ import annotations

import dataclasses
import mimetypes
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import aiohttp
from yarl import URL

from opencomputer.bot.events import Attachment, AttachmentKind
from opencomputer.bot.media.sniff import kind_of, sniff

if TYPE_CHECKING:
    from opencomputer.bot.config import Settings

__all__ = [
    "AttachmentError",
    "AttachmentSource",
    "AttachmentTooLarge",
    "DownloadRefused",
    "Downloader",
    "Fetched",
    "claimed_kind",
    "fetch",
    "max_bytes",
    "read_capped",
]

_CHUNK = 64 * 1024
_AUDIO_ONLY = {"video/mp4": "audio/mp4", "video/webm": "audio/webm"}
"""Containers that hold sound alone as often as film (Slack's audio clips are AAC in MP4,
browsers record WebM/Opus): the first bytes cannot tell, so a platform's claim of audio
decides. The worst a false claim gets is a video's sound transcribed, in the sandbox."""
_REDIRECTS = (301, 302, 303, 307, 308)


class AttachmentError(Exception):
    """A file could not be fetched; ``str()`` is one line fit to show the user."""


class AttachmentTooLarge(AttachmentError):
    """A file is bigger than the cap (whatever size the platform claimed)."""


class DownloadRefused(AttachmentError):
    """The server answered with an HTTP error (``status``)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@runtime_checkable
class AttachmentSource(Protocol):
    """A connector that can download the files its messages carry."""

    platform: str

    async def fetch_attachment(self, attachment: Attachment, max_bytes: int) -> bytes:
        """Return the file's bytes, reading no more than ``max_bytes`` (else
        :class:`AttachmentTooLarge`); :class:`AttachmentError` for anything else that fails.
        """
        ...


@dataclass(frozen=True, slots=True)
class Fetched:
    """A downloaded attachment: ``attachment`` now carries the sniffed type and real size."""

    attachment: Attachment
    data: bytes


def claimed_kind(mime: str | None, name: str = "") -> AttachmentKind:
    """The kind a platform's claimed type (or else the file name) points at: a hint only."""
    if not mime and name:
        mime, _ = mimetypes.guess_type(name)
    return kind_of(mime or "")


def too_large(attachment: Attachment, max_bytes: int) -> AttachmentTooLarge:
    """The one-line error for a file over the cap."""
    name = attachment.name or f"the {attachment.kind} file"
    mb = max_bytes / (1024 * 1024)
    return AttachmentTooLarge(
        f"{name} is larger than the {mb:g} MB limit for attachments (OC_MAX_ATTACHMENT_MB)"
    )


async def read_capped(
    chunks: AsyncIterator[bytes], attachment: Attachment, max_bytes: int
) -> bytes:
    """Join ``chunks``, stopping with :class:`AttachmentTooLarge` once past ``max_bytes``."""
    buf = bytearray()
    async for chunk in chunks:
        buf += chunk
        if len(buf) > max_bytes:
            raise too_large(attachment, max_bytes)
    return bytes(buf)


async def fetch(source: AttachmentSource, attachment: Attachment, max_bytes: int) -> Fetched:
    """Download an attachment through its connector and sniff what it really is."""
    if attachment.size is not None and attachment.size > max_bytes:
        raise too_large(attachment, max_bytes)  # honest claims fail before any download
    data = await source.fetch_attachment(attachment, max_bytes)
    if len(data) > max_bytes:  # a connector that did not cap while reading
        raise too_large(attachment, max_bytes)
    mime = sniff(data)
    if attachment.kind is AttachmentKind.AUDIO and mime in _AUDIO_ONLY:
        mime = _AUDIO_ONLY[mime]
    real = dataclasses.replace(
        attachment, mime=mime, kind=kind_of(mime), size=len(data), sniffed=True
    )
    return Fetched(real, data)


class Downloader:
    """One lazily opened aiohttp session for a connector's file downloads.

    Redirects are followed by hand: the credentials given for a URL (a bot token) are sent
    only to that URL's origin, never to a host a redirect points at.
    """

    def __init__(self, *, timeout: float = 60.0, max_redirects: int = 5) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=10)
        self._max_redirects = max_redirects
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        """Close the session (safe to call twice)."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def get(
        self,
        url: str,
        attachment: Attachment,
        max_bytes: int,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> bytes:
        """GET ``url`` and return at most ``max_bytes`` of its body."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        current = URL(url)
        origin = current.origin()
        what = attachment.name or f"the {attachment.kind} file"
        try:
            for _ in range(self._max_redirects + 1):
                send = dict(headers or {}) if current.origin() == origin else {}
                async with self._session.get(current, headers=send, allow_redirects=False) as resp:
                    if resp.status in _REDIRECTS and "Location" in resp.headers:
                        current = current.join(URL(resp.headers["Location"]))
                        continue
                    if resp.status != 200:
                        raise DownloadRefused(
                            f"could not download {what}: the server answered HTTP {resp.status}",
                            resp.status,
                        )
                    if (resp.content_length or 0) > max_bytes:
                        raise too_large(attachment, max_bytes)
                    return await read_capped(
                        resp.content.iter_chunked(_CHUNK), attachment, max_bytes
                    )
        except (aiohttp.ClientError, TimeoutError) as exc:
            # the type only: a URL in the message could carry a token (Telegram's file URLs)
            reason = f"{type(exc).__name__} from {current.host}"
            raise AttachmentError(f"could not download {what}: {reason}") from exc
        raise AttachmentError(f"could not download {what}: too many redirects")


def max_bytes(settings: Settings) -> int:
    """``OC_MAX_ATTACHMENT_MB`` in bytes."""
    return int(settings.max_attachment_mb * 1024 * 1024)
