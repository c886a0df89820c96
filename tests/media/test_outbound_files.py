"""The outbound file itself: its JSON form (what crosses the plugin sandbox's pipe), what the
model reads, and files handed over where no turn collects them or no connector can send them.
"""

from __future__ import annotations

import base64
from typing import Any

from opencomputer.bot.events import Address
from opencomputer.bot.outfiles import OutFile, collecting, hand_over, send_file, tool_file
from tests.media.samples import PNG


def test_the_json_form_round_trips_and_anything_else_is_no_file() -> None:
    chart = OutFile("chart.png", "image/png", PNG, caption="c", voice=False)
    assert tool_file(chart.to_json()) == chart
    assert tool_file(chart) is chart
    data = base64.b64encode(PNG).decode()
    for value in (
        {"oc_file": {"name": "x", "data": "not base64!"}},
        {"oc_file": {"name": "x", "data": data}, "other": 1},  # a result that merely has the key
        {"oc_file": "x"},
        "[sent file x]",
        ["oc_file"],
        None,
    ):
        assert tool_file(value) is None


def test_the_model_reads_a_stand_in_and_only_an_open_turn_collects() -> None:
    chart = OutFile("chart.png", "image/png", PNG)
    assert hand_over(chart) == "[file chart.png not sent: files cannot be sent from here]"
    with collecting() as files:
        assert hand_over(chart) == f"[sent file chart.png, {len(PNG)} bytes]"
    assert files == [chart]
    assert hand_over(chart).startswith("[file chart.png not sent")  # closed again


async def test_without_a_connector_or_uploads_the_chat_gets_one_line() -> None:
    said: list[str] = []

    async def say(_address: Address, text: str, **_kw: Any) -> list[str]:
        said.append(text)
        return []

    class TextOnly:
        platform = "irc"

    chart = OutFile("chart.png", "image/png", PNG)
    assert await send_file({}, say, Address("irc", "#a"), chart) is None
    assert await send_file({"irc": TextOnly()}, say, Address("irc", "#a"), chart) is None
    assert said == [
        "I made the file chart.png, but this server process cannot send files.",
        "I made the file chart.png, but I cannot send files on Irc.",
    ]
