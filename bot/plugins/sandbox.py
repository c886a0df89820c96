"""Run one plugin call in a bubblewrap sandbox and read its JSON answer.

The sandbox is a wall, not a filter. Bubblewrap itself starts with an empty environment (it is
PID 1 inside, and ``/proc/1/environ`` is readable there), in new namespaces of every kind
(``--unshare-all``, never ``--share-net``) including a user namespace in which the plugin runs as
uid 65534 with no capabilities (``--cap-drop ALL``, ``--disable-userns``): a server running as
root hands the plugin none of root's powers, so read-only binds stay read-only. The plugin gets
a fresh root: read-only system and Python folders, read-only plugin code, its own data folder
read-write, a ``/tmp`` sized to its memory limit; the server's ``.env``, data folder and database
are never mounted (and are masked if they lie under a mounted folder).

There is no host network inside. A plugin with network grants gets an egress proxy
(:mod:`bot.plugins.egress`) started for the call outside the sandbox, reached through its Unix
socket bound in at ``/run/oc-egress.sock``; the proxy resolves names itself and enforces the
grants. Limits: CPU seconds, memory, process count (``RLIMIT_NPROC``, and for a root server a
``pids`` cgroup: :mod:`bot.plugins.pids`) and the seccomp process filter are set by the worker
on itself before plugin code is imported; wall-clock time is enforced here.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opencomputer.bot.plugins.pids import pids_limit

__all__ = [
    "CallLimits",
    "Sandbox",
    "SandboxError",
    "SandboxPolicy",
    "SandboxUnavailable",
    "drops_privileges",
    "egress_proxy",
]

logger = logging.getLogger(__name__)

_SYSTEM = ["/usr", "/bin", "/lib", "/lib64", "/sbin"]
_ETC = [
    "/etc/resolv.conf",
    "/etc/hosts",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/nsswitch.conf",
    "/etc/localtime",
    "/etc/gai.conf",
    "/etc/host.conf",
    "/etc/passwd",
    "/etc/group",
]
_MAX_OUTPUT = 4 * 1024 * 1024
_CODE_ROOT = Path(__file__).resolve().parents[2]  # the folder holding the ``bot`` package
_NOBODY = "65534"
EGRESS_SOCKET = "/run/oc-egress.sock"  # where the egress proxy's socket appears inside
_PATH = "/usr/local/bin:/usr/bin:/bin"

INSTALL_HINT = (
    "bubblewrap (bwrap) is not installed: install it (Debian/Ubuntu: apt-get install bubblewrap) "
    "or set OC_PLUGIN_SANDBOX=off to run plugins without isolation"
)
OLD_BWRAP_HINT = (
    "bubblewrap 0.8 or later is needed for the plugin sandbox (found {version}): upgrade it "
    "or set OC_PLUGIN_SANDBOX=off to run plugins without isolation"
)
USERNS_HINT = (
    "the plugin sandbox cannot drop privileges here (bubblewrap could not create a user "
    "namespace): enable user namespaces (sysctl user.max_user_namespaces=15000) or set "
    "OC_PLUGIN_SANDBOX=off to run plugins without isolation"
)


class SandboxError(Exception):
    """The call could not produce an answer (killed, crashed, limit reached)."""


class SandboxUnavailable(SandboxError):
    """Isolation is required but bubblewrap is missing or cannot drop privileges."""


@dataclass(frozen=True, slots=True)
class CallLimits:
    """Limits of one call (``/tmp`` is sized to ``memory_mb``)."""

    timeout: float = 30.0
    memory_mb: int = 512
    cpu_seconds: int = 30
    processes: int = 64  # processes and threads together, per sandbox


@dataclass(frozen=True, slots=True)
class SandboxPolicy:
    """What one plugin's calls may touch."""

    plugin: str
    code_dir: Path
    data_dir: Path
    network: list[str] = field(default_factory=list)
    read: list[str] = field(default_factory=list)
    write: list[str] = field(default_factory=list)
    process: bool = False


