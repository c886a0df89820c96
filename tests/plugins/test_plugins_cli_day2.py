"""`plugins list` shows broken code, `--chat` is validated, `plugins uninstall` (issue 14).

Runs the real `python -m bot` in a subprocess; the uninstall test uses a scratch virtual
environment (the project's packages reached through a ``.pth``) so pip really installs and
really removes the plugin's distribution without touching the project's own environment.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

from tests.plugins.conftest import make_plugin
from tests.plugins.test_kit_and_cli import _wheel

PREFIXES = ("OC_", "OLLAMA_", "TELEGRAM_", "DISCORD_", "SLACK_", "MATRIX_")


def _run(
    args: list[str], tmp: Path, env: dict[str, str] | None = None, python: str = sys.executable
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(PREFIXES)}
    return subprocess.run(
        [python, "-m", "opencomputer", *args],
        env={**clean, "OC_DATA_DIR": str(tmp / "data"), **(env or {})},
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


GOOD = (
    "from opencomputer.bot.plugins.api import tool\n\n@tool\ndef ping() -> str:\n"
    "    '''Ping.'''\n    return 'pong'\n"
)


def test_list_shows_a_plugin_with_a_syntax_error_as_broken(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    make_plugin(plugins, "fine", GOOD)
    broken = make_plugin(plugins, "oops", GOOD)
    (broken / "tools.py").write_text(GOOD + "\ndef half(:\n")
    result = _run(["plugins", "list"], tmp_path, {"OC_PLUGIN_DIRS": str(plugins)})
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    assert " on " not in lines["oops"] and " off " not in lines["oops"], lines["oops"]
    assert f"BROKEN: syntax error in {broken / 'tools.py'}:8:" in lines["oops"]
    assert "BROKEN" not in lines["fine"]


def test_enable_with_a_bogus_chat_is_refused(tmp_path: Path) -> None:
    for bogus in ("bogus", "irc:#x", "telegram:", " telegram:1"):
        result = _run(["plugins", "enable", "web", "--chat", bogus], tmp_path)
        assert result.returncode == 2, (bogus, result.stdout, result.stderr)
        assert result.stderr.strip() == (
            f"--chat {bogus!r} is not a chat address: use platform:chat_id with platform one of "
            "telegram, discord, slack, matrix, terminal (e.g. telegram:-1001234)"
        )
        assert "Traceback" not in result.stdout + result.stderr
    ok = _run(["plugins", "enable", "web", "--chat", "matrix:!room:example.org"], tmp_path)
    assert ok.returncode == 0 and "enabled in matrix:!room:example.org" in ok.stdout, ok.stderr


def test_builtin_and_folder_plugins_cannot_be_uninstalled(tmp_path: Path) -> None:
    result = _run(["plugins", "uninstall", "calculator"], tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "calculator is built in and cannot be uninstalled; "
        "`opencomputer plugins disable calculator` turns it off"
    )
    folder = make_plugin(tmp_path / "plugins", "mine", GOOD)
    env = {"OC_PLUGIN_DIRS": str(tmp_path / "plugins")}
    result = _run(["plugins", "uninstall", "mine"], tmp_path, env)
    assert result.returncode == 2 and f"comes from the folder {folder}" in result.stderr
    assert (folder / "tools.py").is_file()  # a user's own source is never deleted


def _scratch_venv(tmp_path: Path) -> str:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    project = sysconfig.get_paths()["purelib"]  # addsitedir: its own .pth (editable bot) too
    (site / "site-packages" / "project.pth").write_text(
        f"import site; site.addsitedir({project!r})\n"
    )
    return str(venv / "bin" / "python")


def test_uninstall_removes_the_package_disables_it_and_keeps_data(tmp_path: Path) -> None:
    python = _scratch_venv(tmp_path)
    wheel = _wheel(tmp_path)
    pip = [python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)]
    subprocess.run(pip, check=True, capture_output=True)
    assert _run(["plugins", "enable", "weather"], tmp_path, python=python).returncode == 0
    data = tmp_path / "data" / "plugins" / "weather"
    data.mkdir(parents=True)
    (data / "notes.txt").write_text("kept")

    result = _run(["plugins", "uninstall", "weather"], tmp_path, python=python)
    assert result.returncode == 0, result.stderr
    assert f"weather uninstalled (oc-weather); its data is kept in {data}" in result.stdout
    assert (data / "notes.txt").read_text() == "kept"
    listed = _run(["plugins", "list"], tmp_path, python=python).stdout
    assert "weather" not in listed
    show = subprocess.run([python, "-m", "pip", "show", "oc-weather"], capture_output=True)
    assert show.returncode != 0  # really gone from that environment

    subprocess.run(pip, check=True, capture_output=True)  # reinstalled: it comes back off
    listed = _run(["plugins", "list"], tmp_path, python=python).stdout
    assert "weather          0.3.0     package  off" in listed, listed
    purged = _run(["plugins", "uninstall", "weather", "--purge"], tmp_path, python=python)
    assert purged.returncode == 0 and not data.exists(), purged.stderr
