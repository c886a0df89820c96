"""Make an untrusted image safe and small enough to hand to a vision model.

A photo from a chat may be a decompression bomb (a few kilobytes of PNG that decode to
gigabytes), truncated, or not an image at all; a phone's JPEG carries EXIF with the GPS
position it was taken at. :func:`prepare_image` checks the dimensions from the header before
decoding anything, decodes only formats we expect, turns the picture upright, downscales it,
and re-encodes it from its pixels alone, so no metadata (EXIF, GPS, XMP, comments, text chunks)
survives. Blocking: call it in a thread or through the decoding sandbox.
"""

from __future__ import annotations

import io
import re
import warnings

from PIL import Image, ImageOps, UnidentifiedImageError

from opencomputer.bot.media.limits import (
    DEFAULT_MAX_IMAGE_PIXELS,
    DEFAULT_MAX_IMAGE_SIDE,
    MediaError,
)

__all__ = ["READABLE_FORMATS", "prepare_image"]

READABLE_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP")
"""What we decode: what phones and messengers send. Exotic decoders are attack surface."""

_NAMES = "JPEG, PNG, GIF, WebP or BMP"


def prepare_image(
    data: bytes,
    max_side: int = DEFAULT_MAX_IMAGE_SIDE,
    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
) -> tuple[bytes, str]:
    """The image re-encoded without metadata, longest side at most ``max_side``; and its MIME.

    JPEG for photos, PNG when the image has transparency. Raises :class:`MediaError` (one line)
    for a file that is not an image, too many pixels, or damaged data.
    """
    with warnings.catch_warnings():
        # Pillow warns (and our test settings make warnings errors) near its own bomb limit;
        # our explicit check below is stricter and says it in words.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=READABLE_FORMATS)
        except UnidentifiedImageError:
            raise MediaError(f"this file is not an image we can read ({_NAMES})") from None
        except Image.DecompressionBombError as exc:  # Pillow's own limit, checked in open()
            raise MediaError(_too_big(_pixels(exc), max_pixels)) from None
        except (OSError, ValueError, SyntaxError) as exc:  # a broken header
            raise MediaError(f"the image is damaged ({_why(exc)})") from None
        with image:
            width, height = image.size
            if width <= 0 or height <= 0 or width * height > max_pixels:
                raise MediaError(_too_big((width, height), max_pixels))
            try:
                image.seek(0)  # the first frame of an animation
                image.load()
                upright = ImageOps.exif_transpose(image) or image
            except Image.DecompressionBombError:
                raise MediaError(_too_big((width, height), max_pixels)) from None
            except (OSError, ValueError, SyntaxError, EOFError) as exc:
                raise MediaError(f"the image is damaged or cut short ({_why(exc)})") from None
            return _encode(upright, max_side)


def _encode(image: Image.Image, max_side: int) -> tuple[bytes, str]:
    """Pixels only: a fresh image carries no ``info`` (EXIF, ICC, text chunks) into the encoder."""
    alpha = image.mode in ("RGBA", "LA", "PA") or (
        image.mode == "P" and "transparency" in image.info
    )
    pixels = image.convert("RGBA" if alpha else "RGB")
    if max(pixels.size) > max_side:
        pixels.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    clean = Image.new(pixels.mode, pixels.size)
    clean.paste(pixels)
    out = io.BytesIO()
    if alpha:
        clean.save(out, format="PNG", optimize=True)
        return out.getvalue(), "image/png"
    clean.save(out, format="JPEG", quality=85, optimize=True)
    return out.getvalue(), "image/jpeg"


def _pixels(exc: BaseException) -> int | None:
    """The pixel count in Pillow's bomb message ("Image size (N pixels) exceeds limit...")."""
    found = re.search(r"\((\d+) pixels\)", str(exc))
    return int(found.group(1)) if found else None


def _too_big(size: tuple[int, int] | int | None, max_pixels: int) -> str:
    megapixels = max_pixels / 1_000_000
    if not isinstance(size, tuple):
        count = f"{size / 1_000_000:,.0f} megapixels" if size else "too many pixels"
        return f"the image has {count}, over the {megapixels:g}-megapixel limit; send a smaller one"
    return (
        f"the image is {size[0]}×{size[1]} pixels, over the {megapixels:g}-megapixel limit; "
        "send a smaller one"
    )


def _why(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:160]
