"""Messengers as plugins: the ``opencomputer.channels`` entry-point group.

Every channel, the built-in ones included, is announced by an installed distribution:

.. code-block:: toml

    [project.entry-points."opencomputer.channels"]
    irc = "opencomputer_irc.channel:CHANNEL"

and the entry point resolves to a :class:`Channel`, a small declared value. Reading it must be
cheap: the connector (and its platform SDK, seconds of import) is named by a ``"module:attr"``
string and imported only when the channel is configured, so ``opencomputer doctor`` or a
Telegram-only deployment never imports discord.py. A channel whose entry point is broken is one
log line; the others start.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

    from opencomputer.bot.checks import Check
    from opencomputer.bot.config import Settings
    from opencomputer.bot.connector import Connector, Emit

__all__ = [
    "ENTRY_POINT_GROUP",
    "Channel",
    "ChannelServices",
    "ConnectorFactory",
    "Diagnose",
    "build_connectors",
    "configured_channels",
    "enable_hints",
    "load_channels",
]

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "opencomputer.channels"

ConnectorFactory = Callable[..., "Connector"]
"""Builds a channel's connector: ``factory(settings, emit)``; no I/O (that is ``start``). A
factory that also takes keyword arguments gets the :class:`ChannelServices` as keywords."""


@dataclass(frozen=True, slots=True)
class ChannelServices:
    """What the running app offers a channel beyond ``emit``, as keyword arguments of its
    factory (``factory(settings, emit, say=..., store=..., reachable=...)``) when the factory
    accepts them: a relay channel (webhooks) posts into other platforms' chats.
    """

    say: Callable[..., Awaitable[list[str]]]
    """``say(address, text)``: post a plain message into any chat a connector here serves."""
    store: Any
    """The database (``opencomputer.bot.storage.SqlStore``), for state every process must share."""
    reachable: Callable[[str], bool]
    """Whether a platform's connector runs in this process."""
    wait_idle: Callable[..., Awaitable[None]]
    """``wait_idle(address)``: returns once a conversation has no queued work (the terminal
    waits for each answer before it prompts again)."""
    hooks: Any = None
    """The extension seam (``opencomputer.bot.hooks.Hooks``): a channel that keeps data about people
    registers ``DataRights`` so ``/forget`` and ``/export`` reach it."""


Diagnose = Callable[["Settings"], Awaitable[list["Check"]]]
"""``opencomputer doctor``'s check of a configured channel: ask the platform, one line each."""


def _never(_settings: Settings) -> bool:
    return False


@dataclass(frozen=True, slots=True, kw_only=True)
class Channel:
    """What a messenger declares so opencomputer can find, start and check it.

    Attributes:
        name: The platform name (``Connector.platform``), unique among installed channels.
        connector: The factory, or ``"module:attr"`` naming it so the module (and its SDK)
            is imported only once the channel is configured.
        configured: Whether the settings (or the channel's own environment variables) turn it
            on; must be cheap and import nothing heavy.
        enable: How a user turns it on, shown by ``run`` and ``doctor`` when nothing is
            configured (``""``: not started by ``run``, such as the terminal).
        doctor: An async check, or ``"module:attr"`` naming it, run by ``opencomputer doctor``
            when the channel is configured.
        description: One line for listings.
    """

    name: str
    connector: str | ConnectorFactory
    configured: Callable[[Settings], bool] = _never
    enable: str = ""
    doctor: str | Diagnose | None = None
    description: str = ""

    def create(
        self, settings: Settings, emit: Emit, services: ChannelServices | None = None
    ) -> Connector:
        """Import the connector (if named by a string) and build it; the services go to a
        factory that takes keyword arguments.
        """
        factory: ConnectorFactory = _resolve(self.connector)
        if services is not None and _takes_keywords(factory):
            return factory(
                settings,
                emit,
                say=services.say,
                store=services.store,
                reachable=services.reachable,
                wait_idle=services.wait_idle,
                hooks=services.hooks,
            )
        return factory(settings, emit)

    async def diagnose(self, settings: Settings) -> list[Check]:
        """The channel's doctor checks (none when it declares none)."""
        if self.doctor is None:
            return []
        check: Diagnose = _resolve(self.doctor)
        return await check(settings)


def _takes_keywords(factory: Callable[..., Any]) -> bool:
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # a builtin or C callable: the plain (settings, emit)
        return False
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def _resolve(target: str | Any) -> Any:
    if not isinstance(target, str):
        return target
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def load_channels(
    entry_points: Iterable[EntryPoint] | None = None,
) -> list[Channel]:
    """Every installed channel, opencomputer's own first, then the others, each by name.

    A broken entry point (import error, not a :class:`Channel`, a name already taken) is one
    log line and left out: one bad package must not keep the other messengers down.
    """
    if entry_points is None:
        from importlib.metadata import entry_points as installed

        entry_points = installed(group=ENTRY_POINT_GROUP)
    own: list[Channel] = []
    others: list[Channel] = []
    for ep in entry_points:
        try:
            channel = ep.load()
        except Exception as exc:
            logger.error("channel %r (%s) could not be loaded: %s", ep.name, ep.value, exc)
            continue
        if not isinstance(channel, Channel):
            logger.error(
                "channel %r (%s) is a %s, not an opencomputer Channel: ignored",
                ep.name,
                ep.value,
                type(channel).__name__,
            )
            continue
        dist = ep.dist.name if ep.dist is not None else ""
        (own if dist == "opencomputer" else others).append(channel)
    seen: set[str] = set()
    channels: list[Channel] = []
    for channel in [*sorted(own, key=_name), *sorted(others, key=_name)]:
        if channel.name in seen:
            logger.error("channel %r is installed twice: the second one is ignored", channel.name)
            continue
        seen.add(channel.name)
        channels.append(channel)
    return channels


def _name(channel: Channel) -> str:
    return channel.name


def configured_channels(settings: Settings, channels: list[Channel] | None = None) -> list[Channel]:
    """The channels ``run`` starts with these settings (a failing test counts as off)."""
    on: list[Channel] = []
    for channel in load_channels() if channels is None else channels:
        try:
            if channel.configured(settings):
                on.append(channel)
        except Exception as exc:
            logger.error("channel %r: its settings could not be read: %s", channel.name, exc)
    return on


def enable_hints(channels: list[Channel] | None = None) -> list[str]:
    """One line per channel ``run`` can start: which variables turn it on."""
    return [
        f"{c.name}: set {c.enable}"
        for c in (load_channels() if channels is None else channels)
        if c.enable
    ]


def build_connectors(
    settings: Settings,
    emit: Emit,
    channels: list[Channel] | None = None,
    services: ChannelServices | None = None,
) -> list[Connector]:
    """A connector for every configured channel; one that cannot be built is logged, skipped."""
    built: list[Connector] = []
    for channel in configured_channels(settings, channels):
        try:
            built.append(channel.create(settings, emit, services))
        except Exception as exc:
            logger.error("%s connector could not be created: %s", channel.name, exc)
    return built
