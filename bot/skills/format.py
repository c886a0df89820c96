"""Reading one ``SKILL.md``: YAML front matter, then a Markdown body.

The rules are those of the public Agent Skills specification
(agentskills/agentskills, ``docs/specification.mdx``; the format Claude Code, OpenClaw, Hermes
Agent and others read), so a skill written for them loads here unchanged:

* the file starts with front matter between two ``---`` lines, a YAML mapping;
* ``name``: 1-64 characters, lowercase letters, digits and hyphens, not starting or ending
  with a hyphen, no ``--``, and equal to the skill's folder name;
* ``description``: a non-empty string of at most 1024 characters (what the skill does and when
  to use it: it is all the model sees until it uses the skill);
* optional ``license`` (a string), ``compatibility`` (at most 500 characters), ``metadata`` (a
  mapping) and ``allowed-tools`` (experimental: a space-separated string; Claude Code also
  writes a list, which is accepted).

The reference validator (``skills-ref``) refuses any other key; peers' skills carry their own
(``version``, ``user-invocable``, ``disable-model-invocation``...), so unknown keys are kept in
:attr:`Skill.extra` and otherwise ignored. YAML is read with PyYAML's ``safe_load``: no tags
that build Python objects. Every problem is one :class:`SkillError` line: which file, what is
wrong, how to fix it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = ["MAX_SKILL_BYTES", "Skill", "SkillError", "check_name", "parse_skill", "read_skill"]

MAX_SKILL_BYTES = 256 * 1024
"""A ``SKILL.md`` larger than this is refused (the spec asks for under 500 lines)."""

_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")
_KNOWN = {"name", "description", "license", "compatibility", "metadata", "allowed-tools"}


class SkillError(ValueError):
    """A skill that cannot be loaded; ``str()`` is one line naming the file and the fix."""


@dataclass(frozen=True, slots=True)
class Skill:
    """A valid skill: what the model is shown first, what it reads when it uses it, and where
    it came from.
    """

    name: str
    description: str
    body: str
    folder: Path
    source: str  # "plugin:<name>", "dir", "installed" or "person"
    owner: str | None = None  # the person whose own skill this is (None: shared)
    license: str | None = None
    compatibility: str | None = None
    allowed_tools: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def check_name(name: str) -> str | None:
    """What is wrong with ``name`` as a skill name (None: nothing)."""
    if not name:
        return "is empty"
    if len(name) > 64:
        return f"is {len(name)} characters long (at most 64)"
    if not _NAME.match(name) or "--" in name:
        return (
            "may hold only lowercase letters, digits and single hyphens, and may not start or "
            "end with a hyphen"
        )
    return None


def _split(text: str, where: Path) -> tuple[str, str]:
    """The front matter and the body of a ``SKILL.md``."""
    lines = text.split("\n")
    if not lines or lines[0].strip() != "---":
        raise SkillError(
            f"{where}: no front matter; start the file with a line '---', then 'name:' and "
            "'description:', then another '---'"
        )
    for index in range(1, len(lines)):
        if lines[index].rstrip() in ("---", "..."):
            return "\n".join(lines[1:index]), "\n".join(lines[index + 1 :]).strip("\n")
    raise SkillError(f"{where}: the front matter is not closed; add a line '---' after it")


def _string(meta: dict[str, Any], key: str, where: Path, limit: int | None = None) -> str | None:
    value = meta.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise SkillError(f"{where}: '{key}' must be text, not {type(value).__name__}; quote it")
    if limit is not None and len(value) > limit:
        raise SkillError(
            f"{where}: '{key}' is {len(value)} characters long; shorten it to at most {limit}"
        )
    return value


def _tools(value: Any, where: Path) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(part for part in re.split(r"[\s,]+", value) if part)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise SkillError(f"{where}: 'allowed-tools' must be a space-separated string of tool names")


def parse_skill(text: str, folder: Path, *, source: str, owner: str | None = None) -> Skill:
    """Validate the text of ``folder/SKILL.md`` and return the skill (or raise SkillError)."""
    where = folder / "SKILL.md"
    front, body = _split(text.lstrip("\ufeff").replace("\r\n", "\n"), where)
    try:
        meta = yaml.safe_load(front)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" (line {mark.line + 2})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise SkillError(
            f"{where}: the front matter is not valid YAML{line}: {problem}; quote values "
            "that contain ': ' or start with a special character"
        ) from None
    if not isinstance(meta, dict):
        raise SkillError(
            f"{where}: the front matter is not a mapping; write it as 'key: value' lines"
        )
    for key in ("name", "description"):
        if meta.get(key) in (None, ""):
            raise SkillError(f"{where}: '{key}' is missing; add '{key}: ...' to the front matter")
    name = _string(meta, "name", where) or ""
    if (problem := check_name(name)) is not None:
        raise SkillError(f"{where}: the name {name!r} {problem}; rename it (e.g. 'pdf-tools')")
    if name != folder.name:
        raise SkillError(
            f"{where}: the name {name!r} differs from its folder {folder.name!r}; rename one "
            "so that they match"
        )
    description = (_string(meta, "description", where, 1024) or "").strip()
    if not description:
        raise SkillError(f"{where}: 'description' is blank; say what the skill does and when")
    metadata = meta.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise SkillError(f"{where}: 'metadata' must be a mapping of 'key: value' lines")
    return Skill(
        name=name,
        description=" ".join(description.split()),
        body=body,
        folder=folder,
        source=source,
        owner=owner,
        license=_string(meta, "license", where),
        compatibility=_string(meta, "compatibility", where, 500),
        allowed_tools=_tools(meta.get("allowed-tools"), where),
        metadata=metadata,
        extra={k: v for k, v in meta.items() if k not in _KNOWN},
    )


def read_skill(folder: Path, *, source: str, owner: str | None = None) -> Skill:
    """Read and validate ``folder/SKILL.md`` (blocking: call it off the event loop)."""
    where = folder / "SKILL.md"
    try:
        size = where.stat().st_size
        if size > MAX_SKILL_BYTES:
            raise SkillError(
                f"{where}: {size} bytes is too large (at most {MAX_SKILL_BYTES}); move detail "
                "into references/ files"
            )
        text = where.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise SkillError(f"{where}: not UTF-8 text; save it as UTF-8") from None
    except FileNotFoundError:
        if (folder / "skill.md").is_file():
            raise SkillError(
                f"{folder / 'skill.md'}: wrong name; rename it to SKILL.md (capitals)"
            ) from None
        raise SkillError(f"{where}: missing; add a SKILL.md to the folder") from None
    except OSError as exc:
        raise SkillError(f"{where}: cannot be read ({exc.strerror or exc}); check it") from None
    return parse_skill(text, folder, source=source, owner=owner)
