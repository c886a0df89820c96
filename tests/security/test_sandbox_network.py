"""Attack: a plugin granted only a public host connects to the server's loopback (item 3).

With a grant the sandbox used to share the host network and only an audit hook stood in the
way; libc's ``connect()`` through ctypes reached the bot's own HTTP port, Redis, Ollama. Now the
sandbox has no host network at all and grants are served by the egress proxy. The test opens a
listener on 127.0.0.1 and asserts it never sees a connection (nothing in its accept queue).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.security.sandbox_kit import call, call_as_nobody, nobody_root, write_hostile


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        sock.setblocking(False)
        yield sock


def _assert_no_accept(sock: socket.socket, answer: str) -> None:
    assert answer.startswith("connect: ")  # the plugin's libc connect() ran (and failed, but
    # for the one-in-28k case of its own bridge sharing the port in the sandbox's loopback)...
    with pytest.raises(BlockingIOError):  # ...and nothing reached the listener: the kernel
        sock.accept()  # queues a completed handshake before connect() returns


@pytest.mark.parametrize("grants", [[], ["api.example.org"], ["*"]])
async def test_libc_connect_to_loopback_gets_no_accept(
    tmp_path: Path, listener: socket.socket, grants: list[str]
) -> None:
    write_hostile(tmp_path / "plugins", network=grants)
    port = listener.getsockname()[1]
    answer = await call(
        tmp_path / "plugins", tmp_path / "data", "hostile", "raw_connect", port=port
    )
    _assert_no_accept(listener, answer)


def test_libc_connect_to_loopback_gets_no_accept_as_nobody(listener: socket.socket) -> None:
    with nobody_root() as root:
        write_hostile(root / "plugins", network=["api.example.org"])
        port = listener.getsockname()[1]
        answer = call_as_nobody(
            root / "plugins", root / "data", "hostile", "raw_connect", port=port
        )
    _assert_no_accept(listener, answer)


async def test_the_proxy_refuses_loopback_to_a_plugin_granted_any_public_host(
    tmp_path: Path, listener: socket.socket
) -> None:
    """The way out that remains, the egress proxy, asked for loopback in both of its forms."""
    write_hostile(tmp_path / "plugins", network=["*"])
    port = listener.getsockname()[1]
    answer = await call(tmp_path / "plugins", tmp_path / "data", "hostile", "via_proxy", port=port)
    report = json.loads(answer)
    assert report["proxy"].startswith("http://127.0.0.1:")  # the bridge, set before import
    assert str(report["get"]).startswith("HTTPError: HTTP Error 403")
    assert report["connect"].startswith("HTTP/1.1 403")
    with pytest.raises(BlockingIOError):
        listener.accept()
