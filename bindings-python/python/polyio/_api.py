"""The public API: asyncio's names and behaviour over polyio's native driver and connection.

The buffer logic (StreamReader's buffer, write buffering, water marks) lives in Rust
(``polyio._polyio.Conn``); these classes are thin coroutine wrappers so that ``create_task``,
``wait_for`` and ``asyncio.timeout`` see ordinary coroutines.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Optional, TypeVar, Union

from polyio._polyio import DEFAULT_LIMIT, Conn, Driver

_T = TypeVar("_T")
_P = TypeVar("_P", bound=asyncio.BaseProtocol)

# polyio's status code for a cancelled operation.
_CANCELED = -125

_tls = threading.local()


def _driver(loop: Optional[asyncio.AbstractEventLoop] = None) -> Driver:
    """The polyio driver of `loop` (the running loop by default), created on first use."""
    if loop is None:
        loop = asyncio.get_running_loop()
    d: Optional[Driver] = getattr(_tls, "last", None)
    if d is not None and d.loop is loop:
        return d
    drivers: dict[int, Driver] = getattr(_tls, "drivers", None) or {}
    _tls.drivers = drivers
    # Drivers of loops that closed since: cancel their operations, close their sockets.
    for key, old in list(drivers.items()):
        if old.loop.is_closed():
            old.close()
            del drivers[key]
    d = drivers.get(id(loop))
    if d is None or d.loop is not loop:
        d = Driver(loop)
        d.start()
        drivers[id(loop)] = d
    _tls.last = d
    return d


async def _connect(drv: Driver, host: str, port: int) -> int:
    fut, user_data = drv.connect(host, port)
    try:
        return await fut  # type: ignore[no-any-return]
    except asyncio.CancelledError:
        if fut.done() and not fut.cancelled() and fut.exception() is None:
            # Connected before the cancel reached this task: do not leak the connection.
            drv.close_handle(fut.result())
        else:
            drv.cancel(user_data)  # cancels the core connect
        raise


def _check_host_port(host: Optional[str], port: Optional[int]) -> tuple[str, int]:
    if host is None or port is None:
        raise ValueError("host and port must be given")
    return str(host), int(port)


class StreamReader:
    """asyncio.StreamReader's API; the buffer and its logic are in Rust.

    Reading runs ahead of the caller (one core read in flight until ``2 * limit`` bytes are
    buffered, as asyncio's). Cancelling a waiting read (``task.cancel()``,
    ``asyncio.timeout``, ``asyncio.wait_for``) cancels the core read and loses no bytes:
    whatever arrived stays buffered, and the next read call resumes reading."""

    __slots__ = ("_c",)

    def __init__(self, conn: Conn) -> None:
        self._c = conn

    def __repr__(self) -> str:
        return f"<polyio.StreamReader buffered={self._c.buffered()} eof={self._c.at_eof()}>"

    async def read(self, n: int = -1) -> bytes:
        r = self._c.read(n)
        if r.__class__ is bytes:
            return r  # type: ignore[return-value]
        try:
            return await r  # type: ignore[no-any-return,misc]
        except asyncio.CancelledError:
            self._c._cancelled(r)  # type: ignore[arg-type]
            raise

    async def readline(self) -> bytes:
        r = self._c.readline()
        if r.__class__ is bytes:
            return r  # type: ignore[return-value]
        try:
            return await r  # type: ignore[no-any-return,misc]
        except asyncio.CancelledError:
            self._c._cancelled(r)  # type: ignore[arg-type]
            raise

    async def readexactly(self, n: int) -> bytes:
        r = self._c.readexactly(n)
        if r.__class__ is bytes:
            return r  # type: ignore[return-value]
        try:
            return await r  # type: ignore[no-any-return,misc]
        except asyncio.CancelledError:
            self._c._cancelled(r)  # type: ignore[arg-type]
            raise

    async def readuntil(self, separator: bytes = b"\n") -> bytes:
        r = self._c.readuntil(separator)
        if r.__class__ is bytes:
            return r  # type: ignore[return-value]
        try:
            return await r  # type: ignore[no-any-return,misc]
        except asyncio.CancelledError:
            self._c._cancelled(r)  # type: ignore[arg-type]
            raise

    def at_eof(self) -> bool:
        return self._c.at_eof()

    def exception(self) -> Optional[BaseException]:
        return self._c.exception()

    def __aiter__(self) -> StreamReader:
        return self

    async def __anext__(self) -> bytes:
        line = await self.readline()
        if line == b"":
            raise StopAsyncIteration
        return line


class StreamWriter:
    """asyncio.StreamWriter's API. `write` buffers; the buffer is flushed once per loop
    iteration with one vectored write; `drain` waits only above the high-water mark."""

    def __init__(self, conn: Conn, reader: Optional[StreamReader]) -> None:
        self._c = conn
        self._reader = reader
        # The hot calls go straight to Rust, without a Python frame.
        self.write = conn.write  # type: ignore[method-assign]
        self.writelines = conn.writelines  # type: ignore[method-assign,assignment]

    def __repr__(self) -> str:
        return f"<polyio.StreamWriter closing={self._c.is_closing()}>"

    @property
    def transport(self) -> Conn:
        return self._c

    def write(self, data: Union[bytes, bytearray, memoryview]) -> None:
        self._c.write(data)

    def writelines(self, data: Iterable[Union[bytes, bytearray, memoryview]]) -> None:
        self._c.writelines(data)

    def write_eof(self) -> None:
        self._c.write_eof()

    def can_write_eof(self) -> bool:
        return self._c.can_write_eof()

    def close(self) -> None:
        self._c.close()

    def is_closing(self) -> bool:
        return self._c.is_closing()

    async def wait_closed(self) -> None:
        r = self._c.wait_closed()
        if r is not None:
            await r

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._c.get_extra_info(name, default)

    async def drain(self) -> None:
        c = self._c
        if c.is_closing():
            # As asyncio: let a pending connection_lost run, so drain raises.
            await asyncio.sleep(0)
        r = c.drain()
        if r is not None:
            await r


async def open_connection(
    host: Optional[str] = None,
    port: Optional[int] = None,
    *,
    limit: int = DEFAULT_LIMIT,
) -> tuple[StreamReader, StreamWriter]:
    """Connects and returns a (StreamReader, StreamWriter) pair, as asyncio's."""
    drv = _driver()
    h = await _connect(drv, *_check_host_port(host, port))
    c = drv.stream(h, limit)
    reader = StreamReader(c)
    return reader, StreamWriter(c, reader)


