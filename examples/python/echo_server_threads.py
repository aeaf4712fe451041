#!/usr/bin/env python3
"""echo_server_threads.py: one asyncio loop (and so one polyio runtime) per thread, each
with its own listener on the same port (reuse_port: the kernel spreads connections across
them). How polyio uses many cores from one process, as nginx's workers do.

    echo_server_threads.py [--threads N] [--uvloop] HOST PORT     (PORT 0: pick a free port)

Prints "listening on HOST:PORT (N threads)", echoes every byte back, and on SIGTERM or
SIGINT stops every loop and prints what it served. With the GIL, Python code runs one
thread at a time; the I/O itself runs in polyio without it. Where Python code dominates,
run one process per core with reuse_port instead (or a free-threaded Python).
"""

import asyncio
import signal
import sys
import threading
from typing import List, Optional

import polyio


class Worker(threading.Thread):
    """A thread with its own event loop and its own polyio server."""

    def __init__(self, host: str, port: int, use_uvloop: bool) -> None:
        super().__init__(daemon=True)
        self.host, self.port, self.use_uvloop = host, port, use_uvloop
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self.stop: Optional["asyncio.Future[None]"] = None
        self.ready = threading.Event()
        self.error: Optional[BaseException] = None
        self.connections = 0
        self.bytes = 0

    async def handle(self, reader: polyio.StreamReader, writer: polyio.StreamWriter) -> None:
        self.connections += 1
        try:
            while data := await reader.read(65536):
                self.bytes += len(data)
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        writer.close()

    async def main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.stop = self.loop.create_future()
        server = await polyio.start_server(self.handle, self.host, self.port, reuse_port=True)
        self.port = server.sockets[0].getsockname()[1]
        self.ready.set()
        await self.stop
        server.close()
        await server.wait_closed()

    def run(self) -> None:
        try:
            if self.use_uvloop:
                import uvloop

                uvloop.run(self.main())
            else:
                asyncio.run(self.main())
        except BaseException as e:  # reported by the main thread
            self.error = e
            self.ready.set()

    def request_stop(self) -> None:
        loop, stop = self.loop, self.stop
        if loop is not None and stop is not None:

            def finish() -> None:
                if not stop.done():
                    stop.set_result(None)

            loop.call_soon_threadsafe(finish)


def main(host: str, port: int, threads: int, use_uvloop: bool) -> int:
    workers: List[Worker] = []
    # The first binds (port 0 picks one); the others bind its port.
    for _ in range(threads):
        w = Worker(host, port, use_uvloop)
        w.start()
        w.ready.wait()
        if w.error is not None:
            print(f"echo_server_threads: {w.error!r}", file=sys.stderr)
            for other in workers:
                other.request_stop()
            return 1
        port = w.port
        workers.append(w)
    print(f"listening on {host}:{port} ({threads} thread{'s' if threads > 1 else ''})", flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    for w in workers:
        w.request_stop()
    for w in workers:
        w.join()
    conns = sum(w.connections for w in workers)
    total = sum(w.bytes for w in workers)
    per = " ".join(str(w.connections) for w in workers)
    print(f"served {conns} connections, {total} bytes (connections per thread: {per})", flush=True)
    return 0


if __name__ == "__main__":
    args = sys.argv[1:]
    n = 2
    if args[:1] == ["--threads"] and len(args) >= 2:
        n, args = int(args[1]), args[2:]
    use_uvloop = "--uvloop" in args
    args = [a for a in args if a != "--uvloop"]
    if len(args) != 2 or n < 1:
        sys.exit("usage: echo_server_threads.py [--threads N] [--uvloop] HOST PORT")
    # The signals go to sigwait in the main thread, never to a worker's loop.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    sys.exit(main(args[0], int(args[1]), n, use_uvloop))
