"""What a tool call does beyond answering, and when that needs the owner's approval.

Prompt injection works by getting the model to *act* on text someone else wrote: a web page, a
note, a tool result, a stranger's message in a group. The model cannot tell instructions from
data, so the server tracks where the data came from instead (provenance). A turn that has read
outside content is *tainted*; in a tainted turn every call whose effect leaves the sandbox asks
the owner first, showing the complete arguments. A turn that has read nothing from outside
(the owner's own words, pure tools such as the clock) keeps running tools without questions.

The vocabulary below is the one place effects are named: plugin manifests list them per tool
(``"effects": ["network"]``), core tools pass them to ``@tool(effects=...)``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "EFFECTS",
    "OUTWARD",
    "ApprovalPolicy",
    "Effect",
    "derived_effects",
    "effects_of",
    "needs_approval",
]

Effect = Literal["network", "send", "persist", "schedule", "device", "delete", "install", "code"]

EFFECTS: dict[str, str] = {
    "network": "reaches hosts outside the server; data in its arguments can leave with it",
    "send": "messages a chat other than the one the turn answers",
    "persist": "writes something that later turns or prompts see (memories, notes)",
    "schedule": "makes something happen later, on its own (reminders, recurring tasks)",
    "device": "acts on the physical world (home automation)",
    "delete": "destroys data",
    "install": "installs or enables code",
    "code": "runs code the model wrote (inside the sandbox: harmless without network)",
}
"""Each effect a tool may declare, and why it matters."""

UNKNOWN = "unknown"
"""What an undeclared in-process or MCP tool is taken to do: anything (it asks when tainted)."""

OUTWARD = frozenset({"network", "send", "persist", "schedule", "device", "delete", "install"})
"""Effects that leave the sandbox. ``code`` alone does not: the sandbox has no network unless
granted, and a plugin with a network grant gets ``network`` added to its ``code`` tools."""

PolicyMode = Literal["strict", "taint", "off"]
_URL = re.compile(r"^https?://\S+$")


@dataclass(frozen=True, slots=True)
class ApprovalPolicy:
    """How eagerly tool calls ask the owner (``OC_APPROVAL_POLICY``, ``OC_APPROVAL_ALWAYS``).

    * ``taint`` (default): ``dangerous`` tools always ask; once the turn has read outside
      content, every outward effect asks.
    * ``strict``: every outward effect asks, tainted or not.
    * ``off``: only ``dangerous`` tools ask (the behaviour before provenance existed).

    ``always`` names effects that ask in every turn whatever the mode (e.g. ``delete``).
    """

    mode: PolicyMode = "taint"
    always: frozenset[str] = frozenset()

    @classmethod
    def from_settings(cls, settings: Any) -> ApprovalPolicy:
        """The policy ``OC_APPROVAL_POLICY`` and ``OC_APPROVAL_ALWAYS`` describe."""
        mode = getattr(settings, "approval_policy", "taint")
        always = str(getattr(settings, "approval_always", "") or "")
        parts = frozenset(p.strip() for p in always.split(",") if p.strip())
        chosen: PolicyMode = "strict" if mode == "strict" else "off" if mode == "off" else "taint"
        return cls(mode=chosen, always=parts)


def effects_of(tool: Any) -> frozenset[str]:
    """The effects a tool is treated as having (undeclared means ``unknown``)."""
    declared = getattr(tool, "effects", None)
    return frozenset({UNKNOWN}) if declared is None else frozenset(declared)


def derived_effects(
    declared: Iterable[str] | None,
    *,
    network: bool,
    write: bool,
    process: bool,
    isolated: bool,
) -> frozenset[str] | None:
    """The effects of a plugin tool, from its declaration and its plugin's grants.

    A sandboxed plugin can only do what its grants allow, so an undeclared tool of one gets the
    effects its grants make possible; ``code`` with a network grant is ``network`` too (the code
    can send anything anywhere the grant reaches; so is ``code`` that runs without a sandbox).
    An undeclared tool of an in-process plugin stays undeclared (``None``: anything).
    """
    if declared is None:
        if not isolated:
            return None
        found: set[str] = set()
        if network:
            found.add("network")
        if write:
            found.add("persist")
        if process:
            found.add("code")
        return frozenset(found)
    effects = set(declared)
    if "code" in effects and (network or not isolated):  # unsandboxed code reaches anything
        effects.add("network")
    return frozenset(effects)


def _carries_no_data(arguments: Mapping[str, Any], seen: str) -> bool:
    """Whether a network call only follows links the turn has already read.

    Every string argument must be an http(s) URL found verbatim in content the conversation
    read (the owner's words or a tool's output): a URL the model built (with private data in
    its path or query) is not there, so it asks. Numbers and booleans are options, not data.
    """
    for value in arguments.values():
        if isinstance(value, bool | int | float) or value is None:
            continue
        if not isinstance(value, str) or not _URL.match(value) or value not in seen:
            return False
    return True


def needs_approval(
    tool: Any,
    arguments: Mapping[str, Any],
    *,
    tainted: bool,
    seen: str,
    policy: ApprovalPolicy,
) -> str | None:
    """Why this call must wait for the owner's yes, or ``None`` when it may run.

    Args:
        tool: The :class:`opencomputer.bot.tools.Tool` called.
        arguments: The model's arguments.
        tainted: Whether the turn has read outside content.
        seen: The text the conversation read (for links followed without data).
        policy: The admin's policy.
    """
    if getattr(tool, "dangerous", False):
        return "marked dangerous"
    if policy.mode == "off":
        return None
    effects = effects_of(tool)
    outward = effects & (OUTWARD | {UNKNOWN})
    always = sorted(outward & policy.always)
    if always:
        return "always asks for " + ", ".join(always)
    if not outward or not (tainted or policy.mode == "strict"):
        return None
    if policy.mode == "taint" and outward == {"network"} and _carries_no_data(arguments, seen):
        return None  # following a link it read leaks nothing (see _carries_no_data)
    shown = ", ".join(sorted(outward)).replace(UNKNOWN, "undeclared effects")
    return shown if policy.mode == "strict" and not tainted else f"{shown} after outside content"
