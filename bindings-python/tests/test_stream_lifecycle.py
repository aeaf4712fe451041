"""What asyncio users rely on around a stream's life, each compared with asyncio's own
streams on the default loop and on uvloop: a failing ``client_connected_cb``, a writer
collected while open, a bad ``limit``, addresses after the close, and EOF or a reset noticed
after a cancelled read."""

from __future__ import annotations

import asyncio
import gc
import os
import socket
import struct
import threading
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import pytest

import polyio
from conftest import ASYNCIO, LOOPS, POLYIO, finish, port_of

HOST = "127.0.0.1"


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def warm_up(loop: str, api: SimpleNamespace) -> None:
    """Runs one dropped pair on a loop of this kind first, so fds a loop library keeps for
    the life of the process once it is first used (uvloop's) do not count as leaked."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with asyncio.Runner(loop_factory=LOOPS[loop]) as r:
            r.run(_drop_pairs(api, 1)())
        gc.collect()


async def until(cond: Callable[[], bool], limit: float = 5.0) -> bool:
    """Polls `cond` once per loop iteration (with a short sleep) until it holds or `limit`
    seconds pass; returns its last value. Not a timing assert: `limit` only bounds a hang."""
    loop = asyncio.get_running_loop()
    end = loop.time() + limit
    while not cond() and loop.time() < end:
        await asyncio.sleep(0.005)
    return cond()


def reset_on_close(w: Any) -> None:
    """Makes closing `w`'s socket send a RST (SO_LINGER with a zero timeout)."""
    s = w.get_extra_info("socket")
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


# ---- client_connected_cb that raises ----------------------------------------------------


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_client_connected_cb_that_raises_is_reported_and_closes(
    run: Callable[[Awaitable[Any]], Any], kind: str
) -> None:
    """asyncio's streams report a failed handler task through the loop's exception handler
    ("Unhandled exception in client_connected_cb", with the exception and the transport)
    and close the connection; polyio does that for a handler that raises at once too."""

    async def scenario(api: SimpleNamespace) -> list[Any]:
        loop = asyncio.get_running_loop()
        seen: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda _, ctx: seen.append(ctx))
        boom = ValueError("boom")

        def sync_cb(r: Any, w: Any) -> None:
            raise boom

        async def async_cb(r: Any, w: Any) -> None:
            await asyncio.sleep(0)
            raise boom

        server = await api.start_server(sync_cb if kind == "sync" else async_cb, HOST, 0)
        r, w = await api.open_connection(HOST, port_of(server))
        got = await asyncio.wait_for(r.read(), 5)  # EOF: the server closed the connection
        assert await until(lambda: bool(seen))
        ctx = seen[0]
        out = [
            got,
            ctx["message"],
            ctx["exception"] is boom,
            ctx["transport"].is_closing(),
            ctx["transport"].get_extra_info("sockname")[1] == port_of(server),
        ]
        await finish(server, w)
        return out

    expected = [b"", "Unhandled exception in client_connected_cb", True, True, True]
    if kind == "async":
        assert run(scenario(ASYNCIO)) == expected
    # asyncio (3.11-3.13) lets a sync callback's exception escape connection_made, where the
    # loop reports it as a failed callback and the connection stays open: polyio treats it
    # as it treats the task's.
    assert run(scenario(POLYIO)) == expected


def test_cancelled_client_connected_task_closes_the_connection(
    run: Callable[[Awaitable[Any]], Any],
) -> None:
    async def main() -> None:
        tasks: list[asyncio.Task[Any]] = []

        async def cb(r: Any, w: Any) -> None:
            tasks.append(asyncio.current_task())  # type: ignore[arg-type]
            await asyncio.sleep(3600)

        server = await polyio.start_server(cb, HOST, 0)
        r, w = await polyio.open_connection(HOST, port_of(server))
        assert await until(lambda: bool(tasks))
        tasks[0].cancel()
        assert await asyncio.wait_for(r.read(), 5) == b""
        await finish(server, w)

    run(main())


def test_server_keeps_the_writer_a_handler_drops(compare: Any) -> None:
    """asyncio's server protocol keeps its StreamWriter while the connection is open: a
    handler that returns without closing leaves the connection open, with no warning."""

    async def scenario(api: SimpleNamespace) -> list[Any]:
        peers: list[Any] = []

        def cb(r: Any, w: Any) -> None:
            peers.append((r, w.transport))  # the writer is dropped

        server = await api.start_server(cb, HOST, 0)
        r, w = await api.open_connection(HOST, port_of(server))
        assert await until(lambda: bool(peers))
        gc.collect()
        w.write(b"still there")
        got = await asyncio.wait_for(peers[0][0].readexactly(11), 5)
        w.close()
        await w.wait_closed()
        eof = await asyncio.wait_for(peers[0][0].read(), 5)
        peers[0][1].close()
        await asyncio.sleep(0.01)
        peers.clear()
        gc.collect()
        await finish(server)
        return [got, eof]

    assert compare(scenario) == [b"still there", b""]


