"""What every media decoder shares: the one-line refusal and the default caps.

A voice note, a photo or a PDF comes from anyone who can message the bot, so every decoder
checks sizes before it decodes, and says what is wrong in one line the user can act on.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_MAX_AUDIO_SECONDS",
    "DEFAULT_MAX_CHARS",
    "DEFAULT_MAX_IMAGE_PIXELS",
    "DEFAULT_MAX_IMAGE_SIDE",
    "DEFAULT_MAX_PAGES",
    "DEFAULT_MAX_UNZIPPED",
    "MediaError",
]

DEFAULT_MAX_AUDIO_SECONDS = 600.0
"""Ten minutes: a long voice note; longer recordings are refused before they are sent."""
DEFAULT_MAX_IMAGE_SIDE = 1568
"""The longest side sent to a model (what common vision models work at; more only costs)."""
DEFAULT_MAX_IMAGE_PIXELS = 40_000_000
"""Refused before decoding: a 40-megapixel photo decodes to 120 MB of RGB already."""
DEFAULT_MAX_PAGES = 200
DEFAULT_MAX_CHARS = 200_000
DEFAULT_MAX_UNZIPPED = 50 * 1024 * 1024
"""Uncompressed size of all the parts of an Office file together (zip-bomb protection)."""


class MediaError(ValueError):
    """An attachment was refused or could not be processed; ``str()`` is one line for the user."""
