"""Attack: root keeps its capabilities in the sandbox (issue 13, item 4).

The plugin remounts its read-only code and the server's virtualenv writable through libc's
``mount()`` (as is, and again after ``unshare(CLONE_NEWUSER)``) and writes into them. In its own
user namespace as uid 65534 with no capabilities it must fail, whoever runs the server.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from opencomputer.bot.plugins import sandbox as sandbox_module
from opencomputer.bot.plugins.sandbox import Sandbox
from tests.security.sandbox_kit import call, call_as_nobody, host_for, nobody_root, write_hostile

VENV = Path(sys.prefix)


def _assert_walled(answer: str, code: Path) -> None:
    report = json.loads(answer)
    for target in (str(code), str(VENV)):
        assert report[f"remount {target}"][0] == -1
        assert report[f"remount again {target}"][0] == -1
        assert "error" in report[f"write {target}"]
    assert report["unshare"][0] == -1  # no nested user namespace either
    planted = [p for p in (code / "pwned.txt", VENV / "pwned.txt") if p.exists()]
    for path in planted:  # a broken sandbox must not leave its mark in the real venv
        path.unlink()
    assert planted == []


async def test_root_cannot_remount_code_or_venv_writable(tmp_path: Path) -> None:
    assert os.geteuid() == 0, "CI runs this as root: that is the case under test"
    code = write_hostile(tmp_path / "plugins")
    answer = await call(
        tmp_path / "plugins",
        tmp_path / "data",
        "hostile",
        "remount_and_write",
        targets=[str(code), str(VENV)],
    )
    _assert_walled(answer, code)


def test_nobody_cannot_remount_code_or_venv_writable() -> None:
    with nobody_root() as root:
        code = write_hostile(root / "plugins")
        answer = call_as_nobody(
            root / "plugins",
            root / "data",
            "hostile",
            "remount_and_write",
            targets=[str(code), str(VENV)],
        )
        _assert_walled(answer, code)


FAKE_BWRAP = """#!/bin/sh
if [ "$1" = --version ]; then echo "bubblewrap {version}"; exit 0; fi
echo 'bwrap: No permissions to create new namespace' >&2
exit 1
"""


@pytest.mark.parametrize(
    ("version", "reason"),
    [("0.8.0", "cannot drop privileges"), ("0.6.1", "bubblewrap 0.8 or later is needed")],
)
def test_a_sandbox_that_cannot_drop_privileges_refuses_plugins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, version: str, reason: str
) -> None:
    """A bubblewrap that cannot create a user namespace (user.max_user_namespaces=0), or one
    too old for the sandbox's options: sandboxed plugins are refused with one line."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "bwrap"
    fake.write_text(FAKE_BWRAP.format(version=version))
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", str(bin_dir))
    sandbox_module.drops_privileges.cache_clear()
    try:
        write_hostile(tmp_path / "plugins")
        host = host_for(tmp_path / "plugins", tmp_path / "data")
        refusal = Sandbox(mode="on").refusal()
    finally:
        sandbox_module.drops_privileges.cache_clear()
    assert "hostile" not in host.plugins
    assert refusal is not None and "\n" not in refusal
    assert reason in refusal and "OC_PLUGIN_SANDBOX=off" in refusal
    (line,) = [str(b) for b in host.broken if b.name == "hostile"]
    assert reason in line
