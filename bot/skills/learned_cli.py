"""``opencomputer skills learned|approve|pin|unpin|edit|delete|gaps``: learned skills and the
missing-capabilities report from the command line.

They work on the database directly (actor ``cli``, every change audited); a running server
sees a change within a few seconds (it re-reads learned skills at most every 5 seconds).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer

__all__ = ["register"]

T = TypeVar("T")


def _run(work: Callable[[Any, Any], Awaitable[T]]) -> T:
    """Open the database, run ``work(learned, settings)``, close it; one red line on refusal."""
    from opencomputer.bot.plugins.startup import settings_or_exit
    from opencomputer.bot.skills.learned import LearnedError, LearnedSkills
    from opencomputer.bot.storage import SqlStore

    settings = settings_or_exit()

    async def main() -> T:
        store = SqlStore(settings.resolved_database_url)
        await store.start()
        try:
            return await work(LearnedSkills(store.engine, settings, audit_to=store), settings)
        finally:
            await store.stop()

    try:
        return asyncio.run(main())
    except LearnedError as exc:
        typer.secho(str(exc).replace("/skills", "opencomputer skills"), fg="red", err=True)
        raise typer.Exit(1) from None


def register(app: typer.Typer) -> None:
    """Add the learned-skill commands to ``opencomputer skills``."""

    @app.command("learned")
    def learned() -> None:
        """Learned skills: status, owner, ratings where offered and held back, uses."""
        from opencomputer.bot.skills.learned_commands import describe

        async def work(skills: Any, _settings: Any) -> list[str]:
            return [await describe(skills, row) for row in await skills.all_rows()]

        lines = _run(work)
        typer.echo("\n".join(lines) if lines else "no learned skills yet")

    @app.command("approve")
    def approve(name: str) -> None:
        """Let a pending learned skill (learned after outside content) compete as a candidate."""
        _run(lambda skills, _s: skills.approve(name, actor="cli"))
        typer.echo(f"{name} approved: a candidate now")

    @app.command("pin")
    def pin(name: str) -> None:
        """Make a learned skill live and never retire it automatically."""
        _run(lambda skills, _s: skills.pin(name, actor="cli"))
        typer.echo(f"{name} pinned (live)")

    @app.command("unpin")
    def unpin(name: str) -> None:
        """Let the evidence decide about a learned skill again."""
        _run(lambda skills, _s: skills.pin(name, actor="cli", pinned=False))
        typer.echo(f"{name} unpinned")

    @app.command("edit")
    def edit(
        name: str,
        body: Annotated[str, typer.Argument(help="The new instructions; '-' reads stdin.")],
    ) -> None:
        """Replace a learned skill's instructions."""
        text = sys.stdin.read() if body == "-" else body
        _run(lambda skills, _s: skills.edit(name, text, actor="cli"))
        typer.echo(f"{name}: instructions replaced")

    @app.command("delete")
    def delete(name: str) -> None:
        """Delete a learned skill and its evidence."""
        _run(lambda skills, _s: skills.delete(name, actor="cli"))
        typer.echo(f"{name} deleted")

    @app.command("gaps")
    def gaps(
        days: Annotated[float, typer.Option("--days", help="How far back.")] = 7.0,
    ) -> None:
        """Missing capabilities: what people asked for that no tool could do, with examples."""
        from opencomputer.bot.skills.gaps import CapabilityGaps, render_report

        async def work(skills: Any, _settings: Any) -> str:
            import time

            topics = await CapabilityGaps(skills.engine).topics(time.time() - days * 86400)
            return render_report(topics, examples=True, days=days)

        typer.echo(_run(work))
