"""``opencomputer keys`` as a user runs it: the key printed once, listed by prefix only,
revoked for good; mistakes get one line and an exit code, never a traceback.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from opencomputer.bot.cli import app
from opencomputer.bot.config import load_settings
from opencomputer.connectors.api.doctor import diagnose


def test_create_list_revoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OC_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()
    made = runner.invoke(app, ["keys", "create", "--person", "ada", "--name", "open-webui"])
    assert made.exit_code == 0, made.output
    token = made.stdout.strip()
    assert token.startswith("oc-") and len(token) > 40 and "\n" not in token
    assert "not shown again" in made.stderr

    listed = runner.invoke(app, ["keys", "list"])
    assert listed.exit_code == 0
    assert "ada (open-webui)" in listed.stdout and "active" in listed.stdout
    assert token not in listed.output and token[:10] in listed.stdout

    [check] = asyncio.run(diagnose(load_settings(OC_API_ENABLED="true")))
    assert check.ok and "1 active key(s) for ada" in check.detail

    assert runner.invoke(app, ["keys", "revoke", "1"]).exit_code == 0
    [check] = asyncio.run(diagnose(load_settings(OC_API_ENABLED="true")))
    assert check.warning and "opencomputer keys create --person NAME" in check.detail
    assert "revoked" in runner.invoke(app, ["keys", "list"]).stdout
    again = runner.invoke(app, ["keys", "revoke", "1"])
    assert again.exit_code == 1 and again.stderr.count("\n") == 1

    bad = runner.invoke(app, ["keys", "create", "--person", "ada:admin"])
    assert bad.exit_code == 2 and "bad person name" in bad.stderr
    assert bad.exception is None or isinstance(bad.exception, SystemExit)
