"""``opencomputer doctor`` check for the API: are there keys to use it with, and where it is."""

from __future__ import annotations

from opencomputer.bot.checks import Check
from opencomputer.bot.config import Settings

__all__ = ["diagnose"]


async def diagnose(settings: Settings) -> list[Check]:
    """One check: how many active keys, and the URL clients are given."""
    from opencomputer.bot.apikeys.keys import list_keys
    from opencomputer.bot.storage import create_engine

    url = f"http://{settings.http_host}:{settings.http_port}/v1"
    engine = create_engine(settings.resolved_database_url)
    try:
        active = [key for key in await list_keys(engine) if key.active]
    except Exception as exc:  # no database yet, or not migrated: the database check says why
        return [Check("api", False, f"cannot read the API keys: {type(exc).__name__}")]
    finally:
        await engine.dispose()
    if not active:
        return [
            Check(
                "api",
                False,
                f"serving {url}, but no API key exists: opencomputer keys create --person NAME",
                warning=True,
            )
        ]
    people = sorted({key.person for key in active})
    return [
        Check("api", True, f"serving {url}; {len(active)} active key(s) for {', '.join(people)}")
    ]
