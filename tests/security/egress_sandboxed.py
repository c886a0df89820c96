"""The proxy's socket is private to the server, yet the sandbox (uid 65534 in its own user
namespace, no network) reaches it through the bridge.

``test_egress.py`` runs this module as the server would run: as root, and as uid 65534. It
starts an origin and a proxy granting it (socket 0600 in a 0700 folder), then a bubblewrap
sandbox with the isolation flags the plugin sandbox uses, which starts the bridge on the socket
bound in and fetches through it with urllib. As root it also checks that another local user
cannot connect to the socket. Prints one line per check that held; fails with a traceback.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.security.egress_kit import Origin, running_proxy
from tests.security.sandbox_kit import _python_reachable

ROOT = Path(__file__).resolve().parents[2]
INSIDE = "/run/oc-egress.sock"
# bot.plugins.sandbox's isolation: its own user namespace as uid 65534, nothing shared, no caps
ISOLATION = [
    "--unshare-all",
    "--unshare-user",
    "--uid",
    "65534",
    "--gid",
    "65534",
    "--disable-userns",
    "--cap-drop",
    "ALL",
    "--die-with-parent",
    "--new-session",
]
FETCH = """
import sys, urllib.request
from opencomputer.bot.plugins.bridge import start_bridge
port = start_bridge(sys.argv[1])
proxies = {"http": f"http://127.0.0.1:{port}"}
opener = urllib.request.build_opener(urllib.request.ProxyHandler(proxies))
print(opener.open(sys.argv[2], timeout=20).read().decode())
"""
PROBE = """
import socket, sys
try:
    socket.socket(socket.AF_UNIX).connect(sys.argv[1])
    print("connected")
except OSError as exc:
    print(type(exc).__name__)
"""


async def main() -> None:
    bwrap = shutil.which("bwrap")
    assert bwrap is not None
    async with Origin() as origin, running_proxy([f"127.0.0.1:{origin.port}"]) as proxy:
        assert oct(proxy.socket_path.stat().st_mode & 0o777) == "0o600"
        assert oct(proxy.socket_path.parent.stat().st_mode & 0o777) == "0o700"
        argv = [
            bwrap,
            *ISOLATION,
            "--ro-bind", "/", "/",
            "--tmpfs", "/run",
            "--proc", "/proc",
            "--dev", "/dev",
            "--ro-bind", str(proxy.socket_path), INSIDE,
            "--",
            sys.executable, "-c", FETCH, INSIDE, f"http://127.0.0.1:{origin.port}/from-the-sandbox",
        ]  # fmt: skip
        sandbox = await asyncio.create_subprocess_exec(
            *argv,
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = await sandbox.communicate()
        assert sandbox.returncode == 0, err.decode()[-2000:]
        assert out.decode().strip() == "origin saw GET /from-the-sandbox HTTP/1.1", out
        assert len(origin.accepted) == 1
        print("sandbox-reaches-the-socket", flush=True)
        if os.getuid() == 0:
            other = await asyncio.create_subprocess_exec(
                *_python_reachable(),
                "setpriv", "--reuid=65533", "--regid=65533", "--clear-groups",
                sys.executable, "-c", PROBE, str(proxy.socket_path),
                stdout=subprocess.PIPE,
            )  # fmt: skip
            out, _ = await other.communicate()
            assert out.decode().strip() == "PermissionError", out
            print("other-users-cannot-connect", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
