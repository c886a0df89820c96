"""The outcome of one doctor check: what channels, plugins and the server report.

It lives below everything that reports checks (connectors, ``opencomputer.bot.channels``, the plugin
feature, the public API) so that none of them imports ``bot.doctor``, which runs them all.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Check"]


@dataclass(frozen=True, slots=True)
class Check:
    """The outcome of one check."""

    name: str
    ok: bool
    detail: str
    warning: bool = False
