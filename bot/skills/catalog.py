"""Where skills come from, and which of them a person sees.

Sources, in the order a name is claimed (the first folder holding a name keeps it):

1. the ``skills/`` folder of each built-in plugin (``plugins/<plugin>/skills/<skill>/``);
2. every folder in ``OC_SKILL_DIRS``: a folder of skill folders, or one skill folder itself;
3. skills installed with ``opencomputer skills install`` (``<data>/skills/installed/``);
4. a person's own skills (``<data>/skills/people/<person>/``): seen by that person only, and
   only in a direct chat, so neither another person nor a group ever reads them. A person's
   skill cannot take the name of a shared one.

Folders are scanned whenever a turn asks (a skill dropped into a folder is used from the next
message on); each ``SKILL.md`` is parsed again only when its size or modification time changed.
A refused skill is logged once per version of its file, as one line.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from opencomputer.bot.skills.format import Skill, SkillError, read_skill

__all__ = ["PLUGINS_DIR", "Scan", "SkillCatalog", "person_folder"]

logger = logging.getLogger(__name__)

PLUGINS_DIR = Path(__file__).resolve().parents[2] / "plugins"
"""The built-in plugins, whose ``skills/`` folders are a source."""


def person_folder(data_dir: Path, person: str) -> Path:
    """The folder of a person's own skills; the person id is percent-encoded, so that two
    people never share a folder and no id can climb out of it (``../x`` becomes ``..%2Fx``).
    """
    return data_dir / "skills" / "people" / quote(person, safe="")


@dataclass(slots=True)
class Scan:
    """The skills found (by name) and the refusals (one line each)."""

    skills: dict[str, Skill] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)


class SkillCatalog:
    """Every source of skills, scanned on demand (blocking: run it in a thread)."""

    def __init__(
        self, skill_dirs: Sequence[str | Path], data_dir: Path, *, plugins: Path | None = None
    ) -> None:
        self.data_dir = data_dir
        roots: list[tuple[str, Path]] = []
        base = PLUGINS_DIR if plugins is None else plugins
        if base.is_dir():
            roots += [(f"plugin:{p.name}", p / "skills") for p in sorted(base.iterdir())]
        roots += [("dir", Path(d).expanduser()) for d in skill_dirs]
        roots.append(("installed", self.installed_dir))
        self.roots = roots
        self._parsed: dict[Path, tuple[tuple[int, int], Skill | SkillError]] = {}
        self._reported: set[str] = set()

    @property
    def installed_dir(self) -> Path:
        """Where ``opencomputer skills install`` puts shared skills."""
        return self.data_dir / "skills" / "installed"

    def own_dir(self, person: str) -> Path:
        """Where a person's own skills live."""
        return person_folder(self.data_dir, person)

    def scan(self, person: str | None = None, *, shared: bool = True) -> Scan:
        """The shared skills (``shared``), plus ``person``'s own when given."""
        found = Scan()
        taken: dict[str, Path] = {}
        for source, root in self.roots:
            for folder in _skill_folders(root):
                self._add(found, taken, folder, source, None, keep=shared)
        if person is not None:
            for folder in _skill_folders(self.own_dir(person)):
                self._add(found, taken, folder, "person", person, keep=True)
        return found

    def has_any(self) -> bool:
        """Whether any source holds a skill folder at all (cheap: no file is parsed)."""
        if any(True for _source, root in self.roots for _ in _skill_folders(root)):
            return True
        people = self.data_dir / "skills" / "people"
        return people.is_dir() and any(_skill_folders_under(people))

    def _add(
        self,
        found: Scan,
        taken: dict[str, Path],
        folder: Path,
        source: str,
        owner: str | None,
        *,
        keep: bool,
    ) -> None:
        result = self._parse(folder, source, owner)
        if isinstance(result, SkillError):
            line = str(result)
        elif result.name in taken:
            line = (
                f"{folder / 'SKILL.md'}: the name {result.name!r} is taken by "
                f"{taken[result.name]}; rename this skill (folder and name)"
            )
        else:
            taken[result.name] = folder
            if keep:
                found.skills[result.name] = result
            return
        if keep:
            found.refused.append(line)
        if line not in self._reported:
            self._reported.add(line)
            logger.warning("skill refused: %s", line)

    def _parse(self, folder: Path, source: str, owner: str | None) -> Skill | SkillError:
        path = folder / "SKILL.md"
        try:
            stat = path.stat()
            version = (stat.st_mtime_ns, stat.st_size)
        except OSError:
            version = (0, -1)
        cached = self._parsed.get(path)
        if cached is not None and cached[0] == version:
            return cached[1]
        result: Skill | SkillError
        try:
            result = read_skill(folder, source=source, owner=owner)
        except SkillError as exc:
            result = exc
        self._parsed[path] = (version, result)
        return result


def _skill_folders(root: Path) -> Iterator[Path]:
    """The skill folders in ``root`` (or ``root`` itself when it holds a ``SKILL.md``)."""
    if (root / "SKILL.md").is_file():
        yield root
        return
    yield from _skill_folders_under(root)


def _skill_folders_under(root: Path) -> Iterator[Path]:
    try:
        children = sorted(os.scandir(root), key=lambda entry: entry.name)
    except OSError:
        return
    for entry in children:
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        folder = Path(entry.path)
        if (folder / "SKILL.md").is_file():
            yield folder
        elif (folder / "skill.md").is_file():  # refused with its fix by read_skill's caller
            yield folder
        elif root.name == "people":  # <data>/skills/people/<person>/<skill>
            yield from _skill_folders_under(folder)
