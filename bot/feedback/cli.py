"""``opencomputer prompts ...``: see and steer prompt tuning from the command line.

Works on the database directly (no running server needed); every change is recorded as a
tuning event and in the audit log, with the operating-system user as the actor.
"""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

if TYPE_CHECKING:
    from opencomputer.bot.feedback.repo import FeedbackRepo
    from opencomputer.bot.feedback.tuner import Tuner

__all__ = ["prompts_app"]

prompts_app = typer.Typer(
    help="Prompt variants and the feedback that tunes them.", no_args_is_help=True
)
T = TypeVar("T")
DEFAULT_CHART = Path("prompt-feedback.png")


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:
        return "cli"


def _run(work: Callable[[FeedbackRepo, Tuner], Awaitable[T]]) -> T:
    """Open the database, run ``work`` with the repository and a tuner, close it again."""
    from opencomputer.bot.feedback.feature import audit_hook
    from opencomputer.bot.feedback.repo import FeedbackRepo
    from opencomputer.bot.feedback.tuner import Tuner, TuningError
    from opencomputer.bot.plugins.startup import settings_or_exit as _settings
    from opencomputer.bot.storage import SqlStore

    settings = _settings()

    async def go() -> T:
        store = SqlStore(settings.resolved_database_url)
        hook = audit_hook(store)
        await store.start()
        try:
            repo = FeedbackRepo(store.engine)
            tuner = Tuner(settings, repo)
            if hook is not None:
                tuner.audit_hooks.append(hook)
            await tuner.ensure_default()
            return await work(repo, tuner)
        finally:
            await store.stop()

    try:
        return asyncio.run(go())
    except TuningError as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(1) from None


def _done(event: Any) -> None:
    typer.echo(f"{event.kind} #{event.variant_id} (event {event.id})")


@prompts_app.command("stats")
def stats(all_: bool = typer.Option(False, "--all", help="Include retired variants.")) -> None:
    """Ratings per variant: 👍/👎 blamed on the prompt, excluded ratings, failures."""
    from opencomputer.bot.feedback.commands import format_stats

    async def work(repo: FeedbackRepo, _t: Tuner) -> str:
        return format_stats(await repo.stats(), live_only=not all_)

    typer.echo(_run(work))


@prompts_app.command("list")
def list_(all_: bool = typer.Option(False, "--all", help="Include retired variants.")) -> None:
    """Variants with their id, version, status, author and scope."""
    from opencomputer.bot.feedback.commands import format_variant

    async def work(repo: FeedbackRepo, _t: Tuner) -> list[Any]:
        return await repo.variants(live_only=not all_)

    for row in _run(work):
        typer.echo(format_variant(row))


@prompts_app.command("show")
def show(variant_id: int) -> None:
    """A variant's full template."""

    async def work(_r: FeedbackRepo, tuner: Tuner) -> Any:
        return await tuner.get(variant_id)

    from opencomputer.bot.feedback.commands import format_variant

    row = _run(work)
    typer.echo(f"{format_variant(row)}\n{row.template}")


@prompts_app.command("add")
def add(
    text: str = typer.Argument(..., help="The template; '-' reads it from standard input."),
    name: str | None = typer.Option(None, help="Lineage name (default: the active variant's)."),
    scope: str = typer.Option("global", help="global, platform or chat."),
    key: str = typer.Option("", help="Platform name, or platform:chat_id for a chat."),
) -> None:
    """Add a candidate variant (it starts with the exploration share)."""
    import sys

    template = sys.stdin.read() if text == "-" else text
    if scope not in ("global", "platform", "chat") or (scope != "global" and not key):
        typer.secho("--scope must be global, or platform/chat with --key", fg="red", err=True)
        raise typer.Exit(2)

    async def work(_r: FeedbackRepo, tuner: Tuner) -> Any:
        return await tuner.add(template, actor=_actor(), scope=scope, scope_key=key, name=name)

    row = _run(work)
    typer.echo(f"added #{row.id} {row.name} v{row.version} [{row.status}]")


def _move(action: str) -> Callable[[int], None]:
    def command(variant_id: int) -> None:
        async def work(_r: FeedbackRepo, tuner: Tuner) -> Any:
            return await getattr(tuner, action)(variant_id, actor=_actor())

        _done(_run(work))

    command.__doc__ = {
        "promote": "Make a variant the active one of its scope (the old one is retired).",
        "retire": "Stop serving a variant.",
        "pin": "Serve only this variant in its scope until unpinned.",
        "unpin": "Resume tuning in the pinned variant's scope.",
    }[action]
    return command


for _action in ("promote", "retire", "pin", "unpin"):
    prompts_app.command(_action)(_move(_action))


@prompts_app.command("rollback")
def rollback(
    variant_id: int | None = typer.Argument(None, help="Variant to roll back; none: undo."),
) -> None:
    """Roll a variant back to the one it replaced, or undo the latest change."""

    async def work(_r: FeedbackRepo, tuner: Tuner) -> Any:
        if variant_id is None:
            return await tuner.undo(actor=_actor())
        return await tuner.rollback(variant_id, actor=_actor())

    _done(_run(work))


@prompts_app.command("log")
def log(limit: int = typer.Option(20, help="How many events.")) -> None:
    """Tuning events, newest first."""
    import time

    async def work(repo: FeedbackRepo, _t: Tuner) -> list[Any]:
        return await repo.events(limit)

    for e in _run(work):
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(e.at))
        typer.echo(f"{when} {e.kind} #{e.variant_id} by {e.actor} {e.reason}".rstrip())


@prompts_app.command("chart")
def chart(
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG to write.")] = DEFAULT_CHART,
    buckets: int = typer.Option(30, min=2, help="Time buckets on the x axis."),
) -> None:
    """Write a PNG of each variant's thumbs-up rate over time."""
    from opencomputer.bot.feedback.chart import rate_series, render_png

    async def work(repo: FeedbackRepo, _t: Tuner) -> list[tuple[int, float, int]]:
        return await repo.timeline()

    votes = _run(work)
    out.write_bytes(render_png(rate_series(votes, buckets)))
    typer.echo(f"wrote {out} ({len(votes)} ratings)")
