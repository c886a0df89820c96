"""Attack: a plugin with no permissions reads the server's secrets from /proc (issue 13, item 1).

Bubblewrap used to start with the server's environment and is PID 1 in the sandbox, so
``/proc/1/environ`` held every token. The test puts a random token in the server's environment
and asserts its value never shows up in anything the plugin reads, as root and as uid 65534.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest

from tests.security.sandbox_kit import call, call_as_nobody, nobody_root, write_hostile


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> str:
    value = f"{secrets.randbelow(10**9)}:{secrets.token_urlsafe(24)}"
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", value)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", value[::-1])
    return value


def _assert_clean(answer: str, token: str) -> None:
    assert token not in answer and token[::-1] not in answer
    seen = json.loads(answer)
    assert not seen["/proc/1/environ"].startswith("error")  # it was read: and it is empty
    assert "TELEGRAM_BOT_TOKEN" not in seen["os.environ"]
    assert len([k for k in seen if k.endswith("/environ")]) >= 2  # bwrap (PID 1) and the worker


async def test_proc_environ_holds_no_server_secret_as_root(tmp_path: Path, token: str) -> None:
    plugins = tmp_path / "plugins"
    write_hostile(plugins)
    answer = await call(plugins, tmp_path / "data", "hostile", "loot")
    _assert_clean(answer, token)


def test_proc_environ_holds_no_server_secret_as_nobody(token: str) -> None:
    with nobody_root() as root:
        write_hostile(root / "plugins")
        answer = call_as_nobody(root / "plugins", root / "data", "hostile", "loot")
    _assert_clean(answer, token)
