"""A skill's resource files, read only from inside its folder.

The model names the file (``read_skill_file``), so the name is hostile until checked: absolute
paths, ``..`` and anything that resolves outside the skill's folder (a symlink to ``/etc`` or to
the database) are refused. The check resolves the path, then opens it one component at a time
with ``O_NOFOLLOW`` relative to the folder's descriptor, so a symlink swapped in between the
check and the open is refused too, not followed.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path, PurePosixPath

from opencomputer.bot.skills.format import Skill

__all__ = [
    "MAX_FILE_BYTES",
    "MAX_LISTED",
    "SkillFileError",
    "confined",
    "list_files",
    "read_file",
]

MAX_FILE_BYTES = 256 * 1024
MAX_LISTED = 200


class SkillFileError(ValueError):
    """A resource that may not or cannot be read; ``str()`` is one line for the model."""


def list_files(skill: Skill) -> list[str]:
    """The skill's files besides ``SKILL.md``, relative, ``/``-separated (symlinks left out:
    they are not followed).
    """
    root = skill.folder
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if name.startswith(".") or path.is_symlink():
                continue
            relative = path.relative_to(root).as_posix()
            if relative != "SKILL.md":
                found.append(relative)
            if len(found) >= MAX_LISTED:
                return found
    return found


def confined(skill: Skill, path: str) -> list[str]:
    """The checked components of ``path`` inside the skill folder (or SkillFileError)."""
    text = path.strip().replace("\\", "/")
    if not text:
        raise SkillFileError("give the path of a file in the skill, e.g. references/guide.md")
    pure = PurePosixPath(text)
    if pure.is_absolute() or (len(text) > 1 and text[1] == ":"):
        raise SkillFileError(f"{path!r}: give a path relative to the skill's folder")
    if ".." in pure.parts:
        raise SkillFileError(f"{path!r}: '..' is not allowed; files outside the skill are off")
    root = skill.folder.resolve()
    try:
        target = (root / pure).resolve(strict=True)
    except FileNotFoundError:
        raise SkillFileError(f"{path!r}: no such file in skill {skill.name}") from None
    except (OSError, RuntimeError) as exc:
        raise SkillFileError(f"{path!r}: cannot be read ({exc})") from None
    if not target.is_relative_to(root) or target == root:
        raise SkillFileError(f"{path!r}: leads outside skill {skill.name}; refused")
    return list(target.relative_to(root).parts)


def read_file(skill: Skill, path: str) -> str:
    """The text of one file of ``skill`` (blocking: call it off the event loop)."""
    parts = confined(skill, path)
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    directory = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | flags
    fd = os.open(skill.folder.resolve(), directory)
    try:
        for part in parts[:-1]:
            try:
                nxt = os.open(part, directory, dir_fd=fd)
            except OSError as exc:
                raise _refusal(path, skill, exc) from None
            os.close(fd)
            fd = nxt
        try:
            handle = os.open(parts[-1], flags | getattr(os, "O_NONBLOCK", 0), dir_fd=fd)
        except OSError as exc:
            raise _refusal(path, skill, exc) from None
    finally:
        os.close(fd)
    try:
        info = os.fstat(handle)
        if not stat.S_ISREG(info.st_mode):
            raise SkillFileError(f"{path!r}: not a regular file")
        if info.st_size > MAX_FILE_BYTES:
            raise SkillFileError(
                f"{path!r}: {info.st_size} bytes, too large to read (at most {MAX_FILE_BYTES})"
            )
        data = os.read(handle, MAX_FILE_BYTES + 1)
    finally:
        os.close(handle)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise SkillFileError(f"{path!r}: not a text file (only UTF-8 text can be read)") from None


def _refusal(path: str, skill: Skill, exc: OSError) -> SkillFileError:
    if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
        return SkillFileError(f"{path!r}: changed into a link while being read; refused")
    return SkillFileError(f"{path!r}: cannot be read in skill {skill.name} ({exc.strerror})")