async def create_connection(
    protocol_factory: Callable[[], _P],
    host: Optional[str] = None,
    port: Optional[int] = None,
) -> tuple[Conn, _P]:
    """Connects, calls `protocol_factory()`, and returns (transport, protocol)."""
    drv = _driver()
    h = await _connect(drv, *_check_host_port(host, port))
    protocol = protocol_factory()
    t = drv.transport(h, protocol)
    try:
        protocol.connection_made(t)  # type: ignore[arg-type]
    except BaseException:
        t.abort()
        raise
    t.start()
    return t, protocol


class _ServerSocket:
    """What `Server.sockets` holds: enough of a socket to ask for its address."""

    def __init__(self, drv: Driver, handle: int) -> None:
        self._drv = drv
        self._handle = handle

    def getsockname(self) -> Any:
        return self._drv.local_addr(self._handle)

    def __repr__(self) -> str:
        return f"<polyio listening socket {self.getsockname()}>"


class Server:
    """asyncio.Server's API over a polyio listener."""

    def __init__(self, drv: Driver, handle: int, on_connection: Callable[[int], None]) -> None:
        self._drv = drv
        self._loop: asyncio.AbstractEventLoop = drv.loop
        self._handle = handle
        self._on_connection = on_connection
        self._serving = False
        self._closed = False
        self._sockets = [_ServerSocket(drv, handle)]
        self._serving_forever_fut: Optional[asyncio.Future[None]] = None
        self._waiters: list[asyncio.Future[None]] = []

    def __repr__(self) -> str:
        return f"<polyio.Server sockets={self.sockets!r}>"

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def is_serving(self) -> bool:
        return self._serving

    @property
    def sockets(self) -> tuple[_ServerSocket, ...]:
        return () if self._closed else tuple(self._sockets)

    def _start(self) -> None:
        if self._serving or self._closed:
            return
        self._serving = True
        self._drv.accept(self._handle, self._accepted)

    def _accepted(self, handle: int, status: int) -> None:
        if self._closed:
            if status == 0:
                self._drv.close_handle(handle)
            return
        if status == _CANCELED:
            return
        if status == 0:
            try:
                self._on_connection(handle)
            except Exception as exc:
                self._loop.call_exception_handler(
                    {"message": "polyio: error setting up an accepted connection", "exception": exc}
                )
        else:
            from polyio._polyio import status_error

            self._loop.call_exception_handler(
                {"message": "polyio: accept failed", "exception": status_error(status)}
            )
        self._drv.accept(self._handle, self._accepted)

    async def start_serving(self) -> None:
        self._start()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._serving = False
        self._drv.close_handle(self._handle)
        fut = self._serving_forever_fut
        if fut is not None and not fut.done():
            fut.cancel()
        for w in self._waiters:
            if not w.done():
                w.set_result(None)
        self._waiters.clear()

    async def wait_closed(self) -> None:
        if self._closed:
            return
        w: asyncio.Future[None] = self._loop.create_future()
        self._waiters.append(w)
        await w

    async def serve_forever(self) -> None:
        if self._serving_forever_fut is not None:
            raise RuntimeError(f"server {self!r} is already being awaited on serve_forever()")
        if self._closed:
            raise RuntimeError(f"server {self!r} is closed")
        self._start()
        self._serving_forever_fut = self._loop.create_future()
        try:
            await self._serving_forever_fut
        except asyncio.CancelledError:
            try:
                self.close()
                await self.wait_closed()
            finally:
                raise
        finally:
            self._serving_forever_fut = None

    async def __aenter__(self) -> Server:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
        await self.wait_closed()


