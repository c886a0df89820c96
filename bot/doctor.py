"""``opencomputer doctor``: one line per check, what is wrong and how to fix it."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable

import typer

from opencomputer.bot.checks import Check
from opencomputer.bot.config import Settings

__all__ = ["Check", "run_doctor"]  # Check is opencomputer.bot.checks.Check, named here as before


async def _ollama(settings: Settings) -> list[Check]:
    checks: list[Check] = []
    for host in settings.model_hosts:
        checks.extend(await _ollama_host(settings, host, several=len(settings.model_hosts) > 1))
    return checks


async def _ollama_host(settings: Settings, host: str, *, several: bool) -> list[Check]:
    """Reachable, chat model ready, embedding model ready: for an Ollama or openai: server."""
    from opencomputer.bot.ollama import OllamaError
    from opencomputer.bot.ollama_pool import server_client
    from opencomputer.bot.openai_compat import OpenAIClient

    client = server_client(host, timeout=10, api_key=settings.openai_api_key)
    tag = f" ({host})" if several else ""
    name = "openai server" if isinstance(client, OpenAIClient) else "ollama"
    await client.start()
    try:
        try:
            version = await client.version()
        except OllamaError as exc:
            return [Check(f"{name}{tag}", False, f"{exc}. {exc.hint}")]
        if isinstance(client, OpenAIClient):
            where = f"{version} at {client.base_url}"
        else:
            where = f"Ollama {version} at {host}"
        checks = [Check(f"{name}{tag}", True, where)]
        model = await client.check_model(settings.model)
        checks.append(Check(f"model{tag}", model.ok, model.message))
        from opencomputer.bot.config import num_ctx_problem

        if (problem := num_ctx_problem(settings, model.context_length)) is not None:
            checks.append(Check(f"context{tag}", False, problem))
        embed = await client.check_model(settings.embed_model, needs_tools=False)
        detail = (
            embed.message if embed.ok else f"{embed.message} (only needed for long-term memory)"
        )
        checks.append(Check(f"embed model{tag}", embed.ok, detail, warning=not embed.ok))
        return checks
    finally:
        await client.stop()


async def _database(settings: Settings) -> list[Check]:
    from opencomputer.bot.storage import SqlStore
    from opencomputer.bot.storage.migrate import SchemaError

    store = SqlStore(settings.resolved_database_url)
    try:
        await store.start()
        await store.ping()
    except SchemaError as exc:
        embedded = " (`run` and `chat` do it themselves for this store)"
        return [Check("database", False, f"{exc}{embedded if not settings.database_url else ''}")]
    except Exception as exc:
        return [
            Check(
                "database",
                False,
                f"cannot open {_safe_url(settings)}: {exc}. "
                "Check OC_DATABASE_URL (or OC_DATA_DIR for the default SQLite file).",
            )
        ]
    finally:
        await store.stop()
    return [Check("database", True, _safe_url(settings))]


async def _redis(settings: Settings) -> list[Check]:
    if not settings.redis_url:
        return [Check("redis", True, "not configured (in-process queues)")]
    import redis.asyncio as redis

    client = redis.from_url(settings.redis_url)
    try:
        await client.ping()
        return [Check("redis", True, "reachable")]
    except Exception as exc:
        return [Check("redis", False, f"cannot reach OC_REDIS_URL: {exc}")]
    finally:
        await client.aclose()


async def _connectors(settings: Settings) -> list[Check]:
    from opencomputer.bot.channels import configured_channels, enable_hints

    on = [channel.name for channel in configured_channels(settings)]
    if not on:
        return [
            Check(
                "connectors",
                True,
                "none configured; `opencomputer chat` works. To enable: "
                + "; ".join(enable_hints()),
                warning=True,
            )
        ]
    return [Check("connectors", True, "configured: " + ", ".join(on))]


def _env_names(settings: Settings) -> list[Check]:
    """A misspelt ``OC_`` key is silently ignored at run time: doctor fails on it."""
    from opencomputer.bot.plugins.startup import setting_warnings

    lines = setting_warnings(settings)
    if not lines:
        return [Check(".env", True, "no unknown OC_ settings")]
    return [Check(".env", False, line) for line in lines]


def _data_dir(settings: Settings) -> list[Check]:
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        writable = os.access(settings.data_dir, os.W_OK)
    except OSError as exc:
        return [Check("data dir", False, f"{settings.data_dir}: {exc}. Set OC_DATA_DIR.")]
    if not writable:
        return [Check("data dir", False, f"{settings.data_dir} is not writable. Set OC_DATA_DIR.")]
    return [Check("data dir", True, str(settings.data_dir))]


def _safe_url(settings: Settings) -> str:
    url = settings.resolved_database_url
    if "@" in url:  # hide the password of postgresql://user:pass@host/db
        scheme, rest = url.split("://", 1)
        url = f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


async def _plugins(settings: Settings) -> list[Check]:
    from opencomputer.bot.plugins.doctor import plugin_checks

    return await plugin_checks(settings)


async def _platforms(settings: Settings) -> list[Check]:
    """Ask each configured channel whether the platform accepts our credentials (the checks
    its :class:`~bot.channels.Channel` declares; a check that crashes is a failed line).
    """
    from opencomputer.bot.channels import configured_channels

    checks: list[Check] = []
    for channel in configured_channels(settings):
        try:
            checks.extend(await channel.diagnose(settings))
        except Exception as exc:
            checks.append(Check(channel.name, False, f"its doctor check crashed: {exc}"))
    return checks


CHECKS: list[Callable[[Settings], Awaitable[list[Check]]]] = [
    _ollama,
    _database,
    _redis,
    _connectors,
    _platforms,
    _plugins,
]


async def run_doctor(settings: Settings, *, echo: Callable[[str], None] = typer.echo) -> int:
    """Run every check, print one line each; 1 if any failed, else 0."""
    results = [Check("settings", True, "valid"), *_env_names(settings), *_data_dir(settings)]
    for check in CHECKS:
        results.extend(await check(settings))
    for r in results:
        mark = "ok  " if r.ok and not r.warning else ("warn" if r.warning else "FAIL")
        echo(f"[{mark}] {r.name}: {r.detail}")
    failed = [r for r in results if not r.ok and not r.warning]
    echo("all checks passed" if not failed else f"{len(failed)} check(s) failed")
    return 1 if failed else 0
