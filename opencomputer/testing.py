"""Test tools for plugin and channel authors: the real app against a scripted fake model.

- :class:`PluginTestKit`: run one plugin exactly as in production and talk to it.
- :class:`FakeOllama`: an Ollama-compatible server on loopback whose answers you script.
- :class:`Harness` / :class:`RecordingConnector`: the real app behind a pretend platform.
"""

from __future__ import annotations

from opencomputer.bot.testing import FakeOllama, Reply
from opencomputer.bot.testing.harness import Harness, Outbound, RecordingConnector
from opencomputer.bot.testing.plugin_kit import PluginTestKit

__all__ = ["FakeOllama", "Harness", "Outbound", "PluginTestKit", "RecordingConnector", "Reply"]