@functools.cache
def drops_privileges(bwrap: str) -> str | None:
    """Why bubblewrap cannot start our sandbox here (None: it can). Checked once, by trying."""
    try:
        version = subprocess.run(
            [bwrap, "--version"], env={}, capture_output=True, text=True, timeout=10
        ).stdout.split()
        found = tuple(int(x) for x in version[-1].split(".")[:2]) if version else (0, 0)
    except (OSError, subprocess.SubprocessError, ValueError):
        found = (0, 0)
    if found < (0, 8):  # --size, --perms on tmpfs, --disable-userns
        return OLD_BWRAP_HINT.format(version=" ".join(version[-1:]) or "an unknown version")
    probe = [bwrap, *_isolation_flags(), "--ro-bind", "/", "/"]
    probe += ["--size", "1048576", "--tmpfs", "/tmp", "--", "true"]
    try:
        done = subprocess.run(probe, env={"PATH": _PATH}, capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return USERNS_HINT
    return None if done.returncode == 0 else USERNS_HINT


def _isolation_flags() -> list[str]:
    return [
        "--unshare-all",
        "--unshare-user",
        "--uid",
        _NOBODY,
        "--gid",
        _NOBODY,
        "--disable-userns",
        "--cap-drop",
        "ALL",
        "--die-with-parent",
        "--new-session",
    ]


class Sandbox:
    """Spawns workers; ``mode`` is ``on`` (bubblewrap required) or ``off`` (admin opt-out)."""

    def __init__(self, *, mode: str = "on", protect: list[Path] | None = None) -> None:
        self.mode = mode
        self.bwrap = shutil.which("bwrap")
        self.protect = [p.resolve() for p in (protect or [])]

    @property
    def isolated(self) -> bool:
        """Whether calls really run under bubblewrap."""
        return self.mode != "off" and self.bwrap is not None

    def refusal(self) -> str | None:
        """Why sandboxed plugins cannot run, or None when they can."""
        if self.mode == "off":
            return None
        if self.bwrap is None:
            return INSTALL_HINT
        return drops_privileges(self.bwrap)

    def _python_paths(self) -> list[Path]:
        paths = {
            Path(sys.prefix),
            Path(sys.base_prefix),
            Path(sys.executable).resolve().parent,
            _CODE_ROOT / "bot",  # a checkout's bot/ (opencomputer/bot links to it)
            _CODE_ROOT / "opencomputer",  # the public API plugins import (a checkout)
        }
        # an installed package has both under its own folder, inside sys.prefix
        return sorted(p.resolve() for p in paths if p.exists())

    def argv(
        self,
        policy: SandboxPolicy,
        *,
        command: list[str] | None = None,
        env: dict[str, str] | None = None,
        egress: Path | None = None,
        memory_mb: int = 512,
        files: list[Path] | None = None,
    ) -> list[str]:
        """Build the full command line of one sandboxed worker (or of ``command``).

        ``env`` is set inside (bubblewrap itself gets none), ``egress`` is the proxy's socket to
        bind in, ``files`` are single files to show read-only (an MCP server's script).
        """
        python = [sys.executable, "-X", "utf8", "-B", "-m", "opencomputer.bot.plugins.worker"]
        command = command or python
        if not self.isolated:
            return command
        args = [self.bwrap or "bwrap", *_isolation_flags(), "--clearenv"]
        inside = {
            "PATH": _PATH,
            "HOME": "/tmp",
            "LANG": "C.UTF-8",
            "PYTHONPATH": str(_CODE_ROOT),
            "PYTHONDONTWRITEBYTECODE": "1",
            **(env or {}),
        }
        for name, value in inside.items():
            args += ["--setenv", name, value]
        # /tmp first: binds below may lie under it and must not be hidden by the tmpfs
        args += ["--proc", "/proc", "--dev", "/dev"]
        args += ["--size", str(memory_mb * 2**20), "--tmpfs", "/tmp"]
        args += ["--size", str(16 * 2**20), "--tmpfs", "/dev/shm", "--remount-ro", "/dev"]
        mounted: list[Path] = []
        for system in _SYSTEM + _ETC:
            args += ["--ro-bind-try", system, system]
        for path in [*self._python_paths(), policy.code_dir.resolve()]:
            args += ["--ro-bind", str(path), str(path)]
            mounted.append(path)
        for extra in [*map(Path, policy.read), *(files or [])]:
            target = extra.expanduser()
            if any(m == target or m in target.parents for m in mounted):
                continue  # already visible (a script inside the venv, a repeated grant)
            args += ["--ro-bind-try", str(target), str(target)]
            mounted.append(target)
        for secret in self.protect:  # mask server files that a mounted folder would expose
            if any(secret == m or m in secret.parents for m in mounted) and secret.exists():
                args += (
                    ["--perms", "0555", "--size", "4096", "--tmpfs", str(secret)]
                    if secret.is_dir()
                    else ["--ro-bind", "/dev/null", str(secret)]
                )
        for writable in policy.write:
            target = Path(writable).expanduser()
            args += ["--bind-try", str(target), str(target)]
        args += ["--bind", str(policy.data_dir), str(policy.data_dir)]
        if egress is not None:
            args += ["--ro-bind", str(egress), EGRESS_SOCKET]
        args += ["--remount-ro", "/", "--chdir", "/tmp"]
        return [*args, "--", *command]

    def environment(self) -> dict[str, str]:
        """The environment bubblewrap (or, opted out, the bare worker) starts with."""
        return {} if self.isolated else _clean_env()

    async def run(
        self, request: dict[str, Any], policy: SandboxPolicy, limits: CallLimits
    ) -> dict[str, Any]:
        """Run one call; return the worker's answer or raise :class:`SandboxError`."""
        refusal = self.refusal()
        if refusal:
            raise SandboxUnavailable(f"plugin {policy.plugin} was not run: {refusal}")
        payload = {
            **request,
            "limits": {
                "memory_mb": limits.memory_mb,
                "cpu_seconds": limits.cpu_seconds,
                "processes": limits.processes,
            },
            "confine": self.isolated,
        }
        policy.data_dir.mkdir(parents=True, exist_ok=True)
        async with (
            egress_proxy(policy.network if self.isolated else []) as socket_path,
            pids_limit(limits.processes if self.isolated else 0) as pids,
        ):
            if socket_path is not None:
                payload["egress_socket"] = EGRESS_SOCKET
            argv = self.argv(policy, egress=socket_path, memory_mb=limits.memory_mb)
            return await self._call(pids.wrap(argv) if pids else argv, payload, policy, limits)

    async def _call(
        self, argv: list[str], payload: dict[str, Any], policy: SandboxPolicy, limits: CallLimits
    ) -> dict[str, Any]:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            env=self.environment(),
            cwd=str(policy.data_dir),
        )
        try:
            out, err = await asyncio.wait_for(
                _collect(proc, json.dumps(payload, default=str).encode()), limits.timeout
            )
        except TimeoutError:
            _kill(proc)
            await proc.wait()
            raise SandboxError(f"stopped after {limits.timeout:g} s (time limit)") from None
        except asyncio.CancelledError:
            _kill(proc)
            raise
        if err:
            tail = err[-2000:].decode(errors="replace")
            logger.debug("plugin %s stderr: %s", policy.plugin, tail)
        if not out:
            raise SandboxError(_death(proc.returncode, err, limits))
        if len(out) > _MAX_OUTPUT:
            raise SandboxError(f"the plugin's answer is larger than {_MAX_OUTPUT // 2**20} MB")
        try:
            answer: dict[str, Any] = json.loads(out)
        except ValueError:
            raise SandboxError("the plugin's answer was not valid JSON") from None
        return answer


