"""Protocols: create_connection / create_server, transports and flow control, compared
with asyncio's own loop.create_connection / loop.create_server."""

from __future__ import annotations

import asyncio
import socket
from types import SimpleNamespace
from typing import Any, Optional

from conftest import port_of

HOST = "127.0.0.1"


class Recorder(asyncio.Protocol):
    """Records every callback, in order."""

    def __init__(self, keep_open: bool = False) -> None:
        self.events: list[Any] = []
        self.data = bytearray()
        self.keep_open = keep_open
        self.transport: Any = None
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.events.append("made")

    def data_received(self, data: bytes) -> None:
        if not self.events or self.events[-1] != "data":
            self.events.append("data")
        self.data += data

    def eof_received(self) -> Optional[bool]:
        self.events.append("eof")
        return self.keep_open

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self.events.append(("lost", type(exc).__name__ if exc else None))
        self.lost.set_result(None)


class Echo(asyncio.Protocol):
    def connection_made(self, transport: Any) -> None:
        self.t = transport

    def data_received(self, data: bytes) -> None:
        self.t.write(data)

    def eof_received(self) -> Optional[bool]:
        return False  # close once the echo is flushed

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self.t.close()


async def done(server: Any) -> None:
    server.close()
    await server.wait_closed()
    await asyncio.sleep(0.01)


def test_callbacks_in_order_and_eof(compare: Any) -> None:
    async def scenario(api: SimpleNamespace) -> list[Any]:
        server = await api.create_server(Echo, HOST, 0)
        t, p = await api.create_connection(Recorder, HOST, port_of(server))
        t.write(b"hello ")
        t.writelines([b"proto", bytearray(b"cols")])
        t.write_eof()
        await asyncio.wait_for(p.lost, 5)
        await done(server)
        return [p.events, bytes(p.data), t.is_closing(), t.can_write_eof()]

    got = compare(scenario)
    assert got[0] == ["made", "data", "eof", ("lost", None)]


def test_eof_received_true_keeps_the_write_side(compare: Any) -> None:
    async def scenario(api: SimpleNamespace) -> list[Any]:
        class Server(asyncio.Protocol):
            def connection_made(self, transport: Any) -> None:
                transport.write(b"early")
                transport.write_eof()

        server = await api.create_server(Server, HOST, 0)
        t, p = await api.create_connection(lambda: Recorder(keep_open=True), HOST, port_of(server))
        await asyncio.sleep(0.1)
        out = [list(p.events), bytes(p.data), t.is_closing()]
        t.close()
        await asyncio.wait_for(p.lost, 5)
        out.append(p.events[-1])
        await done(server)
        return out

    assert compare(scenario) == [["made", "data", "eof"], b"early", False, ("lost", None)]


def test_pause_and_resume_writing(compare: Any) -> None:
    async def scenario(api: SimpleNamespace) -> list[Any]:
        calls: list[str] = []
        paused = asyncio.Event()
        resumed = asyncio.Event()
        reader: list[Any] = []

        class Sink(asyncio.Protocol):
            def connection_made(self, transport: Any) -> None:
                reader.append(transport)
                transport.pause_reading()

        class Writer(Recorder):
            def pause_writing(self) -> None:
                calls.append("pause")
                paused.set()

            def resume_writing(self) -> None:
                calls.append("resume")
                resumed.set()

        server = await api.create_server(Sink, HOST, 0)
        t, p = await api.create_connection(Writer, HOST, port_of(server))
        t.set_write_buffer_limits(high=1 << 16)
        for _ in range(4000):
            t.write(b"w" * 4096)
            await asyncio.sleep(0)
            if paused.is_set():
                break
        out: list[Any] = [paused.is_set(), t.get_write_buffer_size() > 1 << 16]
        reader[0].resume_reading()
        await asyncio.wait_for(resumed.wait(), 10)
        out += [calls, t.get_write_buffer_size() <= 1 << 14]
        t.abort()
        reader[0].close()
        await asyncio.wait_for(p.lost, 5)
        await done(server)
        return out

    # uvloop's own transport never resumes here (pause_reading inside connection_made):
    # compare with asyncio's loop.
    assert compare(scenario, uvloop_reference=False) == [True, True, ["pause", "resume"], True]


