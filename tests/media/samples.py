"""Small real-looking files: the first bytes are what a real encoder writes."""

from __future__ import annotations

import struct
import zlib

__all__ = ["EXE", "JPEG", "OGG_OPUS", "PDF", "PNG", "big"]


def _ogg_page(payload: bytes, *, first: bool, seq: int) -> bytes:
    header = b"OggS" + bytes([0, 2 if first else 0]) + struct.pack("<qII", 0, 1234, seq)
    segments = bytes([len(payload)]) if len(payload) < 255 else b""
    return header + struct.pack("<I", 0) + bytes([len(segments)]) + segments + payload


OGG_OPUS = _ogg_page(
    b"OpusHead" + bytes([1, 1]) + struct.pack("<HIhB", 312, 48000, 0, 0), first=True, seq=0
) + _ogg_page(b"OpusTags" + struct.pack("<I", 2) + b"oc" + struct.pack("<I", 0), first=False, seq=1)
"""The two header pages of an Ogg Opus voice note, as Telegram's clients record them."""

JPEG = (
    b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    + b"\xff\xdb\x00\x43\x00"
    + bytes(range(64))
    + b"\xff\xd9"
)


def _png() -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00\x00"))
        + chunk(b"IEND", b"")
    )


PNG = _png()

PDF = (
    b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
    b"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\n"
    b"trailer << /Root 1 0 R >>\n%%EOF\n"
)

EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 48 + b"PE\x00\x00"
"""The start of a Windows program (what a hostile ``report.pdf`` really is)."""


def big(size: int) -> bytes:
    """A PDF-looking file of ``size`` bytes (bigger than the cap the tests set)."""
    return PDF + b"0" * (size - len(PDF))
