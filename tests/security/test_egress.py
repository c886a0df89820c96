"""The egress proxy and the sandbox's bridge to it, attacked with real sockets on loopback.

A plugin in the sandbox reaches the network only through this proxy, so every test talks to it
the way a hostile plugin would: raw requests on its Unix socket, odd address spellings, names
that resolve to the server's own machine, a DNS answer that changes, oversized and trickled
headers. A local listener proves the effect: when the proxy refuses, nothing was accepted.
Tests that need a *public* address to be reachable run in a private network namespace
(:mod:`tests.security.egress_netns`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from pathlib import Path

import aiohttp
import pytest

from opencomputer.bot.plugins.api import PermissionDenied, PluginHttp
from opencomputer.bot.plugins.bridge import start_bridge
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
from tests.security.sandbox_kit import _python_reachable

ROOT = Path(__file__).resolve().parents[2]
NETNS = ["unshare", "--user", "--map-root-user", "--net"]


async def test_a_literal_grant_reaches_a_local_server_by_connect_and_by_absolute_http():
    async with Origin() as origin, running_proxy([f"127.0.0.1:{origin.port}"]) as proxy:
        answer = await exchange(proxy, connect(f"127.0.0.1:{origin.port}"), then=TUNNELLED)
        assert answer.startswith(b"HTTP/1.1 200 Connection established\r\n\r\nHTTP/1.1 200 OK")
        assert answer.endswith(b"origin saw GET /through-the-tunnel HTTP/1.1")

        url = f"http://127.0.0.1:{origin.port}/page?q=1#fragment"
        status, headers, body = status_of(await exchange(proxy, get(url)))
        assert (status, body) == (200, "origin saw GET /page?q=1 HTTP/1.1")
        assert headers["connection"] == "close"
        forwarded = origin.requests[-1].lower()
        assert f"host: 127.0.0.1:{origin.port}\r\n" in forwarded  # not the client's Host
        assert "ignored.example" not in forwarded and "proxy-connection" not in forwarded
        old = get(f"http://127.0.0.1:{origin.port}/v10").replace(b"HTTP/1.1", b"HTTP/1.0")
        assert status_of(await exchange(proxy, old))[0] == 200
        assert origin.requests[-1].startswith("GET /v10 HTTP/1.0\r\n")  # its version, kept
        assert len(origin.accepted) == 3


@pytest.fixture
async def bait():
    """Listeners on the server's loopback, IPv4 and (where there is one) IPv6, on one port."""
    async with Origin("127.0.0.1") as v4:
        try:
            v6 = Origin("::1", v4.port)
            await v6.__aenter__()
        except OSError:
            v6 = None
        yield v4, v6
        if v6 is not None:
            await v6.__aexit__()


LOOPBACK_SPELLINGS = [
    "127.0.0.1",
    "127.0.0.2",
    "localhost",
    "localhost.",
    "2130706433",  # 127.0.0.1 in decimal
    "0x7f000001",  # ... in hex
    "0177.0.0.1",  # ... in octal
    "127.1",
    "0.0.0.0",
    "[::1]",
    "[::ffff:127.0.0.1]",  # IPv4-mapped IPv6
    "[::ffff:7f00:1]",
    "[::127.0.0.1]",  # IPv4-compatible IPv6
    "[::]",
]
OTHER_PRIVATE = [
    "10.0.0.1",
    "192.168.1.1",
    "172.16.0.1",
    "100.64.0.1",  # CGNAT
    "169.254.169.254",  # cloud metadata
    "[fd00:ec2::254]",
    "[fe80::1]",
    "224.0.0.1",
    "[64:ff9b::a9fe:a9fe]",  # NAT64 of the metadata address
]


@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS + OTHER_PRIVATE)
async def test_star_grants_public_hosts_only(bait, host, caplog):
    v4, v6 = bait
    caplog.set_level(logging.INFO, logger="opencomputer.bot.plugins.egress")
    async with running_proxy(["*"]) as proxy:
        target = f"{host}:{v4.port}"
        for request in (connect(target), get(f"http://{target}/admin")):
            status, headers, body = status_of(await exchange(proxy, request))
            assert status == 403, body
            assert body.count("\n") == 1 and "address" in body, body
            assert "opencomputer-egress" in headers["proxy-status"]
    assert v4.accepted == [] and (v6 is None or v6.accepted == [])
    refusals = [r for r in caplog.records if r.name == "opencomputer.bot.plugins.egress"]
    assert len(refusals) == 2 and all(r.levelno == logging.INFO for r in refusals)


