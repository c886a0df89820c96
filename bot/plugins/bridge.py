"""Inside the sandbox: a loopback TCP port that leads to the egress proxy's Unix socket.

The sandbox has its own network namespace with nothing but loopback; the egress proxy outside
is reachable only through its Unix socket bound in. HTTP clients want a ``host:port`` proxy, so
:func:`start_bridge` listens on ``127.0.0.1`` (an ephemeral port) and relays each connection
byte for byte to a fresh connection on that socket. It understands nothing of HTTP: every check
is the proxy's. One daemon thread serves every connection (a selector, no thread per
connection: threads count against the sandbox's process limit). Standard library only.
"""

from __future__ import annotations

import selectors
import socket
import threading

__all__ = ["start_bridge"]

_CHUNK = 65536
_MAX_BUFFER = 4 * _CHUNK  # stop reading a side while its peer has this much unsent


class _Side:
    """One socket of a relayed pair, with the bytes waiting to be written to it."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.pending = bytearray()
        self.peer: _Side = self
        self.eof = False  # its peer will send nothing more
        self.shut = False  # we shut down writing to it
        self.events = 0  # what the selector watches it for


class _Bridge:
    def __init__(self, listener: socket.socket, target: str) -> None:
        self.listener = listener
        self.target = target
        self.selector = selectors.DefaultSelector()
        self.selector.register(listener, selectors.EVENT_READ, None)

    def serve(self) -> None:
        while True:
            for key, events in self.selector.select():
                if key.data is None:
                    self._accept()
                else:
                    self._service(key.data, events)

    def _accept(self) -> None:
        try:
            client, _ = self.listener.accept()
        except OSError:
            return
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            upstream.settimeout(10)  # a local socket: immediate unless its backlog is full
            upstream.connect(self.target)
        except OSError:
            client.close()
            upstream.close()
            return
        a, b = _Side(client), _Side(upstream)
        a.peer, b.peer = b, a
        for side in (a, b):
            side.sock.setblocking(False)
            self._watch(side)

    def _service(self, side: _Side, events: int) -> None:
        try:
            if events & selectors.EVENT_READ:
                data = side.sock.recv(_CHUNK)
                if data:
                    side.peer.pending += data
                else:
                    side.peer.eof = True
            if events & selectors.EVENT_WRITE and side.pending:
                del side.pending[: side.sock.send(side.pending)]
            for each in (side, side.peer):
                if each.eof and not each.pending and not each.shut:
                    each.shut = True
                    each.sock.shutdown(socket.SHUT_WR)
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            self._close(side)
            return
        if side.shut and side.peer.shut:
            self._close(side)
            return
        self._watch(side)
        self._watch(side.peer)

    def _watch(self, side: _Side) -> None:
        """Watch a socket for what it can do now: read while its peer has room, write if owed."""
        events = 0
        if not side.peer.eof and len(side.peer.pending) < _MAX_BUFFER:
            events |= selectors.EVENT_READ
        if side.pending:
            events |= selectors.EVENT_WRITE
        if events == side.events:
            return
        if not side.events:
            self.selector.register(side.sock, events, side)
        elif events:
            self.selector.modify(side.sock, events, side)
        else:
            self.selector.unregister(side.sock)
        side.events = events

    def _close(self, side: _Side) -> None:
        for each in (side, side.peer):
            if each.events:
                self.selector.unregister(each.sock)
                each.events = 0
            each.sock.close()


def start_bridge(unix_socket_path: str) -> int:
    """Relay ``127.0.0.1:<port>`` to the proxy at ``unix_socket_path``; return the port.

    The relay runs in a daemon thread for the rest of the process's life.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    listener.setblocking(False)
    bridge = _Bridge(listener, unix_socket_path)
    threading.Thread(target=bridge.serve, name="egress-bridge", daemon=True).start()
    return int(listener.getsockname()[1])
