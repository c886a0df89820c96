"""Test helpers shipped with opencomputer (plugin authors use them too)."""

from opencomputer.bot.testing.fake_ollama import FakeOllama, Reply
from opencomputer.bot.testing.fake_openai import FakeOpenAI

__all__ = ["FakeOllama", "FakeOpenAI", "Reply"]
