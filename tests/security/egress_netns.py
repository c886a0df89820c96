"""Egress scenarios that need a reachable *public* address, run in a private network namespace.

``test_egress.py`` starts this module under ``unshare --user --map-root-user --net``: a fresh
network namespace where nothing leaves the machine. Loopback is brought up and given a public
address (``1.2.3.4``) and a private one (``10.9.9.9``), so origins can listen "on the internet"
and "on the LAN" while a bait listens on ``127.0.0.1`` at the same port. Each scenario asserts,
then prints its name; any failure exits non-zero with the traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable

from tests.security.egress_kit import (
    TUNNELLED,
    Origin,
    ScriptedResolver,
    connect,
    exchange,
    get,
    running_proxy,
    status_of,
)

PUBLIC, PRIVATE = "1.2.3.4", "10.9.9.9"
_SIOCSIFFLAGS, _SIOCSIFADDR = 0x8914, 0x8916
_IFF_UP_LOOPBACK_RUNNING = 0x1 | 0x8 | 0x40


def _configure_loopback() -> None:
    """``ip link set lo up`` and an address alias per extra address, with ioctl (no iproute2)."""
    with socket.socket() as sock:
        fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", _IFF_UP_LOOPBACK_RUNNING))
        for n, address in enumerate((PUBLIC, PRIVATE), start=1):
            name = f"lo:{n}".encode()
            sockaddr = struct.pack("H2s4s8x", socket.AF_INET, b"", socket.inet_aton(address))
            fcntl.ioctl(sock, _SIOCSIFADDR, struct.pack("16s16s", name, sockaddr))


@contextlib.asynccontextmanager
async def _origin_and_bait(address: str) -> AsyncIterator[tuple[Origin, Origin]]:
    """An origin on ``address`` and a bait on 127.0.0.1 at the same port."""
    async with Origin(address) as origin, Origin("127.0.0.1", origin.port) as bait:
        yield origin, bait


async def public_name_through_star() -> None:
    async with _origin_and_bait(PUBLIC) as (origin, bait):
        hosts = ScriptedResolver({"api.example.com": [[PUBLIC]]})
        async with running_proxy(["*"], resolver=hosts) as proxy:
            target = f"api.example.com:{origin.port}"
            answer = await exchange(proxy, connect(target), then=TUNNELLED)
            assert answer.endswith(b"origin saw GET /through-the-tunnel HTTP/1.1"), answer
            status, _, body = status_of(await exchange(proxy, get(f"http://{target}/x")))
            assert (status, body) == (200, "origin saw GET /x HTTP/1.1")
            assert f"Host: {target}\r\n" in origin.requests[-1]
        assert len(origin.accepted) == 2 and bait.accepted == []


async def rebinding_connects_only_to_the_checked_address() -> None:
    """The name answers public first (checked, allowed), loopback on any later lookup."""
    async with _origin_and_bait(PUBLIC) as (origin, bait):
        hosts = ScriptedResolver({"rebind.example": [[PUBLIC], ["127.0.0.1"]]})
        async with running_proxy([f"rebind.example:{origin.port}"], resolver=hosts) as proxy:
            target = f"rebind.example:{origin.port}"
            answer = await exchange(proxy, connect(target), then=TUNNELLED)
            assert answer.endswith(b"origin saw GET /through-the-tunnel HTTP/1.1"), answer
            assert bait.accepted == [] and len(origin.accepted) == 1, (
                bait.accepted,
                origin.accepted,
            )
            assert hosts.calls == ["rebind.example"]  # resolved once, connected to what it checked
            status, _, body = status_of(await exchange(proxy, get(f"http://{target}/")))
            assert status == 403 and "private address 127.0.0.1 (loopback)" in body, body
        assert len(origin.accepted) == 1 and bait.accepted == []


async def mixed_answer_skips_the_loopback_address() -> None:
    async with _origin_and_bait(PUBLIC) as (origin, bait):
        hosts = ScriptedResolver({"mixed.example": [["127.0.0.1", "::1", PUBLIC]]})
        async with running_proxy(["*"], resolver=hosts) as proxy:
            answer = await exchange(proxy, get(f"http://mixed.example:{origin.port}/"))
            assert status_of(answer)[0] == 200, answer
        assert len(origin.accepted) == 1 and bait.accepted == []


async def exact_name_reaches_a_private_address() -> None:
    async with _origin_and_bait(PRIVATE) as (origin, bait):
        hosts = ScriptedResolver({"nas.lan": [[PRIVATE]]})
        url = f"http://nas.lan:{origin.port}/share"
        for grants in (["*"], ["*.lan"]):
            async with running_proxy(grants, resolver=hosts) as proxy:
                status, _, body = status_of(await exchange(proxy, get(url)))
                assert status == 403 and f"private address {PRIVATE}" in body, body
        assert origin.accepted == []
        async with running_proxy(["nas.lan", "*"], resolver=hosts) as proxy:
            status, _, body = status_of(await exchange(proxy, get(url)))
            assert (status, body) == (200, "origin saw GET /share HTTP/1.1")
        assert len(origin.accepted) == 1 and bait.accepted == []


SCENARIOS: list[Callable[[], Awaitable[None]]] = [
    public_name_through_star,
    rebinding_connects_only_to_the_checked_address,
    mixed_answer_skips_the_loopback_address,
    exact_name_reaches_a_private_address,
]


async def _main() -> None:
    for scenario in SCENARIOS:
        await scenario()
        print(scenario.__name__.replace("_", "-"), flush=True)


if __name__ == "__main__":
    _configure_loopback()
    asyncio.run(_main())
