"""In-process guard installed by the sandbox worker before any plugin code is imported.

Not the wall: bubblewrap (no host network, read-only mounts, no capabilities), the egress proxy
(which enforces network grants after resolving names itself) and the seccomp process filter are.
ctypes, ``_posixsubprocess`` and C extensions walk past an audit hook; what this layer adds is a
clear error for ordinary Python code ("no network permission for X", "no permission to start
programs") instead of a bare "connection refused". Inside the sandbox it lets through exactly
the worker's own route out: the bridge on ``127.0.0.1:<port>`` and the proxy's Unix socket.
With ``OC_PLUGIN_SANDBOX=off`` (admin opt-out) it is the only check left. Audit hooks cannot be
removed once added.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import socket
import sys
import threading
import weakref
from typing import Any

__all__ = ["host_allowed", "install_guard"]

_PROCESS_EVENTS = {
    "subprocess.Popen",
    "os.system",
    "os.exec",
    "os.posix_spawn",
    "os.spawn",
    "os.fork",
    "os.forkpty",
    "pty.spawn",
}


def _grant_parts(grant: str) -> tuple[str, int | None]:
    """``host``, ``host:port``, ``[v6]:port`` -> (host, port or None)."""
    grant = grant.lower().strip()
    if grant.startswith("[") and "]" in grant:
        host, _, rest = grant[1:].partition("]")
        port = rest.lstrip(":")
        return host, int(port) if port.isdigit() else None
    if grant.count(":") == 1:
        host, _, port = grant.partition(":")
        return host, int(port) if port.isdigit() else None
    return grant, None


def _matches(grants: list[str], host: str, port: int | None) -> list[int | None]:
    """The port of every grant naming ``host`` (None: any port); ``*`` is not a name."""
    host = host.lower().strip("[]")
    found: list[int | None] = []
    for grant in grants:
        g_host, g_port = _grant_parts(grant)
        if g_host == "*" or (g_port is not None and port is not None and g_port != port):
            continue
        if fnmatch.fnmatchcase(host, g_host):
            found.append(g_port)
    return found


def host_allowed(grants: list[str], host: str, port: int | None = None) -> bool:
    """Check ``host``/``port`` against grants: ``*``, ``host``, ``host:port``, ``*.dom``."""
    return any(g.strip() == "*" for g in grants) or bool(_matches(grants, host, port))


def _private(ip: str) -> bool:
    """Loopback, private, link-local (cloud metadata) and other non-public addresses."""
    try:
        address = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return True
    return not address.is_global


class _Guard:
    """The audit hook.

    ``*`` grants public hosts only: the server's own machine and network (Ollama, the database,
    cloud metadata) stay out of reach unless a grant names them.
    """

    def __init__(
        self,
        grants: list[str],
        process: bool,
        proxy: tuple[str, int] | None = None,
        egress_socket: str | None = None,
    ) -> None:
        self.grants = grants
        self.proxy = proxy
        self.egress_socket = egress_socket
        self.named = [g for g in grants if g.strip() != "*"]
        self.any_host = len(self.named) < len(grants)
        self.process = process
        self.addresses: set[tuple[str, int | None]] = set()  # (ip, port or None: any)
        self.local = threading.local()
        self.bound: weakref.WeakSet[Any] = weakref.WeakSet()  # this process's own sockets
        for grant in self.named:  # literal IPs are allowed as written
            host, port = _grant_parts(grant)
            try:
                self.addresses.add((str(ipaddress.ip_address(host)), port))
            except ValueError:
                pass

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        if event in _PROCESS_EVENTS and not self.process:
            raise PermissionError("this plugin has no permission to start programs")
        if getattr(self.local, "busy", False):
            return
        if event == "socket.__new__":
            family = args[1]
            if not self.grants and family not in (socket.AF_UNIX, -1):
                raise PermissionError("this plugin has no network permission")
        elif event == "socket.getaddrinfo":
            self._resolve(str(args[0]) if args[0] is not None else "", args[1])
        elif event in ("socket.connect", "socket.sendto", "socket.sendmsg"):
            self._check(args[1])
        elif event == "socket.bind":
            address = args[1]
            if not (isinstance(address, tuple) and len(address) > 1 and address[1] == 0):
                raise PermissionError("plugins may not listen on ports or local sockets")
            self.bound.add(args[0])

    def _resolve(self, host: str, port: Any) -> None:
        number = port if isinstance(port, int) else None
        if self._is_proxy(host, number):
            return
        if not host_allowed(self.grants, host, number):
            raise PermissionError(f"this plugin has no network permission for {host}")
        ports = _matches(self.named, host, number)
        if not ports:
            return  # allowed by '*' alone: each address is checked when connecting
        self.local.busy = True
        try:  # remember what a named grant resolves to, so connecting to it is allowed
            for info in socket.getaddrinfo(host, port):
                self.addresses.update((str(info[4][0]), p) for p in ports)
        except OSError:
            pass
        finally:
            self.local.busy = False

    def _own_ports(self) -> set[int]:
        ports = set()
        for sock in list(self.bound):
            try:
                ports.add(int(sock.getsockname()[1]))
            except (OSError, IndexError, TypeError, ValueError):
                continue
        return ports

    def _is_proxy(self, host: str, port: int | None) -> bool:
        return (
            self.proxy is not None
            and host in ("127.0.0.1", "localhost")
            and (port is None or port == self.proxy[1])
        )

    def _check(self, address: Any) -> None:
        if self.egress_socket is not None and address == self.egress_socket:
            return  # the bridge's own connection to the egress proxy
        if isinstance(address, tuple) and address:
            ip, port = str(address[0]), address[1] if len(address) > 1 else None
            if self.proxy is not None and (ip, port) == self.proxy:
                return
            allowed = {(ip, None), (ip, port)} & self.addresses or (
                self.any_host and not _private(ip)
            )
            if allowed and self.proxy is not None:
                raise PermissionError(
                    f"this plugin reaches {ip}:{port} only through its egress proxy"
                    " (HTTP_PROXY/HTTPS_PROXY are set); the sandbox has no direct network"
                )
            if allowed:
                return
            if port in self._own_ports() and ipaddress.ip_address(ip).is_loopback:
                return  # a library talking to itself (e.g. paho's socketpair emulation)
            if self.any_host:
                raise PermissionError(
                    f"this plugin may not connect to the private address {ip}"
                    " (grant it by name to allow it)"
                )
            raise PermissionError(f"this plugin has no network permission for {ip}:{port}")
        if address is None:
            return
        raise PermissionError("this plugin may not connect to local sockets")


def install_guard(
    grants: list[str],
    process: bool,
    *,
    proxy: tuple[str, int] | None = None,
    egress_socket: str | None = None,
) -> None:
    """Add the audit hook (for the rest of this process's life).

    ``proxy`` is the bridge's loopback address and ``egress_socket`` the proxy's Unix socket:
    the only way out of a sandbox with network grants.
    """
    sys.addaudithook(_Guard(list(grants), process, proxy, egress_socket))