# ---- a writer (or transport) collected while open -----------------------------------------


def _drop_pairs(api: SimpleNamespace, n: int) -> Callable[[], Awaitable[int]]:
    async def main() -> int:
        ended = 0

        async def handler(r: Any, w: Any) -> None:
            nonlocal ended
            await r.read()  # until the dropped client's close reaches the server
            w.close()
            ended += 1

        server = await api.start_server(handler, HOST, 0)
        for _ in range(n):
            r, w = await api.open_connection(HOST, port_of(server))
            w.write(b"x")
            del r, w
        gc.collect()
        assert await until(lambda: ended == n)
        await finish(server)
        return ended

    return main


@pytest.mark.parametrize("loop", sorted(LOOPS))
@pytest.mark.parametrize("which", ["asyncio", "polyio"])
def test_dropped_stream_writers_close_their_connections(loop: str, which: str) -> None:
    """50 pairs dropped while open: each writer's collection closes its connection with
    asyncio's ``ResourceWarning: unclosed <StreamWriter ...>``, and no fd is left open once
    ``asyncio.run`` returns."""
    api = POLYIO if which == "polyio" else ASYNCIO
    n = 50
    warm_up(loop, api)
    gc.collect()
    before = open_fds()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with asyncio.Runner(loop_factory=LOOPS[loop]) as r:
            assert r.run(_drop_pairs(api, n)()) == n
        gc.collect()
    unclosed = [
        str(w.message)
        for w in caught
        if issubclass(w.category, ResourceWarning) and "StreamWriter" in str(w.message)
    ]
    assert len(unclosed) == n, unclosed[:3]
    assert all(m.startswith("unclosed <StreamWriter transport=") for m in unclosed)
    assert open_fds() == before


class Quiet(asyncio.Protocol):
    """A protocol that does not keep its transport."""


@pytest.mark.parametrize("loop", sorted(LOOPS))
@pytest.mark.parametrize("which", ["asyncio", "polyio"])
def test_transports_left_open_are_closed_with_the_loop(loop: str, which: str) -> None:
    """Transports nobody closed (here 50 protocols that dropped theirs, both ends) are closed
    when ``asyncio.run`` ends, with a ResourceWarning for each, as asyncio's are: no fd stays
    open after it returns."""
    api = POLYIO if which == "polyio" else ASYNCIO
    n = 50

    async def main() -> None:
        server = await api.create_server(Quiet, HOST, 0)
        for _ in range(n):
            await api.create_connection(Quiet, HOST, port_of(server))
        gc.collect()
        server.close()
        await server.wait_closed()

    warm_up(loop, api)
    gc.collect()
    before = open_fds()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with asyncio.Runner(loop_factory=LOOPS[loop]) as r:
            r.run(main())
        gc.collect()
    unclosed = [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert len(unclosed) >= n
    assert open_fds() == before


@pytest.mark.parametrize("loop", sorted(LOOPS))
@pytest.mark.parametrize("which", ["asyncio", "polyio"])
def test_async_generator_cleanup_at_shutdown_still_has_its_streams(loop: str, which: str) -> None:
    """``asyncio.run`` closes the async generators left open before it closes the loop;
    their cleanup may still write, drain and close polyio streams (polyio closes its runtime
    only after them)."""
    api = POLYIO if which == "polyio" else ASYNCIO
    n = 6
    received: list[bytes] = []
    listener = socket.create_server((HOST, 0))

    def serve() -> None:
        conns = [listener.accept()[0] for _ in range(n)]
        for c in conns:
            with c:
                data = b""
                while chunk := c.recv(65536):
                    data += chunk
                received.append(data)

    async def session(i: int) -> AsyncIterator[None]:
        r, w = await api.open_connection(HOST, listener.getsockname()[1])
        try:
            w.write(b"hello%d," % i)
            yield
        finally:
            w.write(b"bye")
            await w.drain()
            w.close()
            await w.wait_closed()

    gens: list[AsyncIterator[None]] = []
    errors: list[Any] = []

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _, ctx: errors.append(ctx))
        for i in range(n):
            g = session(i)
            await g.__anext__()
            gens.append(g)  # left open: asyncio.run closes them

    th = threading.Thread(target=serve)
    th.start()
    try:
        with asyncio.Runner(loop_factory=LOOPS[loop]) as r:
            r.run(main())
    finally:
        th.join(10)
        listener.close()
    assert errors == []
    assert sorted(received) == [b"hello%d,bye" % i for i in range(n)]


