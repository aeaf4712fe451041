"""Streams: open_connection / start_server, StreamReader and StreamWriter, compared with
asyncio's own streams on the default loop and on uvloop."""

from __future__ import annotations

import asyncio
import socket
from types import SimpleNamespace
from typing import Any

import pytest

import polyio
from conftest import cancellers, finish, port_of

HOST = "127.0.0.1"


async def echo_handler(r: Any, w: Any) -> None:
    while data := await r.read(65536):
        w.write(data)
        await w.drain()
    w.close()
    await w.wait_closed()


def test_reads_of_every_kind(compare: Any) -> None:
    async def scenario(api: SimpleNamespace) -> list[Any]:
        async def handler(r: Any, w: Any) -> None:
            w.write(b"line one\nline two\nABCDEFGHIJ--sep--tail")
            await w.drain()
            w.close()

        server = await api.start_server(handler, HOST, 0)
        r, w = await api.open_connection(HOST, port_of(server))
        out = [
            await r.readline(),
            await r.readuntil(b"\n"),
            await r.readexactly(4),
            await r.read(3),
            await r.readuntil(b"--sep--"),
            await r.read(0),
            await r.read(),
            await r.read(),
            r.at_eof(),
        ]
        await finish(server, w)
        return out

    assert compare(scenario)[:2] == [b"line one\n", b"line two\n"]


def test_incomplete_read_and_readline_at_eof(compare: Any) -> None:
    async def scenario(api: SimpleNamespace) -> list[Any]:
        async def handler(r: Any, w: Any) -> None:
            w.write(b"partial line")
            w.close()

        server = await api.start_server(handler, HOST, 0)
        r, w = await api.open_connection(HOST, port_of(server))
        out: list[Any] = []
        try:
            await r.readexactly(100)
        except asyncio.IncompleteReadError as e:
            out += [type(e).__name__, e.partial, e.expected]
        out += [await r.readline(), r.at_eof()]
        try:
            await r.readuntil(b"x")
        except asyncio.IncompleteReadError as e:
            out += [e.partial, e.expected]
        await finish(server, w)
        return out

    assert compare(scenario)[:3] == ["IncompleteReadError", b"partial line", 100]


def test_limit_overrun(compare: Any) -> None:
    async def scenario(api: SimpleNamespace) -> list[Any]:
        async def handler(r: Any, w: Any) -> None:
            w.write(b"a" * 40 + b"\n" + b"short\n" + b"b" * 100)
            await w.drain()
            w.close()

        server = await api.start_server(handler, HOST, 0)
        r, w = await api.open_connection(HOST, port_of(server), limit=16)
        out: list[Any] = []
        await api.sleep(0.05)
        try:
            await r.readuntil(b"\n")
        except asyncio.LimitOverrunError as e:
            out += ["overrun", e.consumed]
        try:
            await r.readline()
        except ValueError as e:
            out += ["value", type(e).__name__]
        out.append(await r.readline())
        try:
            await r.readline()
        except ValueError:
            out.append("value2")
        out.append(await r.read())
        await finish(server, w)
        return out

    assert compare(scenario)[0] == "overrun"


def test_async_for_lines_and_writelines(compare: Any) -> None:
    async def scenario(api: SimpleNamespace) -> list[bytes]:
        async def handler(r: Any, w: Any) -> None:
            w.writelines([b"a\n", bytearray(b"b\nc"), memoryview(b"\nd\n")])
            w.write_eof()
            await r.read()
            w.close()

        server = await api.start_server(handler, HOST, 0)
        r, w = await api.open_connection(HOST, port_of(server))
        lines = [line async for line in r]
        await finish(server, w)
        return lines

    assert compare(scenario) == [b"a\n", b"b\n", b"c\n", b"d\n"]


