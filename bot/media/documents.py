"""Extract the text of an untrusted document: PDF, DOCX, plain text, Markdown, CSV, source code.

Every reader is bounded before it reads: at most ``max_pages`` PDF pages and ``max_chars``
characters are extracted (the result says when it stopped early, so the caller can summarise or
tell the user); a DOCX is a zip file, and the uncompressed sizes of its parts are checked
before any part is inflated (a zip bomb is refused, and Python's ``zipfile`` never inflates past
a part's declared size); python-docx parses XML without resolving entities; pypdf caps every
stream it inflates. Blocking: call it in a thread or through the decoding sandbox.
"""

from __future__ import annotations

import io
import logging
import zipfile
from dataclasses import dataclass
from typing import Any

from opencomputer.bot.media.limits import (
    DEFAULT_MAX_CHARS,
    DEFAULT_MAX_PAGES,
    DEFAULT_MAX_UNZIPPED,
    MediaError,
)

__all__ = ["DOCX_MIME", "DocumentText", "extract_text", "is_text_mime"]

logger = logging.getLogger(__name__)

DOCX_MIME = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
_TEXT_APPLICATION = {
    "application/json",
    "application/xml",
    "application/x-yaml",
    "application/yaml",
    "application/toml",
    "application/csv",
    "application/javascript",
    "application/x-sh",
    "application/x-python",
    "application/sql",
}
_MAX_ZIP_ENTRIES = 2000
_MAX_DECLARED_PAGES = 20_000
"""Listing a PDF's pages walks its whole page tree (about 0.07 s per 1,000 pages)."""


@dataclass(frozen=True, slots=True)
class DocumentText:
    """What was extracted; ``truncated`` when a page or character limit stopped it early."""

    text: str
    truncated: bool = False
    pages: int | None = None
    """PDF pages in the file (not only those read)."""

    def __str__(self) -> str:
        return self.text


def is_text_mime(mime: str) -> bool:
    """Whether ``mime`` is read as plain text (text/*, JSON, YAML, CSV, source code...)."""
    base = mime.split(";")[0].strip().lower()
    return base.startswith("text/") or base in _TEXT_APPLICATION or base.endswith(("+json", "+xml"))


def extract_text(
    data: bytes,
    mime: str,
    max_chars: int = DEFAULT_MAX_CHARS,
    max_pages: int = DEFAULT_MAX_PAGES,
    *,
    max_unzipped: int = DEFAULT_MAX_UNZIPPED,
) -> DocumentText:
    """The text of ``data`` (``mime`` as sniffed from the bytes, never from the file name).

    Raises :class:`MediaError` (one line) for an unsupported type, an encrypted or damaged
    PDF, a zip bomb, or binary data posing as text.
    """
    base = mime.split(";")[0].strip().lower()
    if base == "application/pdf":
        return _pdf(data, max_chars, max_pages)
    if base == DOCX_MIME:
        return _docx(data, max_chars, max_unzipped)
    if is_text_mime(base):
        return _cut(_decode_text(data), max_chars)
    raise MediaError(
        f"documents of type {base or 'unknown'} cannot be read; send a PDF, DOCX or a text file"
    )


def _cut(
    text: str, max_chars: int, *, truncated: bool = False, pages: int | None = None
) -> DocumentText:
    if len(text) > max_chars:
        return DocumentText(text[:max_chars], True, pages)
    return DocumentText(text, truncated, pages)


def _pdf(data: bytes, max_chars: int, max_pages: int) -> DocumentText:
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError, PdfReadError, PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            # Many PDFs are "encrypted" with an empty user password (copy protection only).
            opened: object
            try:
                opened = reader.decrypt("")
            except (NotImplementedError, PyPdfError):
                opened = 0
            if not opened:
                raise MediaError("the PDF is password-protected; send a copy without the password")
        declared = _declared_pages(reader)
        if declared > _MAX_DECLARED_PAGES:  # refused before pypdf walks the whole page tree
            raise MediaError(
                f"the PDF has {declared:,} pages, more than {_MAX_DECLARED_PAGES:,} we open; "
                "send the part that matters"
            )
        total = len(reader.pages)
        parts: list[str] = []
        size = 0
        read = 0
        for page in reader.pages:
            if read >= max_pages or size > max_chars:
                break
            text = page.extract_text() or ""
            parts.append(text)
            size += len(text) + 2
            read += 1
    except MediaError:
        raise
    except FileNotDecryptedError:
        raise MediaError(
            "the PDF is password-protected; send a copy without the password"
        ) from None
    except (PdfReadError, PyPdfError, ValueError, KeyError, TypeError, AttributeError) as exc:
        logger.debug("PDF refused", exc_info=True)
        raise MediaError(f"the PDF is damaged and cannot be read ({_why(exc)})") from None
    except RecursionError:
        raise MediaError("the PDF is built to be unreadable (nested too deeply)") from None
    text = "\n\n".join(p.strip() for p in parts).strip()
    if not text and total:
        raise MediaError("the PDF has no text layer (scanned pages?); send the pages as images")
    return _cut(text, max_chars, truncated=read < total, pages=total)


def _declared_pages(reader: Any) -> int:
    """The page count the PDF's page tree claims (``/Count``); 0 when it says nothing usable."""
    try:
        count = reader.trailer["/Root"]["/Pages"]["/Count"]
        return int(count) if isinstance(count, int) else 0
    except (KeyError, TypeError, ValueError, AttributeError):
        return 0


def _docx(data: bytes, max_chars: int, max_unzipped: int) -> DocumentText:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError):
        raise MediaError("the DOCX file is damaged (not a valid zip archive)") from None
    with archive:
        entries = archive.infolist()
        unzipped = sum(entry.file_size for entry in entries)
        if len(entries) > _MAX_ZIP_ENTRIES or unzipped > max_unzipped:
            raise MediaError(
                f"the DOCX file unpacks to {unzipped / 2**20:,.0f} MB in {len(entries)} parts, "
                f"over the {max_unzipped / 2**20:g} MB limit (a zip bomb?)"
            )
        if "word/document.xml" not in archive.namelist():
            raise MediaError("the file is a zip archive but not a Word document")
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        document = docx.Document(io.BytesIO(data))
        parts: list[str] = []
        size = 0
        for paragraph in document.paragraphs:
            parts.append(paragraph.text)
            size += len(paragraph.text) + 1
            if size > max_chars:
                break
        else:
            for table in document.tables:
                for row in table.rows:
                    line = "\t".join(cell.text for cell in row.cells)
                    parts.append(line)
                    size += len(line) + 1
                    if size > max_chars:
                        break
    except (PackageNotFoundError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise MediaError(f"the DOCX file is damaged ({_why(exc)})") from None
    except Exception as exc:  # lxml's XMLSyntaxError and friends: still a damaged file
        logger.debug("DOCX refused", exc_info=True)
        raise MediaError(f"the DOCX file is damaged ({type(exc).__name__})") from None
    return _cut("\n".join(parts).strip(), max_chars, truncated=size > max_chars)


def _decode_text(data: bytes) -> str:
    """UTF-8 when it is; otherwise the charset the bytes look like; binary is refused."""
    if b"\0" in data[:8192] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise MediaError("this file is binary, not text; send a PDF, DOCX or a text file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(data[:1_000_000]).best()
    if best is None:
        return data.decode("utf-8", errors="replace")
    return data.decode(best.encoding, errors="replace")


def _why(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:160]
