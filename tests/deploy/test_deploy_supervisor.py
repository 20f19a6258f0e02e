"""The supervisor's own costs: an idle one must stay cheap (issue 21 item 14)."""

import http.server
import threading

import httpx

from modelyard.deploy.supervisor import Replica, ReplicaSet, Supervisor


class _Ready(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802 - the http.server hook's name
        body = b'{"status": "ready", "backends": {"m@1": "null:cpu"}}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class _Running:
    """A replica process that is alive (poll() says so)."""

    pid = 0

    def poll(self):
        return None


def test_health_checks_reuse_one_http_client(sqlite_workspace, monkeypatch, tmp_path):
    """httpx.get built a client (an SSL context) per check: ~9 % of a core for 4 idle services."""
    made = []
    real_init = httpx.Client.__init__

    def counting_init(self, *args, **kwargs):
        made.append(1)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(httpx.Client, "__init__", counting_init)  # httpx.get's own clients count too
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ready)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    supervisor = Supervisor(sqlite_workspace)
    try:
        rset = ReplicaSet(1, [], {}, tmp_path / "rev-1")
        replica = Replica(0, 1, proc=_Running(), control_port=server.server_address[1])
        for _ in range(5):
            replica.last_check = 0.0
            supervisor._check("svc", rset, replica)
        assert replica.state == "ready" and replica.backends == {"m@1": "null:cpu"}
        assert len(made) == 1, f"{len(made)} HTTP clients for 5 health checks"
    finally:
        server.shutdown()
        server.server_close()
        if supervisor._health_client is not None:
            supervisor._health_client.close()
