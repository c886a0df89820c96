"""Files out on the terminal: written under ``<data dir>/files`` (never outside it, never over
an existing file) and their paths printed after the answer; ``/export`` becomes such a file.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from pathlib import Path

from opencomputer.bot.app import App
from opencomputer.bot.config import Settings
from opencomputer.bot.events import Address
from opencomputer.bot.outfiles import OutFile
from opencomputer.bot.testing import FakeOllama
from opencomputer.connectors.terminal import TerminalConnector, create
from tests.media.outbound_helpers import CHART, CSV, TABLE, file_tool
from tests.media.samples import PNG


async def test_a_turns_files_and_the_export_land_in_the_data_dir(
    make_settings: Callable[..., Settings], fake_ollama: FakeOllama, tmp_path: Path
) -> None:
    settings = make_settings()
    app = App(settings)
    out = io.StringIO()
    holder: list[TerminalConnector] = []

    def factory(s: Settings, runtime: object) -> list[TerminalConnector]:
        # where the channel's own factory puts files, with a scripted stdin
        folder = create(s, app.runtime.emit, wait_idle=app.runtime.wait_idle).files_dir
        holder.append(
            TerminalConnector(
                app.runtime.emit, wait_idle=app.runtime.wait_idle, stdin=io.StringIO(
                    "chart my visits\n/export\n"), stdout=out, interactive=False, user="me",
                files_dir=folder,
            )
        )  # fmt: skip
        return holder

    fake_ollama.call_tool("make_chart")
    fake_ollama.call_tool("make_chart")
    fake_ollama.reply("Here is your chart.")
    await app.start(factory, http=False)  # type: ignore[arg-type]
    try:
        app.tools.add(file_tool(CHART, TABLE))
        await holder[0].run()
        await app.runtime.wait_idle()
    finally:
        await app.stop()
    folder = settings.data_dir / "files"
    assert holder[0].files_dir == folder
    printed = out.getvalue()
    assert printed.index("Here is your chart.") < printed.index("📎 Visits this week ")
    paths = [Path(p) for p in re.findall(r"📎 (?:[^/\n]* )?(/\S+)", printed)]
    chart, table, export = paths
    assert chart.parent == table.parent == export.parent == folder
    assert (chart.read_bytes(), table.read_bytes()) == (PNG, CSV)
    assert chart.name.endswith("-chart.png") and export.name.endswith(".json")
    assert json.loads(export.read_bytes())["accounts"] == ["terminal:me"]


async def test_a_hostile_name_stays_in_the_folder_and_nothing_is_overwritten(
    tmp_path: Path,
) -> None:
    async def emit(_event: object) -> None:
        return None

    async def idle(_address: Address) -> None:
        return None

    folder = tmp_path / "files"
    outside = tmp_path / "secret"
    outside.write_text("keep")
    term = TerminalConnector(
        emit, wait_idle=idle, stdin=io.StringIO(""), stdout=io.StringIO(), interactive=False,
        user="me", files_dir=folder,
    )  # fmt: skip
    address = term.address
    for name in ("../secret", "/etc/passwd", "..", "a\nb.txt", "../secret"):
        await term.send_file(address, OutFile(name, "text/plain", b"x"))
    written = sorted(folder.iterdir())
    assert len(written) == 5 and all(p.parent == folder for p in written)
    assert outside.read_text() == "keep"
    assert all(p.read_bytes() == b"x" for p in written)
