#!/usr/bin/env python3
"""echo_server.py: a polyio echo server in asyncio streams style.

    echo_server.py [--uvloop] HOST PORT      (PORT 0: pick a free port)
    echo_server.py [--uvloop] --unix PATH    (a Unix socket; its file goes when it stops)

Prints "listening on HOST:PORT" (or "listening on unix:PATH"), echoes every byte back, and
on SIGTERM or SIGINT prints how many connections and bytes it served and exits 0.
"""

import asyncio
import signal
import sys
from typing import Optional

import polyio

served = {"connections": 0, "bytes": 0}


async def handle(reader: polyio.StreamReader, writer: polyio.StreamWriter) -> None:
    served["connections"] += 1
    try:
        while data := await reader.read(65536):
            served["bytes"] += len(data)
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    writer.close()


async def main(host: str, port: int, unix_path: Optional[str]) -> None:
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[None] = loop.create_future()

    def on_signal() -> None:
        if not stop.done():
            stop.set_result(None)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    if unix_path is not None:
        server = await polyio.start_unix_server(handle, unix_path)
        print(f"listening on unix:{unix_path}", flush=True)
    else:
        server = await polyio.start_server(handle, host, port)
        print(f"listening on {host}:{server.sockets[0].getsockname()[1]}", flush=True)
    await stop
    server.close()
    await server.wait_closed()
    print(f"served {served['connections']} connections, {served['bytes']} bytes", flush=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    use_uvloop = "--uvloop" in args
    args = [a for a in args if a != "--uvloop"]
    if args[:1] == ["--unix"] and len(args) == 2:
        coro = main("", 0, args[1])
    elif len(args) == 2:
        coro = main(args[0], int(args[1]), None)
    else:
        sys.exit("usage: echo_server.py [--uvloop] HOST PORT | --unix PATH")
    if use_uvloop:
        import uvloop

        uvloop.run(coro)
    else:
        asyncio.run(coro)
