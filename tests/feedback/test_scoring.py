from __future__ import annotations

import math

import pytest

from opencomputer.bot.feedback.scoring import EmojiTable, normalise_emoji
from opencomputer.bot.feedback.stats import Posterior, prob_greater


@pytest.mark.parametrize(
    ("emoji", "platform", "score"),
    [
        ("👍", "telegram", 1),
        ("❤", "telegram", 1),  # Telegram sends the heart without a variation selector
        ("❤️", "matrix", 1),
        ("🎉", "discord", 1),
        ("🙏🏽", "discord", 1),  # skin tone
        ("👍🏿", "matrix", 1),
        ("👍️", "matrix", 1),  # variation selector after a thumbs-up
        ("+1", "slack", 1),
        ("thumbsup", "slack", 1),
        ("+1::skin-tone-4", "slack", 1),
        (":thumbsup:", "slack", 1),
        ("heart", "slack", 1),
        ("tada", "slack", 1),
        ("pray", "slack", 1),
        ("<:thumbsup:112233>", "discord", 1),  # custom emoji named like an alias
        ("👎", "telegram", -1),
        ("👎🏻", "discord", -1),
        ("-1", "slack", -1),
        ("thumbsdown", "slack", -1),
        ("😕", "matrix", -1),
        ("confused", "slack", -1),
        ("😡", "telegram", -1),
        ("rage", "slack", -1),
        ("🔥", "telegram", None),
        ("smile", "slack", None),
        ("<:partyparrot:42>", "discord", None),
    ],
)
def test_default_table_maps_every_platform_spelling(
    emoji: str, platform: str, score: int | None
) -> None:
    assert EmojiTable().score(emoji, platform) == score


def test_normalise_strips_modifiers_but_keeps_the_base_emoji() -> None:
    assert normalise_emoji("👍🏽") == "👍"
    assert normalise_emoji("❤️") == "❤"
    assert normalise_emoji("+1::skin-tone-2", "slack") == "👍"
    assert normalise_emoji("<a:tada:99>", "discord") == "🎉"
    assert normalise_emoji("Unknown_Name") == "unknown_name"


def test_table_from_settings_replaces_the_defaults() -> None:
    table = EmojiTable.from_csv("🔥, ok_hand", "💩")
    assert table.score("🔥") == 1
    assert table.score("ok_hand") == 1
    assert table.score("💩") == -1
    assert table.score("👍") is None  # not in the configured table any more
    assert EmojiTable.from_csv("", None).score("👍") == 1  # empty keeps the defaults


def _exact(a: Posterior, b: Posterior) -> float:
    """P(X_a > X_b) for integer Beta parameters (closed form)."""
    total = 0.0
    for i in range(int(a.alpha)):
        total += math.exp(
            math.lgamma(b.alpha + i)
            + math.lgamma(a.beta + b.beta)
            - math.lgamma(b.alpha + i + a.beta + b.beta)
            - math.log(a.beta + i)
            - (math.lgamma(1 + i) + math.lgamma(a.beta) - math.lgamma(1 + i + a.beta))
            - (math.lgamma(b.alpha) + math.lgamma(b.beta) - math.lgamma(b.alpha + b.beta))
        )
    return total


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ((9, 4), (4, 9)),
        ((2, 8), (5, 5)),
        ((0, 5), (3, 2)),
        ((299, 99), (279, 119)),
        ((0, 0), (0, 0)),
    ],
)
def test_prob_greater_matches_the_closed_form(a: tuple[int, int], b: tuple[int, int]) -> None:
    pa, pb = Posterior(*a), Posterior(*b)
    assert prob_greater(pa, pb) == pytest.approx(_exact(pa, pb), abs=2e-3)


def test_margin_makes_the_claim_harder() -> None:
    a, b = Posterior(40, 10), Posterior(25, 25)
    assert prob_greater(a, b) > prob_greater(a, b, 0.1) > prob_greater(a, b, 0.3)
    assert prob_greater(a, b, 0.0) + prob_greater(b, a, 0.0) == pytest.approx(1.0, abs=2e-3)
