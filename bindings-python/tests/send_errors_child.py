"""Run by test_faults.py under tests/faults/inject.c (LD_PRELOAD), which fails every send to
port PORT with POLYIO_INJECT_ERRNO: what a datagram send, a stream write and a protocol
write to that port end in, on one implementation (argv[1]: asyncio, uvloop, polyio-asyncio,
polyio-uvloop), while a connection to another port keeps echoing. Prints one JSON line."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from typing import Any

import uvloop

import polyio

IMPL, PORT = sys.argv[1], int(sys.argv[2])
API: Any = polyio if IMPL.startswith("polyio") else None


def describe(exc: BaseException | None) -> Any:
    if exc is None:
        return None
    return [type(exc).__name__, getattr(exc, "errno", None)]


class Datagrams(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.errors: list[Any] = []
        self.got: list[bytes] = []

    def error_received(self, exc: Exception) -> None:
        self.errors.append(describe(exc))

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.got.append(data)


class Recorder(asyncio.Protocol):
    def __init__(self) -> None:
        self.lost: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.set_result(describe(exc))


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


async def main() -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    open_connection = API.open_connection if API else asyncio.open_connection
    start_server = API.start_server if API else asyncio.start_server
    create_connection = API.create_connection if API else loop.create_connection
    create_datagram_endpoint = API.create_datagram_endpoint if API else loop.create_datagram_endpoint
    out: dict[str, Any] = {}
    # The other connection, on a port the interposer leaves alone.
    server = await start_server(echo, "127.0.0.1", 0)
    other_port = server.sockets[0].getsockname()[1]
    other_r, other_w = await open_connection("127.0.0.1", other_port)

    async def still_echoes() -> bool:
        other_w.write(b"ping" * 256)
        await other_w.drain()
        return await other_r.readexactly(1024) == b"ping" * 256

    # Datagrams to PORT: the send fails, the protocol hears it in error_received.
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", PORT))
    transport, proto = await create_datagram_endpoint(Datagrams, local_addr=("127.0.0.1", 0))
    for i in range(3):
        transport.sendto(b"d%d" % i, ("127.0.0.1", PORT))
    for _ in range(20):
        await asyncio.sleep(0.01)
    out["udp_errors"] = proto.errors
    out["udp_closing"] = transport.is_closing()
    transport.close()
    rx.close()
    out["echo_after_udp"] = await still_echoes()

    # A stream to PORT: the write fails; what drain and the reader then say.
    lsock = socket.create_server(("127.0.0.1", PORT))
    reader, writer = await open_connection("127.0.0.1", PORT)
    peer, _ = lsock.accept()
    writer.write(b"x" * 1000)
    # polyio flushes writes once per loop iteration, asyncio tries the send inside write():
    # the next drain after the failure raises it in both.
    await asyncio.sleep(0.05)
    try:
        await asyncio.wait_for(writer.drain(), 5)
        out["drain"] = None
    except Exception as e:  # noqa: BLE001 - recording what it is
        out["drain"] = describe(e)
    out["stream_closing"] = writer.is_closing()
    try:
        out["read_after"] = repr(await asyncio.wait_for(reader.read(10), 5))
    except Exception as e:  # noqa: BLE001
        out["read_after"] = describe(e)
    writer.close()
    try:
        await writer.wait_closed()
    except Exception as e:  # noqa: BLE001
        out["wait_closed"] = describe(e)
    peer.close()
    out["echo_after_stream"] = await still_echoes()

    # A protocol to PORT: the write fails; connection_lost(exc).
    t2, p2 = await create_connection(Recorder, "127.0.0.1", PORT)
    peer, _ = lsock.accept()
    t2.write(b"y" * 1000)
    out["protocol_lost"] = await asyncio.wait_for(p2.lost, 5)
    out["protocol_closing"] = t2.is_closing()
    peer.close()
    lsock.close()
    out["echo_after_protocol"] = await still_echoes()
    other_w.close()
    server.close()
    await server.wait_closed()
    return out


if __name__ == "__main__":
    factories: dict[str, Any] = {
        "asyncio": asyncio.new_event_loop,
        "uvloop": uvloop.new_event_loop,
        "polyio-asyncio": asyncio.new_event_loop,
        "polyio-uvloop": uvloop.new_event_loop,
    }
    with asyncio.Runner(loop_factory=factories[IMPL]) as r:
        result = r.run(main())
    print(json.dumps(result))
