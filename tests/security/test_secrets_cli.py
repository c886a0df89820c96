"""What the admin sees and decides: ``plugins info`` tells exactly what a plugin receives,
``plugins grant`` / ``revoke`` decide its secrets, a plugin from ``OC_PLUGIN_DIRS`` is off until
``plugins enable`` (issue 13: before, ``info`` said "secrets: none" while the plugin read the
bot token, and any folder in ``OC_PLUGIN_DIRS`` was on at once).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from opencomputer.bot.cli import app
from tests.plugins.conftest import make_plugin

runner = CliRunner()


@pytest.fixture
def weather(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    folder = tmp_path / "user-plugins"
    make_plugin(
        folder,
        "weather",
        "from opencomputer.bot.plugins.api import tool\n\n@tool\ndef forecast(place: str) -> str:\n"
        "    '''Forecast.'''\n    return 'sunny'\n",
        tools=[{"name": "forecast", "effects": ["network"]}],
        permissions={
            "network": ["${OC_WEATHER_HOST}"],
            "files": {"read": ["/srv/maps"]},
            "secrets": ["OC_WEATHER_KEY", "OC_WEATHER_TOKEN"],
        },
        settings={
            "OC_WEATHER_HOST": {"default": "api.weather.example"},
            "OC_WEATHER_KEY": {"secret": True},
            "OC_WEATHER_TOKEN": {"secret": True, "description": "pasted from the bot"},
            "OC_WEATHER_UNITS": {},
        },
    )
    values = {
        "OC_WEATHER_KEY": "wk-" + secrets.token_hex(12),
        "OC_WEATHER_TOKEN": f"{secrets.randbelow(10**9)}:{secrets.token_urlsafe(24)}",
    }
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", values["OC_WEATHER_TOKEN"])  # the same value
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("OC_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("OC_PLUGIN_DIRS", str(folder))
    return values


def test_info_lists_exactly_what_the_plugin_receives(weather: dict[str, str]) -> None:
    before = runner.invoke(app, ["plugins", "info", "weather"])
    assert before.exit_code == 0, before.output
    out = before.output
    assert "state: off" in out  # from OC_PLUGIN_DIRS: off until enabled
    assert "network: ${OC_WEATHER_HOST} (now: api.weather.example)" in out
    assert "files read: /srv/maps" in out and "start programs: no" in out
    assert "secrets: OC_WEATHER_KEY (NOT granted), OC_WEATHER_TOKEN (NOT granted)" in out
    assert "setting OC_WEATHER_HOST = 'api.weather.example'" in out
    assert "setting OC_WEATHER_UNITS = nothing: not set" in out
    assert "secret OC_WEATHER_KEY = nothing: withheld: secret not granted" in out
    assert "secret OC_WEATHER_TOKEN = nothing: withheld: its value is one of the server's" in out
    assert "tool forecast [effects: network]" in out

    granted = runner.invoke(app, ["plugins", "grant", "weather", "OC_WEATHER_KEY"])
    assert granted.exit_code == 0 and "weather may now receive OC_WEATHER_KEY" in granted.output
    copied = runner.invoke(app, ["plugins", "grant", "weather", "OC_WEATHER_TOKEN"])
    assert "but it still gets nothing: OC_WEATHER_TOKEN withheld: its value is one of" in (
        copied.output
    )
    after = runner.invoke(app, ["plugins", "info", "weather"]).output
    assert "secrets: OC_WEATHER_KEY (granted), OC_WEATHER_TOKEN (granted)" in after
    assert "secret OC_WEATHER_KEY = *** (secret, set)" in after
    assert "secret OC_WEATHER_TOKEN = nothing: withheld: its value is one of the server's" in after
    for value in weather.values():
        assert value not in before.output + granted.output + copied.output + after

    revoked = runner.invoke(app, ["plugins", "revoke", "weather", "OC_WEATHER_KEY"])
    assert revoked.exit_code == 0 and "no longer receives OC_WEATHER_KEY" in revoked.output
    assert (
        "OC_WEATHER_KEY (NOT granted)" in runner.invoke(app, ["plugins", "info", "weather"]).output
    )


def test_grant_refuses_what_is_not_the_plugins_secret(weather: dict[str, str]) -> None:
    for name in ("TELEGRAM_BOT_TOKEN", "OC_WEATHER_HOST", "oc_weather_key"):
        refused = runner.invoke(app, ["plugins", "grant", "weather", name])
        assert refused.exit_code == 1
        assert f"{name} is not a secret of plugin weather" in refused.output
        assert len(refused.output.strip().splitlines()) == 1


def test_a_plugin_dirs_plugin_is_off_until_enabled(weather: dict[str, str]) -> None:
    listed = runner.invoke(app, ["plugins", "list"]).output
    assert "weather          0.1.0     dir      off" in listed
    assert "calculator       1.0.0     builtin  on" in listed  # built-ins keep their default
    assert runner.invoke(app, ["plugins", "enable", "weather"]).exit_code == 0
    assert (
        "weather          0.1.0     dir      on" in runner.invoke(app, ["plugins", "list"]).output
    )


async def test_doctor_names_each_withheld_secret_without_its_value(
    weather: dict[str, str], make_settings: Any
) -> None:
    from opencomputer.bot.doctor import run_doctor

    lines: list[str] = []
    # No Telegram check (no live network): the token stays in the environment only, which is
    # enough for it to count as the server's.
    settings = make_settings(OC_PLUGIN_DIRS=os.environ["OC_PLUGIN_DIRS"], TELEGRAM_BOT_TOKEN=None)
    await run_doctor(settings, echo=lines.append)
    assert (
        "[warn] plugin weather: OC_WEATHER_KEY withheld: secret not granted (an admin grants it "
        "with `opencomputer plugins grant weather OC_WEATHER_KEY`)"
    ) in lines
    assert (
        "[warn] plugin weather: OC_WEATHER_TOKEN withheld: its value is one of the server's own "
        "secrets"
    ) in lines
    assert all(value not in "\n".join(lines) for value in weather.values())
