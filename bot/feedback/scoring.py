"""Reactions to scores: a configurable emoji table plus the spellings platforms use.

Platforms disagree on how an emoji arrives: Slack sends names (``+1``, ``thumbsup``,
``+1::skin-tone-3``), Discord sends unicode or ``<:name:id>`` for custom emoji, Matrix and
Telegram send unicode, sometimes with a variation selector (``❤️`` vs ``❤``) or a skin tone
(``👍🏽``). Everything is normalised to one base emoji before it is looked up.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

__all__ = [
    "DEFAULT_NEGATIVE",
    "DEFAULT_POSITIVE",
    "PLATFORM_ALIASES",
    "EmojiTable",
    "normalise_emoji",
]

DEFAULT_POSITIVE = ("👍", "❤️", "🎉", "🙏")
DEFAULT_NEGATIVE = ("👎", "😕", "😡")

# Names -> unicode. "*" applies on every platform (names never collide with emoji).
PLATFORM_ALIASES: dict[str, dict[str, str]] = {
    "*": {
        "+1": "👍",
        "thumbsup": "👍",
        "thumbs_up": "👍",
        "like": "👍",
        "-1": "👎",
        "thumbsdown": "👎",
        "thumbs_down": "👎",
        "dislike": "👎",
        "heart": "❤",
        "red_heart": "❤",
        "tada": "🎉",
        "party_popper": "🎉",
        "pray": "🙏",
        "folded_hands": "🙏",
        "confused": "😕",
        "confused_face": "😕",
        "rage": "😡",
        "pouting_face": "😡",
        "enraged_face": "😡",
    },
    # Slack's names for the same emoji are covered by "*"; it also has these spellings.
    "slack": {"heavy_heart_exclamation_mark_ornament": "❣", "thumbsup_all": "👍"},
    # Discord custom emoji arrive as <:name:id>; the name is looked up like an alias.
    "discord": {},
}

_STRIP = dict.fromkeys(
    [0xFE0E, 0xFE0F, *range(0x1F3FB, 0x1F400)],  # variation selectors, skin tones
)
_SLACK_TONE = re.compile(r"::skin-tone-\d$")
_DISCORD_CUSTOM = re.compile(r"^<a?:([\w~+-]+):\d+>$")


def normalise_emoji(raw: str, platform: str = "*") -> str:
    """One canonical spelling: base unicode emoji, or a lower-case name if it is unknown."""
    text = raw.strip()
    custom = _DISCORD_CUSTOM.match(text)
    if custom:
        text = custom.group(1)
    text = _SLACK_TONE.sub("", text)
    if len(text) > 2 and text.startswith(":") and text.endswith(":"):
        text = text[1:-1]
    text = text.translate(_STRIP)
    if text.isascii():
        name = text.lower()
        for table in (PLATFORM_ALIASES.get(platform, {}), PLATFORM_ALIASES["*"]):
            if name in table:
                return table[name].translate(_STRIP)
        return name
    return text


class EmojiTable:
    """Maps a reaction (any platform's spelling) to +1, -1 or None (not a rating)."""

    def __init__(
        self,
        positive: Iterable[str] = DEFAULT_POSITIVE,
        negative: Iterable[str] = DEFAULT_NEGATIVE,
    ) -> None:
        self._scores: dict[str, int] = {}
        for emoji in positive:
            self._scores[normalise_emoji(emoji)] = 1
        for emoji in negative:
            self._scores[normalise_emoji(emoji)] = -1

    @classmethod
    def from_csv(cls, positive: str | None, negative: str | None) -> EmojiTable:
        """Build from comma-separated settings (empty or None keeps the defaults)."""

        def split(value: str | None, default: tuple[str, ...]) -> list[str]:
            items = [part.strip() for part in (value or "").split(",") if part.strip()]
            return items or list(default)

        return cls(split(positive, DEFAULT_POSITIVE), split(negative, DEFAULT_NEGATIVE))

    @property
    def scores(self) -> Mapping[str, int]:
        """Canonical emoji -> score."""
        return dict(self._scores)

    def score(self, emoji: str, platform: str = "*") -> int | None:
        """+1, -1, or None when this reaction is not a rating."""
        return self._scores.get(normalise_emoji(emoji, platform))
