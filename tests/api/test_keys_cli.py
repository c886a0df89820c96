"""``opencomputer keys`` as a user runs it: the key printed once, listed by prefix only,
revoked for good; mistakes get one line and an exit code, never a traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(60)


def keys(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OC_", "OLLAMA_"))}
    env["OC_DATA_DIR"] = str(tmp_path / "data")
    return subprocess.run(
        [sys.executable, "-m", "bot", "keys", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_create_list_revoke(tmp_path: Path) -> None:
    made = keys(tmp_path, "create", "--person", "ada", "--name", "open-webui")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("oc-") and len(token) > 40 and "\n" not in token
    assert "not shown again" in made.stderr

    listed = keys(tmp_path, "list")
    assert listed.returncode == 0
    assert "ada (open-webui)" in listed.stdout and "active" in listed.stdout
    assert token not in listed.stdout and token[:10] in listed.stdout

    assert keys(tmp_path, "revoke", "1").returncode == 0
    assert "revoked" in keys(tmp_path, "list").stdout
    again = keys(tmp_path, "revoke", "1")
    assert again.returncode == 1 and again.stderr.count("\n") == 1

    bad = keys(tmp_path, "create", "--person", "ada:admin")
    assert bad.returncode == 2 and "bad person name" in bad.stderr
    assert "Traceback" not in bad.stderr + again.stderr
