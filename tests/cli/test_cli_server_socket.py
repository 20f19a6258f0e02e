"""The API server's listening socket: connections accepted from it must not wait on Nagle's algorithm."""

import asyncio
import socket

from modelyard.cli.system import _free_socket


def test_connections_accepted_by_the_server_socket_have_tcp_nodelay():
    sock = _free_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    seen = []

    async def main():
        async def handle(reader, writer):
            seen.append(writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(handle, sock=sock)
        async with server:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            await reader.read()
            writer.close()

    asyncio.run(main())
    assert seen and seen[0] != 0, "accepted connections have Nagle on: every reused connection stalls ~40 ms"
