#!/usr/bin/env python3
"""udp_echo_client.py: a polyio UDP echo client, the Python twin of udp_echo_client.c.

    udp_echo_client.py [--conns C] [--size BYTES] [--count N] [--show] HOST PORT

Each of C endpoints (connected to HOST:PORT) sends N datagrams of BYTES bytes, one at a time,
and checks that each comes back unchanged within 5 s. Prints what it exchanged and the
round-trip rate; exits 1 on a mismatch, a loss or an error.
"""

import argparse
import asyncio
import sys
import time
from typing import Any

import polyio


class Client(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.echoes: asyncio.Queue[Any] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.echoes.put_nowait(data)

    def error_received(self, exc: Exception) -> None:
        self.echoes.put_nowait(exc)


async def client(idx: int, a: argparse.Namespace) -> None:
    transport, proto = await polyio.create_datagram_endpoint(Client, remote_addr=(a.host, a.port))
    alphabet = bytes(range(97, 123)) * (a.size // 26 + 2)
    try:
        for n in range(a.count):
            start = (idx * 7 + n * 13) % 26
            msg = alphabet[start : start + a.size]  # the C client's pattern
            transport.sendto(msg)
            echo = await asyncio.wait_for(proto.echoes.get(), 5)
            if isinstance(echo, Exception):
                raise SystemExit(f"udp_echo_client: endpoint {idx}: {echo}")
            if echo != msg:
                raise SystemExit(f"udp_echo_client: endpoint {idx}: datagram {n} came back different")
            if a.show:
                print(f"sent {msg!r}, got it back")
    finally:
        transport.close()


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--conns", type=int, default=1)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--show", action="store_true")
    p.add_argument("host")
    p.add_argument("port", type=int)
    a = p.parse_args()
    t0 = time.perf_counter()
    await asyncio.gather(*(client(i, a) for i in range(a.conns)))
    secs = time.perf_counter() - t0
    total = a.conns * a.count
    print(
        f"{a.conns} endpoints x {a.count} datagrams x {a.size} bytes echoed intact: "
        f"{total / secs:.0f} round trips/s"
    )


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except (OSError, asyncio.TimeoutError) as e:
        sys.exit(f"udp_echo_client: {e!r}")
