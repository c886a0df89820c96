"""A real IRC server (ngIRCd from Debian) on loopback, a test IRC client, and a throwaway venv
with ``examples/opencomputer-irc`` installed from a copy, found through its entry point.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "opencomputer-irc"
NGIRCD = shutil.which("ngircd") or next(
    (p for p in ("/usr/sbin/ngircd", "/usr/local/sbin/ngircd") if Path(p).exists()), None
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class IrcServer:
    """ngIRCd in the foreground on one loopback port; restartable on the same port."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.proc: asyncio.subprocess.Process | None = None
        self.conf = folder / "ngircd.conf"
        self.conf.write_text(
            "[Global]\nName = irc.test\nInfo = opencomputer tests\nListen = 127.0.0.1\n"
            f"Ports = {self.port}\nMotdPhrase = test\n"
            "[Limits]\nMaxConnectionsIP = 0\nMaxNickLength = 30\n"
            "[Options]\nPAM = no\nIdent = no\nDNS = no\n",
            encoding="utf-8",
        )
        self.log = folder / "ngircd.log"

    async def start(self) -> None:
        assert NGIRCD is not None
        with self.log.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                NGIRCD, "-n", "-f", str(self.conf), stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError):
                _r, w = await asyncio.open_connection("127.0.0.1", self.port)
                w.close()
                return
            if self.proc.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ngircd did not start: {self.log.read_text()[-2000:]}")
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        self.proc = None


@dataclass
class IrcClient:
    """A person on IRC: raw lines in, records every line it receives (bytes, as sent)."""

    nick: str
    port: int
    raw: list[bytes] = field(default_factory=list)
    _reader: asyncio.StreamReader | None = None
    _writer: asyncio.StreamWriter | None = None
    _task: asyncio.Task[None] | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def connect(self, *channels: str) -> None:
        self._reader, self._writer = await asyncio.open_connection("127.0.0.1", self.port)
        self._task = asyncio.create_task(self._read())
        self.send(f"NICK {self.nick}", f"USER {self.nick} 0 * :{self.nick}")
        await self.wait_for(lambda line: f" 001 {self.nick} " in line)
        for channel in channels:
            self.send(f"JOIN {channel}")
            await self.wait_for(lambda line, c=channel: f" 366 {self.nick} {c} " in line)

    def send(self, *lines: str) -> None:
        assert self._writer is not None
        for line in lines:
            self._writer.write(line.encode() + b"\r\n")

    def say(self, target: str, text: str) -> None:
        self.send(f"PRIVMSG {target} :{text}")

    async def _read(self) -> None:
        assert self._reader is not None
        while data := await self._reader.readline():
            if data.startswith(b"PING"):
                self.send("PONG" + data[4:].decode().rstrip())
            self.raw.append(data)
            self._changed.set()
        self._changed.set()

    @property
    def lines(self) -> list[str]:
        return [r.decode("utf-8", errors="replace").rstrip("\r\n") for r in self.raw]

    def privmsgs(self, sender: str, target: str) -> list[str]:
        head = f":{sender}!"
        mid = f" PRIVMSG {target} :"
        return [
            line.split(mid, 1)[1] for line in self.lines if line.startswith(head) and mid in line
        ]

    async def wait_for(self, match: Callable[[str], bool], timeout: float = 60) -> str:
        """The first received line (from the start) that matches; waits for it."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.lines:
                if match(line):
                    return line
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{self.nick}: no matching line in {self.lines[-30:]}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)

    async def close(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.write(b"QUIT :bye\r\n")
                await self._writer.drain()
            self._writer.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task


def make_venv(folder: Path) -> Path:
    """A venv that sees opencomputer's (the test venv's packages via ``site.addsitedir``) plus
    ``opencomputer-irc`` installed from a copy of the example, offline. Returns its python.
    """
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(folder / "venv")], check=True
    )
    python = folder / "venv" / "bin" / "python"
    site_dir = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    import site

    parents = [p for p in site.getsitepackages() if Path(p).is_dir()]
    pth = "".join(f"import site; site.addsitedir({p!r})\n" for p in parents)
    (Path(site_dir) / "_opencomputer_parent.pth").write_text(pth, encoding="utf-8")
    source = folder / "src"
    shutil.copytree(
        EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    return python


class BotProcess:
    """``python -m opencomputer run`` in the venv: the real CLI, runtime and channel discovery."""

    def __init__(self, python: Path, folder: Path, env: dict[str, str]) -> None:
        self.python = python
        self.folder = folder
        self.env = env
        self.log = folder / "bot.log"
        self.args: tuple[str, ...] = ("run",)
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("OC_", "IRC_", "OLLAMA_", "TELEGRAM_", "DISCORD_", "SLACK_"))
            and not k.startswith("MATRIX_")
        }
        with self.log.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                str(self.python),
                "-m",
                "opencomputer",
                *self.args,
                cwd=self.folder,
                env={**base, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    async def stop_when_done(self, timeout: float = 120) -> int:
        """Wait for a command that ends by itself (``doctor``)."""
        assert self.proc is not None
        return await asyncio.wait_for(self.proc.wait(), timeout)

    async def stop(self) -> int:
        if self.proc is None:
            return 0
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 30)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        return self.proc.returncode or 0
