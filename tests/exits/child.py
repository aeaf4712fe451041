"""One Python process that exits with polyio work pending; run by exits.py.

    child.py MODE LOOP SEED

MODE: fall (main returns, asyncio.run cancels what is left), noclose (the loop is left
running-less and never closed: the interpreter finalizes with the runtime alive), exit
(sys.exit(3)), raise (an uncaught exception), sigterm, sigint (the process signals itself).
LOOP: asyncio or uvloop. SEED varies how many loop iterations pass before the exit, so the
exit lands at different points of the work.
"""

import asyncio
import os
import random
import signal
import sys
from typing import Any, List

import polyio


async def pending_work(seed: int) -> List[Any]:
    """Starts work that does not finish by itself soon: reads no one answers, a write to a
    peer that never reads, a long sleep, a slow lookup, a file read; returns what keeps it."""
    keep: List[Any] = []

    async def on_client(reader: polyio.StreamReader, writer: polyio.StreamWriter) -> None:
        keep.append(writer)
        await reader.read(1)  # the client never writes

    server = await polyio.start_server(on_client, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    keep.append(server)
    for i in range(4):
        reader, writer = await polyio.open_connection("127.0.0.1", port)
        keep.append(writer)
        keep.append(asyncio.ensure_future(reader.read(100)))
        if i == 0:
            # Far more than the socket buffers take: the write stays pending.
            writer.write(b"x" * (8 << 20))
            keep.append(asyncio.ensure_future(writer.drain()))
    keep.append(asyncio.ensure_future(polyio.sleep(3600)))
    keep.append(asyncio.ensure_future(polyio.getaddrinfo("slow.test", 80)))
    keep.append(asyncio.ensure_future(polyio.read_bytes(__file__)))
    for _ in range(seed % 7):
        await asyncio.sleep(0)
    return keep


async def main(mode: str, seed: int) -> None:
    keep = await pending_work(seed)
    print("work pending", flush=True)
    if mode == "exit":
        sys.exit(3)
    if mode == "raise":
        raise RuntimeError("uncaught, on purpose")
    if mode == "sigterm":
        os.kill(os.getpid(), signal.SIGTERM)
    if mode == "sigint":
        os.kill(os.getpid(), signal.SIGINT)
    if mode in ("sigterm", "sigint"):
        await asyncio.sleep(5)  # the signal ends the process before this does
    del keep


def run(mode: str, loop_kind: str, seed: int) -> None:
    random.seed(seed)
    if mode == "noclose":
        # Work left pending and the loop never closed: the interpreter finalizes around it.
        if loop_kind == "uvloop":
            import uvloop

            loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
        else:
            loop = asyncio.new_event_loop()
        loop.run_until_complete(main(mode, seed))
        return
    if loop_kind == "uvloop":
        import uvloop

        uvloop.run(main(mode, seed))
    else:
        asyncio.run(main(mode, seed))


if __name__ == "__main__":
    run(sys.argv[1], sys.argv[2], int(sys.argv[3]))
