"""Attachments decoded in the plugin sandbox: same answers, and a decoder gone wild is contained."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image

from opencomputer.bot.media.limits import MediaError
from opencomputer.bot.plugins.media_sandbox import decode_in_sandbox
from opencomputer.bot.plugins.sandbox import CallLimits, Sandbox
from opencomputer.bot.testing.fake_speech import sine_audio

SANDBOX = Sandbox(mode="on")
pytestmark = pytest.mark.skipif(
    SANDBOX.refusal() is not None, reason=f"no sandbox here: {SANDBOX.refusal()}"
)


def _exif_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x8825] = {1: "N", 2: (52.0, 31.0, 12.5)}
    out = io.BytesIO()
    Image.new("RGB", (2000, 1000), (10, 20, 30)).save(out, format="JPEG", exif=exif)
    return out.getvalue()


def _png_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * (width * 3 + 1) * 64, 9)  # a few rows; the rest is missing
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


async def test_image_document_and_audio_decode_in_the_sandbox() -> None:
    data, mime = await decode_in_sandbox(
        "prepare_image", _exif_jpeg(), sandbox=SANDBOX, max_side=500
    )
    assert mime == "image/jpeg" and b"Exif" not in data
    assert Image.open(io.BytesIO(data)).size == (500, 250)
    doc = await decode_in_sandbox(
        "extract_text", b"name,qty\nApfel,3\n", sandbox=SANDBOX, mime="text/csv"
    )
    assert (doc.text, doc.truncated) == ("name,qty\nApfel,3\n", False)
    wav = await decode_in_sandbox("to_wav", sine_audio(1.0), sandbox=SANDBOX)
    assert wav[:4] == b"RIFF" and len(wav) == 44 + 16000 * 2


async def test_refusals_come_back_as_the_same_one_line() -> None:
    with pytest.raises(MediaError) as info:
        await decode_in_sandbox("prepare_image", b"%PDF-1.7 not an image", sandbox=SANDBOX)
    assert str(info.value) == "this file is not an image we can read (JPEG, PNG, GIF, WebP or BMP)"


async def test_a_decoder_past_its_memory_limit_is_stopped_not_the_server() -> None:
    # 12000x12000 RGB is 432 MB of pixels: within a raised pixel cap, over a 256 MB sandbox.
    bomb = _png_header(12_000, 12_000)
    small = CallLimits(timeout=30, memory_mb=256, cpu_seconds=20, processes=16)
    with pytest.raises(MediaError) as info:
        await decode_in_sandbox(
            "prepare_image", bomb, sandbox=SANDBOX, limits=small, max_pixels=200_000_000
        )
    assert str(info.value) == "the file needs more than the 256 MB of memory allowed to decode it"


async def test_a_decoder_past_its_time_limit_is_stopped() -> None:
    hasty = CallLimits(timeout=0.05, memory_mb=512, cpu_seconds=5, processes=16)
    with pytest.raises(MediaError, match=r"^the file could not be decoded: stopped after 0\.05 s"):
        await decode_in_sandbox("to_wav", sine_audio(1.0), sandbox=SANDBOX, limits=hasty)
