"""read_skill_file as its attacker would call it: traversal, absolute paths, symlinks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from opencomputer.bot.skills.catalog import SkillCatalog
from opencomputer.bot.skills.files import SkillFileError, list_files, read_file
from opencomputer.bot.skills.format import Skill
from tests.skills.helpers import copy_fixtures


@pytest.fixture
def skill(tmp_path: Path) -> Skill:
    root = copy_fixtures(tmp_path / "skills")
    (tmp_path / "secret.txt").write_text("TOP-SECRET", encoding="utf-8")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "key.pem").write_text("PRIVATE-KEY", encoding="utf-8")
    return (
        SkillCatalog([root], tmp_path / "d", plugins=tmp_path / "none")
        .scan()
        .skills["api-style-guide"]
    )


def test_reads_a_resource_and_lists_files(skill: Skill) -> None:
    assert "NAMING-REFERENCE-MARKER" in read_file(skill, "references/naming.md")
    assert "NAMING-REFERENCE-MARKER" in read_file(skill, "./references//naming.md")
    assert list_files(skill) == ["references/naming.md"]


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("../../secret.txt", "'..' is not allowed"),
        ("references/../../../secret.txt", "'..' is not allowed"),
        ("..\\..\\secret.txt", "'..' is not allowed"),
        ("/etc/passwd", "relative to the skill's folder"),
        ("C:/Windows/win.ini", "relative to the skill's folder"),
        ("", "give the path"),
        ("references/missing.md", "no such file"),
        ("references", "not a regular file"),
    ],
)
def test_paths_outside_or_odd_are_refused(skill: Skill, path: str, why: str) -> None:
    with pytest.raises(SkillFileError, match=why.replace("(", r"\(").replace(".", r"\.")):
        read_file(skill, path)


def test_symlink_escapes_are_refused(skill: Skill, tmp_path: Path) -> None:
    folder = skill.folder
    os.symlink(tmp_path / "secret.txt", folder / "references" / "notes.md")
    os.symlink(tmp_path / "outside", folder / "more")
    os.symlink("/etc", folder / "etc")
    for path in ("references/notes.md", "more/key.pem", "etc/passwd"):
        with pytest.raises(SkillFileError, match="leads outside skill api-style-guide"):
            read_file(skill, path)
    assert "references/notes.md" not in list_files(skill)  # links are not advertised either
    # a link that stays inside the skill is fine
    os.symlink("naming.md", folder / "references" / "alias.md")
    assert "NAMING-REFERENCE-MARKER" in read_file(skill, "references/alias.md")


def test_a_link_swapped_in_after_the_check_is_not_followed(
    skill: Skill, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race: the path checks out, then a directory on it becomes a link outside."""
    import opencomputer.bot.skills.files as files

    real = files.confined

    def check_then_swap(s: Skill, path: str) -> list[str]:
        parts = real(s, path)
        refs = s.folder / "references"
        refs.rename(s.folder / "moved")
        os.symlink(tmp_path / "outside", refs)
        (tmp_path / "outside" / "naming.md").write_text("STOLEN", encoding="utf-8")
        return parts

    monkeypatch.setattr(files, "confined", check_then_swap)
    with pytest.raises(SkillFileError, match="changed into a link"):
        read_file(skill, "references/naming.md")


def test_binary_and_huge_files_are_refused(skill: Skill) -> None:
    (skill.folder / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    (skill.folder / "huge.md").write_bytes(b"x" * 300_000)
    with pytest.raises(SkillFileError, match="not a text file"):
        read_file(skill, "logo.png")
    with pytest.raises(SkillFileError, match="too large"):
        read_file(skill, "huge.md")
