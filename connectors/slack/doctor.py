"""``opencomputer doctor`` check for Slack: is the bot token accepted (``auth.test``)."""

from __future__ import annotations

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from opencomputer.bot.checks import Check
from opencomputer.bot.config import Settings

__all__ = ["diagnose"]


async def diagnose(settings: Settings) -> list[Check]:
    """One check; none when Slack is not configured."""
    if not settings.slack_bot_token:
        return []
    token = settings.slack_bot_token.get_secret_value()
    client = AsyncWebClient(token=token, base_url=settings.slack_api_url, timeout=10)
    mode = "Socket Mode" if settings.slack_app_token else "HTTP Events API at /slack/events"
    try:
        auth = await client.auth_test()
    except SlackApiError as exc:
        error = exc.response.get("error", "error") if exc.response is not None else "error"
        return [
            Check(
                "slack",
                False,
                f"Slack rejected SLACK_BOT_TOKEN ({error}): reinstall the "
                "app to the workspace and copy its Bot User OAuth Token",
            )
        ]
    except Exception as exc:  # network trouble: say where we tried
        reason = str(exc).replace(token, "***")
        return [Check("slack", False, f"cannot reach Slack at {settings.slack_api_url}: {reason}")]
    if not settings.slack_app_token and not settings.slack_signing_secret:
        return [Check("slack", False, "SLACK_SIGNING_SECRET is missing (needed for HTTP events)")]
    return [
        Check("slack", True, f"token accepted for {auth.get('user')} in {auth.get('team')}; {mode}")
    ]
