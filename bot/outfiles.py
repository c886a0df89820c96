"""Files going out: a neutral outbound file, how tools hand one over, how it reaches a chat.

A tool returns an :class:`OutFile` (a sandboxed plugin returns it too: the worker turns it
into its JSON form, :meth:`OutFile.to_json`, and the executor back). The executor does not give
the bytes to the model: :func:`hand_over` puts the file into the running turn's collection
(:func:`collecting`, opened by the ``files`` feature around each turn) and the model reads a
short stand-in, ``[sent file NAME, N bytes]``. The feature sends the collected files after the
turn's answer was recorded and shown (``oc_reply_sent``).

A connector that can upload implements :class:`FileSender` (``send_file``), optional like
``fetch_attachment``; :func:`send_file` checks it and the platform's size limit
(``Capabilities.max_file_bytes``), and turns what cannot be sent into one line for the chat.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from opencomputer.bot.events import Address

__all__ = [
    "FileSender",
    "OutFile",
    "collecting",
    "file_kind",
    "hand_over",
    "hand_over_files",
    "human_size",
    "send_file",
    "tool_file",
    "tool_files",
]

logger = logging.getLogger(__name__)

MARKER = "oc_file"
"""The key of an :class:`OutFile`'s JSON form (what crosses the plugin sandbox's pipe)."""


@dataclass(frozen=True, slots=True)
class OutFile:
    """A file for a chat: a plot, an exported CSV, a spoken reply (``voice=True``).

    ``mime`` decides how platforms show it (images inline, audio as a player); ``voice`` asks
    for a voice note (OGG/Opus) where the platform has them, an audio file elsewhere.
    """

    name: str
    mime: str
    data: bytes = field(repr=False)
    caption: str = ""
    voice: bool = False

    @property
    def size(self) -> int:
        """Bytes."""
        return len(self.data)

    @property
    def kind(self) -> str:
        """``image``, ``audio``, ``video`` or ``document`` (from ``mime``)."""
        return file_kind(self.mime)

    def to_json(self) -> dict[str, Any]:
        """The JSON form (base64 data) under :data:`MARKER`."""
        return {
            MARKER: {
                "name": self.name,
                "mime": self.mime,
                "data": base64.b64encode(self.data).decode("ascii"),
                "caption": self.caption,
                "voice": self.voice,
            }
        }

    @classmethod
    def from_json(cls, value: object) -> OutFile | None:
        """The file in a JSON form made by :meth:`to_json`; None for anything else."""
        if not isinstance(value, dict) or set(value) != {MARKER}:
            return None
        spec = value[MARKER]
        if not isinstance(spec, dict):
            return None
        try:
            data = base64.b64decode(str(spec.get("data", "")), validate=True)
        except (binascii.Error, ValueError):
            return None
        return cls(
            name=str(spec.get("name") or "file"),
            mime=str(spec.get("mime") or "application/octet-stream"),
            data=data,
            caption=str(spec.get("caption") or ""),
            voice=bool(spec.get("voice", False)),
        )


def file_kind(mime: str) -> str:
    """The broad kind of a MIME type, as platforms choose how to show a file."""
    major = mime.split("/", 1)[0].lower()
    return major if major in ("image", "audio", "video") else "document"


def human_size(size: int) -> str:
    """``12.3 MB`` / ``840 KB`` / ``12 bytes``."""
    if size >= 1_000_000:
        return f"{size / 1_000_000:.1f} MB"
    if size >= 1_000:
        return f"{size / 1_000:.0f} KB"
    return f"{size} bytes"


@runtime_checkable
class FileSender(Protocol):
    """A connector that uploads files natively (optional beside ``send``)."""

    async def send_file(
        self, address: Address, file: OutFile, *, reply_to: str | None = None
    ) -> str:
        """Upload ``file`` with its caption; return the platform message (or file) id."""
        ...


_TURN_FILES: ContextVar[list[OutFile] | None] = ContextVar("oc_turn_files", default=None)


@contextmanager
def collecting() -> Iterator[list[OutFile]]:
    """Collect the files tools hand over while the body runs (one turn); yields the list.

    A context variable, so every task the turn starts (the graph's nodes, parallel tool calls)
    adds to the same list, and turns in other conversations never see it.
    """
    files: list[OutFile] = []
    token = _TURN_FILES.set(files)
    try:
        yield files
    finally:
        _TURN_FILES.reset(token)


def hand_over(file: OutFile) -> str:
    """Give ``file`` to the running turn; return what the model reads instead of the bytes."""
    files = _TURN_FILES.get()
    if files is None:  # no turn collects files here (the feature is off, a scheduled job...)
        return f"[file {file.name} not sent: files cannot be sent from here]"
    files.append(file)
    return f"[sent file {file.name}, {file.size} bytes]"


def tool_file(result: object) -> OutFile | None:
    """The file a tool returned (an :class:`OutFile` or its JSON form), else None."""
    if isinstance(result, OutFile):
        return result
    return OutFile.from_json(result)


def tool_files(result: object) -> tuple[str, list[OutFile]] | None:
    """The text and files of a result that carries files, else None.

    A tool returns one :class:`OutFile`, or a list of text and files (or their JSON forms):
    what a code interpreter printed beside the plots it saved. A list without a file, or with
    anything but text and files, is plain data.
    """
    if (file := tool_file(result)) is not None:
        return "", [file]
    if not isinstance(result, list):
        return None
    files = [file for item in result if (file := tool_file(item)) is not None]
    texts = [item for item in result if isinstance(item, str)]
    if not files or len(files) + len(texts) != len(result):
        return None
    return "".join(texts), files


def hand_over_files(result: object) -> str | None:
    """Hand over the files of a result (:func:`tool_files`); what the model reads, else None."""
    if (carried := tool_files(result)) is None:
        return None
    text, files = carried
    notes = "\n".join(hand_over(file) for file in files)
    return f"{text.rstrip()}\n{notes}" if text.strip() else notes


Say = Callable[..., Awaitable[Any]]


async def send_file(
    connectors: Mapping[str, object],
    say: Say,
    address: Address,
    file: OutFile,
    *,
    reply_to: str | None = None,
) -> str | None:
    """Send ``file`` to ``address``; return its message id, or None when it was not sent.

    What cannot be sent (no uploads on the platform, too large) is one line in the chat
    instead; a failed upload is one log line and one line in the chat. Nothing raises: the
    text answer is out already and must not be taken back by a file.
    """
    connector = connectors.get(address.platform)
    platform = address.platform.capitalize()
    line: str | None = None
    if connector is None:  # a scale-out worker: the platform's connector runs elsewhere
        logger.warning("file %s for %s not sent: no connector here", file.name, address.key)
        line = f"I made the file {file.name}, but this server process cannot send files."
    elif not isinstance(connector, FileSender):
        line = f"I made the file {file.name}, but I cannot send files on {platform}."
    else:
        limit = int(getattr(getattr(connector, "capabilities", None), "max_file_bytes", 0))
        if limit and file.size > limit:
            line = (
                f"I made the file {file.name} ({human_size(file.size)}), but {platform} takes "
                f"files up to {human_size(limit)}, so I could not send it."
            )
        else:
            try:
                return await connector.send_file(address, file, reply_to=reply_to)
            except Exception as exc:
                logger.warning(
                    "file %s (%d bytes) to %s not sent: %s: %s",
                    file.name,
                    file.size,
                    address.key,
                    type(exc).__name__,
                    " ".join(str(exc).split())[:300],
                )
                line = f"I could not send the file {file.name}: the upload to {platform} failed."
    try:
        await say(address, line, reply_to=reply_to)
    except Exception as exc:
        logger.warning("could not tell %s about file %s: %s", address.key, file.name, exc)
    return None
