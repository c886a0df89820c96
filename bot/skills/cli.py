"""``opencomputer skills list|show|enable|disable|install`` (and, from bot/skills/learned_cli.py,
``learned|approve|pin|unpin|edit|delete|gaps``).

Every change is written to the audit log (actor ``cli``). Running servers read skill folders
and decisions on every turn, so a change applies from the next message on.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from opencomputer.bot.config import Settings
    from opencomputer.bot.skills.catalog import Scan, SkillCatalog

__all__ = ["skills_app"]

skills_app = typer.Typer(
    help="Skills (SKILL.md folders): list, show, enable, install.", no_args_is_help=True
)
PersonOption = Annotated[
    str | None,
    typer.Option("--person", help="A person's own skills (their id, e.g. telegram:12345)."),
]
ChatOption = Annotated[
    str | None,
    typer.Option("--chat", help="Only in this chat (platform:chat_id); default: everywhere."),
]
MAX_INSTALL_BYTES = 20 * 1024 * 1024
MAX_INSTALL_FILES = 500


def _settings() -> Settings:
    from opencomputer.bot.plugins.startup import settings_or_exit

    return settings_or_exit()


def _catalog(settings: Settings) -> SkillCatalog:
    from opencomputer.bot.skills.catalog import SkillCatalog

    return SkillCatalog(settings.skill_dirs, settings.data_dir)


def _scan(catalog: SkillCatalog, person: str | None) -> Scan:
    """Scan without the catalog's log lines: each refusal is printed here instead."""
    import logging

    quiet = logging.getLogger("opencomputer.bot.skills.catalog")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        return catalog.scan(person)
    finally:
        quiet.setLevel(level)


def _fail(line: str, code: int = 1) -> typer.Exit:
    typer.secho(line, fg="red", err=True)
    return typer.Exit(code)


async def _decisions(settings: Settings) -> dict[tuple[str, str], bool]:
    from opencomputer.bot.skills.state import SkillStates
    from opencomputer.bot.storage import SqlStore

    store = SqlStore(settings.resolved_database_url)
    await store.start()
    try:
        return await SkillStates(store.engine).decisions()
    finally:
        await store.stop()


def _state(decisions: dict[tuple[str, str], bool], name: str) -> str:
    on = decisions.get((name, "*"), True)
    chats = [
        f"{s}={'on' if v else 'off'}" for (n, s), v in decisions.items() if n == name and s != "*"
    ]
    return ("on" if on else "off") + (f" ({', '.join(sorted(chats))})" if chats else "")


@skills_app.command("list")
def list_(person: PersonOption = None) -> None:
    """Every shared skill (and a person's own with --person), its source and state."""
    settings = _settings()
    scan = _scan(_catalog(settings), person)
    decisions = asyncio.run(_decisions(settings))
    for name, skill in sorted(scan.skills.items()):
        source = f"person {skill.owner}" if skill.owner else skill.source
        typer.echo(f"{name:<24} {source:<16} {_state(decisions, name):<8} {skill.description}")
    for line in scan.refused:
        typer.secho(f"REFUSED {line}", fg="yellow")
    if not scan.skills and not scan.refused:
        typer.echo("no skills (put skill folders into OC_SKILL_DIRS, or `skills install PATH`)")


def _find(settings: Settings, name: str, person: str | None) -> Scan:
    scan = _scan(_catalog(settings), person)
    if name not in scan.skills:
        hint = "" if person else " (a person's own skill: add --person)"
        raise _fail(f"no usable skill named {name} (see `opencomputer skills list`){hint}")
    return scan


@skills_app.command("show")
def show(name: str, person: PersonOption = None) -> None:
    """A skill's details, files and instructions."""
    from opencomputer.bot.skills.files import list_files

    settings = _settings()
    skill = _find(settings, name, person).skills[name]
    decisions = asyncio.run(_decisions(settings))
    typer.echo(f"{skill.name}  ({_state(decisions, name)}; {skill.source}, {skill.folder})")
    typer.echo(f"description: {skill.description}")
    for label, value in (("license", skill.license), ("compatibility", skill.compatibility)):
        if value:
            typer.echo(f"{label}: {value}")
    if skill.allowed_tools:
        typer.echo("allowed-tools: " + " ".join(skill.allowed_tools))
    files = list_files(skill)
    if files:
        typer.echo("files: " + ", ".join(files))
    typer.echo("")
    typer.echo(skill.body)