async def test_a_name_resolving_to_loopback_is_refused_unless_the_literal_address_is_granted(bait):
    v4, _ = bait
    hosts = ScriptedResolver({"db.internal": [["127.0.0.1"]], "nas.lan": [["::ffff:127.0.0.1"]]})
    for grants in (["db.internal"], [f"db.internal:{v4.port}"], ["*"], ["*.internal"]):
        async with running_proxy(grants, resolver=hosts) as proxy:
            status, _, body = status_of(await exchange(proxy, connect(f"db.internal:{v4.port}")))
            assert status == 403 and "only by a grant of that literal address" in body, grants
    async with running_proxy(["nas.lan"], resolver=hosts) as proxy:
        status, _, body = status_of(await exchange(proxy, connect(f"nas.lan:{v4.port}")))
        assert status == 403 and "private address 127.0.0.1 (loopback)" in body
    async with running_proxy([f"localhost:{v4.port}"]) as proxy:  # the system resolver
        status, _, body = status_of(await exchange(proxy, get(f"http://localhost:{v4.port}/")))
        assert status == 403 and "loopback" in body
    assert v4.accepted == []
    async with running_proxy(["127.0.0.1", "*"], resolver=hosts) as proxy:
        status, _, _ = status_of(await exchange(proxy, get(f"http://127.0.0.1:{v4.port}/")))
        assert status == 200 and len(v4.accepted) == 1


async def test_private_addresses_need_the_exact_name_not_a_pattern():
    hosts = ScriptedResolver({"printer.lan": [["10.20.30.40"]]})
    for grants in (["*"], ["*.lan"], ["printer.*"]):
        async with running_proxy(grants, resolver=hosts) as proxy:
            status, _, body = status_of(await exchange(proxy, connect("printer.lan:631")))
            assert status == 403 and "private address 10.20.30.40, reached" in body, grants


async def test_ports_and_hosts_outside_the_grants_are_refused(bait):
    v4, _ = bait
    async with Origin() as granted, running_proxy([f"127.0.0.1:{granted.port}"]) as proxy:
        for request in (connect(f"127.0.0.1:{v4.port}"), get(f"http://127.0.0.1:{v4.port}/")):
            status, headers, body = status_of(await exchange(proxy, request))
            assert status == 403 and f"port {v4.port} is not granted" in body
            assert "error=http_request_denied" in headers["proxy-status"]
        status, _, body = status_of(await exchange(proxy, connect(f"example.com:{v4.port}")))
        assert status == 403 and "no network grant covers example.com" in body
        assert granted.accepted == []
    assert v4.accepted == []


async def test_malformed_grants_grant_nothing_and_bracketed_ipv6_grants_work(bait, caplog):
    """``127.0.0.1:abc`` must not widen to every port of 127.0.0.1 (it grants nothing)."""
    v4, v6 = bait
    grants = ["127.0.0.1:abc", "127.0.0.1:0", "127.0.0.1:99999", "bad host!", "[::1]:x"]
    async with running_proxy(grants) as proxy:
        for target in (f"127.0.0.1:{v4.port}", f"[::1]:{v4.port}"):
            status, _, body = status_of(await exchange(proxy, connect(target)))
            assert status == 403 and "no network grant covers" in body
    assert v4.accepted == [] and (v6 is None or v6.accepted == [])
    assert sum("malformed network grant" in r.getMessage() for r in caplog.records) == 5
    if v6 is not None:
        async with running_proxy([f"[::1]:{v6.port}"]) as proxy:
            status, _, _ = status_of(await exchange(proxy, get(f"http://[::1]:{v6.port}/")))
            assert status == 200 and len(v6.accepted) == 1 and v4.accepted == []


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"CONNECT 127.0.0.1 HTTP/1.1\r\n\r\n",  # no port
        b"CONNECT 127.0.0.1:99999 HTTP/1.1\r\n\r\n",
        b"CONNECT user@127.0.0.1:80 HTTP/1.1\r\n\r\n",
        b"CONNECT [fe80::1%25lo]:80 HTTP/1.1\r\n\r\n",
        b"CONNECT evil.example\x00.com:80 HTTP/1.1\r\n\r\n",
        b"GET https://127.0.0.1/ HTTP/1.1\r\n\r\n",  # absolute https: CONNECT is the way
        b"GET /relative HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        b"GET http://a@127.0.0.1/ HTTP/1.1\r\n\r\n",
        b"GET http://127.0.0.1/ HTTP/1.1\r\n folded: header\r\n\r\n",
        b"GET  http://127.0.0.1/ HTTP/1.1\r\n\r\n",
        b"\xff\xfe HTTP/1.1\r\n\r\n",
        b"GET http://127.0.0.1/ HTTP/2.0\r\n\r\n",
    ],
)
async def test_malformed_requests_get_400(bait, request_bytes):
    v4, _ = bait
    async with running_proxy(["*", "127.0.0.1"]) as proxy:
        status, _, body = status_of(await exchange(proxy, request_bytes))
        assert status == 400 and body.count("\n") == 1
    assert v4.accepted == []