def test_half_close_keeps_the_other_direction_open(compare: Any) -> None:
    async def scenario(api: SimpleNamespace) -> list[Any]:
        async def handler(r: Any, w: Any) -> None:
            data = await r.read()  # until the client's write_eof
            w.write(b"got " + str(len(data)).encode())
            w.close()

        server = await api.start_server(handler, HOST, 0)
        r, w = await api.open_connection(HOST, port_of(server))
        w.write(b"x" * 100_000)
        assert w.can_write_eof()
        w.write_eof()
        out = [await r.read(), r.at_eof(), w.is_closing()]
        w.close()
        await w.wait_closed()
        out.append(w.is_closing())
        await finish(server)
        return out

    assert compare(scenario) == [b"got 100000", True, False, True]


def test_drain_waits_while_the_peer_does_not_read(compare: Any) -> None:
    async def scenario(api: SimpleNamespace) -> list[Any]:
        release = asyncio.Event()
        got = asyncio.Event()
        total = 0

        async def handler(r: Any, w: Any) -> None:
            nonlocal total
            await release.wait()
            while data := await r.read(1 << 20):
                total += len(data)
            got.set()
            w.close()

        server = await api.start_server(handler, HOST, 0)
        r, w = await api.open_connection(HOST, port_of(server))
        chunk = b"z" * 65536
        blocked = False
        sent = 0
        for _ in range(2000):  # far more than the kernel buffers hold
            w.write(chunk)
            sent += len(chunk)
            try:
                await asyncio.wait_for(w.drain(), 0.2)
            except asyncio.TimeoutError:
                blocked = True
                break
        release.set()
        await asyncio.wait_for(w.drain(), 10)  # resumes once the peer reads
        w.write_eof()
        await asyncio.wait_for(got.wait(), 10)
        await finish(server, w)
        return [blocked, total == sent]

    assert compare(scenario) == [True, True]


def test_drain_is_a_coroutine_to_asyncio(compare: Any) -> None:
    async def scenario(api: SimpleNamespace) -> list[Any]:
        server = await api.start_server(echo_handler, HOST, 0)
        r, w = await api.open_connection(HOST, port_of(server))
        d = w.drain()
        out: list[Any] = [asyncio.iscoroutine(d), await d]
        out.append(await asyncio.create_task(w.drain()))
        out.append(await asyncio.gather(w.drain(), w.drain()))
        out.append(await asyncio.wait_for(w.drain(), 5))
        await finish(server, w)
        return out

    assert compare(scenario) == [True, None, None, [None, None], None]


def test_cancelling_a_waiting_drain(compare: Any) -> None:
    async def scenario(api: SimpleNamespace) -> list[Any]:
        release = asyncio.Event()

        async def handler(r: Any, w: Any) -> None:
            await release.wait()
            while await r.read(1 << 20):
                pass
            w.close()

        server = await api.start_server(handler, HOST, 0)
        r, w = await api.open_connection(HOST, port_of(server))
        out: list[Any] = []
        for _ in range(200):
            w.write(b"q" * (1 << 20))
            task = asyncio.create_task(w.drain())
            await asyncio.sleep(0.02)
            if not task.done():
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    out.append("cancelled")
                break
            await task
        release.set()
        out.append(await asyncio.wait_for(w.drain(), 10))
        w.close()
        await finish(server, w)
        return out

    assert compare(scenario) == ["cancelled", None]


def test_drain_raises_after_close(run: Any, api: SimpleNamespace, request: Any) -> None:
    if api.name == "asyncio" and request.node.callspec.params["run"] == "uvloop":
        pytest.skip("uvloop's own streams do not run connection_lost within drain's sleep(0)")

    async def main() -> None:
        server = await api.start_server(echo_handler, HOST, 0)
        r, w = await api.open_connection(HOST, port_of(server))
        w.write(b"bye")
        w.close()
        with pytest.raises(ConnectionResetError, match="Connection lost"):
            await w.drain()
        await finish(server, w)

    run(main())


