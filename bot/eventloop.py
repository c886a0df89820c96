"""The process's event loop and garbage collector, set up once by the CLI.

Event loop: uvloop where it is installed (Linux and macOS on CPython; a dependency there), the
standard loop elsewhere or with ``OC_EVENT_LOOP=asyncio``. Measured with ``bench/`` (interleaved
runs of both loops, ``--loop``): see ``docs/performance.md``.

Collector: CPython's default thresholds (700, 10, 10) run a generation-1 collection every ~7,000
net allocations and a full one every ~70,000, i.e. every ~50 and ~500 turns here, and the full
one walks every object the process made at start-up (the graph, LangChain's classes, the
settings), 38-80 ms that land inside whichever turn allocated last. ``tune_collector`` (after
start-up) moves everything alive then into the permanent generation (``gc.freeze``, which
``App.start`` also does), so later collections never walk it, and ``run`` raises the
generation-0 threshold so the young collections that remain are rarer and each still short.
``OC_GC=default`` keeps CPython's thresholds.
"""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import Coroutine
from typing import Any, Literal, TypeVar

__all__ = ["GC_THRESHOLDS", "loop_kind", "run", "tune_collector"]

T = TypeVar("T")

GC_THRESHOLDS = (20_000, 20, 20)
"""Generation 0 every 20,000 net allocations (a few turns), generation 1 every 20 of those,
a full collection every 20 of generation 1 (plus CPython's own 25%-growth rule for the last)."""


def loop_kind() -> Literal["uvloop", "asyncio"]:
    """The loop ``run`` uses: uvloop unless ``OC_EVENT_LOOP=asyncio`` or it is not installed."""
    if os.environ.get("OC_EVENT_LOOP", "").strip().lower() == "asyncio":
        return "asyncio"
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on the loop ``loop_kind`` names, with the collector's thresholds
    raised (``App.start`` freezes what start-up made once it is ready).
    """
    if not _default_gc():
        gc.set_threshold(*GC_THRESHOLDS)
    if loop_kind() == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(main)
    return asyncio.run(main)


def tune_collector() -> None:
    """Freeze what start-up made and raise the thresholds (``OC_GC=default`` leaves both).

    Called once the app has started; calling it again freezes what has been made since.
    """
    if _default_gc():
        return
    gc.collect()  # the start-up garbage goes now, not into the permanent generation
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _default_gc() -> bool:
    return os.environ.get("OC_GC", "").strip().lower() == "default"
