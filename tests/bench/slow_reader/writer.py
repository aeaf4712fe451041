"""One writer of tests/bench/slow_reader.py: serves one connection on 127.0.0.1 and writes
--mib MiB to it in --chunk KiB chunks, each a fresh bytes object; `--mode ignore` writes
them all without waiting, `--mode drain` awaits drain() (streams) or resume_writing
(protocols) after each write. Prints `port P`, then `handed BYTES T` per MiB handed over,
`handed_all T`, `drained T` once the write buffer is empty, and exits once the client
closes. T is time.monotonic() (CLOCK_MONOTONIC, which the harness shares)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any, Callable


def say(*words: object) -> None:
    print(*words, flush=True)


def chunk(i: int, size: int) -> bytes:
    """The i-th chunk: its bytes name its place (the harness checks the order)."""
    return bytes([i % 251]) * size


async def empty(t: Any) -> None:
    while t.get_write_buffer_size() > 0:
        await asyncio.sleep(0.01)


async def write_streams(args: argparse.Namespace, r: Any, w: Any) -> None:
    size = args.chunk << 10
    per_mib = max(1, (1 << 20) // size)
    count = (args.mib << 20) // size
    for i in range(count):
        w.write(chunk(i, size))
        if args.mode == "drain":
            await w.drain()
        if (i + 1) % per_mib == 0:
            say("handed", (i + 1) * size, time.monotonic())
    say("handed_all", time.monotonic())
    await w.drain()
    await empty(w.transport)
    say("drained", time.monotonic())
    await r.read()
    w.close()


class Writer(asyncio.Protocol):
    def __init__(self, args: argparse.Namespace, done: asyncio.Future[None]) -> None:
        self.args = args
        self.done = done
        self.may_write = asyncio.Event()
        self.may_write.set()
        self.eof = asyncio.Event()

    def connection_made(self, transport: Any) -> None:
        self.t = transport
        self.task = asyncio.ensure_future(self.run())

    def pause_writing(self) -> None:
        self.may_write.clear()

    def resume_writing(self) -> None:
        self.may_write.set()

    def data_received(self, data: bytes) -> None:
        pass

    def eof_received(self) -> bool:
        self.eof.set()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof.set()

    async def run(self) -> None:
        size = self.args.chunk << 10
        per_mib = max(1, (1 << 20) // size)
        count = (self.args.mib << 20) // size
        for i in range(count):
            self.t.write(chunk(i, size))
            if self.args.mode == "drain":
                await self.may_write.wait()
            if (i + 1) % per_mib == 0:
                say("handed", (i + 1) * size, time.monotonic())
        say("handed_all", time.monotonic())
        await empty(self.t)
        say("drained", time.monotonic())
        await self.eof.wait()
        self.t.close()
        self.done.set_result(None)


async def main(args: argparse.Namespace) -> None:
    api, kind = args.impl.split("-")
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    if api == "polyio":
        import polyio

        start_server: Callable[..., Any] = polyio.start_server
        create_server: Callable[..., Any] = polyio.create_server
    else:
        start_server = asyncio.start_server
        create_server = loop.create_server
    if kind == "streams":

        async def handler(r: Any, w: Any) -> None:
            try:
                await write_streams(args, r, w)
            finally:
                done.set_result(None)

        server = await start_server(handler, "127.0.0.1", 0)
    else:
        server = await create_server(lambda: Writer(args, done), "127.0.0.1", 0)
    say("port", server.sockets[0].getsockname()[1])
    await done
    server.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--impl", required=True, help="{polyio,asyncio,uvloop}-{streams,protocol}")
    ap.add_argument("--mode", choices=["ignore", "drain"], default="ignore")
    ap.add_argument("--mib", type=int, default=64)
    ap.add_argument("--chunk", type=int, default=64, help="KiB")
    a = ap.parse_args()
    if a.impl.startswith("uvloop"):
        import uvloop

        uvloop.run(main(a))
    else:
        asyncio.run(main(a))
    sys.exit(0)
