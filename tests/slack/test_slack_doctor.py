"""`opencomputer doctor` asks Slack (the fake Web API on loopback) whether the token works."""

from __future__ import annotations

from collections.abc import Callable

from opencomputer.bot.config import Settings
from opencomputer.bot.doctor import run_doctor
from opencomputer.connectors.slack.doctor import diagnose
from tests.slack.fake_slack_api import FakeSlackApi


async def test_accepted_token_is_reported_with_the_mode(
    slack_settings: Callable[..., Settings], fake_slack: FakeSlackApi
) -> None:
    [check] = await diagnose(slack_settings())
    assert check.ok and check.name == "slack"
    assert "token accepted" in check.detail and "HTTP Events API" in check.detail
    assert [c.method for c in fake_slack.calls] == ["auth.test"]


async def test_rejected_token_fails_doctor_without_leaking_it(
    slack_settings: Callable[..., Settings], fake_slack: FakeSlackApi
) -> None:
    settings = slack_settings(slack_bot_token="xoxb-wrong-token-123456")
    [check] = await diagnose(settings)
    assert not check.ok
    assert "rejected SLACK_BOT_TOKEN" in check.detail and "xoxb-wrong" not in check.detail
    lines: list[str] = []
    assert await run_doctor(settings, echo=lines.append) == 1
    assert any(line.startswith("[FAIL] slack: Slack rejected SLACK_BOT_TOKEN") for line in lines)
