# ruff: noqa: F811 (pytest fixtures imported from the Slack tests are parameters here)
"""Files out on Slack: slack_sdk's ``files_upload_v2``, Slack's current flow
(``files.getUploadURLExternal``, the bytes POSTed to the upload URL, then
``files.completeUploadExternal`` sharing them with the caption as the comment), against the
fake Web API, which checks the length promised against the bytes received.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from opencomputer.bot.config import Settings
from opencomputer.bot.testing import FakeOllama
from tests.media.outbound_helpers import CHART, CSV, TABLE, file_tool
from tests.media.samples import PNG
from tests.slack.fake_slack_api import FakeSlackApi
from tests.slack.slack_helpers import fake_slack  # noqa: F401 (fixture)
from tests.slack.test_slack_e2e import app_settings, dm, start_app  # noqa: F401


async def test_files_a_tool_made_are_uploaded_and_shared_after_the_answer(
    fake_slack: FakeSlackApi, fake_ollama: FakeOllama, app_settings: Settings, start_app: Any
) -> None:
    fake_ollama.call_tool("make_chart")
    fake_ollama.call_tool("make_chart")
    fake_ollama.reply("Here is your chart.")
    running = await start_app(app_settings)
    running.app.tools.add(file_tool(CHART, TABLE))
    await running.post_and_wait(dm("chart my visits"))
    await fake_slack.wait_for(lambda: len(fake_slack.shared) == 2, within=10)

    chart, table = fake_slack.shared
    assert (chart.filename, chart.data, chart.initial_comment) == (
        "chart.png", PNG, "Visits this week",
    )  # fmt: skip
    assert (table.filename, table.data, table.initial_comment) == ("visits.csv", CSV, "the numbers")
    assert chart.channel == table.channel == "D1"
    methods = [c.method for c in fake_slack.calls if c.method.startswith(("chat.", "files."))]
    assert methods == [
        "chat.postMessage",  # the answer (a placeholder, then its text) comes first
        "chat.update",
        "files.getUploadURLExternal",
        "files.completeUploadExternal",
        "files.getUploadURLExternal",
        "files.completeUploadExternal",
    ]
    asked = fake_slack.calls_of("files.getUploadURLExternal")[0].args
    assert (asked["filename"], int(asked["length"])) == ("chart.png", len(PNG))
    shared = json.loads(fake_slack.calls_of("files.completeUploadExternal")[0].args["files"])
    assert [f["id"] for f in shared] == [chart.file_id]


async def test_a_failed_upload_is_one_log_line_and_the_answer_stands(
    fake_slack: FakeSlackApi,
    fake_ollama: FakeOllama,
    app_settings: Settings,
    start_app: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake_slack.upload_status = 500
    fake_ollama.call_tool("make_chart")
    fake_ollama.reply("Here it is.")
    running = await start_app(app_settings)
    running.app.tools.add(file_tool(TABLE))
    with caplog.at_level(logging.WARNING, logger="opencomputer.bot.outfiles"):
        await running.post_and_wait(dm("csv please"))
        await fake_slack.wait_for(lambda: len(fake_slack.posted("D1")) == 2, within=10)
    texts = [m.edits[-1] if m.edits else m.text for m in fake_slack.posted("D1")]
    assert texts == [
        "Here it is.",
        "I could not send the file visits.csv: the upload to Slack failed.",
    ]
    assert fake_slack.shared == []
    [line] = [r.getMessage() for r in caplog.records if r.name == "opencomputer.bot.outfiles"]
    assert line.startswith(f"file visits.csv ({len(CSV)} bytes) to slack:D1 not sent: ")
    assert "\n" not in line