# ---- limit <= 0 -----------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [0, -1])
def test_open_connection_rejects_a_limit_before_connecting(compare: Any, limit: int) -> None:
    async def scenario(api: SimpleNamespace) -> list[Any]:
        accepted = 0

        def cb(r: Any, w: Any) -> None:
            nonlocal accepted
            accepted += 1
            w.close()

        server = await asyncio.start_server(cb, HOST, 0)  # asyncio's: counts connections
        before = open_fds()
        out: list[Any] = []
        try:
            await api.open_connection(HOST, port_of(server), limit=limit)
        except Exception as e:
            out += [type(e).__name__, str(e)]
        await asyncio.sleep(0.05)
        out += [accepted, open_fds() - before]
        await finish(server)
        return out

    assert compare(scenario) == ["ValueError", "Limit cannot be <= 0", 0, 0]


@pytest.mark.parametrize("limit", [0, -1])
def test_open_unix_connection_rejects_a_limit_before_connecting(
    compare: Any, limit: int, tmp_path: Any
) -> None:
    path = str(tmp_path / "s")

    async def scenario(api: SimpleNamespace) -> list[Any]:
        accepted = 0

        def cb(r: Any, w: Any) -> None:
            nonlocal accepted
            accepted += 1
            w.close()

        server = await asyncio.start_unix_server(cb, path)
        before = open_fds()
        out: list[Any] = []
        opener = polyio.open_unix_connection if api is POLYIO else asyncio.open_unix_connection
        try:
            await opener(path, limit=limit)
        except Exception as e:
            out += [type(e).__name__, str(e)]
        await asyncio.sleep(0.05)
        out += [accepted, open_fds() - before]
        await finish(server)
        return out

    assert compare(scenario) == ["ValueError", "Limit cannot be <= 0", 0, 0]


@pytest.mark.parametrize("limit", [0, -1])
def test_start_server_rejects_a_limit_before_listening(
    run: Callable[[Awaitable[Any]], Any], limit: int, tmp_path: Any
) -> None:
    """asyncio's start_server listens and then fails every connection (its StreamReader
    raises in the protocol factory); polyio says so before it binds anything."""

    async def main() -> None:
        before = open_fds()
        with pytest.raises(ValueError, match="Limit cannot be <= 0"):
            await polyio.start_server(lambda r, w: None, HOST, 0, limit=limit)
        with pytest.raises(ValueError, match="Limit cannot be <= 0"):
            await polyio.start_unix_server(lambda r, w: None, str(tmp_path / "s"), limit=limit)
        assert open_fds() == before
        assert not (tmp_path / "s").exists()

    run(main())


# ---- addresses after the close ----------------------------------------------------------


@pytest.mark.parametrize("end", ["close", "reset"])
def test_extra_info_keeps_connection_time_addresses(compare: Any, end: str) -> None:
    """Asked only after the peer closed (or reset) the connection, ``peername`` and
    ``sockname`` are still those of connection time, and ``socket`` is still given."""

    async def scenario(api: SimpleNamespace) -> list[Any]:
        client_addr: list[Any] = []

        async def handler(r: Any, w: Any) -> None:
            client_addr.append(w.get_extra_info("peername"))
            await r.readexactly(1)  # the client has its connection
            if end == "reset":
                reset_on_close(w)
            w.close()

        server = await api.start_server(handler, HOST, 0)
        r, w = await api.open_connection(HOST, port_of(server))
        w.write(b"!")
        try:
            await asyncio.wait_for(r.read(), 5)
        except ConnectionResetError:
            pass
        await asyncio.sleep(0.01)
        out = [
            w.get_extra_info("peername") == (HOST, port_of(server)),
            w.get_extra_info("sockname") == client_addr[0],
            w.get_extra_info("socket") is not None,
        ]
        await finish(server, w)
        return out

    # uvloop's transports forget their socket once closed; asyncio's keep it.
    assert compare(scenario, uvloop_reference=False) == [True, True, True]


