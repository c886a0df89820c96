"""The code tool's output folder: files a snippet saves there go back to the chat as files.

As in OpenAI's code interpreter and Open Interpreter, each run gets a fresh, empty folder (its
working directory, also ``OUT``). After the run, what lies directly in it is read back, within
limits, through the sandbox's pipe as :class:`~opencomputer.OutFile` s. Everything that cannot
go becomes one line for the model, and nothing but a plain file in that very folder is read:

* the folder is opened once, before the snippet runs, and listed and read through that handle,
  so a snippet that swaps the folder for a link to ``/etc`` only empties its own output;
* each file is opened without following links (``O_NOFOLLOW``) and without blocking (a FIFO
  cannot stall the tool), then checked on the open handle: a plain file with one link, not
  larger than the limit (decided by its size before a byte is read, so a sparse 1 GB file costs
  nothing; reading stops at the limit should it grow meanwhile);
* names must be printable UTF-8 without control, format (bidirectional overrides) or surrogate
  characters, since chats show them and platforms save them under that name.
"""

from __future__ import annotations

import errno
import mimetypes
import os
import stat
import unicodedata
from dataclasses import dataclass, field

from opencomputer import OutFile

__all__ = ["MAX_FILES", "MAX_FILE_BYTES", "MAX_TOTAL_BYTES", "Collected", "OutputFolder"]

MAX_FILES = 10
"""Files sent per run; more are named in one line, not read."""
MAX_TOTAL_BYTES = 2_500_000
"""All files of one run together (and so the largest one): the sandbox's answer is at most
4 MB of JSON, and files cross it in base64 (4/3 of their size) beside the printed text."""
MAX_FILE_BYTES = MAX_TOTAL_BYTES
MAX_NAME = 120
MAX_LINES = 12
"""Lines about files left out, at most (then one line counting the rest)."""
_LISTED = 10_000  # entries looked at: a folder of a million names must not stall the tool

_RASTER = {  # image types every platform shows inline, by their first bytes
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),
}
_TYPES = mimetypes.MimeTypes()  # the built-in table only: same answer inside and outside


@dataclass(slots=True)
class Collected:
    """What one run's folder gave: files to send and a line for each thing left out."""

    files: list[OutFile] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a file name in a chat, or None when it can."""
    if len(name) > MAX_NAME:
        return f"its name is longer than {MAX_NAME} characters"
    if name.startswith("."):
        return "it is hidden (its name starts with a dot)"
    for char in name:
        if 0xD800 <= ord(char) <= 0xDFFF:
            return "its name is not valid UTF-8"
        if char == "\\" or unicodedata.category(char)[0] == "C" or char in "\u2028\u2029":
            return f"its name holds the character U+{ord(char):04X}"
    return None


def mime_of(name: str, head: bytes) -> str:
    """The file's type by its extension; an image only when its bytes are a raster image."""
    mime = _TYPES.guess_type(name, strict=False)[0] or "application/octet-stream"
    if mime.startswith("image/"):
        magic = _RASTER.get(mime, ())
        if not any(head.startswith(m) for m in magic):
            return "application/octet-stream"  # SVG, or a "plot.png" that is not a PNG
    return mime


class OutputFolder:
    """A fresh folder for one run; :meth:`collect` reads back what the snippet left in it."""

    def __init__(self, path: str) -> None:
        os.makedirs(path, mode=0o700)
        self.path = path
        self._fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        opened = os.fstat(self._fd)
        self._identity = (opened.st_dev, opened.st_ino)

    def close(self) -> None:
        """Let go of the folder's handle."""
        os.close(self._fd)

    def collect(self, caption: str = "") -> Collected:
        """Read the plain files directly in the folder, within the limits, in name order."""
        result = Collected()
        try:  # the snippet may close our handle and open another folder under its number
            now = os.fstat(self._fd)
        except OSError:
            now = None
        if now is None or (now.st_dev, now.st_ino) != self._identity:
            result.refused.append("no files sent: the snippet closed the output folder's handle")
            return result
        entries: list[str] = []
        with os.scandir(self._fd) as listing:
            for entry in listing:
                entries.append(entry.name)
                if len(entries) >= _LISTED:
                    break
        total = 0
        left_over: list[str] = []
        for name in sorted(entries):
            shown = ascii(name)[1:-1]  # what the model reads: never a raw control character
            if (problem := name_problem(name)) is not None:
                result.refused.append(f"{shown}: not sent, {problem}")
                continue
            if len(result.files) >= MAX_FILES:
                left_over.append(name)
                continue
            read = self._read(name, MAX_TOTAL_BYTES - total)
            if isinstance(read, str):
                result.refused.append(f"{name}: not sent, {read}")
                continue
            total += len(read)
            result.files.append(OutFile(name, mime_of(name, read[:16]), read, caption=caption))
        if left_over:
            more = "more" if len(entries) < _LISTED else "or more"
            result.refused.append(
                f"{len(left_over)} {more} files not sent: at most {MAX_FILES} files per run "
                f"({', '.join(left_over[:3])}{', ...' if len(left_over) > 3 else ''})"
            )
        if len(result.refused) > MAX_LINES:  # a thousand bad names must not flood the answer
            rest = len(result.refused) - MAX_LINES
            del result.refused[MAX_LINES:]
            result.refused.append(f"... and {rest} more things in the output folder not sent")
        return result

    def _read(self, name: str, room: int) -> bytes | str:
        """The file's bytes, or why it was not read."""
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0)
        try:
            fd = os.open(name, flags, dir_fd=self._fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # O_NOFOLLOW met a link
                return "it is a symbolic link"
            return f"it could not be opened ({exc.strerror})"
        try:
            info = os.fstat(fd)
            if stat.S_ISDIR(info.st_mode):
                return "it is a folder (only files directly in the output folder are sent)"
            if not stat.S_ISREG(info.st_mode):
                return "it is not a plain file (a FIFO, socket or device)"
            if info.st_nlink != 1:
                return "it has other hard links"
            limit = min(MAX_FILE_BYTES, room)
            if info.st_size > limit:
                return _too_big(info.st_size)
            data = bytearray()
            while len(data) <= limit and (
                chunk := os.read(fd, min(1 << 20, limit + 1 - len(data)))
            ):
                data += chunk
            if len(data) > limit:
                return _too_big(len(data))
            return bytes(data)
        finally:
            os.close(fd)


def _too_big(size: int) -> str:
    if size <= MAX_FILE_BYTES:  # small enough alone: the files before it took the room
        return f"the files of one run may hold {MAX_TOTAL_BYTES:,} bytes together"
    return f"it has {size:,} bytes, more than the {MAX_FILE_BYTES:,} a file may have"
