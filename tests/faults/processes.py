"""Real opencomputer processes (``python -m bot run|gateway|worker``) a test can SIGKILL.

Each start is a new incarnation with its own log file; readiness is awaited on the process's own
signals (the "HTTP app listening" line, then ``/readyz`` answering 200), never by sleeping.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

__all__ = ["RedisProcess", "ServerProcess", "clean_environ", "prepare_spares"]

_LISTENING = re.compile(rb"HTTP app listening on http://[\d.]+:(\d+)")
_PREFIXES = ("OC_", "OLLAMA_", "TELEGRAM_", "DISCORD_", "SLACK_", "MATRIX_", "OPENAI_")
ROOT = Path(__file__).resolve().parents[2]
"""The checkout these tests belong to: the server runs its code, not another install's."""
LAUNCH = Path(__file__).with_name("launch.py")


def clean_environ(settings: dict[str, Any]) -> dict[str, str]:
    """This process's environment without our settings, plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_PREFIXES)}
    env.update({k: str(v) for k, v in settings.items()})
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


class ServerProcess:
    """One role (``run``, ``gateway`` or ``worker``) started, killed and started again.

    Warm spares (``launch.py``: the CLI with its modules already imported) wait beside the
    running incarnation, so a restart costs the server's own start-up, not Python's imports
    (about 6 s on a loaded two-core machine: :func:`prepare_spares` spawns them two starts
    ahead).
    """

    def __init__(self, name: str, role: str, env: dict[str, str], logs: Path) -> None:
        self.name, self.role, self.env, self.logs = name, role, env, logs
        self.proc: asyncio.subprocess.Process | None = None
        self.spares: list[tuple[asyncio.subprocess.Process, Path]] = []
        self.spawned = 0
        self.starts = 0
        self.kills = 0
        self.port = 0
        self.ready_after = 0.0
        """Seconds from "go" to ready, at the last start."""
        self.log: Path | None = None

    @property
    def alive(self) -> bool:
        """Whether the current incarnation still runs."""
        return self.proc is not None and self.proc.returncode is None

    async def _spawn(self) -> tuple[asyncio.subprocess.Process, Path]:
        self.spawned += 1
        log = self.logs / f"{self.name}-{self.spawned}.log"
        with open(log, "wb") as out:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, str(LAUNCH), self.role,
                env=self.env, stdin=asyncio.subprocess.PIPE, stdout=out, stderr=out,
            )  # fmt: skip
        return proc, log

    async def prepare(self, count: int = 1) -> None:
        """Have ``count`` warm spares importing, for the next starts."""
        self.spares = [s for s in self.spares if s[0].returncode is None]
        while len(self.spares) < count:
            self.spares.append(await self._spawn())

    async def start(self, *, within: float = 90.0) -> None:
        """Start a new incarnation (the oldest spare, if one waits) and wait until it is ready."""
        assert not self.alive, f"{self.name} is already running"
        await self.prepare()
        self.proc, self.log = self.spares.pop(0)
        self.starts += 1
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"go\n")
        await self.proc.stdin.drain()
        began = time.monotonic()
        await self._ready(within)
        self.ready_after = time.monotonic() - began

    async def _ready(self, within: float) -> None:
        assert self.proc is not None and self.log is not None
        deadline = time.monotonic() + within
        self.port = 0
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                if self.proc.returncode is not None:
                    raise RuntimeError(f"{self.name} exited at start:\n{self.tail()}")
                if not self.port and (found := _LISTENING.search(self.log.read_bytes())):
                    self.port = int(found.group(1))
                if self.port:
                    try:
                        url = f"http://127.0.0.1:{self.port}/readyz"
                        async with http.get(url) as resp:
                            if resp.status == 200:
                                return
                    except aiohttp.ClientError:
                        pass
                await asyncio.sleep(0.05)
        raise TimeoutError(f"{self.name} not ready within {within:.0f} s:\n{self.tail()}")

    def kill(self) -> bool:
        """SIGKILL the current incarnation (synchronous: usable inside a platform hook)."""
        if not self.alive:
            return False
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.kills += 1
        return True

    async def exited(self) -> None:
        """Wait until the current incarnation is gone."""
        if self.proc is not None:
            await self.proc.wait()

    async def stop(self, *, within: float = 30.0) -> bool:
        """SIGTERM (a graceful stop) and wait; False (and SIGKILL) if it hangs."""
        if not self.alive:
            return True
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(within):
                await self.proc.wait()
            return True
        except TimeoutError:
            await self._dump_tasks()
            self.kill()
            await self.proc.wait()
            return False

    async def _dump_tasks(self, within: float = 5.0) -> None:
        """Have a hung incarnation print its asyncio tasks into its log (``launch.py``)."""
        assert self.proc is not None and self.log is not None
        self.proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + within
        while time.monotonic() < deadline and b"LAUNCH  tasks dumped" not in self.log.read_bytes():
            await asyncio.sleep(0.1)

    def tail(self, lines: int = 30) -> str:
        """The end of the current incarnation's log."""
        if self.log is None or not self.log.exists():
            return "(no log)"
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    async def close(self) -> None:
        """Kill the incarnation and the spare; nothing is left running."""
        self.kill()
        await self.exited()
        for proc, _log in self.spares:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
        self.spares.clear()

    def errors(self) -> list[str]:
        """Tracebacks and ERROR lines over every incarnation (for the failure message)."""
        found: list[str] = []
        for n in range(1, self.spawned + 1):
            path = self.logs / f"{self.name}-{n}.log"
            if path.exists():
                for line in path.read_text(errors="replace").splitlines():
                    if " ERROR " in line or line.startswith("Traceback"):
                        found.append(f"{self.name}#{n}: {line}")
        return found


async def prepare_spares(upcoming: list[ServerProcess], ahead: int = 2) -> None:
    """Spares for the next ``ahead`` starts of ``upcoming`` (the planned order of restarts)."""
    soon = upcoming[:ahead]
    for process in dict.fromkeys(soon):
        await process.prepare(soon.count(process))


class RedisProcess:
    """A private redis-server on a unix socket (no TCP port to collide), restartable."""

    def __init__(self, directory: Path) -> None:
        self.socket = directory / "redis.sock"
        self.proc: asyncio.subprocess.Process | None = None
        self.restarts = 0

    @property
    def url(self) -> str:
        """The URL the processes use."""
        return f"unix://{self.socket}?db=0"

    async def start(self) -> None:
        """Start (empty: no persistence, so a restart loses every key) and wait for PING."""
        self.proc = await asyncio.create_subprocess_exec(
            "redis-server", "--port", "0", "--unixsocket", str(self.socket),
            "--save", "", "--appendonly", "no",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        import redis.asyncio as redis

        client = redis.from_url(self.url)
        try:
            async with asyncio.timeout(20):
                while True:
                    try:
                        await client.ping()
                        return
                    except (OSError, redis.ConnectionError):
                        await asyncio.sleep(0.05)
        finally:
            await client.aclose()

    async def stop(self) -> None:
        """Kill it (what a crash of the Redis host looks like)."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()

    async def restart(self) -> None:
        """Lose everything and come back."""
        await self.stop()
        self.restarts += 1
        await self.start()
