"""The process's event loop and garbage collector, set up once by the CLI.

Event loop (``OC_EVENT_LOOP``): uvloop where it is installed (Linux and macOS on CPython; a
dependency there), the standard loop elsewhere or with ``asyncio``. Measured with ``bench/``
(``--ab loop``: both loops in alternating fresh processes).

Collector (``OC_GC``): CPython's default thresholds (700, 10, 10) run a generation-0 collection
every ~25-40 turns here and a generation-1 one every few hundred, each landing inside whichever
turn allocated last. ``App.start`` already moves everything alive after start-up into the
permanent generation (``gc.freeze``), so no collection walks it again and the pauses left are
short (at most 0.8-1.0 ms measured, generation 1). ``tuned`` also raises the thresholds: no
collection at all in 300-400 turns, yet turn p99 was no better in interleaved runs (15.4 ms
default against 20.1 ms tuned, medians of 3 at load 1.5-2), so it is not the default.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Coroutine
from typing import Any, Literal, TypeVar

__all__ = ["GC_THRESHOLDS", "loop_kind", "run", "tune_collector"]

T = TypeVar("T")

GC_THRESHOLDS = (20_000, 20, 20)
"""Generation 0 every 20,000 net allocations (hundreds of turns), generation 1 every 20 of
those, a full collection every 20 of generation 1 (and CPython's 25%-growth rule for that)."""


def loop_kind(choice: str = "auto") -> Literal["uvloop", "asyncio"]:
    """The loop ``run`` uses for ``choice`` (auto, uvloop, asyncio): uvloop unless asked for
    asyncio or it is not installed (then the standard loop, whatever was asked).
    """
    if choice.strip().lower() == "asyncio":
        return "asyncio"
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def run(main: Coroutine[Any, Any, T], *, loop: str = "auto", collector: str = "default") -> T:
    """``asyncio.run(main)`` on the loop ``loop_kind(loop)`` names, after ``tune_collector``."""
    tune_collector(collector, freeze=False)
    if loop_kind(loop) == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(main)
    return asyncio.run(main)


def tune_collector(collector: str = "default", *, freeze: bool = True) -> None:
    """Raise the thresholds (``tuned``) and, with ``freeze``, first collect and freeze what is
    alive now (as ``App.start`` does once it is ready). ``default`` changes nothing.
    """
    if collector.strip().lower() == "default":
        return
    if freeze:
        gc.collect()  # the start-up garbage goes now, not into the permanent generation
        gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
