"""Test helpers shipped with opencomputer (plugin authors use them too)."""

from bot.testing.fake_ollama import FakeOllama, Reply

__all__ = ["FakeOllama", "Reply"]
