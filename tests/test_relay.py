"""The jail's relay over real sockets: TCP client -> serve_inside -> Unix socket -> Outside -> TCP
server. In a real jail serve_inside runs in another network namespace; here it shares the test's,
on a port the test picks."""

from __future__ import annotations

import hashlib
import http.client
import http.server
import os
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from workers.relay import Endpoint, Outside, serve_inside

MB = 1 << 20
WORKERS = Path(__file__).resolve().parents[1] / "workers"


@pytest.fixture
def folder() -> Iterator[Path]:
    # a Unix socket path must stay under 108 bytes, which a pytest tmp_path may pass
    with tempfile.TemporaryDirectory(prefix="relay-") as name:
        yield Path(name)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tcp_server(handle: Callable[[socket.socket], None]) -> Endpoint:
    """A real TCP server on 127.0.0.1, a thread per connection, for the rest of the session."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=64)

    def serve() -> None:
        while True:
            conn, _ = listener.accept()
            threading.Thread(target=lambda c=conn: _closing(handle, c), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return Endpoint("127.0.0.1", listener.getsockname()[1])


def _closing(handle: Callable[[socket.socket], None], conn: socket.socket) -> None:
    with conn:
        handle(conn)


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


def reply_reversed(conn: socket.socket) -> None:
    """Reads the whole request (to the client's half-close), then answers it reversed."""
    conn.sendall(read_all(conn)[::-1])


def relayed(endpoint: Endpoint, folder: Path, **kwargs: float) -> tuple[Outside, int]:
    """An Outside for `endpoint` and a serve_inside routing a fresh port to it: (outside, port)."""
    outside = Outside([endpoint], folder, **kwargs)
    paths = outside.start()
    port, ready = free_port(), threading.Event()
    threading.Thread(target=serve_inside, args=({port: str(paths[endpoint])}, ready.set), daemon=True).start()
    assert ready.wait(5)
    return outside, port


def exchange(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        return read_all(sock)


def test_a_megabyte_each_way_arrives_intact_through_the_half_close(folder: Path) -> None:
    outside, port = relayed(tcp_server(reply_reversed), folder)
    try:
        payload = os.urandom(MB)
        assert hashlib.sha256(exchange(port, payload)).digest() == hashlib.sha256(payload[::-1]).digest()
    finally:
        outside.close()


def test_the_inside_listens_on_ipv6_loopback_too(folder: Path) -> None:
    try:
        socket.create_server(("::1", 0), family=socket.AF_INET6).close()
    except OSError:
        pytest.skip("no IPv6 loopback here")
    outside, port = relayed(tcp_server(reply_reversed), folder)
    try:
        with socket.create_connection(("::1", port), timeout=5) as sock:
            sock.sendall(b"hello")
            sock.shutdown(socket.SHUT_WR)
            assert read_all(sock) == b"olleh"
    finally:
        outside.close()


class Upper(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.upper())

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep the test output quiet


def test_an_http_request_and_reply_of_a_megabyte(folder: Path) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Upper)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    outside, port = relayed(Endpoint("127.0.0.1", server.server_address[1]), folder)
    try:
        body = b"abc" * (MB // 3)
        client = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        client.request("POST", "/", body=body)
        reply = client.getresponse()
        assert reply.status == 200 and reply.read() == body.upper()
        client.close()
    finally:
        outside.close()
        server.shutdown()
        server.server_close()


def test_twenty_connections_at_once(folder: Path) -> None:
    # the server answers none until all twenty are open at the same time
    everyone = threading.Barrier(20, timeout=4)

    def wait_then_reply(conn: socket.socket) -> None:
        request = read_all(conn)
        everyone.wait()
        conn.sendall(request[::-1])

    outside, port = relayed(tcp_server(wait_then_reply), folder)
    try:
        payloads = [os.urandom(50_000) + bytes([i]) for i in range(20)]
        with ThreadPoolExecutor(20) as pool:
            replies = list(pool.map(lambda p: exchange(port, p), payloads))
        assert replies == [p[::-1] for p in payloads]
    finally:
        outside.close()


def test_nothing_listening_upstream_ends_the_client_at_once(folder: Path) -> None:
    outside, port = relayed(Endpoint("127.0.0.1", free_port()), folder)
    try:
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
            try:
                sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
                assert sock.recv(100) == b""
            except ConnectionError:
                pass  # a reset tells the client just as well
        assert time.monotonic() - started < 2
    finally:
        outside.close()


def test_close_ends_open_connections(folder: Path) -> None:
    held = threading.Event()

    def hold(conn: socket.socket) -> None:
        held.wait(5)

    outside, port = relayed(tcp_server(hold), folder)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
            sock.sendall(b"hello")
            time.sleep(0.2)  # the connection reaches the server, which holds it open
            outside.close()
            try:
                assert sock.recv(100) == b""
            except ConnectionError:
                pass
    finally:
        held.set()


def test_close_removes_the_socket_files_and_is_idempotent(folder: Path) -> None:
    endpoints = [Endpoint("127.0.0.1", 1), Endpoint("example.org", 443)]
    outside = Outside(endpoints, folder / "sub")
    paths = outside.start()
    assert paths == {endpoints[0]: folder / "sub" / "ep0.sock", endpoints[1]: folder / "sub" / "ep1.sock"}
    assert all(stat.S_ISSOCK(p.stat().st_mode) for p in paths.values())
    outside.close()
    assert not any(p.exists() for p in paths.values())
    outside.close()
    with socket.socket(socket.AF_UNIX) as sock, pytest.raises(OSError):
        sock.connect(str(paths[endpoints[0]]))


@pytest.mark.parametrize(("text", "host", "port"), [
    ("api.anthropic.com:443", "api.anthropic.com", 443), ("127.0.0.1:8000", "127.0.0.1", 8000),
    ("[::1]:443", "::1", 443), ("localhost:1", "localhost", 1), (" my_host-2:65535 ", "my_host-2", 65535),
])
def test_endpoint_parses(text: str, host: str, port: int) -> None:
    endpoint = Endpoint.parse(text)
    assert endpoint == Endpoint(host, port)
    assert Endpoint.parse(str(endpoint)) == endpoint


@pytest.mark.parametrize("text", [
    "", "host", "host:", ":443", "host:0", "host:65536", "host:https", "host:+443", "::1:443", "[nothost]:443",
    "[::1]", "a b:80", "http://host:80", "-host:80", "host:४४३",
])
def test_a_bad_endpoint_is_refused_with_its_text_named(text: str) -> None:
    with pytest.raises(ValueError, match="host:port") as refused:
        Endpoint.parse(text)
    assert repr(text) in str(refused.value) and "\n" not in str(refused.value)


def test_relay_loads_alone_with_the_standard_library_only() -> None:
    # the jail's script imports it as a plain module, next to nothing of the swarm's
    code = ("import sys; sys.path.insert(0, sys.argv[1]); before = set(sys.modules); import relay\n"
            "extra = {m.split('.')[0] for m in set(sys.modules) - before} - set(sys.stdlib_module_names)\n"
            "assert extra == {'relay'}, extra\n")
    result = subprocess.run([sys.executable, "-I", "-S", "-c", code, str(WORKERS)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
