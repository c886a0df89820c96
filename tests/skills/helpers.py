"""Shared pieces of the skills suite: the public-format fixtures and writing skill folders."""

from __future__ import annotations

import shutil
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"


def copy_fixtures(target: Path) -> Path:
    """A writable copy of the three public-format skills (pdf-tools, api-style-guide, haiku)."""
    shutil.copytree(FIXTURES, target)
    return target


def write_skill(root: Path, folder: str, text: str) -> Path:
    """``root/folder/SKILL.md`` with ``text``."""
    path = root / folder
    path.mkdir(parents=True, exist_ok=True)
    (path / "SKILL.md").write_text(text, encoding="utf-8")
    return path


def system_prompt(body: dict[str, object]) -> str:
    """The system message of a recorded ``/api/chat`` body."""
    messages = body.get("messages", [])
    assert isinstance(messages, list) and messages and messages[0]["role"] == "system"
    return str(messages[0]["content"])


def tool_names(body: dict[str, object]) -> set[str]:
    """The names of the tools offered in a recorded ``/api/chat`` body."""
    tools = body.get("tools") or []
    assert isinstance(tools, list)
    return {t["function"]["name"] for t in tools}