def _listen(
    drv: Driver, host: Optional[str], port: Optional[int], backlog: int, reuse_port: Optional[bool]
) -> int:
    return drv.listen(host or "0.0.0.0", int(port or 0), int(backlog), bool(reuse_port))


async def start_server(
    client_connected_cb: Callable[[StreamReader, StreamWriter], Optional[Awaitable[None]]],
    host: Optional[str] = None,
    port: Optional[int] = None,
    *,
    limit: int = DEFAULT_LIMIT,
    backlog: int = 100,
    reuse_port: Optional[bool] = None,
    start_serving: bool = True,
) -> Server:
    """Listens on host:port; calls `client_connected_cb(reader, writer)` per connection (a
    coroutine result becomes a task), as asyncio's start_server."""
    drv = _driver()
    loop = drv.loop
    if limit <= 0:
        raise ValueError("Limit cannot be <= 0")

    def on_connection(h: int) -> None:
        c = drv.stream(h, limit)
        reader = StreamReader(c)
        res = client_connected_cb(reader, StreamWriter(c, reader))
        if asyncio.iscoroutine(res):
            loop.create_task(res)

    server = Server(drv, _listen(drv, host, port, backlog, reuse_port), on_connection)
    if start_serving:
        server._start()
        await asyncio.sleep(0)
    return server


async def create_server(
    protocol_factory: Callable[[], asyncio.BaseProtocol],
    host: Optional[str] = None,
    port: Optional[int] = None,
    *,
    backlog: int = 100,
    reuse_port: Optional[bool] = None,
    start_serving: bool = True,
) -> Server:
    """Listens on host:port; each connection gets `protocol_factory()` and a transport, as
    asyncio's loop.create_server."""
    drv = _driver()

    def on_connection(h: int) -> None:
        protocol = protocol_factory()
        t = drv.transport(h, protocol)
        try:
            protocol.connection_made(t)  # type: ignore[arg-type]
        except BaseException:
            t.abort()
            raise
        t.start()

    server = Server(drv, _listen(drv, host, port, backlog, reuse_port), on_connection)
    if start_serving:
        server._start()
        await asyncio.sleep(0)
    return server


async def sleep(delay: float, result: _T = None) -> _T:  # type: ignore[assignment]
    """asyncio.sleep on a polyio timer; cancelling the task cancels the timer."""
    if delay <= 0:
        await asyncio.sleep(0)
        return result
    drv = _driver()
    fut, user_data = drv.sleep(delay, result)
    try:
        return await fut  # type: ignore[no-any-return]
    except asyncio.CancelledError:
        drv.cancel(user_data)
        raise
