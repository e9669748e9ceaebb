"""The local stack's HTTP servers (the gateway, the receivers): threads, and a listen queue
deep enough for the bursts the service makes and the tests send.

`socketserver`'s listen queue holds 5 connections by default. Twenty requests sent at once
(a test of concurrent resends, a batch of deliveries) then overflow it, and the kernel drops
or resets the connections it cannot queue: the client sees "Connection reset by peer" for a
request the server never read. API Gateway and real receivers accept such bursts."""

from __future__ import annotations

from http.server import ThreadingHTTPServer

LISTEN_QUEUE = 128  # connections the kernel holds before one is accepted (Linux caps it at somaxconn)


class LocalServer(ThreadingHTTPServer):
    daemon_threads = True  # a request in flight does not keep the process alive at exit
    request_queue_size = LISTEN_QUEUE
