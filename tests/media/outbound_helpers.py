"""What the outbound-file tests share: sample files and a tool that makes them."""

from __future__ import annotations

from typing import Any

from opencomputer.bot.outfiles import OutFile
from opencomputer.bot.tools import Tool
from tests.media.samples import PNG

__all__ = ["CHART", "CSV", "TABLE", "file_tool"]

CSV = b"day,visits\nmon,3\ntue,5\n"
CHART = OutFile("chart.png", "image/png", PNG, caption="Visits this week")
TABLE = OutFile("visits.csv", "text/csv", CSV, caption="the numbers")
_NO_PARAMS: dict[str, Any] = {"type": "object", "properties": {}, "required": []}


def file_tool(*files: OutFile) -> Tool:
    """A tool that makes the given files, one per call (a chart, then its data).

    Computed from no outside content and with no effect, so nothing waits for the owner.
    """
    waiting = list(files)

    async def make() -> OutFile:
        return waiting.pop(0)

    return Tool(
        "make_chart", "Draw the chart.", _NO_PARAMS, make, effects=frozenset(), trusted_output=True
    )