def test_protocol_transport_keeps_addresses_after_eof(compare: Any) -> None:
    async def scenario(api: SimpleNamespace) -> list[Any]:
        lost = asyncio.get_running_loop().create_future()

        class P(asyncio.Protocol):
            def connection_lost(self, exc: Any) -> None:
                lost.set_result(None)

        async def handler(r: Any, w: Any) -> None:
            w.close()

        server = await api.start_server(handler, HOST, 0)
        t, _ = await api.create_connection(P, HOST, port_of(server))
        await asyncio.wait_for(lost, 5)  # eof_received returned None: the transport closed
        out = [t.is_closing(), t.get_extra_info("peername") == (HOST, port_of(server))]
        await finish(server)
        return out

    assert compare(scenario) == [True, True]


# ---- EOF and resets after a cancelled read --------------------------------------------------


@pytest.mark.parametrize("end", ["eof", "reset"])
def test_end_after_a_cancelled_read_is_noticed(compare: Any, end: str) -> None:
    """A read that timed out does not stop the stream from reading ahead: the peer's EOF
    (``at_eof()``) or reset (``exception()``) is seen as soon as it comes, not at the next
    read call."""

    async def scenario(api: SimpleNamespace) -> list[Any]:
        gate = asyncio.Event()

        async def handler(r: Any, w: Any) -> None:
            await gate.wait()
            w.write(b"bye")
            if end == "reset":
                await w.drain()
                await asyncio.sleep(0.01)
                reset_on_close(w)
            w.close()

        server = await api.start_server(handler, HOST, 0)
        r, w = await api.open_connection(HOST, port_of(server))
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(r.read(10), 0.02)
        gate.set()
        if end == "eof":
            seen = await until(lambda: r._eof)
            out = [seen, len(r._buffer), r.at_eof(), await r.read(), r.at_eof()]
        else:
            seen = await until(lambda: r.exception() is not None)
            out = [seen, type(r.exception()).__name__]
        await finish(server, w)
        return out

    expected = {"eof": [True, 3, False, b"bye", True], "reset": [True, "ConnectionResetError"]}
    assert compare(scenario) == expected[end]


# ---- private attributes libraries read --------------------------------------------------


def test_reader_and_writer_internals_libraries_read(compare: Any) -> None:
    """What libraries read of asyncio's streams' internals: redis-py reads
    ``StreamReader._buffer`` (its length) to tell whether a pooled connection has unread
    replies; others read ``_eof``, ``_limit``, ``_exception``, ``_waiter``, ``_transport``
    and ``StreamWriter._transport`` / ``_loop``."""

    async def scenario(api: SimpleNamespace) -> list[Any]:
        async def handler(r: Any, w: Any) -> None:
            w.write(b"hello\nworld")
            await w.drain()
            await r.read()
            w.close()

        server = await api.start_server(handler, HOST, 0)
        r, w = await api.open_connection(HOST, port_of(server), limit=1000)
        assert await until(lambda: len(r._buffer) == 11)
        out: list[Any] = [
            type(r._buffer).__name__,
            bytes(r._buffer),
            bool(r._buffer),
            r._eof,
            r._limit,
            r._exception,
            r._waiter,
            r._transport is w.transport,
            w._transport is w.transport,
            w._loop is asyncio.get_running_loop(),
        ]
        await r.readline()
        out.append(bytes(r._buffer))
        task = asyncio.ensure_future(r.readexactly(100))
        await asyncio.sleep(0.01)
        out.append(isinstance(r._waiter, asyncio.Future))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        out.append(r._waiter is None or r._waiter.cancelled())
        await finish(server, w)
        return out

    assert compare(scenario) == [
        "bytearray", b"hello\nworld", True, False, 1000, None, None, True, True, True,
        b"world", True, True,
    ]  # fmt: skip



def test_writer_protocol_connection_lost_fails_the_reader(
    run: Callable[[Awaitable[Any]], Any],
) -> None:
    """``writer._protocol.connection_lost(exc)`` makes the reader raise `exc`, with nothing
    reported to the loop: what CPython's test_streams (``test_open_connection_error``)
    checks of asyncio's streams. (Not run on asyncio's here: its transport stays open
    under a protocol told it was lost, which that test papers over.)"""

    async def main() -> None:
        seen: list[Any] = []
        asyncio.get_running_loop().set_exception_handler(lambda _, ctx: seen.append(ctx))

        async def handler(r: Any, w: Any) -> None:
            await r.read()
            w.close()

        server = await polyio.start_server(handler, HOST, 0)
        r, w = await polyio.open_connection(HOST, port_of(server))
        w._protocol.connection_lost(ZeroDivisionError())
        with pytest.raises(ZeroDivisionError):
            await asyncio.wait_for(r.read(), 5)
        w.close()
        await asyncio.sleep(0.01)
        assert seen == []
        await finish(server)

    run(main())
