"""The local stack's servers hold a burst of connections while none is accepted yet: twenty
requests sent at once overflowed the listen queue of 5 that `socketserver` keeps by default,
and the clients saw their connections reset."""

from __future__ import annotations

import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from devstack.servers import LISTEN_QUEUE, LocalServer

BURST = 40  # more than twice what the tests send at once


def connections_completed(server: ThreadingHTTPServer, count: int) -> int:
    """Open `count` connections to a server that accepts none (not serving yet): how many
    handshakes the kernel completes, each given half a second."""
    opened: list[socket.socket] = []
    try:
        for _ in range(count):
            try:
                opened.append(socket.create_connection(server.server_address[:2], timeout=0.5))
            except OSError:
                break
        return len(opened)
    finally:
        for connection in opened:
            connection.close()


@pytest.mark.parametrize(("server_class", "holds"), [(LocalServer, True), (ThreadingHTTPServer, False)])
def test_a_burst_of_connections_waits_in_the_listen_queue(server_class: type[ThreadingHTTPServer], holds: bool) -> None:
    server = server_class(("127.0.0.1", 0), BaseHTTPRequestHandler)
    try:
        completed = connections_completed(server, BURST)
    finally:
        server.server_close()
    assert (completed == BURST) is holds, completed
    assert LISTEN_QUEUE > BURST
