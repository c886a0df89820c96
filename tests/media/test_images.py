"""Untrusted images: metadata stripped, bombs and broken files refused before they cost memory."""

from __future__ import annotations

import io
import struct
import time
import zlib

import pytest
from PIL import Image, PngImagePlugin

from opencomputer.bot.media.images import prepare_image
from opencomputer.bot.media.limits import MediaError

GPS_IFD = 0x8825
ORIENTATION = 0x0112


def _phone_photo(size: tuple[int, int] = (4000, 3000)) -> bytes:
    """A JPEG as a phone writes it: EXIF with GPS position, camera model, rotated 90°."""
    image = Image.linear_gradient("L").resize(size).convert("RGB")
    exif = Image.Exif()
    exif[0x0110] = "Pixel 9 Pro"  # Model
    exif[ORIENTATION] = 6  # stored sideways; shown rotated 90° clockwise
    exif[GPS_IFD] = {1: "N", 2: (52.0, 31.0, 12.5), 3: "E", 4: (13.0, 24.0, 36.0)}
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif, comment=b"home")
    return out.getvalue()


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_bomb(width: int, height: int) -> bytes:
    """A valid PNG header claiming ``width``×``height`` (8-bit grey) with a tiny IDAT."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * 4096, 9)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    )


def test_phone_photo_loses_gps_and_exif_and_is_downscaled_upright() -> None:
    photo = _phone_photo()
    with Image.open(io.BytesIO(photo)) as original:
        assert original.getexif().get_ifd(GPS_IFD)[2] == (52.0, 31.0, 12.5)  # the attack surface
    data, mime = prepare_image(photo, max_side=1568)
    assert mime == "image/jpeg"
    assert b"Exif" not in data and b"Pixel 9" not in data and b"home" not in data
    with Image.open(io.BytesIO(data)) as clean:
        assert clean.format == "JPEG"
        assert not clean.getexif()
        assert clean.info.get("exif") is None
        assert clean.size == (1176, 1568)  # 4000×3000 turned upright (orientation 6), scaled


def test_png_with_transparency_stays_png_without_text_chunks() -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "secret location")
    out = io.BytesIO()
    Image.new("RGBA", (64, 32), (255, 0, 0, 128)).save(out, format="PNG", pnginfo=info)
    data, mime = prepare_image(out.getvalue())
    assert mime == "image/png" and b"secret" not in data
    with Image.open(io.BytesIO(data)) as clean:
        assert (clean.size, clean.mode) == ((64, 32), "RGBA")


def test_png_bomb_is_refused_before_decoding() -> None:
    bomb = _png_bomb(100_000, 100_000)  # ten gigapixels in ~100 bytes
    assert len(bomb) < 200
    started = time.perf_counter()
    with pytest.raises(MediaError) as info:
        prepare_image(bomb)
    assert time.perf_counter() - started < 1.0
    assert str(info.value) == (
        "the image has 10,000 megapixels, over the 40-megapixel limit; send a smaller one"
    )


def test_a_lower_pixel_limit_is_honoured() -> None:
    with pytest.raises(MediaError, match="over the 1-megapixel limit"):
        prepare_image(_png_bomb(2000, 2000), max_pixels=1_000_000)


def test_truncated_image_is_refused_in_one_line() -> None:
    photo = _phone_photo((800, 600))
    with pytest.raises(MediaError) as info:
        prepare_image(photo[: len(photo) // 2])
    message = str(info.value)
    assert message.startswith("the image is damaged or cut short") and "\n" not in message


@pytest.mark.parametrize(
    "data",
    [
        b"%PDF-1.7\n" + b"0" * 2000,  # a PDF named photo.png
        b"",
        b"\x89PNG\r\n\x1a\n",  # a signature and nothing else
    ],
)
def test_non_images_are_refused(data: bytes) -> None:
    with pytest.raises(MediaError, match=r"not an image|damaged"):
        prepare_image(data)


def test_formats_we_do_not_decode_are_refused() -> None:
    out = io.BytesIO()
    Image.new("RGB", (8, 8)).save(out, format="TIFF")
    with pytest.raises(MediaError, match=r"not an image we can read \(JPEG, PNG"):
        prepare_image(out.getvalue())
