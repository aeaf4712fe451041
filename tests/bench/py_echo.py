#!/usr/bin/env python3
"""Echo servers for the benchmark, one per Python way of doing it.

    py_echo.py KIND HOST PORT

KIND: polyio-streams | polyio-protocol (polyio, on uvloop unless POLYIO_LOOP=asyncio),
asyncio-streams | asyncio-protocol (asyncio's own, default loop), uvloop-streams |
uvloop-protocol (asyncio's API on uvloop), pyo3-async-runtimes (one future_into_py per read
and per write; tests/bench/pyo3-async-runtimes-echo). Every streams server runs the same
handler: read up to 64 KiB, write it back, drain. Stops cleanly on SIGTERM.
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


async def serve(kind: str, host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
    if kind == "pyo3-async-runtimes":
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
    if kind.startswith("polyio"):
        import polyio

        api: Any = polyio
        create_server = polyio.create_server
    else:
        api = asyncio
        create_server = loop.create_server  # type: ignore[assignment]
    if kind.endswith("streams"):
        server = await api.start_server(stream_handler, host, port)
    else:
        server = await create_server(EchoProtocol, host, port)
    print(f"listening on {host}:{server.sockets[0].getsockname()[1]}", flush=True)
    await stop
    server.close()


def main() -> None:
    kind, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    use_uvloop = kind.startswith("uvloop") or (
        kind.startswith("polyio") and os.environ.get("POLYIO_LOOP", "uvloop") == "uvloop"
    )
    if use_uvloop:
        import uvloop

        uvloop.run(serve(kind, host, port))
    else:
        asyncio.run(serve(kind, host, port))


if __name__ == "__main__":
    main()
