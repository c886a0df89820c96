"""Features as plugins: the ``opencomputer.features`` entry-point group.

A feature is a coroutine ``setup(app)`` that builds its services and registers an object whose
``@hookimpl`` methods implement hooks of ``bot/hooks.py``; it never replaces a runtime
attribute. The built-in features are entry points of this distribution (``pyproject.toml``),
exactly as a third-party package declares one, so a deployment can turn one off
(``OC_FEATURES_OFF``) and a package can add one. Setup runs in name order; features do not
depend on it (each looks the others up when it runs, through hooks or ``app.extras``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from opencomputer.bot.commands import CommandRouter
    from opencomputer.bot.config import Settings
    from opencomputer.bot.connector import Connector
    from opencomputer.bot.hooks import Hooks
    from opencomputer.bot.metrics import Metrics
    from opencomputer.bot.ollama_pool import OllamaPool
    from opencomputer.bot.runtime import Runtime
    from opencomputer.bot.storage.store import SqlStore
    from opencomputer.bot.tools import ToolRegistry

__all__ = ["ENTRY_POINT_GROUP", "REQUIRED", "Feature", "Host", "load_features"]

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "opencomputer.features"
REQUIRED = frozenset({"admin", "dedupe"})
"""Access control, approvals, audit and replay protection: off would open the agent to anyone."""


class Host(Protocol):
    """What a feature's ``setup`` is handed: the running app's parts (``bot.app.App`` has
    them). Features type their argument with this, so they depend on the core, not on the app.
    """

    settings: Settings
    role: str
    """``all`` (one process), ``gateway`` or ``worker`` (scale-out)."""
    store: SqlStore
    llm: OllamaPool
    metrics: Metrics
    tools: ToolRegistry
    commands: CommandRouter
    hooks: Hooks
    connectors: list[Connector]
    extras: dict[str, Any]
    """Services features share by name (``admin``, ``plugins``, ``memory``...)."""
    on_stop: list[Callable[[], Awaitable[None]]]
    changes: Any
    """Announces changes to cached tables to other processes (``bot.scale.changes``), or None."""
    model_status: str

    @property
    def runtime(self) -> Runtime:
        """The runtime (features are set up once it exists)."""

    async def readiness(self) -> dict[str, str]:
        """What ``/readyz`` reports (database, model, connectors)."""
        ...


@dataclass(frozen=True, slots=True)
class Feature:
    """One installed feature: its entry-point name and its setup coroutine."""

    name: str
    setup: Callable[[Any], Awaitable[None]]


def load_features(settings: Settings) -> list[Feature]:
    """The installed features minus ``OC_FEATURES_OFF``, in name order.

    Raises ``ConfigError`` (one line) for a name no installed feature has, or for one that
    cannot be turned off; a feature whose module fails to import is that error, not a skip
    (a deployment that relies on it must not start without it).
    """
    from importlib.metadata import entry_points  # not at import: plugins import us cheaply

    from opencomputer.bot.config import ConfigError

    found = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    off = set(settings.features_off)
    if unknown := sorted(off - set(found)):
        raise ConfigError(
            f"OC_FEATURES_OFF names {', '.join(unknown)}, which no installed feature is; "
            f"installed: {', '.join(sorted(found))}"
        )
    if kept := sorted(off & REQUIRED):
        raise ConfigError(
            f"OC_FEATURES_OFF: {', '.join(kept)} cannot be turned off (access control, "
            "approvals and replay protection); remove it from the list"
        )
    features = []
    for name in sorted(set(found) - off):
        features.append(Feature(name, found[name].load()))
    if off:
        logger.info("features off: %s", ", ".join(sorted(off)))
    return features