@contextlib.asynccontextmanager
async def egress_proxy(grants: list[str]) -> AsyncIterator[Path | None]:
    """An egress proxy for ``grants`` on a private Unix socket (None without grants).

    One per call: starting and stopping one costs about half a millisecond (a Unix socket and
    an asyncio server), nothing beside a sandbox's ~100 ms, and no state outlives the call.
    """
    if not grants:
        yield None
        return
    from opencomputer.bot.plugins.egress import EgressProxy

    folder = Path(tempfile.mkdtemp(prefix="oc-egress-"))  # 0700, ours only
    socket_path = folder / "proxy.sock"
    proxy = EgressProxy(list(grants), socket_path)
    try:
        await proxy.start()
        yield socket_path
    finally:
        await proxy.stop()
        shutil.rmtree(folder, ignore_errors=True)


async def _collect(proc: asyncio.subprocess.Process, payload: bytes) -> tuple[bytes, bytes]:
    """Send the request, read the answer and a tail of stderr (bounded, however much it prints)."""
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    proc.stdin.write(payload)
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        await proc.stdin.drain()
    proc.stdin.close()
    out, err = await asyncio.gather(
        _read(proc.stdout, _MAX_OUTPUT + 1, head=True), _read(proc.stderr, 64 * 1024, head=False)
    )
    await proc.wait()
    return out, err


async def _read(stream: asyncio.StreamReader, limit: int, *, head: bool) -> bytes:
    kept = bytearray()
    while chunk := await stream.read(64 * 1024):
        if head:
            kept += chunk[: max(0, limit - len(kept))]
        else:
            kept += chunk
            del kept[:-limit]
    return bytes(kept)


def _kill(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _death(code: int | None, err: bytes, limits: CallLimits) -> str:
    if code in (-signal.SIGXCPU, -signal.SIGKILL, 128 + signal.SIGXCPU, 128 + signal.SIGKILL):
        return f"stopped at its CPU limit ({limits.cpu_seconds} s)"
    tail = err.decode(errors="replace").strip().splitlines()
    last = tail[-1] if tail else ""
    if "MemoryError" in last:
        return f"stopped at its memory limit ({limits.memory_mb} MB)"
    return f"the plugin process died (exit {code}){': ' + last[:200] if last else ''}"


def _clean_env() -> dict[str, str]:
    """Without bubblewrap (admin opt-out) the worker still gets no server secrets."""
    keep = {k: os.environ[k] for k in ("PATH", "LANG", "TZ") if k in os.environ}
    keep["PYTHONPATH"] = str(_CODE_ROOT)
    keep["HOME"] = "/tmp"
    return keep
