"""A replayed, validly signed Slack slash command runs once.

The attacker captured one signed request (body, timestamp, signature) and posts it again to the
real ``/slack/events`` route of a running App within Slack's five-minute signature window. The
command is ``/oc reset``: each run bumps the conversation's epoch and posts one answer, so both
count executions exactly.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest

from opencomputer.bot.app import App
from opencomputer.bot.config import Settings
from tests.slack.fake_slack_api import FakeSlackApi, signed_headers
from tests.slack.slack_helpers import SECRET, TOKEN, fake_slack

__all__ = ["fake_slack"]


@pytest.fixture
async def running(
    make_settings: Callable[..., Settings], fake_slack: FakeSlackApi
) -> AsyncIterator[App]:
    app = App(
        make_settings(
            SLACK_BOT_TOKEN=TOKEN, SLACK_SIGNING_SECRET=SECRET, SLACK_API_URL=fake_slack.url
        )
    )
    await app.start()
    yield app
    await app.stop()


def _form(**extra: str) -> str:
    fields = {
        "command": "/oc",
        "text": "reset",
        "user_id": "U1",
        "user_name": "ann",
        "channel_id": "D1",
        "channel_name": "directmessage",
        "team_id": "T0001",
        **extra,
    }
    return urlencode(fields)


async def _post(app: App, form: str, headers: dict[str, str]) -> int:
    assert app.http is not None
    url = f"http://127.0.0.1:{app.http.port}/slack/events"
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=form, headers=headers) as resp,
    ):
        status = resp.status
    await app.runtime.wait_idle()
    return status


def _signed(form: str, **kw: Any) -> dict[str, str]:
    headers = signed_headers(SECRET, form, **kw)
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    return headers


@pytest.mark.parametrize("trigger", [{"trigger_id": "trig-replay"}, {}], ids=["trigger", "none"])
async def test_replayed_signed_slash_command_runs_once(
    running: App, fake_slack: FakeSlackApi, trigger: dict[str, str]
) -> None:
    form = _form(**trigger)
    captured = _signed(form)
    assert await _post(running, form, captured) == 200
    assert await running.store.epoch("slack:D1") == 1
    for _ in range(3):  # the same bytes, the same signature, seconds later
        assert await _post(running, form, dict(captured)) == 200
    assert await running.store.epoch("slack:D1") == 1
    assert len(fake_slack.posted("D1")) == 1

    # A genuine new invocation (new trigger id, or a new signed timestamp) still runs.
    fresh = _form(trigger_id="trig-next") if trigger else form
    headers = _signed(fresh, timestamp=int(time.time()) + 1)
    assert await _post(running, fresh, headers) == 200
    assert await running.store.epoch("slack:D1") == 2
