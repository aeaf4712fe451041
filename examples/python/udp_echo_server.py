#!/usr/bin/env python3
"""udp_echo_server.py: a polyio UDP echo server, an asyncio datagram protocol.

    udp_echo_server.py [--uvloop] HOST PORT      (PORT 0: pick a free port)

Prints "listening on HOST:PORT", sends every datagram back to its sender, and on SIGTERM or
SIGINT prints how many datagrams and bytes it echoed and exits 0.
"""

import asyncio
import signal
import sys
from typing import Any, Optional

import polyio


class Echo(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.transport: Optional[asyncio.DatagramTransport] = None
        self.datagrams = 0
        self.bytes = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.datagrams += 1
        self.bytes += len(data)
        assert self.transport is not None
        self.transport.sendto(data, addr)


async def main(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[None] = loop.create_future()

    def on_signal() -> None:
        if not stop.done():
            stop.set_result(None)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    transport, proto = await polyio.create_datagram_endpoint(Echo, local_addr=(host, port))
    print(f"listening on {host}:{transport.get_extra_info('sockname')[1]} (udp)", flush=True)
    await stop
    transport.close()
    print(f"echoed {proto.datagrams} datagrams, {proto.bytes} bytes", flush=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    use_uvloop = "--uvloop" in args
    args = [a for a in args if a != "--uvloop"]
    if len(args) != 2:
        sys.exit("usage: udp_echo_server.py [--uvloop] HOST PORT")
    coro = main(args[0], int(args[1]))
    if use_uvloop:
        import uvloop

        uvloop.run(coro)
    else:
        asyncio.run(coro)
