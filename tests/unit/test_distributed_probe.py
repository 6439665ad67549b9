"""Joining a Ray cluster: an address where no GCS answers fails in about ``connect_timeout_s``.

Found behind this machine's network: connections to any address are accepted and answered with
HTTP/2 404, so a TCP probe passed and Ray's own client then retried for about 30 s. The probe now
also makes one gRPC call the GCS answers. These servers stand in for such a network.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from d2rl.distributed.session import _probe
from d2rl.errors import D2RLError


def _serve(reply: bytes | None) -> Iterator[str]:
    """A local TCP server that accepts connections and sends ``reply`` (None: says nothing)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(0.2)
    stop = threading.Event()
    held: list[socket.socket] = []

    def loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            held.append(conn)
            if reply is not None:
                conn.sendall(reply)
                conn.close()

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    try:
        yield f"127.0.0.1:{srv.getsockname()[1]}"
    finally:
        stop.set()
        t.join()
        for c in held:
            c.close()
        srv.close()


@pytest.fixture
def http_server() -> Iterator[str]:
    yield from _serve(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")


@pytest.fixture
def silent_server() -> Iterator[str]:
    yield from _serve(None)


def test_port_open_but_no_gcs_fails_fast(http_server: str) -> None:
    t0 = time.monotonic()
    with pytest.raises(D2RLError, match="cannot join the Ray cluster at distributed.address=127.0.0.1:[0-9]+: the port is open"):
        _probe(http_server, timeout_s=2.0)
    assert time.monotonic() - t0 < 3.0


def test_silent_port_fails_after_the_timeout(silent_server: str) -> None:
    t0 = time.monotonic()
    with pytest.raises(D2RLError, match="DEADLINE_EXCEEDED|UNAVAILABLE"):
        _probe(silent_server, timeout_s=1.0)
    assert time.monotonic() - t0 < 2.5


def test_closed_port_fails_at_the_tcp_step() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens there
    with pytest.raises(D2RLError, match="cannot reach the Ray cluster"):
        _probe(f"127.0.0.1:{port}", timeout_s=1.0)


@pytest.mark.parametrize("address", ["auto", "ray://head:10001", "localhost"])
def test_addresses_ray_resolves_itself_are_not_probed(address: str) -> None:
    _probe(address, timeout_s=0.1)  # no connection attempted, no error