def test_drain_raises_once_the_peer_is_gone(run: Any) -> None:
    # Not compared: uvloop's own streams raise RuntimeError here (a write on a transport
    # it closed), the default loop's raise ConnectionError; polyio raises ConnectionError.
    async def main() -> None:
        async def handler(r: Any, w: Any) -> None:
            w.close()

        server = await polyio.start_server(handler, HOST, 0)
        r, w = await polyio.open_connection(HOST, port_of(server))
        assert await asyncio.wait_for(r.read(), 5) == b""
        with pytest.raises(ConnectionError):
            for _ in range(100):
                w.write(b"x" * 1000)
                await w.drain()
                await polyio.sleep(0.01)
        await finish(server, w)

    run(main())


def test_connection_refused(compare: Any) -> None:
    async def scenario(api: SimpleNamespace) -> list[Any]:
        server = await api.start_server(echo_handler, HOST, 0)
        port = port_of(server)
        server.close()
        await server.wait_closed()
        try:
            await api.open_connection(HOST, port)
        except OSError as e:
            return [type(e).__name__, e.errno]
        return ["connected"]

    assert compare(scenario)[0] == "ConnectionRefusedError"


def test_cancelled_read_loses_no_bytes(compare: Any) -> None:
    async def scenario(api: SimpleNamespace) -> list[Any]:
        gate = asyncio.Event()

        async def handler(r: Any, w: Any) -> None:
            await gate.wait()
            w.write(b"first")
            await w.drain()
            await r.read()
            w.close()

        server = await api.start_server(handler, HOST, 0)
        r, w = await api.open_connection(HOST, port_of(server))
        out: list[Any] = []
        try:
            await asyncio.wait_for(r.readexactly(5), 0.05)
        except asyncio.TimeoutError:
            out.append("timeout")
        task = asyncio.ensure_future(r.read(100))
        await asyncio.sleep(0.01)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            out.append("cancelled")
        try:
            async with asyncio.timeout(0.02):
                await r.readline()
        except TimeoutError:
            out.append("timeout2")
        gate.set()
        out.append(await r.readexactly(5))
        await finish(server, w)
        return out

    assert compare(scenario) == ["timeout", "cancelled", "timeout2", b"first"]


def test_concurrent_reads_are_refused(compare: Any) -> None:
    async def scenario(api: SimpleNamespace) -> list[Any]:
        server = await api.start_server(echo_handler, HOST, 0)
        r, w = await api.open_connection(HOST, port_of(server))
        first = asyncio.ensure_future(r.read(10))
        await asyncio.sleep(0.01)
        out: list[Any] = []
        try:
            await r.read(10)
        except RuntimeError as e:
            out.append(str(e))
        w.write(b"hi")
        out.append(await first)
        await finish(server, w)
        return out

    compare(scenario)


def test_extra_info_and_errors_on_bad_arguments(compare: Any) -> None:
    async def scenario(api: SimpleNamespace) -> list[Any]:
        server = await api.start_server(echo_handler, HOST, 0)
        port = port_of(server)
        r, w = await api.open_connection(HOST, port)
        peer = w.get_extra_info("peername")
        sock = w.get_extra_info("sockname")
        out: list[Any] = [peer == (HOST, port), sock[0], type(sock[1]).__name__]
        out.append(w.get_extra_info("nonsense", "dflt"))
        for bad in ("text", 5):
            try:
                w.write(bad)
            except TypeError:
                out.append("TypeError")
        for call in (lambda: r.readexactly(-1), lambda: r.readuntil(b"")):
            try:
                await call()
            except ValueError:
                out.append("ValueError")
        w.write_eof()
        try:
            w.write(b"late")
        except RuntimeError:
            out.append("RuntimeError")
        await finish(server, w)
        return out

    assert compare(scenario)[0] is True


