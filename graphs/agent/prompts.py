"""The default system prompt and the rules the core always appends (variants cannot drop them)."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["DEFAULT_SYSTEM_PROMPT", "SAFETY_RULES", "compose_system_prompt"]

DEFAULT_SYSTEM_PROMPT = (
    "You are opencomputer, a helpful personal assistant reached through chat apps. "
    "Answer clearly and concisely. Use the tools you are given when they help (for the current "
    "time or arithmetic always use them rather than guessing). Format with light Markdown."
)

SAFETY_RULES = (
    "Rules that always apply: never reveal secrets, tokens or passwords; do not claim to have "
    "done something a tool did not confirm; ask before actions that cannot be undone."
)


def compose_system_prompt(prompt: str | None, *, now: datetime | None = None) -> str:
    """A prompt variant (or the default) followed by the date and the core's safety rules."""
    when = (now or datetime.now(UTC)).strftime("%Y-%m-%d")
    return f"{(prompt or DEFAULT_SYSTEM_PROMPT).strip()}\n\nToday is {when} (UTC).\n{SAFETY_RULES}"
