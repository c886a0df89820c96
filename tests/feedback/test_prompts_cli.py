"""``opencomputer prompts ...`` against a real SQLite database."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from opencomputer.bot.cli import app


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    monkeypatch.setenv("OC_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("OC_SYSTEM_PROMPT", "Be helpful.")
    return CliRunner()


def run(cli: CliRunner, *args: str, code: int = 0) -> str:
    result = cli.invoke(app, ["prompts", *args])
    assert result.exit_code == code, result.output
    return result.output


def test_add_list_promote_retire_rollback(cli: CliRunner) -> None:
    assert run(cli, "add", "Answer in one sentence.", "--name", "brief") == (
        "added #2 brief v1 [candidate]\n"
    )
    assert run(cli, "add", "Per-platform.", "--scope", "platform", "--key", "slack") == (
        "added #3 default v2 [candidate]\n"
    )
    assert run(cli, "list").splitlines() == [
        "#1 default v1 [active] human, global",
        "#2 brief v1 [candidate] human, global",
        "#3 default v2 [candidate] human, platform:slack",
    ]
    assert run(cli, "show", "2").splitlines()[-1] == "Answer in one sentence."
    assert run(cli, "promote", "2").startswith("promoted #2")
    assert run(cli, "retire", "3").startswith("retired #3")
    assert run(cli, "list").splitlines() == ["#2 brief v1 [active] human, global"]
    assert run(cli, "rollback", "2").startswith("rolled_back #2")
    assert run(cli, "list").splitlines() == ["#1 default v1 [active] human, global"]
    assert run(cli, "rollback").startswith("undone #2")  # undo the rollback
    assert run(cli, "list").splitlines() == ["#2 brief v1 [active] human, global"]
    log = run(cli, "log").splitlines()
    assert "undone #2 by cli:" in log[0] and "added #1 by settings" in log[-1]
    stats = run(cli, "stats", "--all")
    assert "#1 default v1 [retired] human, global: 👍 0 👎 0 (–)" in stats


def test_errors_are_one_line_and_exit_nonzero(cli: CliRunner) -> None:
    result = CliRunner().invoke(app, ["prompts", "promote", "9"])
    assert result.exit_code == 1
    assert "There is no prompt variant #9." in result.output
    result = CliRunner().invoke(app, ["prompts", "add", "x", "--scope", "chat"])
    assert result.exit_code == 2


def test_chart_writes_a_png(cli: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "chart.png"
    assert run(cli, "chart", "--out", str(out)) == f"wrote {out} (0 ratings)\n"
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (800, 400)
    idat = data.index(b"IDAT")
    (length,) = struct.unpack(">I", data[idat - 4 : idat])
    pixels = zlib.decompress(data[idat + 4 : idat + 4 + length])
    assert len(pixels) == height * (1 + width * 3)


def test_rate_series_and_render_draw_each_variant() -> None:
    from opencomputer.bot.feedback.chart import PALETTE, rate_series, render_png

    votes = [(1, 0.0, 1), (1, 5.0, -1), (2, 5.0, 1), (2, 10.0, 1)]
    series = rate_series(votes, buckets=2)
    assert series == {1: [(5.0, 1.0), (10.0, 0.0)], 2: [(10.0, 1.0)]}
    png = render_png(series, width=200, height=100)
    idat = png.index(b"IDAT")
    (length,) = struct.unpack(">I", png[idat - 4 : idat])
    pixels = zlib.decompress(png[idat + 4 : idat + 4 + length])
    for color in PALETTE[:2]:
        assert bytes(color) in pixels  # both lines (and legend swatches) are drawn
