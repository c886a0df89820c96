"""A warm spare of the opencomputer CLI: import first, run ``opencomputer ROLE`` on "go".

A crash suite restarts its server a dozen times; on a loaded two-core machine half of each
restart is Python importing LangGraph, SQLAlchemy and python-telegram-bot. The spare does that
while the previous incarnation still runs, then waits for one line on stdin and hands over to
the real CLI (``bot.cli.main``), which starts exactly as the installed command does: the code
under test is unchanged, only the disk reads happened earlier. (The modules do no I/O at
import, which the style guide requires anyway.)
"""

from __future__ import annotations

import asyncio
import importlib
import signal
import sys
import time
from importlib.metadata import entry_points


def _say(line: str) -> None:
    """A line in the process's log, in its format (to tell import time from start-up time)."""
    print(f"{time.strftime('%H:%M:%S')} LAUNCH  {line}", file=sys.stderr, flush=True)


def _warm(role: str) -> None:
    import opencomputer.bot.app
    import opencomputer.bot.cli

    heavy = [
        "opencomputer.bot.runtime",
        "opencomputer.graphs.agent.graph",
        "opencomputer.graphs.agent.runner",
        "redis.asyncio",
    ]
    heavy += [
        "opencomputer.graphs.agent.checkpointer",
        "opencomputer.bot.scale.gateway",
        "opencomputer.bot.scale.worker",
    ]
    heavy += [ep.value.partition(":")[0] for ep in entry_points(group="opencomputer.features")]
    if role != "worker":
        heavy.append("opencomputer.connectors.telegram")
    for name in heavy:
        importlib.import_module(name)
    del opencomputer.bot.cli


def _dump_tasks(_signum: int, _frame: object) -> None:
    """SIGUSR1: print every asyncio task's stack (why a process does not stop on SIGTERM)."""
    try:
        tasks = asyncio.all_tasks(asyncio.get_running_loop())
    except RuntimeError:
        tasks = set()
    _say(f"SIGUSR1: {len(tasks)} asyncio tasks")
    for task in tasks:
        task.print_stack(file=sys.stderr)
    _say("tasks dumped")


def main() -> None:
    """``launch.py ROLE``: warm up, wait for a line on stdin, then run the CLI."""
    role = sys.argv[1]
    began = time.monotonic()
    _warm(role)
    _say(f"warm spare of `opencomputer {role}`: imported in {time.monotonic() - began:.1f} s")
    if not sys.stdin.readline():  # the test went away before saying go
        return
    _say("go")
    signal.signal(signal.SIGUSR1, _dump_tasks)
    from opencomputer.bot.cli import main as cli

    sys.argv = ["opencomputer", role]
    cli()


if __name__ == "__main__":
    main()
