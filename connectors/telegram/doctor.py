"""``opencomputer doctor`` checks for Telegram.

Is the token good, and does Telegram agree with the configured mode (webhook or polling) and
group trigger? It runs in the doctor's own process, so it asks the Bot API directly
(``getMe``, ``getWebhookInfo``) instead of reading a running connector's state.
"""

from __future__ import annotations

from telegram import Bot
from telegram.error import InvalidToken, TelegramError
from telegram.request import HTTPXRequest

from opencomputer.bot.checks import Check
from opencomputer.bot.config import Settings
from opencomputer.connectors.telegram.connector import api_base_url

__all__ = ["diagnose"]


async def diagnose(settings: Settings) -> list[Check]:
    """One or more checks; none when Telegram is not configured."""
    if not settings.telegram_bot_token:  # unset or empty
        return []
    token = settings.telegram_bot_token.get_secret_value()
    base = api_base_url(settings.telegram_base_url)
    bot = Bot(token, base_url=base, request=HTTPXRequest(connect_timeout=5, read_timeout=10))
    try:
        await bot.initialize()  # getMe
        info = await bot.get_webhook_info()
    except InvalidToken:
        return [
            Check(
                "telegram",
                False,
                "the Bot API rejected TELEGRAM_BOT_TOKEN: copy the token from @BotFather again",
            )
        ]
    except TelegramError as exc:
        reason = str(exc).replace(token, "***")
        return [Check("telegram", False, f"cannot reach {settings.telegram_base_url}: {reason}")]
    finally:
        await bot.shutdown()

    me = bot.bot
    checks = [Check("telegram", True, f"token valid for @{me.username}")]
    wanted = settings.telegram_webhook_url
    if wanted and info.url != wanted:
        now = info.url or "no webhook"
        checks.append(
            Check(
                "telegram webhook",
                True,
                f"Telegram has {now}; opencomputer sets {wanted} when it starts",
                warning=True,
            )
        )
    elif wanted and info.last_error_message:
        checks.append(
            Check(
                "telegram webhook",
                False,
                f"Telegram's last call to {wanted} failed: {info.last_error_message} "
                f"({info.pending_update_count} updates waiting). Check the proxy and OC_HTTP_PORT.",
            )
        )
    elif wanted:
        checks.append(Check("telegram webhook", True, f"registered at {wanted}"))
    elif info.url:
        checks.append(
            Check(
                "telegram mode",
                True,
                f"a webhook is set ({info.url}); long polling removes it when opencomputer starts",
                warning=True,
            )
        )
    if settings.group_trigger == "always" and not me.can_read_all_group_messages:
        checks.append(
            Check(
                "telegram privacy",
                True,
                "OC_GROUP_TRIGGER=always but privacy mode is on, so in groups the bot only sees "
                "mentions, replies and commands: BotFather → /setprivacy → Disable",
                warning=True,
            )
        )
    return checks
