"""A process-count limit that binds a sandbox started by root: one ``pids`` cgroup per sandbox.

``RLIMIT_NPROC`` (set by the worker on itself) is counted per user *inside* the sandbox's own
user namespace, so it bounds every sandbox started by an unprivileged server. It never binds
processes whose real uid is root's, and a root server's sandbox processes are root's outside
the namespace (bubblewrap maps the sandbox uid to its caller). For them the kernel's ``pids``
controller does the counting: the sandbox is started by ``sh -c 'echo $$ > cgroup.procs; exec
bwrap ...'`` so it is inside its cgroup before anything in it can fork.

The cgroup v1 ``pids`` hierarchy is used when it is mounted and writable (containers usually
have one); a cgroup v2 hierarchy is used when the server's own cgroup can hold children with the
controller enabled. Without either, a root server logs one warning and plugins that hold the
``process`` permission run without a process count (those without it cannot fork at all: the
seccomp filter refuses).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

__all__ = ["PidsLimit", "pids_limit"]

logger = logging.getLogger(__name__)

_V1 = Path("/sys/fs/cgroup/pids")
_V2 = Path("/sys/fs/cgroup")
_ENTER = 'echo $$ > "$0" && exec "$@"'


class PidsLimit:
    """One sandbox's cgroup: ``wrap`` an argv so it starts inside."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def wrap(self, argv: list[str]) -> list[str]:
        """``argv`` started inside the cgroup (the shell moves itself in, then becomes it)."""
        return ["/bin/sh", "-c", _ENTER, str(self.folder / "cgroup.procs"), *argv]


def _v2_parent() -> Path | None:
    try:
        own = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    line = next((x for x in own if x.startswith("0::")), None)
    if line is None or not (_V2 / "cgroup.controllers").is_file():
        return None
    parent = _V2 / line[3:].lstrip("/")
    if "pids" not in (parent / "cgroup.subtree_control").read_text().split():
        return None
    return parent


@functools.cache
def _hierarchy() -> Path | None:
    """Where per-sandbox cgroups can be made (checked once, by making and removing one)."""
    candidates = [_V1] if (_V1 / "cgroup.procs").is_file() else []
    with contextlib.suppress(OSError):
        v2 = _v2_parent()
        if v2 is not None:
            candidates.append(v2)
    for root in candidates:
        probe = root / f"oc-probe-{uuid.uuid4().hex[:8]}"
        try:
            probe.mkdir()
            (probe / "pids.max").write_text("1")
            probe.rmdir()
            return root
        except OSError:
            with contextlib.suppress(OSError):
                probe.rmdir()
    logger.warning(
        "plugin sandboxes started by root have no process count limit here: no writable pids "
        "cgroup (run the server as an unprivileged user, or give it a writable pids cgroup)"
    )
    return None


@contextlib.asynccontextmanager
async def pids_limit(count: int) -> AsyncIterator[PidsLimit | None]:
    """A fresh cgroup allowing ``count`` tasks, when root starts the sandbox; else None."""
    root = _hierarchy() if os.geteuid() == 0 and count > 0 else None
    if root is None:
        yield None
        return
    folder = root / f"oc-sandbox-{uuid.uuid4().hex}"
    folder.mkdir()
    try:
        (folder / "pids.max").write_text(str(count))
        yield PidsLimit(folder)
    finally:
        await _remove(folder)


async def _remove(folder: Path) -> None:
    """Remove the cgroup once the sandbox's last process is gone (killing stragglers)."""
    for attempt in range(200):
        try:
            os.rmdir(folder)  # cgroupfs: immediate, no disk behind it
            return
        except FileNotFoundError:
            return
        except OSError:  # still populated: the pid namespace is being torn down
            if attempt == 50:
                _kill_all(folder)
            await asyncio.sleep(0.01)
    logger.warning("could not remove %s (processes left in it)", folder)


def _kill_all(folder: Path) -> None:
    with contextlib.suppress(OSError):
        for pid in (folder / "cgroup.procs").read_text().split():
            with contextlib.suppress(OSError):
                os.kill(int(pid), 9)