def test_writes_of_every_size_keep_their_order(compare: Any) -> None:
    # A held write (bytes, nothing ahead), small copied ones, a bytearray and a large write
    # that would go to the kernel at once if nothing were ahead of it, in one loop iteration
    # and again while the peer does not read (the kernel takes part, the rest queues): the
    # peer gets every byte in the order written; a large write never overtakes a held or
    # buffered one.
    async def scenario(api: SimpleNamespace) -> list[Any]:
        sinks: list[Recorder] = []

        def sink() -> Recorder:
            sinks.append(Recorder())
            return sinks[-1]

        server = await api.create_server(sink, HOST, 0)
        t, p = await api.create_connection(Recorder, HOST, port_of(server))
        want = bytearray()
        for i in range(3):
            pieces = [
                bytes([65 + i]) * 5000,
                b"small",
                bytearray(b"m" * 3000),
                bytes([97 + i]) * (100 << 10),
                b"tail",
                bytes([48 + i]) * 9000,
            ]
            for piece in pieces:
                t.write(piece)
                want += piece
            if i == 0:
                sinks[0].transport.pause_reading()
            elif i == 1:
                await asyncio.sleep(0.05)
                sinks[0].transport.resume_reading()
        t.write_eof()
        for _ in range(500):
            if "eof" in sinks[0].events:
                break
            await asyncio.sleep(0.01)
        got = bytes(sinks[0].data)
        t.close()
        await asyncio.wait_for(p.lost, 5)
        await done(server)
        return [len(got) == len(want), got == want]

    assert compare(scenario) == [True, True]


def test_a_large_message_arrives_in_one_chunk_as_asyncio_reads(compare: Any) -> None:
    # Reads ask for more than 64 KiB (polyio 128 KiB, asyncio 256 KiB): of 150 KiB the
    # kernel already holds when reading resumes, data_received gets more than 64 KiB at once.
    async def scenario(api: SimpleNamespace) -> list[Any]:
        sinks: list[Any] = []

        class Chunks(Recorder):
            def __init__(self) -> None:
                super().__init__()
                self.sizes: list[int] = []

            def connection_made(self, transport: Any) -> None:
                super().connection_made(transport)
                transport.pause_reading()
                sinks.append(self)

            def data_received(self, data: bytes) -> None:
                super().data_received(data)
                self.sizes.append(len(data))

        server = await api.create_server(Chunks, HOST, 0)
        t, p = await api.create_connection(Recorder, HOST, port_of(server))
        t.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        msg = b"x" * (150 << 10)
        t.write(msg)
        for _ in range(500):
            if t.get_write_buffer_size() == 0 and sinks:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        sink = sinks[0]
        sink.transport.resume_reading()
        for _ in range(500):
            if len(sink.data) == len(msg):
                break
            await asyncio.sleep(0.01)
        t.close()
        await asyncio.wait_for(p.lost, 5)
        await done(server)
        return [bytes(sink.data) == msg, sink.sizes[0] > 64 << 10]

    assert compare(scenario) == [True, True]


def test_pause_reading_stops_data_received(compare: Any) -> None:
    async def scenario(api: SimpleNamespace) -> list[Any]:
        server = await api.create_server(Echo, HOST, 0)
        t, p = await api.create_connection(Recorder, HOST, port_of(server))
        out: list[Any] = [t.is_reading()]
        t.pause_reading()
        out.append(t.is_reading())
        t.write(b"while paused")
        await asyncio.sleep(0.1)
        out.append(bytes(p.data))
        t.resume_reading()
        for _ in range(100):
            if p.data:
                break
            await asyncio.sleep(0.01)
        out.append(bytes(p.data))
        t.close()
        await asyncio.wait_for(p.lost, 5)
        await done(server)
        return out

    assert compare(scenario) == [True, False, b"", b"while paused"]


def test_abort_and_write_buffer_limits(compare: Any) -> None:
    async def scenario(api: SimpleNamespace) -> list[Any]:
        server = await api.create_server(Echo, HOST, 0)
        t, p = await api.create_connection(Recorder, HOST, port_of(server))
        t.set_write_buffer_limits(high=100, low=10)
        limits = t.get_write_buffer_limits()
        t.set_write_buffer_limits()
        out: list[Any] = [limits, t.get_write_buffer_limits()]
        try:
            t.set_write_buffer_limits(high=1, low=2)
        except ValueError:
            out.append("ValueError")
        out.append(t.get_extra_info("peername") == (HOST, port_of(server)))
        t.abort()
        out.append(t.is_closing())
        await asyncio.wait_for(p.lost, 5)
        out.append(p.events)
        await done(server)
        return out

    assert compare(scenario)[-1] == ["made", ("lost", None)]


