#!/usr/bin/env python3
"""Echo servers for the benchmark, one per Python way of doing it.

    py_echo.py KIND HOST PORT
    py_echo.py KIND --unix PATH      (a Unix stream socket at PATH; not pyo3-async-runtimes)
    py_echo.py KIND --udp HOST PORT  (a datagram protocol; the *-protocol kinds only)

KIND: polyio-streams | polyio-protocol (polyio, on uvloop unless POLYIO_LOOP=asyncio),
asyncio-streams | asyncio-protocol (asyncio's own, default loop), uvloop-streams |
uvloop-protocol (asyncio's API on uvloop), pyo3-async-runtimes (one future_into_py per read
and per write; tests/bench/pyo3-async-runtimes-echo). Every streams server runs the same
handler: read up to 64 KiB, write it back, drain. On a path, the servers come from
start_unix_server / create_unix_server (asyncio's, uvloop's through asyncio, or polyio's).
With --udp, a DatagramProtocol that sends each datagram back from datagram_received, on
create_datagram_endpoint (the loop's, or polyio's). Stops cleanly on SIGTERM.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Any


async def stream_handler(r: Any, w: Any) -> None:
    try:
        while True:
            data = await r.read(65536)
            if not data:
                break
            w.write(data)
            await w.drain()
    except ConnectionError:
        pass
    w.close()


class EchoProtocol(asyncio.Protocol):
    def connection_made(self, transport: Any) -> None:
        self.t = transport

    def data_received(self, data: bytes) -> None:
        self.t.write(data)

    def eof_received(self) -> bool:
        return False


class EchoDatagram(asyncio.DatagramProtocol):
    def connection_made(self, transport: Any) -> None:
        self.t = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.t.sendto(data, addr)


async def serve_udp(kind: str, host: str, port: int) -> None:
    if not kind.endswith("protocol"):
        raise SystemExit("py_echo.py: --udp serves the *-protocol kinds only")
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
    if kind.startswith("polyio"):
        import polyio

        t, _ = await polyio.create_datagram_endpoint(EchoDatagram, local_addr=(host, port))
    else:
        t, _ = await loop.create_datagram_endpoint(EchoDatagram, local_addr=(host, port))
    print(f"listening on {host}:{t.get_extra_info('sockname')[1]} (udp)", flush=True)
    await stop
    t.close()


async def serve(kind: str, host: str, port: int, path: str | None) -> None:
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
    if kind == "pyo3-async-runtimes":
        if path is not None:
            raise SystemExit("py_echo.py: pyo3-async-runtimes serves TCP only")
        import pyar_echo

        listener = await pyar_echo.listen(host, port)
        print(f"listening on {host}:{listener.port()}", flush=True)

        async def handle(c: Any) -> None:
            while data := await c.read(65536):
                await c.write(data)

        async def accept_loop() -> None:
            while True:
                c = await listener.accept()
                loop.create_task(handle(c))

        acceptor = loop.create_task(accept_loop())
        await stop
        acceptor.cancel()
        return
    # asyncio's stream functions are module-level and its create_*server loop methods;
    # polyio has all four at module level.
    streams_api: Any
    protocol_api: Any
    if kind.startswith("polyio"):
        import polyio

        streams_api = protocol_api = polyio
    else:
        streams_api, protocol_api = asyncio, loop
    server: Any
    if path is not None:
        if kind.endswith("streams"):
            server = await streams_api.start_unix_server(stream_handler, path)
        else:
            server = await protocol_api.create_unix_server(EchoProtocol, path)
        print(f"listening on {path}", flush=True)
    else:
        if kind.endswith("streams"):
            server = await streams_api.start_server(stream_handler, host, port)
        else:
            server = await protocol_api.create_server(EchoProtocol, host, port)
        print(f"listening on {host}:{server.sockets[0].getsockname()[1]}", flush=True)
    await stop
    server.close()


def main() -> None:
    udp = len(sys.argv) == 5 and sys.argv[2] == "--udp"
    if udp:
        del sys.argv[2]
    if len(sys.argv) != 4:
        raise SystemExit(
            "usage: py_echo.py KIND HOST PORT | py_echo.py KIND --unix PATH | "
            "py_echo.py KIND --udp HOST PORT"
        )
    kind = sys.argv[1]
    if sys.argv[2] == "--unix":
        host, port, path = "", 0, sys.argv[3]
    else:
        host, port, path = sys.argv[2], int(sys.argv[3]), None
    use_uvloop = kind.startswith("uvloop") or (
        kind.startswith("polyio") and os.environ.get("POLYIO_LOOP", "uvloop") == "uvloop"
    )
    coro = serve_udp(kind, host, port) if udp else serve(kind, host, port, path)
    if use_uvloop:
        import uvloop

        uvloop.run(coro)
    else:
        asyncio.run(coro)


if __name__ == "__main__":
    main()
