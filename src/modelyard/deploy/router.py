"""The service port of a service whose replicas Ray placed (``placement: ray``): a TCP forwarder in the supervisor.

Local replicas share the service's listening socket and the kernel hands each connection to one of them. A replica
on a Ray node cannot share a socket of the supervisor's machine, so the supervisor accepts on that same socket and
pipes each connection, byte for byte, to one of the service's ready Ray replicas (round robin; a replica that
refuses the connection is skipped). Forwarding bytes, not requests, keeps everything a replica answers exactly as
it is locally: both protocols, streaming, ``/metrics``, the token check and the canary split (each replica holds
every version of its revision and picks one per request by weight or sticky key).

The router accepts only while the service has a ready Ray replica: during a move from local to Ray replicas (or
back) the local ones keep accepting on the same socket until the supervisor stops them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
import threading

CONNECT_TIMEOUT_S = 5.0
CHUNK = 64 * 1024


def _unavailable() -> bytes:
    body = json.dumps({"error": {"code": "unavailable",
                                 "message": "no replica of this service accepted the connection; try again"}})
    head = ("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\nRetry-After: 1\r\n\r\n")
    return head.encode() + body.encode()


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await source.read(CHUNK):
            sink.write(data)
            await sink.drain()
        if sink.can_write_eof():
            sink.write_eof()  # the client's half-close reaches the replica; the answer still comes back


def _close(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):
        writer.close()


class Router:
    """Forwards connections from services' listening sockets to their Ray replicas, on one asyncio loop in a
    daemon thread. Constructing it starts nothing; :meth:`route` starts the loop on first use."""

    def __init__(self):
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._servers: dict[str, asyncio.base_events.Server] = {}
        self._backends: dict[str, tuple[tuple[str, int], ...]] = {}
        self._turn = itertools.count()

    def _run(self, coroutine, timeout: float = 10.0):
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._loop.run_forever, name="modelyard-router", daemon=True)
            self._thread.start()
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def routing(self, name: str) -> bool:
        return name in self._servers

    def route(self, name: str, sock: socket.socket, backends: list[tuple[str, int]]) -> None:
        """Forward what ``sock`` accepts to ``backends`` (``(host, port)`` of ready replicas); none: stop accepting
        (``sock`` itself stays open: it is the supervisor's)."""
        self._backends[name] = tuple(backends)
        if backends and name not in self._servers:
            # a duplicate for asyncio, which closes the socket it serves when the server closes
            self._servers[name] = self._run(self._serve(name, sock.dup()))
        elif not backends and name in self._servers:
            self.close(name)

    async def _serve(self, name: str, sock: socket.socket):
        return await asyncio.start_server(lambda r, w: self._forward(name, r, w), sock=sock)

    def close(self, name: str) -> None:
        """Stop accepting for ``name``; connections being forwarded finish."""
        self._backends.pop(name, None)
        server = self._servers.pop(name, None)
        if server is not None:
            self._run(self._close_server(server))

    @staticmethod
    async def _close_server(server) -> None:
        server.close()

    def shutdown(self) -> None:
        for name in list(self._servers):
            self.close(name)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()
            self._loop = None

    async def _connect(self, name: str):
        backends = self._backends.get(name, ())
        start = next(self._turn)
        for offset in range(len(backends)):
            host, port = backends[(start + offset) % len(backends)]
            with contextlib.suppress(OSError, asyncio.TimeoutError):
                return await asyncio.wait_for(asyncio.open_connection(host, port), CONNECT_TIMEOUT_S)
        return None

    async def _forward(self, name: str, client_reader, client_writer) -> None:
        upstream = await self._connect(name)
        if upstream is None:
            with contextlib.suppress(ConnectionError, OSError):
                client_writer.write(_unavailable())
                await client_writer.drain()
            _close(client_writer)
            return
        upstream_reader, upstream_writer = upstream
        request = asyncio.ensure_future(_pipe(client_reader, upstream_writer))
        try:
            # the replica ending its side ends the exchange (HTTP: it closed the connection)
            await _pipe(upstream_reader, client_writer)
        finally:
            request.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await request
            _close(upstream_writer)
            _close(client_writer)
