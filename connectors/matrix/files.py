"""Files out on Matrix: upload to the media repository, then an ``m.room.message`` event.

The bytes go to ``/_matrix/media/v3/upload`` (nio's ``AsyncClient.upload``); an encrypted
room gets them encrypted first (``encrypt=True``: nio's ``encrypt_attachment``, AES-CTR with a
fresh key), and the event carries the keys in ``file`` instead of a plain ``url`` (the event
itself is then Megolm-encrypted like any other). The event's ``msgtype`` follows the kind:
``m.image``, ``m.video``, ``m.audio`` (a voice note is ``m.audio`` marked with MSC3245's
``org.matrix.msc3245.voice``, which Element shows as a voice message), else ``m.file``. The
caption is the ``body`` with the name in ``filename`` (Matrix 1.10 media captions).
"""

from __future__ import annotations

import io
from typing import Any

from nio import AsyncClient, UploadError

from opencomputer.bot.outfiles import OutFile

__all__ = ["FILE_LIMIT", "MatrixUploadError", "media_content", "upload"]

FILE_LIMIT = 50 * 1024 * 1024
"""Synapse's default ``max_upload_size`` (a server may set another: it refuses larger ones)."""

_MSGTYPES = {"image": "m.image", "video": "m.video", "audio": "m.audio"}


class MatrixUploadError(Exception):
    """The media repository refused the upload."""


async def upload(client: AsyncClient, file: OutFile, *, encrypt: bool) -> tuple[str, Any]:
    """Upload ``file``; return its ``mxc://`` URI and, when encrypted, the decryption keys."""
    resp, keys = await client.upload(
        io.BytesIO(file.data),
        content_type=file.mime,
        filename=file.name,
        encrypt=encrypt,
        filesize=file.size,
    )
    if isinstance(resp, UploadError):
        raise MatrixUploadError(f"uploading {file.name} failed: {resp}")
    return str(resp.content_uri), keys


def media_content(file: OutFile, uri: str, keys: dict[str, Any] | None) -> dict[str, Any]:
    """The ``m.room.message`` content showing an uploaded file (``keys``: encrypted room)."""
    msgtype = _MSGTYPES.get(file.kind, "m.file")
    content: dict[str, Any] = {
        "msgtype": msgtype,
        "body": file.caption or file.name,
        "filename": file.name,
        "info": {"mimetype": file.mime, "size": file.size},
    }
    if keys is not None:
        content["file"] = {**keys, "url": uri, "mimetype": file.mime}
    else:
        content["url"] = uri
    if file.voice and msgtype == "m.audio":
        content["org.matrix.msc3245.voice"] = {}
        content["org.matrix.msc1767.audio"] = {}
    return content
