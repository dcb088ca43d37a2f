"""The only way out of a trial's jail, whose network namespace has nothing but loopback.

A Unix socket file is reached through the file system, which crosses network namespaces: inside,
`serve_inside` takes TCP on 127.0.0.1:<port> to a socket file; outside, `Outside` takes that
file's connections by TCP to the one endpoint it stands for. Nothing else can be reached.
Standard library only: the jail loads this file as a plain module (`import relay`).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import socket
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

__all__ = ["Endpoint", "Outside", "serve_inside"]

_CHUNK = 1 << 16
_BACKLOG = 128
_HOSTNAME = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9._-]*[A-Za-z0-9_])?")


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Endpoint:
        """`host:port`, an IPv6 address in brackets (`[::1]:443`)."""
        host, sep, port = text.strip().rpartition(":")
        ok = _HOSTNAME.fullmatch(host) is not None  # an IPv6 address without brackets fails here
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
            with contextlib.suppress(ValueError):
                ok = ipaddress.IPv6Address(host).version == 6
        if not (sep and ok and port.isascii() and port.isdigit() and 0 < int(port) < 65536):
            raise ValueError(f"endpoint {text!r} is not host:port with a port 1-65535, as in api.anthropic.com:443, "
                             "127.0.0.1:8000 or [::1]:443 (an IPv6 address in brackets)")
        return cls(host, int(port))

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


class _Open:
    """The connections of one side, so that closing it ends them all (weak: ended ones leave)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._socks: weakref.WeakSet[socket.socket] = weakref.WeakSet()
        self.closed = False

    def add(self, sock: socket.socket) -> bool:
        with self._lock:
            if not self.closed:
                self._socks.add(sock)
            return not self.closed

    def close_all(self) -> None:
        with self._lock:
            self.closed = True
            socks = list(self._socks)
        for sock in socks:
            # shutdown, not close: it wakes the relay threads blocked in recv, which then close
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def _copy(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(_CHUNK):
            dst.sendall(data)
        # half-close: the peer sees the end of the request and can still send its reply
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        # a reset or broken side: nothing more can pass either way, so end the other direction too
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def _handle(client: socket.socket, dial: Callable[[], socket.socket], open_: _Open) -> None:
    with client:
        try:
            if open_.add(client):
                with dial() as upstream:
                    if open_.add(upstream):
                        back = threading.Thread(target=_copy, args=(upstream, client), daemon=True)
                        back.start()
                        _copy(client, upstream)
                        back.join()
        except OSError:
            pass  # a refused or failed dial: closing the client at once tells it so


def _accept(listener: socket.socket, dial: Callable[[], socket.socket], open_: _Open) -> None:
    while True:
        try:
            client, _ = listener.accept()
        except OSError:
            if open_.closed:
                return
            time.sleep(0.05)  # out of file descriptors, say: wait for some to be freed
            continue
        if client.family != socket.AF_UNIX:
            # small writes (a TLS handshake) would otherwise wait on delayed acknowledgements
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=_handle, args=(client, dial, open_), daemon=True).start()


def _dial_tcp(endpoint: Endpoint, timeout_s: float) -> socket.socket:
    sock = socket.create_connection((endpoint.host, endpoint.port), timeout=timeout_s)
    sock.settimeout(None)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _dial_unix(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        raise
    return sock


class Outside:
    """Runs in the worker (outside the jail): one Unix socket per endpoint in `folder`, each
    connection relayed by TCP to its endpoint."""

    def __init__(self, endpoints: list[Endpoint], folder: Path, connect_timeout_s: float = 10.0) -> None:
        self._endpoints = list(dict.fromkeys(endpoints))
        self._folder = Path(folder)
        self._timeout_s = connect_timeout_s
        self._open = _Open()
        self._listeners: list[socket.socket] = []
        self._paths: list[Path] = []

    def start(self) -> dict[Endpoint, Path]:
        """The socket path of each endpoint; all listen when this returns."""
        self._folder.mkdir(parents=True, exist_ok=True)
        try:
            for i in range(len(self._endpoints)):
                path = self._folder / f"ep{i}.sock"
                path.unlink(missing_ok=True)  # left by an earlier run, it would fail the bind
                listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self._listeners.append(listener)
                listener.bind(str(path))
                self._paths.append(path)
                os.chmod(path, 0o600)  # the jail maps root to our user; nobody else may connect
                listener.listen(_BACKLOG)
        except BaseException:
            self.close()
            raise
        for listener, endpoint in zip(self._listeners, self._endpoints, strict=True):
            dial = partial(_dial_tcp, endpoint, self._timeout_s)
            threading.Thread(target=_accept, args=(listener, dial, self._open), daemon=True).start()
        return dict(zip(self._endpoints, self._paths, strict=True))

    def close(self) -> None:
        """Stops listening, ends every open connection, removes the socket files. Idempotent."""
        self._open.close_all()
        for listener in self._listeners:
            # shutdown wakes the thread blocked in accept (close alone would not, on Linux)
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        for path in self._paths:
            path.unlink(missing_ok=True)
        self._listeners, self._paths = [], []


def serve_inside(routes: dict[int, str], ready: Callable[[], None] | None = None) -> None:
    """Runs inside the jail, until the process is killed: listens on 127.0.0.1:<port> (and ::1
    where the namespace has it) for each port in `routes`, relaying each connection to the Unix
    socket `routes[port]`. Calls `ready()` once every listener is bound."""
    open_ = _Open()
    listeners: list[tuple[socket.socket, str]] = []
    for port, path in routes.items():
        listeners.append((socket.create_server(("127.0.0.1", port), backlog=_BACKLOG), path))
        try:
            listeners.append((socket.create_server(("::1", port), family=socket.AF_INET6, backlog=_BACKLOG), path))
        except OSError:
            pass  # no IPv6 loopback here: clients that try ::1 fall back to 127.0.0.1
    for listener, path in listeners:
        threading.Thread(target=_accept, args=(listener, partial(_dial_unix, path), open_), daemon=True).start()
    if ready is not None:
        ready()
    threading.Event().wait()
