"""opencomputer's public API: the supported surface for plugin and channel authors.

Import from here, never from ``bot.*``: the internals behind these names move between
releases, these names do not (they follow ``__version__``; a removal is announced one minor
version ahead).

- Plugins: :func:`tool`, :func:`command`, :func:`on_message`, :func:`on_reaction`,
  :func:`on_forget`, :func:`every`, :class:`PluginContext`, :class:`ToolError` (see
  ``docs/plugins.md``).
- The event model every channel speaks: :class:`Message`, :class:`Reaction`,
  :class:`Command`, :class:`User`, :class:`Chat`, :class:`Address`.
- Channels (messengers): :class:`Channel` (what an ``opencomputer.channels`` entry point
  names), the :class:`Connector` protocol and its :class:`Capabilities`, and
  :func:`split_markdown` for platform limits (see ``examples/opencomputer-irc``).
- Features (in-process extensions of the turn itself, ``opencomputer.features`` entry points):
  :data:`hookimpl` marks methods implementing the hooks of :class:`HookSpecs` (access, prompt,
  model and tool choice, layers around the agent and tool calls, observers, commands, jobs);
  :class:`TurnCall` is what a turn layer sees; the stage names order chains (``bot/hooks.py``).
- Tests: :mod:`opencomputer.testing` (``PluginTestKit``, ``FakeOllama``, ``Harness``).

``import opencomputer`` is cheap (plugins import it inside their sandbox); :class:`Settings`
and :class:`Check` load their modules on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opencomputer.bot import __version__
from opencomputer.bot.channels import ENTRY_POINT_GROUP, Channel, ConnectorFactory, Diagnose
from opencomputer.bot.connector import (
    Capabilities,
    CommandSpec,
    Connector,
    ConnectorState,
    Emit,
    Formatting,
    RuntimeStopped,
)
from opencomputer.bot.events import Address, Chat, ChatKind, Command, Event, Message, Reaction, User
from opencomputer.bot.features import ENTRY_POINT_GROUP as FEATURE_ENTRY_POINT_GROUP
from opencomputer.bot.hooks import (
    INBOUND_STAGES,
    TOOL_STAGES,
    TURN_STAGES,
    TurnCall,
    TurnInputError,
    hookimpl,
)
from opencomputer.bot.hooks import Specs as HookSpecs
from opencomputer.bot.outfiles import FileSender, OutFile
from opencomputer.bot.plugins.api import (
    HttpResponse,
    KeyValueStore,
    PermissionDenied,
    PluginContext,
    PluginHttp,
    command,
    every,
    on_forget,
    on_message,
    on_reaction,
)
from opencomputer.bot.text import split_markdown
from opencomputer.bot.tools import ToolError, tool

if TYPE_CHECKING:
    from opencomputer.bot.checks import Check
    from opencomputer.bot.config import Settings

__all__ = [
    "ENTRY_POINT_GROUP",
    "FEATURE_ENTRY_POINT_GROUP",
    "INBOUND_STAGES",
    "TOOL_STAGES",
    "TURN_STAGES",
    "Address",
    "Capabilities",
    "Channel",
    "Chat",
    "ChatKind",
    "Check",
    "Command",
    "CommandSpec",
    "Connector",
    "ConnectorFactory",
    "ConnectorState",
    "Diagnose",
    "Emit",
    "Event",
    "FileSender",
    "Formatting",
    "HookSpecs",
    "HttpResponse",
    "KeyValueStore",
    "Message",
    "OutFile",
    "PermissionDenied",
    "PluginContext",
    "PluginHttp",
    "Reaction",
    "RuntimeStopped",
    "Settings",
    "ToolError",
    "TurnCall",
    "TurnInputError",
    "User",
    "__version__",
    "command",
    "every",
    "hookimpl",
    "on_forget",
    "on_message",
    "on_reaction",
    "split_markdown",
    "tool",
]

_LAZY = {"Settings": "opencomputer.bot.config", "Check": "opencomputer.bot.checks"}


def __getattr__(name: str) -> Any:
    """Load the heavier names (settings, doctor) only when asked for."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'opencomputer' has no attribute {name!r}")