async def test_oversized_headers_get_400(bait):
    v4, _ = bait
    async with running_proxy([f"127.0.0.1:{v4.port}"], max_header_bytes=4096) as proxy:
        huge = connect(f"127.0.0.1:{v4.port}")[:-2] + b"X-Pad: " + b"a" * 8000 + b"\r\n\r\n"
        status, _, body = status_of(await exchange(proxy, huge))
        assert (status, body) == (400, "request headers too large\n")
    assert v4.accepted == []


async def test_trickled_headers_are_cut_at_the_deadline(bait):
    """Slowloris: a byte at a time, never finishing; a per-read timeout would never fire."""
    v4, _ = bait
    async with running_proxy([f"127.0.0.1:{v4.port}"], header_timeout=0.5) as proxy:
        reader, writer = await asyncio.open_unix_connection(str(proxy.socket_path))
        writer.write(f"CONNECT 127.0.0.1:{v4.port} HTTP/1.1\r\n".encode())

        async def trickle() -> None:
            while True:
                writer.write(b"X")
                await writer.drain()
                await asyncio.sleep(0.05)  # the attack's pace, not a wait for the proxy

        loop = asyncio.get_running_loop()
        started = loop.time()
        attacker = asyncio.ensure_future(trickle())
        try:
            async with asyncio.timeout(10):
                answer = await reader.read()
        finally:
            attacker.cancel()
            await asyncio.gather(attacker, return_exceptions=True)
            writer.close()
        assert 0.4 < loop.time() - started < 5
        assert status_of(answer)[0] == 408
    assert v4.accepted == []


async def test_idle_tunnels_are_closed():
    async with (
        Origin(silent=True) as origin,
        running_proxy([f"127.0.0.1:{origin.port}"], idle_timeout=0.5) as proxy,
    ):
        reader, writer = await asyncio.open_unix_connection(str(proxy.socket_path))
        writer.write(connect(f"127.0.0.1:{origin.port}"))
        async with asyncio.timeout(10):
            assert (
                await reader.readuntil(b"\r\n\r\n")
                == b"HTTP/1.1 200 Connection established\r\n\r\n"
            )
            assert await reader.read() == b""  # the proxy hung up on the idle client...
            await origin.closed.wait()  # ...and on the server
        writer.close()


async def test_connections_are_capped_and_stop_cuts_them(bait):
    v4, _ = bait
    async with running_proxy(["*"], max_connections=2) as proxy:
        held = [await asyncio.open_unix_connection(str(proxy.socket_path)) for _ in range(2)]
        for _, writer in held:
            writer.write(b"CONNECT ")  # never finished
            await writer.drain()
        status, _, body = status_of(await exchange(proxy, connect(f"127.0.0.1:{v4.port}")))
        assert status == 503 and "too many connections" in body
        mode = proxy.socket_path.stat().st_mode
        assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
        await proxy.stop()
        assert not proxy.socket_path.exists()
        async with asyncio.timeout(10):
            for reader, writer in held:
                assert await reader.read() == b""
                writer.close()
    assert v4.accepted == []


