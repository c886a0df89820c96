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

import atexit
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
    """A cgroup allowing ``count`` tasks, when root starts the sandbox; else None.

    Cgroups are kept and reused once empty (removing one must wait for the sandbox's pid
    namespace to be torn down, which would add milliseconds to every call); those of a server
    that is no longer running are removed the first time one is needed.
    """
    root = _hierarchy() if os.geteuid() == 0 and count > 0 else None
    if root is None:
        yield None
        return
    folder = _take(root)
    (folder / "pids.max").write_text(str(count))
    try:
        yield PidsLimit(folder)
    finally:
        _idle.append(folder)


_idle: list[Path] = []  # this process's cgroups, free for reuse once empty
_swept: set[Path] = set()


@atexit.register
def _release() -> None:
    for folder in _idle:
        with contextlib.suppress(OSError):
            os.rmdir(folder)


def _take(root: Path) -> Path:
    for folder in list(_idle):
        if folder.parent == root and not _populated(folder):
            _idle.remove(folder)
            return folder
    if root not in _swept:
        _swept.add(root)
        _sweep(root)
    folder = root / f"oc-sandbox-{os.getpid()}-{uuid.uuid4().hex[:12]}"
    folder.mkdir()
    return folder


def _populated(folder: Path) -> bool:
    try:
        return bool((folder / "cgroup.procs").read_text().strip())
    except OSError:
        return True


def _sweep(root: Path) -> None:
    """Remove empty cgroups left by servers that are gone."""
    for folder in root.glob("oc-sandbox-*-*"):
        owner = folder.name.split("-")[2]
        if not owner.isdigit() or _alive(int(owner)) or _populated(folder):
            continue
        with contextlib.suppress(OSError):
            os.rmdir(folder)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
