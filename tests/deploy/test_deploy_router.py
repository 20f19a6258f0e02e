"""The service port of a service on Ray: the supervisor's TCP forwarder, against plain sockets on 127.0.0.1."""

from __future__ import annotations

import contextlib
import socket
import threading

import httpx

from modelyard.deploy.router import Router


class _Replica:
    """A replica stand-in: answers every HTTP request with its name and the body it was sent."""

    def __init__(self, name: str):
        self.name = name
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                while len(body) < length:
                    body += conn.recv(65536)
                answer = self.name.encode() + b":" + body
                conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
                             % (len(answer), answer))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() the thread waits in
        self.sock.close()
        self.thread.join(timeout=5)


def test_the_router_forwards_round_robin_skips_a_dead_replica_and_answers_503_without_one():
    service = socket.create_server(("127.0.0.1", 0))
    port = service.getsockname()[1]
    replicas = [_Replica("a"), _Replica("b")]
    router = Router()
    http = httpx.Client(timeout=10)  # one client: building one per request costs more than the forwarding
    dead = socket.create_server(("127.0.0.1", 0))
    dead_port = dead.getsockname()[1]
    dead.close()  # a replica that went away: its port refuses
    try:
        router.route("svc", service, [("127.0.0.1", r.port) for r in replicas])
        big = b"x" * 300_000  # more than one read: the bytes go through unchanged
        answers = [http.post(f"http://127.0.0.1:{port}/v1/predict", content=big).content
                   for _ in range(4)]
        assert sorted(a[:2] for a in answers) == [b"a:", b"a:", b"b:", b"b:"]  # each replica got its turn
        assert all(a[2:] == big for a in answers)
        router.route("svc", service, [("127.0.0.1", dead_port), ("127.0.0.1", replicas[1].port)])
        assert {http.get(f"http://127.0.0.1:{port}/").content for _ in range(3)} == {b"b:"}
        router.route("svc", service, [("127.0.0.1", dead_port)])
        refused = http.get(f"http://127.0.0.1:{port}/")
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "unavailable"
        router.route("svc", service, [])  # none ready: the router lets go of the port, which stays open
        assert not router.routing("svc") and service.fileno() != -1
    finally:
        http.close()
        router.shutdown()
        for replica in replicas:
            replica.close()
        with contextlib.suppress(OSError):
            service.close()