def test_the_public_address_scenarios_in_a_private_network_namespace():
    """Rebinding, mixed DNS answers, public and exact-name private hosts (see egress_netns)."""
    probe = subprocess.run([*NETNS, "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip("user and network namespaces are not available here (unshare failed)")
    done = subprocess.run(
        [*NETNS, sys.executable, "-X", "dev", "-W", "error", "-m", "tests.security.egress_netns"],
        cwd=ROOT,
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.split() == [
        "public-name-through-star",
        "rebinding-connects-only-to-the-checked-address",
        "mixed-answer-skips-the-loopback-address",
        "exact-name-reaches-a-private-address",
    ]


@pytest.mark.parametrize("server", ["this user", "uid 65534"])
def test_only_the_sandbox_reaches_the_private_socket(server):
    """The socket is 0600 in a 0700 folder, yet bubblewrap's uid 65534 connects (see module)."""
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed (scripts/system-deps.sh installs it)")
    prefix: list[str] = []
    if server == "uid 65534":
        if os.getuid() != 0:
            pytest.skip("becoming uid 65534 needs root")
        drop = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        prefix = [*_python_reachable(), *drop]
    done = subprocess.run(
        [
            *prefix,
            sys.executable,
            "-X",
            "dev",
            "-W",
            "error",
            "-m",
            "tests.security.egress_sandboxed",
        ],
        cwd=ROOT,
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), "HOME": "/tmp"},
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    expected = ["sandbox-reaches-the-socket"]
    if os.getuid() == 0 and not prefix:
        expected.append("other-users-cannot-connect")
    assert done.stdout.split() == expected


@pytest.fixture
async def bridged():
    """An origin, a proxy granting it, and the sandbox's bridge to the proxy (this process)."""
    async with Origin() as origin, running_proxy([f"127.0.0.1:{origin.port}"]) as proxy:
        port = start_bridge(str(proxy.socket_path))
        yield origin, f"http://127.0.0.1:{port}"


async def test_the_bridge_carries_urllib_and_aiohttp_through_the_proxy(bridged, bait):
    origin, bridge = bridged
    v4, _ = bait
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": bridge}))

    def fetch(url: str) -> tuple[int, str]:
        try:
            with opener.open(url, timeout=10) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, exc.read().decode()

    url = f"http://127.0.0.1:{origin.port}/via-urllib"
    assert await asyncio.to_thread(fetch, url) == (200, "origin saw GET /via-urllib HTTP/1.1")
    status, body = await asyncio.to_thread(fetch, f"http://127.0.0.1:{v4.port}/")
    assert status == 403 and f"port {v4.port} is not granted" in body

    async with aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{origin.port}/via-aiohttp"
        async with session.get(url, proxy=bridge) as resp:
            assert await resp.text() == "origin saw GET /via-aiohttp HTTP/1.1"
        async with session.get(f"http://localhost:{origin.port}/", proxy=bridge) as resp:
            assert resp.status == 403

    host, port = bridge.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(connect(f"127.0.0.1:{origin.port}") + TUNNELLED)  # pipelined, as TLS would
    async with asyncio.timeout(10):
        answer = await reader.read()
    writer.close()
    assert answer.endswith(b"origin saw GET /through-the-tunnel HTTP/1.1")
    assert len(origin.accepted) == 3 and v4.accepted == []


async def test_plugin_http_uses_the_proxy_from_the_environment(bridged, bait, monkeypatch):
    origin, bridge = bridged
    v4, _ = bait
    monkeypatch.setenv("HTTP_PROXY", bridge)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    http = PluginHttp(["127.0.0.1", "*"])  # its own check is friendly, not the wall
    try:
        answer = await http.get(f"http://127.0.0.1:{origin.port}/ctx-http")
        assert answer.text == "origin saw GET /ctx-http HTTP/1.1"
        with pytest.raises(PermissionDenied, match=f"egress proxy refused: port {v4.port}"):
            await http.get(f"http://127.0.0.1:{v4.port}/")
        with pytest.raises(PermissionDenied, match=r"no network permission for 10\.0\.0\.1"):
            await PluginHttp(["example.com"]).get("http://10.0.0.1/")
    finally:
        await http.aclose()
    assert v4.accepted == [] and len(origin.accepted) == 1


def test_the_bridge_relays_many_connections_and_half_closes_on_one_thread():
    """Threads count against the sandbox's process limit: many connections, one relay thread."""
    folder = Path(tempfile.mkdtemp(prefix="oc-bridge-test-"))
    with socket.socket(socket.AF_UNIX) as server:
        path = folder / "proxy.sock"
        server.bind(str(path))
        server.listen(64)
        server.settimeout(10)
        try:
            before = threading.active_count()
            port = start_bridge(str(path))
            clients = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(20)]
            accepted = [server.accept()[0] for _ in clients]
            for n, (client, peer) in enumerate(zip(clients, accepted, strict=True)):
                client.sendall(b"ping %d" % n)
                assert peer.recv(100) == b"ping %d" % n
                peer.sendall(b"pong")
                assert client.recv(100) == b"pong"
                client.shutdown(socket.SHUT_WR)  # half-close travels through
                assert peer.recv(100) == b""
                peer.close()
                assert client.recv(100) == b""
                client.close()
            assert threading.active_count() == before + 1
        finally:
            shutil.rmtree(folder, ignore_errors=True)
