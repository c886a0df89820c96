"""Run one plugin call in a bubblewrap sandbox and read its JSON answer.

The sandbox gets a fresh root: read-only system and Python folders, read-only plugin code, its
own data folder read-write, an empty ``/tmp``, no network namespace unless the manifest grants
hosts, no environment but what we set. The server's ``.env``, data folder and database are
never mounted (and are masked if they lie under a mounted folder). Limits: CPU seconds and
memory are set by the worker on itself; wall-clock time is enforced here by killing it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["CallLimits", "Sandbox", "SandboxError", "SandboxPolicy", "SandboxUnavailable"]

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
]
_MAX_OUTPUT = 4 * 1024 * 1024
_CODE_ROOT = Path(__file__).resolve().parents[2]  # the folder holding the ``bot`` package

INSTALL_HINT = (
    "bubblewrap (bwrap) is not installed: install it (Debian/Ubuntu: apt-get install bubblewrap) "
    "or set OC_PLUGIN_SANDBOX=off to run plugins without isolation"
)


class SandboxError(Exception):
    """The call could not produce an answer (killed, crashed, limit reached)."""


class SandboxUnavailable(SandboxError):
    """Isolation is required but bubblewrap is missing."""


@dataclass(frozen=True, slots=True)
class CallLimits:
    """Limits of one call."""

    timeout: float = 30.0
    memory_mb: int = 512
    cpu_seconds: int = 30


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
        if self.mode == "off" or self.bwrap is not None:
            return None
        return INSTALL_HINT

    def _python_paths(self) -> list[Path]:
        paths = {
            Path(sys.prefix),
            Path(sys.base_prefix),
            Path(sys.executable).resolve().parent,
            _CODE_ROOT / "bot",
        }
        return sorted(p.resolve() for p in paths)

    def argv(self, policy: SandboxPolicy) -> list[str]:
        """Build the full command line of one sandboxed worker."""
        code_root = str(_CODE_ROOT)
        python = [sys.executable, "-X", "utf8", "-B", "-m", "bot.plugins.worker"]
        if not self.isolated:
            return python
        args = [self.bwrap or "bwrap", "--unshare-all", "--die-with-parent", "--new-session"]
        if policy.network:
            args.append("--share-net")
        args += [
            "--clearenv",
            "--setenv",
            "PATH",
            "/usr/local/bin:/usr/bin:/bin",
            "--setenv",
            "HOME",
            "/tmp",
            "--setenv",
            "LANG",
            "C.UTF-8",
            "--setenv",
            "PYTHONPATH",
            code_root,
            "--setenv",
            "PYTHONDONTWRITEBYTECODE",
            "1",
        ]
        # /tmp first: binds below may lie under it and must not be hidden by the tmpfs
        args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
        mounted: list[Path] = []
        for system in _SYSTEM + _ETC:
            args += ["--ro-bind-try", system, system]
        for path in [*self._python_paths(), policy.code_dir.resolve()]:
            args += ["--ro-bind", str(path), str(path)]
            mounted.append(path)
        for extra in policy.read:
            target = Path(extra).expanduser()
            args += ["--ro-bind-try", str(target), str(target)]
            mounted.append(target)
        for secret in self.protect:  # mask server files that a mounted folder would expose
            if any(secret == m or m in secret.parents for m in mounted) and secret.exists():
                args += (
                    ["--tmpfs", str(secret)]
                    if secret.is_dir()
                    else ["--ro-bind", "/dev/null", str(secret)]
                )
        for extra in policy.write:
            target = Path(extra).expanduser()
            args += ["--bind-try", str(target), str(target)]
        args += ["--bind", str(policy.data_dir), str(policy.data_dir), "--chdir", "/tmp"]
        return [*args, *python]

    async def run(
        self, request: dict[str, Any], policy: SandboxPolicy, limits: CallLimits
    ) -> dict[str, Any]:
        """Run one call; return the worker's answer or raise :class:`SandboxError`."""
        refusal = self.refusal()
        if refusal:
            raise SandboxUnavailable(f"plugin {policy.plugin} was not run: {refusal}")
        payload = {
            **request,
            "limits": {"memory_mb": limits.memory_mb, "cpu_seconds": limits.cpu_seconds},
        }
        policy.data_dir.mkdir(parents=True, exist_ok=True)
        env = None if self.isolated else _clean_env()
        proc = await asyncio.create_subprocess_exec(
            *self.argv(policy),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            env=env,
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
