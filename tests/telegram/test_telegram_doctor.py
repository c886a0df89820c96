"""``opencomputer.connectors.telegram.doctor.diagnose`` against the fake Bot API."""

from __future__ import annotations

from opencomputer.connectors.telegram.doctor import diagnose
from tests.telegram.fake_bot_api import FakeBotApi


async def test_not_configured_means_no_checks(tg_settings) -> None:
    assert await diagnose(tg_settings(TELEGRAM_BOT_TOKEN="")) == []


async def test_valid_token(tg_settings) -> None:
    [check] = await diagnose(tg_settings())
    assert check.ok and not check.warning
    assert check.detail == "token valid for @oc_test_bot"


async def test_rejected_token_fails_without_showing_it(tg_settings) -> None:
    [check] = await diagnose(tg_settings(TELEGRAM_BOT_TOKEN="1:bad-token-value"))
    assert not check.ok
    assert "rejected TELEGRAM_BOT_TOKEN" in check.detail and "bad-token-value" not in check.detail


async def test_webhook_and_privacy_mismatches_are_reported(tg: FakeBotApi, tg_settings) -> None:
    url = "https://bot.example.org/telegram"
    checks = await diagnose(tg_settings(TELEGRAM_WEBHOOK_URL=url, OC_GROUP_TRIGGER="always"))
    assert [(c.name, c.warning) for c in checks] == [
        ("telegram", False),
        ("telegram webhook", True),
        ("telegram privacy", True),
    ]
    assert "opencomputer sets https://bot.example.org/telegram" in checks[1].detail
    tg.webhook = {"url": url}
    tg.webhook_error = "Connection refused"
    checks = await diagnose(tg_settings(TELEGRAM_WEBHOOK_URL=url))
    assert not checks[1].ok and "Connection refused" in checks[1].detail
