#!/usr/bin/env python3
"""echo_client.py: a polyio echo client, the Python twin of examples/c/echo_client.c.

    echo_client.py [--conns C] [--size BYTES] [--count N] [--show] HOST PORT
    echo_client.py [options] --unix PATH        (a Unix socket instead of TCP)

Each of C connections sends N messages of BYTES bytes, one at a time, and checks that every
echoed byte matches. Prints what it exchanged and the round-trip rate; exits 1 on a mismatch.
"""

import argparse
import asyncio
import sys
import time

import polyio


async def client(idx: int, a: argparse.Namespace) -> None:
    size, count, show = a.size, a.count, a.show
    if a.unix is not None:
        reader, writer = await polyio.open_unix_connection(a.unix)
    else:
        reader, writer = await polyio.open_connection(a.host, a.port)
    alphabet = bytes(range(97, 123)) * (size // 26 + 2)
    for n in range(count):
        start = (idx * 7 + n * 13) % 26
        msg = alphabet[start : start + size]  # the C client's pattern
        writer.write(msg)
        await writer.drain()
        echo = await reader.readexactly(size)
        if echo != msg:
            raise SystemExit(f"echo_client: connection {idx}: message {n} came back different")
        if show:
            print(f"sent {msg!r}, got it back")
    writer.close()
    await writer.wait_closed()


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--conns", type=int, default=1)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--show", action="store_true")
    p.add_argument("--unix", metavar="PATH")
    p.add_argument("host", nargs="?")
    p.add_argument("port", type=int, nargs="?")
    a = p.parse_args()
    if (a.unix is None) == (a.port is None):
        p.error("give HOST PORT or --unix PATH")
    t0 = time.perf_counter()
    await asyncio.gather(
        *(client(i, a) for i in range(a.conns))
    )
    secs = time.perf_counter() - t0
    total = a.conns * a.count
    print(
        f"{a.conns} connections x {a.count} messages x {a.size} bytes echoed intact: "
        f"{total / secs:.0f} round trips/s"
    )


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except OSError as e:
        sys.exit(f"echo_client: {e}")
