"""Messengers as plugins: the ``opencomputer.channels`` entry points, and what a broken one does.

The built-in channels are read from this distribution's installed metadata, exactly as a
third-party package's would be; third-party ones here are real ``EntryPoint`` objects naming
modules written to a temporary folder on ``sys.path``.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import textwrap
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

import pytest

from opencomputer.bot.channels import (
    ENTRY_POINT_GROUP,
    Channel,
    build_connectors,
    configured_channels,
    enable_hints,
    load_channels,
)
from opencomputer.bot.config import Settings

THIRD_PARTY = """
from opencomputer.bot.channels import Channel
from opencomputer.bot.testing.harness import RecordingConnector


def make(settings, emit):
    return RecordingConnector(emit, platform="pigeon")


def explode(settings, emit):
    raise RuntimeError("pigeon SDK is missing")


async def crash(settings):
    raise OSError("pigeon loft unreachable")


PIGEON = Channel(name="pigeon", connector=make, configured=lambda s: True, enable="PIGEON_KEY")
BROKEN_FACTORY = Channel(name="owl", connector=explode, configured=lambda s: True)
CRASHING_DOCTOR = Channel(
    name="bat", connector=make, configured=lambda s: True, doctor=crash, enable="BAT_KEY"
)
BAD_SETTINGS = Channel(name="mole", connector=make, configured=lambda s: 1 / 0)
TELEGRAM_AGAIN = Channel(name="telegram", connector=make, configured=lambda s: True)
NOT_A_CHANNEL = {"name": "crow"}
"""


@pytest.fixture
def third_party(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A module on ``sys.path`` declaring third-party channels (good and broken)."""
    name = f"oc_third_party_{tmp_path.name}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(THIRD_PARTY), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def ep(name: str, value: str) -> EntryPoint:
    return EntryPoint(name=name, value=value, group=ENTRY_POINT_GROUP)


def installed_plus(*extra: EntryPoint) -> list[EntryPoint]:
    return [*entry_points(group=ENTRY_POINT_GROUP), *extra]


def test_built_in_channels_come_from_this_distributions_entry_points() -> None:
    found = {e.name: e for e in entry_points(group=ENTRY_POINT_GROUP)}
    for name in ("telegram", "discord", "slack", "matrix", "api", "terminal"):
        assert found[name].dist is not None and found[name].dist.name == "opencomputer"
        assert found[name].value == f"opencomputer.connectors.builtin:{name.upper()}"
    channels = load_channels()
    names = [c.name for c in channels]
    own = ["api", "discord", "matrix", "slack", "telegram", "terminal"]  # others may be too
    assert [n for n in names if n in own] == own
    assert all(isinstance(c, Channel) for c in channels)


def test_reading_the_channels_imports_no_platform_sdk() -> None:
    """`doctor`, `run` with one platform, `chat`: none may pay for every SDK's import."""
    code = (
        "import sys\n"
        "from opencomputer.bot.channels import configured_channels, enable_hints\n"
        "from opencomputer.bot.config import Settings\n"
        "assert len(enable_hints()) >= 4\n"
        "assert configured_channels(Settings(TELEGRAM_BOT_TOKEN='1:x')) != []\n"
        "heavy = [m for m in ('telegram', 'discord', 'slack_sdk', 'slack_bolt', 'nio')"
        " if m in sys.modules]\n"
        "assert heavy == [], heavy\n"
    )

    async def run() -> tuple[int, bytes]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", code, stderr=asyncio.subprocess.PIPE
        )
        _, err = await proc.communicate()
        return proc.returncode or 0, err

    returncode, err = asyncio.run(run())
    assert returncode == 0, err.decode()


def test_configured_tests_and_hints_keep_their_meaning() -> None:
    off = Settings()
    assert configured_channels(off) == []
    slack_half = Settings(SLACK_BOT_TOKEN="xoxb-1")  # no signing secret, no app token
    assert configured_channels(slack_half) == []
    on = Settings(
        TELEGRAM_BOT_TOKEN="1:x",
        SLACK_BOT_TOKEN="xoxb-1",
        SLACK_APP_TOKEN="xapp-1",
        MATRIX_HOMESERVER="http://127.0.0.1:1",
        MATRIX_USER_ID="@b:localhost",
        MATRIX_ACCESS_TOKEN="t",
    )
    assert [c.name for c in configured_channels(on)] == ["matrix", "slack", "telegram"]
    hints = enable_hints()
    assert "telegram: set TELEGRAM_BOT_TOKEN" in hints
    assert any(h.startswith("matrix: set MATRIX_HOMESERVER") for h in hints)


def test_a_broken_entry_point_is_one_line_and_the_others_load(
    third_party: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="opencomputer.bot.channels")
    channels = load_channels(
        installed_plus(
            ep("gone", "oc_no_such_module_anywhere:CHANNEL"),
            ep("crow", f"{third_party}:NOT_A_CHANNEL"),
            ep("missing", f"{third_party}:NO_SUCH_NAME"),
            ep("telegram2", f"{third_party}:TELEGRAM_AGAIN"),
            ep("pigeon", f"{third_party}:PIGEON"),
        )
    )
    names = [c.name for c in channels]
    own = ["api", "discord", "matrix", "slack", "telegram"]
    assert [n for n in names if n in own] == own
    assert names.index("pigeon") > max(names.index(n) for n in own)  # built-ins first
    assert "pigeon" in names
    assert names.count("telegram") == 1  # the built-in one, not the impostor
    telegram = next(c for c in channels if c.name == "telegram")
    assert telegram.connector == "opencomputer.connectors.telegram:TelegramConnector"
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4, lines
    assert any("'gone'" in line and "oc_no_such_module_anywhere" in line for line in lines)
    assert any("'crow'" in line and "not an opencomputer Channel" in line for line in lines)
    assert any("'missing'" in line for line in lines)
    assert any("'telegram' is installed twice" in line for line in lines)


def test_a_connector_that_cannot_be_built_leaves_the_others_running(
    third_party: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="opencomputer.bot.channels")
    channels = load_channels(
        [
            ep("owl", f"{third_party}:BROKEN_FACTORY"),
            ep("mole", f"{third_party}:BAD_SETTINGS"),
            ep("pigeon", f"{third_party}:PIGEON"),
        ]
    )

    async def emit(_event: object) -> None:
        return None

    built = build_connectors(Settings(), emit, channels)
    assert [c.platform for c in built] == ["pigeon"]
    lines = [r.getMessage() for r in caplog.records]
    assert any("owl connector could not be created: pigeon SDK is missing" in x for x in lines)
    assert any("'mole': its settings could not be read" in x for x in lines)


async def test_doctor_runs_each_configured_channels_own_checks(
    third_party: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A channel's doctor check that crashes is a FAIL line naming it, not a traceback."""
    channels = load_channels([ep("bat", f"{third_party}:CRASHING_DOCTOR")])
    monkeypatch.setattr("opencomputer.bot.channels.load_channels", lambda *a, **k: channels)
    from opencomputer.bot import doctor

    settings = Settings(OC_DATA_DIR=tmp_path)
    checks = await doctor._platforms(settings)
    assert [(c.name, c.ok) for c in checks] == [("bat", False)]
    assert "pigeon loft unreachable" in checks[0].detail
    assert (await doctor._connectors(settings))[0].detail == "configured: bat"