def test_echo_many_connections_large_messages(run: Any, api: SimpleNamespace) -> None:
    async def main() -> None:
        server = await api.start_server(echo_handler, HOST, 0)
        port = port_of(server)

        async def client(i: int) -> None:
            r, w = await api.open_connection(HOST, port)
            for n in (1, 1000, 100_000, 1_000_000):
                msg = bytes((i + j) % 251 for j in range(256)) * (n // 256 + 1)
                msg = msg[:n]
                w.write(msg)
                await w.drain()
                assert await r.readexactly(n) == msg
            w.close()
            await w.wait_closed()

        await asyncio.gather(*(client(i) for i in range(8)))
        async with server:
            pass

    run(main())


def test_writes_in_one_iteration_go_out_as_one_core_write(run: Any) -> None:
    async def main() -> None:
        server = await polyio.start_server(echo_handler, HOST, 0)
        r, w = await polyio.open_connection(HOST, port_of(server))
        from polyio._api import _driver

        drv = _driver()
        await polyio.sleep(0.01)
        _, before, _, _ = drv.stats()
        for i in range(50):
            w.write(b"%02d" % i)
        got = await r.readexactly(100)
        _, after, _, _ = drv.stats()
        assert got == b"".join(b"%02d" % i for i in range(50))
        # One write completion for the 50 writes (plus reads and the server's echo write).
        assert after - before < 15, after - before
        await finish(server, w)

    run(main())


def test_server_api(run: Any, api: SimpleNamespace) -> None:
    async def main() -> None:
        server = await api.start_server(echo_handler, HOST, 0, start_serving=False)
        assert not server.is_serving()
        await server.start_serving()
        assert server.is_serving()
        port = port_of(server)
        assert server.sockets[0].getsockname() == (HOST, port)
        task = asyncio.ensure_future(server.serve_forever())
        r, w = await api.open_connection(HOST, port)
        w.write(b"ping")
        assert await r.readexactly(4) == b"ping"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not server.is_serving()
        w.close()
        await server.wait_closed()
        with pytest.raises(ConnectionRefusedError):
            await api.open_connection(HOST, port)

    run(main())


def test_reader_sees_reset_as_connection_reset_error(compare: Any) -> None:
    async def scenario(api: SimpleNamespace) -> list[Any]:
        async def handler(r: Any, w: Any) -> None:
            await r.read(1)
            w.transport.abort()

        server = await api.start_server(handler, HOST, 0)
        r, w = await api.open_connection(HOST, port_of(server))
        w.write(b"xx")  # unread byte at abort -> RST
        out: list[Any] = []
        try:
            while await r.read(100):
                pass
            out.append("eof")
        except ConnectionResetError as e:
            out.append(("reset", e.errno))
        await finish(server, w)
        return out

    compare(scenario)


def test_names_resolve_and_unknown_names_raise_gaierror(compare: Any) -> None:
    async def scenario(api: SimpleNamespace) -> list[Any]:
        server = await api.start_server(echo_handler, HOST, 0)
        r, w = await api.open_connection("localhost", port_of(server))
        w.write(b"by name")
        out: list[Any] = [await r.readexactly(7)]
        await finish(server, w)
        try:
            await api.open_connection("nonexistent.invalid", 80)
        except OSError as e:
            out += [type(e).__name__, e.errno]
        return out

    assert compare(scenario) == [b"by name", "gaierror", -2]


CANCELLERS = cancellers(0.01)
READS = {
    "read": lambda r: r.read(100),
    "readline": lambda r: r.readline(),
    "readexactly": lambda r: r.readexactly(10),
    "readuntil": lambda r: r.readuntil(b"!"),
}


@pytest.mark.parametrize("how", sorted(CANCELLERS))
@pytest.mark.parametrize("op", sorted(READS))
def test_cancelled_read_keeps_reading_ahead(run: Any, op: str, how: str) -> None:
    """A cancelled read call stops waiting; the stream goes on reading ahead, as asyncio's
    StreamReader does, so bytes (and EOF, and resets) that come next are seen at once."""

    async def main() -> None:
        peer: list[asyncio.StreamWriter] = []

        async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            peer.append(w)
            await r.read()
            w.close()

        # asyncio's own server: the driver's in-flight count is the client's alone.
        server = await asyncio.start_server(handler, HOST, 0)
        r, w = await polyio.open_connection(HOST, port_of(server))
        from polyio._api import _driver

        drv = _driver()
        await asyncio.sleep(0.01)
        assert drv.stats()[3] == 1  # reading ahead, as asyncio's StreamReader
        await CANCELLERS[how](READS[op](r))
        await asyncio.sleep(0.01)
        assert drv.stats()[3] == 1 and r._waiter is None  # still reading ahead
        peer[0].write(b"0123456789!\n")
        for _ in range(500):
            if r._c.buffered() == 12:
                break
            await asyncio.sleep(0.01)
        assert r._c.buffered() == 12  # read ahead, before any read call
        got = await asyncio.wait_for(READS[op](r), 5)
        assert got in (b"0123456789!\n", b"0123456789", b"0123456789!")
        await finish(server, w)

    run(main())


def test_read_resolved_then_cancelled_puts_its_bytes_back(run: Any) -> None:
    async def main() -> None:
        # A plain blocking socket as the peer: its send is in our receive queue on return.
        with socket.create_server((HOST, 0)) as listener:
            r, w = await polyio.open_connection(HOST, listener.getsockname()[1])
            peer, _ = listener.accept()
        from polyio._api import _driver

        drv = _driver()
        task = asyncio.ensure_future(r.readexactly(4))
        await asyncio.sleep(0.01)
        peer.sendall(b"data")
        drv.run()  # the add_reader callback: resolves the read's future with b"data"
        fut = task._fut_waiter  # type: ignore[attr-defined]
        resolved = fut.done() and not fut.cancelled() and fut.result() == b"data"
        task.cancel()  # before the task ran: the result it would have had is not lost
        with pytest.raises(asyncio.CancelledError):
            await task
        assert r._c.buffered() == 4
        assert await r.read(100) == b"data"
        w.close()
        peer.close()
        await w.wait_closed()
        assert resolved

    run(main())


def test_partial_data_before_a_timeout_comes_with_the_next_read(compare: Any) -> None:
    async def scenario(api: SimpleNamespace) -> list[Any]:
        gate = asyncio.Event()

        async def handler(r: Any, w: Any) -> None:
            w.write(b"12345")
            await gate.wait()
            w.write(b"67890")
            await r.read()
            w.close()

        server = await api.start_server(handler, HOST, 0)
        r, w = await api.open_connection(HOST, port_of(server))
        out: list[Any] = []
        for _ in range(2):
            try:
                await asyncio.wait_for(r.readexactly(10), 0.05)
            except asyncio.TimeoutError:
                out.append("timeout")
        gate.set()
        out.append(await r.readexactly(10))
        await finish(server, w)
        return out

    assert compare(scenario) == ["timeout", "timeout", b"1234567890"]


def test_write_keeps_what_it_was_given(compare: Any) -> None:
    # Large bytes go out by reference, small ones and mutable buffers are copied: either
    # way the peer gets exactly what was written, in order, even when the caller changes a
    # bytearray right after write() or the kernel takes only part of a write at once.
    async def scenario(api: SimpleNamespace) -> list[Any]:
        got: asyncio.Queue[bytes] = asyncio.Queue()

        async def handler(r: Any, w: Any) -> None:
            await got.put(await r.read())
            w.close()

        server = await api.start_server(handler, HOST, 0)
        r, w = await api.open_connection(HOST, port_of(server))
        want = bytearray()
        mutable = bytearray(b"m" * 5000)
        w.write(mutable)
        want += mutable
        mutable[:] = b"X" * 5000  # after write(): must not be what is sent
        for i in range(200):
            piece = bytes([i % 251]) * (1 << (i % 18))  # 1 B .. 128 KiB
            w.write(piece)
            want += piece
            if i % 7 == 0:
                w.writelines([b"small", memoryview(b"view" * 2000), piece])
                want += b"small" + b"view" * 2000 + piece
                await w.drain()
        w.write_eof()
        data = await asyncio.wait_for(got.get(), 20)
        await finish(server, w)
        return [len(data) == len(want), data == want]

    # uvloop's own transport sends a bytearray changed after write() (it keeps a reference
    # when the kernel does not take it at once): compare with asyncio's loop.
    assert compare(scenario, uvloop_reference=False) == [True, True]