def test_eof_received_false_closes(compare: Any) -> None:
    async def scenario(api: SimpleNamespace) -> list[Any]:
        class Server(asyncio.Protocol):
            def connection_made(self, transport: Any) -> None:
                transport.write(b"x")
                transport.close()

        server = await api.create_server(Server, HOST, 0)
        t, p = await api.create_connection(Recorder, HOST, port_of(server))
        await asyncio.wait_for(p.lost, 5)
        await done(server)
        return [p.events, t.is_closing()]

    assert compare(scenario) == [["made", "data", "eof", ("lost", None)], True]


def test_protocol_echo_bulk(run: Any, api: SimpleNamespace) -> None:
    async def main() -> None:
        server = await api.create_server(Echo, HOST, 0)
        msg = bytes(range(256)) * 8000
        t, p = await api.create_connection(Recorder, HOST, port_of(server))
        t.write(msg)
        t.write_eof()
        await asyncio.wait_for(p.lost, 10)
        assert bytes(p.data) == msg
        await done(server)

    run(main())


def test_connection_refused(compare: Any) -> None:
    async def scenario(api: SimpleNamespace) -> list[Any]:
        server = await api.create_server(Echo, HOST, 0)
        port = port_of(server)
        await done(server)
        try:
            await api.create_connection(Recorder, HOST, port)
        except OSError as e:
            return [type(e).__name__, e.errno]
        return ["connected"]

    assert compare(scenario)[0] == "ConnectionRefusedError"


def test_transport_is_an_asyncio_transport(compare: Any) -> None:
    async def scenario(api: SimpleNamespace) -> list[Any]:
        server = await api.create_server(Echo, HOST, 0)
        t, p = await api.create_connection(Recorder, HOST, port_of(server))
        r, w = await api.open_connection(HOST, port_of(server))
        classes = (
            asyncio.Transport,
            asyncio.BaseTransport,
            asyncio.ReadTransport,
            asyncio.WriteTransport,
        )
        out = [isinstance(t, cls) for cls in classes]
        out += [isinstance(w.transport, asyncio.Transport)]
        out += [isinstance(t, asyncio.DatagramTransport)]
        t.close()
        w.close()
        await asyncio.wait_for(p.lost, 5)
        await w.wait_closed()
        await done(server)
        return out

    # uvloop's own transports are not asyncio.Transport instances: asyncio's loop is the reference.
    assert compare(scenario, uvloop_reference=False) == [True, True, True, True, True, False]


def test_polyio_transport_stays_the_native_class(run: Any) -> None:
    async def main() -> None:
        import polyio
        from polyio._polyio import Conn

        server = await polyio.create_server(Echo, HOST, 0)
        t, p = await polyio.create_connection(Recorder, HOST, port_of(server))
        # isinstance goes through __class__; the object and its write stay native.
        assert type(t) is Conn and t.__class__ is polyio.Transport
        assert type(t).write is Conn.write
        t.close()
        await asyncio.wait_for(p.lost, 5)
        await done(server)

    run(main())


def test_set_protocol_sends_later_data_to_the_new_protocol(compare: Any) -> None:
    async def scenario(api: SimpleNamespace) -> list[Any]:
        server = await api.create_server(Echo, HOST, 0)
        t, first = await api.create_connection(Recorder, HOST, port_of(server))
        t.write(b"one")
        for _ in range(100):
            if first.data:
                break
            await asyncio.sleep(0.01)
        second = Recorder()
        t.set_protocol(second)
        t.write(b"two")
        for _ in range(100):
            if second.data:
                break
            await asyncio.sleep(0.01)
        out = [bytes(first.data), bytes(second.data), t.get_protocol() is second]
        t.close()
        await asyncio.wait_for(second.lost, 5)
        await done(server)
        return out

    assert compare(scenario) == [b"one", b"two", True]
