"""The plugin kit: `plugins new` -> edit -> test, the CLI, and entry-point packages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from opencomputer.bot.cli import app
from opencomputer.bot.testing.plugin_kit import PluginTestKit
from tests.plugins.conftest import make_plugin

runner = CliRunner()

FAREWELL = '''

@tool
def farewell(person: str, formal: bool = False) -> str:
    """Say goodbye.

    Args:
        person: Who is leaving.
        formal: Use a formal goodbye.
    """
    return f"{'Farewell' if formal else 'Bye'}, {person}."
'''

FAREWELL_TEST = """

async def test_farewell() -> None:
    async with PluginTestKit(PLUGIN) as kit:
        assert await kit.call_tool("farewell", person="Ada", formal=True) == "Farewell, Ada."
        kit.model.call_tool("farewell", person="Bob")
        kit.model.reply("Said bye.")
        assert await kit.say("say bye to Bob") == "Said bye."
        assert kit.tool_results() == ["Bye, Bob."]
"""


def test_new_edit_test_works_for_a_newcomer(tmp_path, monkeypatch):
    monkeypatch.setenv("OC_DATA_DIR", str(tmp_path / "data"))
    result = runner.invoke(app, ["plugins", "new", "hello", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    folder = tmp_path / "hello"
    assert f"pytest {folder}" in result.output
    # the newcomer's edit: a second tool, declared in the manifest, with a test
    with (folder / "tools.py").open("a") as code:
        code.write(FAREWELL)
    manifest = json.loads((folder / "plugin.json").read_text())
    manifest["tools"].append({"name": "farewell", "description": "Say goodbye."})
    (folder / "plugin.json").write_text(json.dumps(manifest))
    with (folder / "test_hello.py").open("a") as test:
        test.write(FAREWELL_TEST)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OC_")}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(folder)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "4 passed" in done.stdout


async def test_kit_says_why_a_plugin_did_not_load(plugin_dir):
    make_plugin(plugin_dir, "liar", "x = 1\n", tools=[{"name": "ghost"}])
    with pytest.raises(AssertionError, match="manifest lists tool ghost"):
        async with PluginTestKit(plugin_dir / "liar"):
            pass
    (plugin_dir / "bad").mkdir()
    (plugin_dir / "bad" / "plugin.json").write_text('{"name": "bad"}')
    with pytest.raises(Exception, match="version"):
        PluginTestKit(plugin_dir / "bad")


def test_list_info_enable_disable(tmp_path, monkeypatch, plugin_dir):
    make_plugin(
        plugin_dir,
        "probe",
        "from opencomputer.bot.plugins.api import tool\n",
        tools=[],
        permissions={"network": ["api.example.org"], "secrets": ["OC_PROBE_KEY"]},
        settings={"OC_PROBE_KEY": {"secret": True, "description": "API key"}},
    )
    make_plugin(plugin_dir, "needy", "", settings={"OC_NEEDY_TOKEN": {"required": True}})
    monkeypatch.setenv("OC_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("OC_PLUGIN_DIRS", str(plugin_dir))
    listed = runner.invoke(app, ["plugins", "list"])
    assert listed.exit_code == 0, listed.output
    # a plugin from OC_PLUGIN_DIRS is off until an admin enables it (issue 13)
    assert "probe            0.1.0     dir      off" in listed.output
    assert "needy" in listed.output and "DISABLED: missing setting OC_NEEDY_TOKEN" in listed.output
    info = runner.invoke(app, ["plugins", "info", "probe"])
    assert "network: api.example.org" in info.output
    assert "secrets: OC_PROBE_KEY (NOT granted)" in info.output
    assert "runs in a sandbox" in info.output and "state: off" in info.output
    assert runner.invoke(app, ["plugins", "enable", "probe"]).exit_code == 0
    off = runner.invoke(app, ["plugins", "disable", "probe", "--chat", "telegram:42"])
    assert off.exit_code == 0 and "disabled in telegram:42" in off.output
    assert runner.invoke(app, ["plugins", "disable", "web"]).exit_code == 0
    listed = runner.invoke(app, ["plugins", "list"]).output
    assert "probe            0.1.0     dir      on (telegram:42=off)" in listed
    assert "web              1.0.0     builtin  off" in listed
    assert runner.invoke(app, ["plugins", "enable", "nonesuch"]).exit_code == 1


def test_entry_point_packages_are_found_and_start_off(tmp_path, monkeypatch):
    site = tmp_path / "site"
    make_plugin(site, "oc_probe_pkg", "from opencomputer.bot.plugins.api import tool\n", tools=[])
    (site / "oc_probe_pkg" / "__init__.py").write_text("")
    dist = site / "oc_probe_pkg-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: oc-probe-pkg\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[opencomputer.plugins]\nprobe = oc_probe_pkg\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("OC_DATA_DIR", str(tmp_path / "data"))
    listed = runner.invoke(app, ["plugins", "list"]).output
    assert "oc_probe_pkg     0.1.0     package  off" in listed  # off until the admin consents
    assert runner.invoke(app, ["plugins", "enable", "oc_probe_pkg"]).exit_code == 0
    assert (
        "oc_probe_pkg     0.1.0     package  on" in runner.invoke(app, ["plugins", "list"]).output
    )


def test_install_reports_a_failed_pip(tmp_path, monkeypatch):
    monkeypatch.setenv("OC_DATA_DIR", str(tmp_path / "data"))
    result = runner.invoke(app, ["plugins", "install", str(tmp_path / "no-such-package")])
    assert result.exit_code == 1
    assert "pip could not install" in result.output


def _wheel(folder: Path) -> Path:
    """A minimal wheel announcing a plugin (built by hand: no build tools, no network)."""
    import zipfile

    files = {
        "oc_weather/__init__.py": "",
        "oc_weather/plugin.json": json.dumps(
            {
                "name": "weather",
                "version": "0.3.0",
                "description": "Forecasts.",
                "module": "tools",
                "permissions": {"network": ["api.weather.example"]},
                "tools": [{"name": "forecast", "description": "Forecast for a place."}],
            }
        ),
        "oc_weather/tools.py": "from opencomputer import tool\n\n@tool\ndef forecast(place:"
        " str) -> str:\n    '''Forecast.'''\n    return 'sunny'\n",
        "oc_weather-0.3.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: oc-weather\n"
        "Version: 0.3.0\n",
        "oc_weather-0.3.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\n"
        "Root-Is-Purelib: true\nTag: py3-none-any\n",
        "oc_weather-0.3.0.dist-info/entry_points.txt": "[opencomputer.plugins]\n"
        "weather = oc_weather\n",
    }
    path = folder / "oc_weather-0.3.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for name, text in files.items():
            wheel.writestr(name, text)
        record = "".join(f"{n},,\n" for n in files) + "oc_weather-0.3.0.dist-info/RECORD,,\n"
        wheel.writestr("oc_weather-0.3.0.dist-info/RECORD", record)
    return path


def test_install_shows_permissions_and_enables_on_consent(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("OC_DATA_DIR", str(tmp_path / "data"))
    wheel = _wheel(tmp_path)
    args = [
        "plugins",
        "install",
        str(wheel),
        "--pip-arg",
        f"--target={site}",
        "--pip-arg",
        "--no-deps",
        "--pip-arg",
        "--no-index",
        "--pip-arg",
        "-q",
    ]
    declined = runner.invoke(app, args, input="n\n")
    assert declined.exit_code == 0, declined.output
    assert "network: api.weather.example" in declined.output
    assert "Enable weather with these permissions?" in declined.output
    assert "installed but left off" in declined.output
    listed = runner.invoke(app, ["plugins", "list"]).output
    assert "weather          0.3.0     package  off" in listed
    assert runner.invoke(app, ["plugins", "enable", "weather"]).exit_code == 0
    assert (
        "weather          0.3.0     package  on" in runner.invoke(app, ["plugins", "list"]).output
    )