def _check_chat(chat: str | None) -> None:
    if chat is None:
        return
    platform, sep, chat_id = chat.partition(":")
    if not sep or not platform.strip() or not chat_id.strip() or chat != chat.strip():
        raise _fail(
            f"--chat {chat!r} is not a chat address: use platform:chat_id (e.g. telegram:-1001234)",
            2,
        )


async def _apply(settings: Settings, name: str, enabled: bool, scope: str) -> None:
    from opencomputer.bot import audit as audit_log
    from opencomputer.bot.skills.state import SkillStates
    from opencomputer.bot.storage import SqlStore

    store = SqlStore(settings.resolved_database_url)
    await store.start()
    try:
        await SkillStates(store.engine).set(name, enabled, scope)
        action = "skill.enable" if enabled else "skill.disable"
        await audit_log.audit(store, "cli", action, {"skill": name, "scope": scope})
    finally:
        await store.stop()


def _set(name: str, enabled: bool, chat: str | None, person: str | None) -> None:
    _check_chat(chat)
    settings = _settings()
    _find(settings, name, person)
    asyncio.run(_apply(settings, name, enabled, chat or "*"))
    where = f"in {chat}" if chat else "everywhere"
    typer.echo(f"{name} {'enabled' if enabled else 'disabled'} {where} (from the next message on)")


@skills_app.command("enable")
def enable(name: str, chat: ChatOption = None, person: PersonOption = None) -> None:
    """Turn a skill on, everywhere or in one chat."""
    _set(name, True, chat, person)


@skills_app.command("disable")
def disable(name: str, chat: ChatOption = None, person: PersonOption = None) -> None:
    """Turn a skill off, everywhere or in one chat."""
    _set(name, False, chat, person)


def _check_tree(folder: Path) -> None:
    """Refuse what would not copy as it reads: links (a link to a secret would be copied as
    the secret, into a folder the model may read) and trees too large to be a skill.
    """
    count, size = 0, 0
    for path in folder.rglob("*"):
        if path.is_symlink():
            raise _fail(f"{path}: a symlink; replace it with the file itself, then install again")
        if path.is_file():
            count, size = count + 1, size + path.stat().st_size
        elif not path.is_dir():
            raise _fail(f"{path}: not a regular file; remove it, then install again")
    if count > MAX_INSTALL_FILES or size > MAX_INSTALL_BYTES:
        raise _fail(
            f"{folder}: {count} files, {size} bytes: too large for a skill (at most "
            f"{MAX_INSTALL_FILES} files, {MAX_INSTALL_BYTES // 2**20} MB)"
        )


@skills_app.command("install")
def install(
    path: Path,
    person: PersonOption = None,
    replace: Annotated[bool, typer.Option("--replace", help="Replace an installed copy.")] = False,
) -> None:
    """Copy a skill folder in, for everyone (or for one person with --person)."""
    from opencomputer.bot.skills.format import SkillError, read_skill

    settings = _settings()
    folder = path.expanduser()
    if folder.name == "SKILL.md":
        folder = folder.parent
    if folder.is_symlink() or not folder.is_dir():
        raise _fail(f"{path}: not a folder holding a SKILL.md (give the skill's folder)")
    try:
        skill = read_skill(folder, source="installed")
    except SkillError as exc:
        raise _fail(str(exc)) from None
    _check_tree(folder)
    catalog = _catalog(settings)
    target = (catalog.own_dir(person) if person else catalog.installed_dir) / skill.name
    existing = _scan(catalog, person).skills.get(skill.name)
    if existing is not None and existing.folder != target:
        raise _fail(f"the name {skill.name!r} is taken by {existing.folder}; rename this skill")
    if target.exists() and not replace:
        raise _fail(f"{skill.name} is installed already ({target}); add --replace to update it")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{skill.name}.installing")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(folder, staging, symlinks=True)
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)

    async def record() -> None:
        from opencomputer.bot import audit as audit_log
        from opencomputer.bot.storage import SqlStore

        store = SqlStore(settings.resolved_database_url)
        await store.start()
        try:
            detail = {"skill": skill.name, "from": str(folder.resolve()), "person": person}
            await audit_log.audit(store, "cli", "skill.install", detail)
        finally:
            await store.stop()

    asyncio.run(record())
    whose = f"for {person}" if person else "for everyone"
    typer.echo(f"installed {skill.name} {whose} ({target})")


def _learned_commands() -> None:
    from opencomputer.bot.skills.learned_cli import register

    register(skills_app)


_learned_commands()  # learned|approve|pin|unpin|edit|delete|gaps (bot/skills/learned_cli.py)
