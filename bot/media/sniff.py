"""What a file really is, judged from its first bytes (never from its name or the platform's claim).

A platform's MIME type and a file name are whatever the sender's client said: a ``report.pdf``
may be a Windows program. Everything downstream (speech, vision, document extraction) decides on
:func:`sniff`'s answer. Signatures come from ``puremagic`` (pure Python, maintained, no libmagic
to install); the few types whose answer matters most for safety or routing (programs, Ogg
voice notes, plain text) are settled here first because the library names them vaguely.
"""

from __future__ import annotations

import mimetypes

import puremagic

from opencomputer.bot.events import AttachmentKind

__all__ = ["EXECUTABLE", "HEAD_BYTES", "kind_of", "sniff"]

HEAD_BYTES = 8192
"""How much of the start of a file :func:`sniff` looks at."""

EXECUTABLE = frozenset(
    {
        "application/x-msdownload",
        "application/x-executable",
        "application/x-mach-binary",
        "application/x-sh",
    }
)
"""Types that are programs: never handed to a decoder as if they were documents."""

_PROGRAMS: tuple[tuple[bytes, str], ...] = (
    (b"MZ", "application/x-msdownload"),  # DOS/Windows PE
    (b"\x7fELF", "application/x-executable"),
    (b"\xcf\xfa\xed\xfe", "application/x-mach-binary"),
    (b"\xce\xfa\xed\xfe", "application/x-mach-binary"),
    (b"\xca\xfe\xba\xbe", "application/x-mach-binary"),  # universal binary (also Java class)
    (b"#!", "application/x-sh"),
)


def _ogg(head: bytes) -> str:
    """Ogg is a container: Telegram voice notes are Opus in Ogg, which is audio."""
    if b"OpusHead" in head[:128] or b"\x01vorbis" in head[:128] or b"Speex" in head[:128]:
        return "audio/ogg"
    if b"\x80theora" in head[:128]:
        return "video/ogg"
    return "application/ogg"


def _library(head: bytes) -> str | None:
    """The first match ``puremagic`` gives a MIME type for (or one its extension implies)."""
    try:
        matches = puremagic.magic_string(head)
    except (puremagic.PureError, ValueError):
        return None
    for match in matches:
        if match.mime_type:
            return str(match.mime_type)
    for match in matches:
        guessed, _ = mimetypes.guess_type(f"x{match.extension}")
        if guessed:
            return guessed
    return None


def _text(head: bytes) -> bool:
    """UTF-8 without control bytes other than whitespace (the cut may split a character)."""
    if b"\x00" in head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:
            return False
        text = head[: exc.start].decode("utf-8")
    return all(ch.isprintable() or ch in "\t\n\r\f" for ch in text)


def sniff(data: bytes) -> str:
    """The MIME type of a file from its first bytes; ``application/octet-stream`` if unknown."""
    head = data[:HEAD_BYTES]
    if not head:
        return "application/x-empty"
    for magic, mime in _PROGRAMS:
        if head.startswith(magic):
            return mime
    if head.startswith(b"OggS"):
        return _ogg(head)
    found = _library(head)
    if found:
        return found
    if _text(head):
        return "text/plain"
    return "application/octet-stream"


_DOCUMENTS = (
    "text/",
    "application/pdf",
    "application/msword",
    "application/vnd.",
    "application/rtf",
)


def kind_of(mime: str) -> AttachmentKind:
    """The broad kind a MIME type belongs to (what the core routes on)."""
    major = mime.split("/", 1)[0]
    if major == "audio":
        return AttachmentKind.AUDIO
    if major == "image":
        return AttachmentKind.IMAGE
    if major == "video":
        return AttachmentKind.VIDEO
    if mime in EXECUTABLE:
        return AttachmentKind.OTHER
    if mime.startswith(_DOCUMENTS) or mime in {"application/json", "application/xml"}:
        return AttachmentKind.DOCUMENT
    return AttachmentKind.OTHER
