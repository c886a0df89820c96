"""``opencomputer skills list|show|enable|disable|install`` against a real SQLite database."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from opencomputer.bot.audit import recent
from opencomputer.bot.cli import app
from opencomputer.bot.storage import SqlStore
from tests.skills.helpers import FIXTURES, copy_fixtures, write_skill


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data = tmp_path / "data"
    monkeypatch.setenv("OC_DATA_DIR", str(data))
    monkeypatch.setenv("OC_SKILL_DIRS", str(copy_fixtures(tmp_path / "skills")))
    return data


def _audit(data: Path) -> list[tuple[str, str, dict[str, object]]]:
    async def read() -> list[tuple[str, str, dict[str, object]]]:
        store = SqlStore(f"sqlite:///{data / 'opencomputer.db'}")
        await store.start()
        try:
            return [(e.actor, e.action, e.detail) for e in await recent(store, 20)]
        finally:
            await store.stop()

    return asyncio.run(read())


def test_list_show_enable_disable(env: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    write_skill(tmp_path / "skills", "Broken", "---\nname: Broken\ndescription: d\n---\n")
    listed = runner.invoke(app, ["skills", "list"])
    assert listed.exit_code == 0, listed.output
    assert "haiku" in listed.output and "pdf-tools" in listed.output
    [haiku] = [line for line in listed.output.splitlines() if line.startswith("haiku")]
    assert " dir " in haiku and " on " in haiku
    assert "REFUSED" in listed.output and "Broken/SKILL.md" in listed.output

    shown = runner.invoke(app, ["skills", "show", "pdf-tools"])
    assert shown.exit_code == 0 and "PDF-BODY-MARKER" in shown.output
    assert "files: scripts/extract.py" in shown.output and "license: Apache-2.0" in shown.output

    off = runner.invoke(app, ["skills", "disable", "haiku"])
    assert off.exit_code == 0 and "haiku disabled everywhere" in off.output
    on_here = runner.invoke(app, ["skills", "enable", "haiku", "--chat", "telegram:42"])
    assert on_here.exit_code == 0, on_here.output
    [haiku] = [
        line
        for line in runner.invoke(app, ["skills", "list"]).output.splitlines()
        if line.startswith("haiku")
    ]
    assert "off (telegram:42=on)" in haiku

    missing = runner.invoke(app, ["skills", "enable", "nope"])
    assert missing.exit_code == 1 and "no usable skill named nope" in missing.output
    bad_chat = runner.invoke(app, ["skills", "enable", "haiku", "--chat", "42"])
    assert bad_chat.exit_code == 2 and "not a chat address" in bad_chat.output

    actions = [(actor, action, d["scope"]) for actor, action, d in _audit(env)]
    assert ("cli", "skill.disable", "*") in actions
    assert ("cli", "skill.enable", "telegram:42") in actions


def test_install_shared_and_own(env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OC_SKILL_DIRS")
    runner = CliRunner()
    done = runner.invoke(app, ["skills", "install", str(FIXTURES / "api-style-guide")])
    assert done.exit_code == 0, done.output
    installed = env / "skills" / "installed" / "api-style-guide"
    assert (installed / "references" / "naming.md").is_file()
    again = runner.invoke(app, ["skills", "install", str(FIXTURES / "api-style-guide")])
    assert again.exit_code == 1 and "--replace" in again.output
    replaced = runner.invoke(app, ["skills", "install", "--replace", str(installed)])
    assert replaced.exit_code == 0, replaced.output  # reinstalling from its own copy is fine
    nowhere = runner.invoke(app, ["skills", "install", str(tmp_path / "nowhere")])
    assert nowhere.exit_code == 1 and "not a folder holding a SKILL.md" in nowhere.output

    mine = runner.invoke(
        app, ["skills", "install", "--person", "telegram:7", str(FIXTURES / "haiku")]
    )
    assert mine.exit_code == 0, mine.output
    listed = runner.invoke(app, ["skills", "list"]).output
    assert "api-style-guide" in listed and "haiku" not in listed  # another person's, unlisted
    assert (
        "person telegram:7"
        in runner.invoke(app, ["skills", "list", "--person", "telegram:7"]).output
    )

    taken = write_skill(
        tmp_path / "other", "api-style-guide", "---\nname: api-style-guide\ndescription: x\n---\n"
    )
    clash = runner.invoke(app, ["skills", "install", "--person", "telegram:7", str(taken)])
    assert clash.exit_code == 1 and "is taken by" in clash.output

    bad = write_skill(tmp_path / "other", "bad", "no front matter\n")
    refused = runner.invoke(app, ["skills", "install", str(bad)])
    assert refused.exit_code == 1 and "no front matter" in refused.output
    assert "Traceback" not in refused.output

    actions = [(a, d.get("skill"), d.get("person")) for _, a, d in _audit(env)]
    assert ("skill.install", "api-style-guide", None) in actions
    assert ("skill.install", "haiku", "telegram:7") in actions


def test_install_refuses_a_symlink_to_a_secret(env: Path, tmp_path: Path) -> None:
    (tmp_path / "secret.env").write_text("TOKEN=hunter2", encoding="utf-8")
    folder = write_skill(tmp_path / "evil", "evil", "---\nname: evil\ndescription: x\n---\n")
    os.symlink(tmp_path / "secret.env", folder / "notes.md")
    result = CliRunner().invoke(app, ["skills", "install", str(folder)])
    assert result.exit_code == 1 and "a symlink; replace it" in result.output
    assert not (env / "skills" / "installed" / "evil").exists()
