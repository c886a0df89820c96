"""SKILL.md parsing: the public format loads unchanged; malformed files are refused one line
each while the others load.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from opencomputer.bot.skills.catalog import SkillCatalog
from opencomputer.bot.skills.format import SkillError, read_skill
from tests.skills.helpers import FIXTURES, copy_fixtures, write_skill


def test_public_format_skills_load_unchanged(tmp_path: Path) -> None:
    catalog = SkillCatalog([FIXTURES], tmp_path / "data", plugins=tmp_path / "none")
    scan = catalog.scan()
    assert scan.refused == []
    assert sorted(scan.skills) == ["api-style-guide", "haiku", "pdf-tools"]
    pdf = scan.skills["pdf-tools"]
    assert pdf.license == "Apache-2.0" and pdf.allowed_tools == ("Bash(python3:*)", "Read")
    assert pdf.metadata == {"author": "example-org", "version": "1.0"}
    assert pdf.body.startswith("# PDF tools") and pdf.source == "dir"
    style = scan.skills["api-style-guide"]
    # folded YAML scalar, and a peer's own key kept aside (not refused)
    assert style.description.startswith("Review HTTP API designs") and "\n" not in style.description
    assert style.extra == {"user-invocable": True}
    assert scan.skills["haiku"].body.startswith("HAIKU-BODY-MARKER")


def _front(name: str = "x", description: str = "Does x.") -> str:
    return f"---\nname: {name}\ndescription: {description}\n---\nbody\n"


MALFORMED = {
    "no-front": ("# just markdown\n", "no front matter"),
    "unclosed": ("---\nname: unclosed\ndescription: d\n", "not closed"),
    "bad-yaml": ("---\nname: bad-yaml\ndescription: a: b: c\n---\n", "not valid YAML (line 3)"),
    "not-mapping": ("---\n- a\n- b\n---\n", "write it as 'key: value' lines"),
    "no-desc": ("---\nname: no-desc\n---\nbody\n", "'description' is missing"),
    "Upper-Case": (_front("Upper-Case"), "lowercase letters"),
    "double--hyphen": (_front("double--hyphen"), "single hyphens"),
    "mismatch": (_front("other-name"), "differs from its folder 'mismatch'"),
    "long-desc": (_front("long-desc", "x" * 1025), "1025 characters long"),
    "number-name": ("---\nname: 12\ndescription: d\n---\n", "must be text"),
    "a" * 65: (_front("a" * 65), "65 characters long (at most 64)"),
}


def test_malformed_skills_are_refused_one_line_each(tmp_path: Path) -> None:
    root = copy_fixtures(tmp_path / "skills")
    for folder, (text, _) in MALFORMED.items():
        write_skill(root, folder, text)
    (root / "lower").mkdir()
    (root / "lower" / "skill.md").write_text(_front("lower"), encoding="utf-8")
    (root / "latin1").mkdir()
    (root / "latin1" / "SKILL.md").write_bytes(b"---\nname: latin1\ndescription: caf\xe9\n---\n")

    scan = SkillCatalog([root], tmp_path / "data", plugins=tmp_path / "none").scan()
    assert sorted(scan.skills) == ["api-style-guide", "haiku", "pdf-tools"]  # the others load
    assert len(scan.refused) == len(MALFORMED) + 2
    for line in scan.refused:
        assert "\n" not in line and "Traceback" not in line
        assert line.startswith(str(root)) and ";" in line  # which file; what; how to fix
    for folder, (_, why) in MALFORMED.items():
        [line] = [r for r in scan.refused if r.startswith(str(root / folder) + "/")]
        assert why in line, line
    assert any("rename it to SKILL.md" in r for r in scan.refused)
    assert any("not UTF-8" in r for r in scan.refused)


def test_duplicate_name_keeps_the_first_source(tmp_path: Path) -> None:
    first = write_skill(tmp_path / "a", "haiku", _front("haiku", "First."))
    write_skill(tmp_path / "b", "haiku", _front("haiku", "Second."))
    scan = SkillCatalog([tmp_path / "a", tmp_path / "b"], tmp_path / "d", plugins=tmp_path).scan()
    assert scan.skills["haiku"].description == "First." and scan.skills["haiku"].folder == first
    [line] = scan.refused
    assert "is taken by" in line and str(tmp_path / "b") in line


def test_oversized_skill_md_is_refused(tmp_path: Path) -> None:
    folder = write_skill(tmp_path, "big", _front("big") + "x" * 300_000)
    with pytest.raises(SkillError, match="too large"):
        read_skill(folder, source="dir")


def test_a_skill_dir_may_be_one_skill_folder_and_edits_are_picked_up(tmp_path: Path) -> None:
    folder = write_skill(tmp_path, "haiku", _front("haiku", "Old."))
    catalog = SkillCatalog([folder], tmp_path / "d", plugins=tmp_path / "none")
    assert catalog.scan().skills["haiku"].description == "Old."
    (folder / "SKILL.md").write_text(_front("haiku", "New, longer."), encoding="utf-8")
    assert catalog.scan().skills["haiku"].description == "New, longer."


def test_builtin_plugin_skills_are_a_source(tmp_path: Path) -> None:
    write_skill(tmp_path / "plugins" / "notes" / "skills", "journal", _front("journal"))
    scan = SkillCatalog([], tmp_path / "d", plugins=tmp_path / "plugins").scan()
    assert scan.skills["journal"].source == "plugin:notes"
