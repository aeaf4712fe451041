"""The public API: asyncio's names and behaviour over polyio's native driver and connection.

The buffer logic (StreamReader's buffer, write buffering, water marks) lives in Rust
(``polyio._polyio.Conn``); these classes are thin coroutine wrappers so that ``create_task``,
``wait_for`` and ``asyncio.timeout`` see ordinary coroutines.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import operator
import socket
import threading
import warnings
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Sequence
from typing import Any, Optional, TypeVar, Union

from polyio._polyio import DEFAULT_LIMIT, STATUS_CANCELED, Conn, Driver, TransportSocket

_T = TypeVar("_T")
_P = TypeVar("_P", bound=asyncio.BaseProtocol)

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
            _closers().pop(key, None)
    d = drivers.get(id(loop))
    if d is None or d.loop is not loop:
        d = Driver(loop)
        d.start()
        drivers[id(loop)] = d
        _close_at_shutdown(d)
    _tls.last = d
    return d


def _closers() -> dict[int, AsyncGenerator[None, None]]:
    closers: Optional[dict[int, AsyncGenerator[None, None]]] = getattr(_tls, "closers", None)
    if closers is None:
        closers = _tls.closers = {}
    return closers


async def _closer(d: Driver) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        try:
            await _other_generators_closed()
        finally:
            d.close()
        # Polyio used again on this loop (after its shutdown began) gets a new driver.
        key = id(d.loop)
        drivers: dict[int, Driver] = getattr(_tls, "drivers", None) or {}
        if drivers.get(key) is d:
            del drivers[key]
        if getattr(_tls, "last", None) is d:
            _tls.last = None
        _closers().pop(key, None)


async def _other_generators_closed() -> None:
    """Waits until the other async generators ``shutdown_asyncgens`` is closing with this
    one (each in a task of its own) are closed: their cleanup may still use polyio."""
    me = asyncio.current_task()
    while True:
        others = [
            t
            for t in asyncio.all_tasks()
            if t is not me and type(t.get_coro()).__name__ == "async_generator_athrow"
        ]
        if not others:
            return
        await asyncio.wait(others)


def _close_at_shutdown(d: Driver) -> None:
    """Closes `d` (its sockets and its own fds) when its loop shuts down: an async
    generator the running loop tracks, which ``loop.shutdown_asyncgens()`` closes, as
    ``asyncio.run`` and ``asyncio.Runner`` call it before ``loop.close()`` (on asyncio's
    loops and uvloop alike). A loop closed without it still has its driver closed at the
    next use of polyio on this thread, or when the driver is collected."""
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        return
    if running is not d.loop:
        return
    agen = _closer(d)
    _closers()[id(d.loop)] = agen  # the loop tracks it weakly
    with warnings.catch_warnings():
        # After shutdown_asyncgens the loop warns about a new generator: it is not tracked
        # then, and the driver is closed at the next use instead.
        warnings.simplefilter("ignore", ResourceWarning)
        step = agen.asend(None)
    try:
        step.send(None)
    except StopIteration:
        pass  # suspended at its yield, as intended


def _close_driver(loop: asyncio.AbstractEventLoop) -> None:
    """Closes `loop`'s driver, if it has one (cancels its operations, closes its sockets):
    for a loop that is closing."""
    drivers: dict[int, Driver] = getattr(_tls, "drivers", None) or {}
    d = drivers.get(id(loop))
    if d is not None and d.loop is loop:
        del drivers[id(loop)]
        if getattr(_tls, "last", None) is d:
            _tls.last = None
        _closers().pop(id(loop), None)
        d.close()


def _unsupported(name: str, value: object) -> NotImplementedError:
    return NotImplementedError(
        f"polyio does not support {name}={value!r} (asyncio's own loop does; polyio would "
        "otherwise ignore it)"
    )


def _check_family(family: int) -> int:
    if family not in (socket.AF_UNSPEC, socket.AF_INET, socket.AF_INET6):
        raise _unsupported("family", family)
    return int(family)


def _literal_family(host: str) -> Optional[int]:
    """AF_INET or AF_INET6 for an IP literal (brackets allowed), None for a name."""
    try:
        ip = ipaddress.ip_address(host[1:-1] if host.startswith("[") else host)
    except ValueError:
        return None
    return socket.AF_INET if ip.version == 4 else socket.AF_INET6


def _check_connect_args(
    ssl: Any,
    family: int,
    proto: int,
    flags: int,
    sock: Any,
    local_addr: Any,
    server_hostname: Any,
    ssl_handshake_timeout: Any,
    ssl_shutdown_timeout: Any,
    happy_eyeballs_delay: Optional[float],
    interleave: Optional[int],
) -> tuple[int, Optional[float], int]:
    """asyncio's create_connection arguments polyio honours, or NotImplementedError (or
    asyncio's own ValueError) for the ones it does not; returns the family, the Happy
    Eyeballs delay and the interleave count (1 when a delay is given without one, as
    asyncio)."""
    if ssl:
        raise _unsupported("ssl", ssl)
    for name, value in (
        ("server_hostname", server_hostname),
        ("ssl_handshake_timeout", ssl_handshake_timeout),
        ("ssl_shutdown_timeout", ssl_shutdown_timeout),
    ):
        if value is not None:
            raise ValueError(f"{name} is only meaningful with ssl")
    for name, value in (("sock", sock), ("local_addr", local_addr)):
        if value is not None:
            raise _unsupported(name, value)
    if proto not in (0, socket.IPPROTO_TCP):
        raise _unsupported("proto", proto)
    if flags:
        raise _unsupported("flags", flags)
    if happy_eyeballs_delay is not None and interleave is None:
        interleave = 1
    return _check_family(family), happy_eyeballs_delay, int(interleave or 0)


async def _connect(
    drv: Driver,
    host: str,
    port: int,
    family: int = 0,
    happy_eyeballs_delay: Optional[float] = None,
    interleave: int = 0,
) -> int:
    """Connects to host:port and returns the handle. A name's addresses (restricted to
    `family` when given) are tried by the core: one after another, or with Happy Eyeballs
    (RFC 8305) when `happy_eyeballs_delay` is given, as asyncio's arguments say."""
    lit = _literal_family(host)
    if lit is None:
        host = host.encode("idna").decode("ascii")  # as asyncio's getaddrinfo encodes it
    if lit is None or not family or lit == family:
        return await _connect_one(drv, host, port, happy_eyeballs_delay, interleave, family)
    # A literal of another family: resolve as asyncio does (it fails, or maps the address).
    infos = await getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM)
    errors: list[OSError] = []
    for info in infos:
        try:
            return await _connect_one(drv, str(info[4][0]), port)
        except OSError as e:
            errors.append(e)
    if not errors:
        raise OSError("getaddrinfo() returned empty list")
    if len(errors) == 1 or len({str(e) for e in errors}) == 1:
        raise errors[0]
    raise OSError(f"Multiple exceptions: {', '.join(str(e) for e in errors)}")


async def _connect_one(
    drv: Driver,
    host: str,
    port: int,
    happy_eyeballs_delay: Optional[float] = None,
    interleave: int = 0,
    family: int = 0,
) -> int:
    try:
        fut, user_data = drv.connect(host, port, happy_eyeballs_delay, interleave, family)
    except OSError as e:
        if e.errno == errno.EINVAL and port and _literal_family(host) is None:
            # A host polyio's host rule rejects: getaddrinfo(3) finds no such name either.
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None
        raise
    try:
        return await fut
    except asyncio.CancelledError:
        if fut.done() and not fut.cancelled() and fut.exception() is None:
            # Connected before the cancel reached this task: do not leak the connection.
            drv.close_handle(fut.result())
        else:
            drv.cancel(user_data)  # cancels the core connect
        raise


_AddrInfo = tuple[
    socket.AddressFamily,
    socket.SocketKind,
    int,
    str,
    Union[tuple[str, int], tuple[str, int, int, int]],
]


async def getaddrinfo(
    host: Union[str, bytes, None],
    port: Union[str, bytes, int, None],
    *,
    family: int = 0,
    type: int = 0,
    proto: int = 0,
    flags: int = 0,
) -> list[_AddrInfo]:
    """``loop.getaddrinfo``: looks ``host`` and ``port`` up as ``socket.getaddrinfo`` does,
    on polyio's pool of lookup threads (the loop never blocks), and returns the same list
    of ``(family, type, proto, canonname, sockaddr)`` tuples. Failures raise
    ``socket.gaierror`` with asyncio's errno (``EAI_NONAME`` for an unknown name or a
    malformed host, ``EAI_AGAIN`` for a temporary failure). Cancelling the awaiting task
    cancels the lookup."""
    if host is None:
        h: Optional[str] = None
    elif isinstance(host, str):
        h = host.encode("idna").decode("ascii")  # as socket.getaddrinfo encodes it
    elif isinstance(host, (bytes, bytearray)):
        h = bytes(host).decode("ascii", "replace")
    else:
        raise TypeError(f"getaddrinfo() argument 1 must be string or None, not {host!r}")
    if port is None:
        service: Optional[str] = None
    elif isinstance(port, int):
        service = str(port)
    elif isinstance(port, (str, bytes, bytearray)):
        service = port if isinstance(port, str) else bytes(port).decode("ascii", "replace")
    else:
        raise OSError("Int or String expected")
    drv = _driver()
    try:
        fut, user_data = drv.getaddrinfo(h, service, family, type, proto, flags)
    except OSError as e:
        if e.errno != errno.EINVAL:
            raise
        # A host polyio's host rule rejects (empty, malformed, too long), or neither host
        # nor port: getaddrinfo(3) finds no such name either.
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None
    try:
        infos = await fut
    except asyncio.CancelledError:
        drv.cancel(user_data)
        raise
    except socket.gaierror:
        raise
    except OSError as e:
        if e.errno != errno.EINVAL:
            raise
        raise _gai_rejected(service, family, type, flags) from None
    return [
        (_enum(socket.AddressFamily, f), _enum(socket.SocketKind, t), p, c, sa)
        for f, t, p, c, sa in infos
    ]


_E = TypeVar("_E", socket.AddressFamily, socket.SocketKind)


def _enum(kind: type[_E], value: int) -> Any:
    """The enum member for `value`, or the int itself, as ``socket.getaddrinfo`` gives it."""
    try:
        return kind(value)
    except ValueError:
        return value


def _gai_rejected(service: Optional[str], family: int, type: int, flags: int) -> socket.gaierror:
    """The gaierror getaddrinfo(3) gave for hints or a service it rejects (the core reports
    them as one EINVAL)."""
    if family not in (socket.AF_UNSPEC, socket.AF_INET, socket.AF_INET6):
        return socket.gaierror(socket.EAI_FAMILY, "ai_family not supported")
    if service is not None and not service.isdigit():
        return socket.gaierror(socket.EAI_SERVICE, "Servname not supported for ai_socktype")
    if type not in (0, socket.SOCK_STREAM, socket.SOCK_DGRAM, socket.SOCK_RAW):
        return socket.gaierror(socket.EAI_SOCKTYPE, "ai_socktype not supported")
    return socket.gaierror(socket.EAI_BADFLAGS, "Bad value for ai_flags")


def _host_arg(host: str) -> str:
    """A host str to connect to or bind: no NUL (ValueError, as asyncio's check of an IP
    literal, ``socket.inet_pton``, says; a lookup of one is gaierror)."""
    if "\0" in host:
        raise ValueError("embedded null character")
    return host


def _backlog_arg(backlog: object) -> int:
    """A backlog as ``socket.listen`` takes it: an integer that fits a C int."""
    n = operator.index(backlog)  # type: ignore[arg-type]
    if n > 2**31 - 1:
        raise OverflowError("signed integer is greater than maximum")
    if n < -(2**31):
        raise OverflowError("signed integer is less than minimum")
    return n


def _port_arg(port: object, call: str = "connect") -> int:
    """A port as asyncio takes it: an int in 0-65535 (``OverflowError`` outside, worded as
    ``socket``'s `call` words it), or a str or bytes of digits (``socket.gaierror`` for a
    service name, ``OSError`` for any other type, as asyncio's getaddrinfo)."""
    if isinstance(port, (str, bytes)):
        digits = port.decode("ascii", "replace") if isinstance(port, bytes) else port
        digits.encode("utf-8")  # a lone surrogate: UnicodeEncodeError, as getaddrinfo
        if not (digits.isascii() and digits.isdigit()):
            raise socket.gaierror(socket.EAI_SERVICE, "Servname not supported for ai_socktype")
        port = int(digits)
    if not isinstance(port, int):
        raise OSError("Int or String expected")
    if not 0 <= port <= 65535:
        raise OverflowError(f"{call}(): port must be 0-65535.")
    return int(port)


def _check_host_port(host: Optional[str], port: Optional[int]) -> tuple[str, int]:
    if host is None or port is None:
        raise ValueError("host and port must be given")
    if not isinstance(host, str):
        raise TypeError(f"host must be a str, not {type(host).__name__}")
    return _host_arg(str(host)), _port_arg(port)


class Transport(asyncio.Transport):
    """What polyio's transports (``polyio._polyio.Conn``) report as their ``__class__``, so
    that ``isinstance(transport, asyncio.Transport)`` holds, as for unittest.mock's ``spec``.
    Not instantiated: the transport itself is the native class, whose methods (``write``
    first) are called with no Python frame in between."""

    __slots__ = ()


class StreamReader:
    """asyncio.StreamReader's API; the buffer and its logic are in Rust.

    Reading runs ahead of the caller (one core read in flight until ``2 * limit`` bytes are
    buffered, as asyncio's). Cancelling a waiting read (``task.cancel()``,
    ``asyncio.timeout``, ``asyncio.wait_for``) loses no bytes: whatever arrived stays
    buffered, and reading ahead goes on, so EOF and resets are noticed when they come."""

    __slots__ = ("_c",)

    def __init__(self, conn: Conn) -> None:
        self._c = conn

    def __repr__(self) -> str:
        info = ["StreamReader"]
        n = self._c.buffered()
        if n:
            info.append(f"{n} bytes")
        if self._c.eof_received():
            info.append("eof")
        if self._c.stream_limit() != DEFAULT_LIMIT:
            info.append(f"limit={self._c.stream_limit()}")
        waiter = self._c.waiter()
        if waiter is not None:
            info.append(f"waiter={waiter!r}")
        exc = self._c.exception()
        if exc is not None:
            info.append(f"exception={exc!r}")
        info.append(f"transport={self._c!r}")
        return "<{}>".format(" ".join(info))

    # What libraries read of asyncio's StreamReader internals (read-only here): redis-py
    # checks ``_buffer`` (``len``/``bool``) to tell whether a pooled connection has unread
    # replies (``can_read_destructive``, ``_socket_is_empty``).

    @property
    def _buffer(self) -> bytearray:
        """A copy of the unread bytes (asyncio's is the buffer itself; changing this copy
        changes nothing)."""
        return self._c.unread()

    @property
    def _eof(self) -> bool:
        return self._c.eof_received()

    @property
    def _exception(self) -> Optional[BaseException]:
        return self._c.exception()

    @property
    def _limit(self) -> int:
        return self._c.stream_limit()

    @property
    def _waiter(self) -> Optional[asyncio.Future[bytes]]:
        return self._c.waiter()

    @property
    def _transport(self) -> Conn:
        return self._c

    async def read(self, n: int = -1) -> bytes:
        r = self._c.read(n)
        if r.__class__ is bytes:
            return r
        try:
            return await r  # type: ignore[no-any-return,misc]
        except asyncio.CancelledError:
            self._c._cancelled(r)  # type: ignore[arg-type]
            raise

    async def readline(self) -> bytes:
        r = self._c.readline()
        if r.__class__ is bytes:
            return r
        try:
            return await r  # type: ignore[no-any-return,misc]
        except asyncio.CancelledError:
            self._c._cancelled(r)  # type: ignore[arg-type]
            raise

    async def readexactly(self, n: int) -> bytes:
        r = self._c.readexactly(n)
        if r.__class__ is bytes:
            return r
        try:
            return await r  # type: ignore[no-any-return,misc]
        except asyncio.CancelledError:
            self._c._cancelled(r)  # type: ignore[arg-type]
            raise

    async def readuntil(self, separator: bytes = b"\n") -> bytes:
        r = self._c.readuntil(separator)
        if r.__class__ is bytes:
            return r
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
    """asyncio.StreamWriter's API. `write` buffers (a large `bytes` with nothing buffered
    goes to the kernel at once); the buffer is flushed once per loop iteration, straight to
    the kernel, queuing a core write only for what the kernel did not take; `drain` waits
    only above the high-water mark."""

    def __init__(self, conn: Conn, reader: Optional[StreamReader]) -> None:
        self._c = conn
        self._reader = reader
        # The hot calls go straight to Rust, without a Python frame.
        self.write = conn.write  # type: ignore[method-assign]
        self.writelines = conn.writelines  # type: ignore[method-assign,assignment]
        self.drain = conn.drain  # type: ignore[method-assign]

    def __repr__(self) -> str:
        info = ["StreamWriter", f"transport={self._c!r}"]
        if self._reader is not None:
            info.append(f"reader={self._reader!r}")
        return "<{}>".format(" ".join(info))

    def __del__(self, warnings: Any = warnings) -> None:
        # As asyncio's StreamWriter: an open connection whose writer is collected is closed,
        # with a ResourceWarning (`warnings` bound early, for collection at exit).
        c = getattr(self, "_c", None)
        if c is None or c.is_closing():
            return
        loop = self._loop
        if loop is not None and loop.is_closed():
            warnings.warn("loop is closed", ResourceWarning)
        else:
            c.close()
            warnings.warn(f"unclosed {self!r}", ResourceWarning)

    @property
    def transport(self) -> Conn:
        return self._c

    # What libraries read of asyncio's StreamWriter internals.

    @property
    def _transport(self) -> Conn:
        return self._c

    @property
    def _loop(self) -> Optional[asyncio.AbstractEventLoop]:
        drv = self._c.driver()
        return None if drv is None else drv.loop

    @property
    def _protocol(self) -> _StreamProtocol:
        return _StreamProtocol(self._c)


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
        """Waits until the write buffer is below its low-water mark (at once when it is at or
        below the high-water mark); raises once the connection is lost. Instances use the
        native ``Conn.drain`` directly: a coroutine to asyncio, without a Python frame."""
        await self._c.drain()


class _StreamProtocol(asyncio.Protocol):
    """``StreamWriter._protocol``: asyncio's streams have a StreamReaderProtocol between the
    transport and the reader; polyio's have none, and this stands in for the part code
    outside asyncio calls: ``connection_lost(exc)`` ends the stream as a lost connection
    does (asyncio's own tests use it to fail a reader)."""

    __slots__ = ("_c",)

    def __init__(self, conn: Conn) -> None:
        self._c = conn

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self._c.lose(exc)


def _check_limit(limit: int) -> None:
    """asyncio's StreamReader check, made before any socket exists."""
    if limit <= 0:
        raise ValueError("Limit cannot be <= 0")


def _stream_pair(drv: Driver, h: int, limit: int) -> tuple[StreamReader, StreamWriter]:
    """Connection `h` as a (StreamReader, StreamWriter) pair, for every stream kind."""
    c = drv.stream(h, limit)
    reader = StreamReader(c)
    return reader, StreamWriter(c, reader)


def _attach_protocol(drv: Driver, h: int, protocol: asyncio.BaseProtocol) -> Conn:
    """Connection `h` as a transport of `protocol`: ``connection_made`` first (a raise aborts
    the transport and propagates), then reading starts, as asyncio orders them."""
    t = drv.transport(h, protocol)
    try:
        protocol.connection_made(t)  # type: ignore[arg-type]
    except BaseException:
        t.abort()
        raise
    t.start()
    return t


def _stream_acceptor(
    drv: Driver,
    client_connected_cb: Callable[[StreamReader, StreamWriter], Optional[Awaitable[None]]],
    limit: int,
) -> Callable[[int], None]:
    """What a streams server does with each accepted connection: calls
    `client_connected_cb(reader, writer)`, and a coroutine result becomes a task. The
    connection keeps its writer alive while it is open, as asyncio's protocol does. A
    callback that raises (or a task that fails) is reported to the loop's exception handler
    as asyncio reports it, and the connection is closed; so is it when the task is
    cancelled."""
    loop = drv.loop

    def on_connection(h: int) -> None:
        reader, writer = _stream_pair(drv, h, limit)
        transport = writer.transport
        transport.keep_writer(writer)
        try:
            res = client_connected_cb(reader, writer)
        except Exception as exc:
            _client_cb_failed(loop, exc, transport)
            return
        if asyncio.iscoroutine(res):

            def done(task: asyncio.Task[None]) -> None:
                if task.cancelled():
                    transport.close()
                    return
                exc = task.exception()
                if exc is not None:
                    _client_cb_failed(loop, exc, transport)

            loop.create_task(res).add_done_callback(done)

    return on_connection


def _client_cb_failed(loop: asyncio.AbstractEventLoop, exc: BaseException, transport: Conn) -> None:
    loop.call_exception_handler(
        {
            "message": "Unhandled exception in client_connected_cb",
            "exception": exc,
            "transport": transport,
        }
    )
    transport.close()


def _protocol_acceptor(
    drv: Driver, protocol_factory: Callable[[], asyncio.BaseProtocol]
) -> Callable[[int], None]:
    """What a protocol server does with each accepted connection: a new protocol from
    `protocol_factory()` on its transport."""

    def on_connection(h: int) -> None:
        _attach_protocol(drv, h, protocol_factory())

    return on_connection


async def _serve(
    drv: Driver, handles: Sequence[int], on_connection: Callable[[int], None], start_serving: bool
) -> Server:
    """A Server over `handles`, accepting at once when `start_serving` (as asyncio, which
    yields once so that the listening starts before the caller goes on)."""
    server = Server(drv, handles, on_connection)
    if start_serving:
        server._start()
        await asyncio.sleep(0)
    return server


async def open_connection(
    host: Optional[str] = None,
    port: Optional[int] = None,
    *,
    limit: int = DEFAULT_LIMIT,
    ssl: Any = None,
    family: int = 0,
    proto: int = 0,
    flags: int = 0,
    sock: Any = None,
    local_addr: Any = None,
    server_hostname: Any = None,
    ssl_handshake_timeout: Optional[float] = None,
    ssl_shutdown_timeout: Optional[float] = None,
    happy_eyeballs_delay: Optional[float] = None,
    interleave: Optional[int] = None,
) -> tuple[StreamReader, StreamWriter]:
    """Connects and returns a (StreamReader, StreamWriter) pair, as asyncio's.

    ``family`` (``AF_INET`` / ``AF_INET6``) restricts name resolution as in asyncio. A
    name's addresses are tried one after another, or with Happy Eyeballs (RFC 8305) when
    ``happy_eyeballs_delay`` is given (the next address starts after that many seconds, or
    at once when an attempt fails; the first to connect wins), with families alternating
    as ``interleave`` says, as asyncio does. The other asyncio arguments (``ssl``, ``sock``,
    ``local_addr``, ...) are not supported: a non-default value raises
    ``NotImplementedError``."""
    _check_limit(limit)
    fam, delay, inter = _check_connect_args(
        ssl, family, proto, flags, sock, local_addr, server_hostname,
        ssl_handshake_timeout, ssl_shutdown_timeout, happy_eyeballs_delay, interleave,
    )  # fmt: skip
    drv = _driver()
    h = await _connect(drv, *_check_host_port(host, port), fam, delay, inter)
    return _stream_pair(drv, h, limit)


async def create_connection(
    protocol_factory: Callable[[], _P],
    host: Optional[str] = None,
    port: Optional[int] = None,
    *,
    ssl: Any = None,
    family: int = 0,
    proto: int = 0,
    flags: int = 0,
    sock: Any = None,
    local_addr: Any = None,
    server_hostname: Any = None,
    ssl_handshake_timeout: Optional[float] = None,
    ssl_shutdown_timeout: Optional[float] = None,
    happy_eyeballs_delay: Optional[float] = None,
    interleave: Optional[int] = None,
) -> tuple[Conn, _P]:
    """Connects, calls `protocol_factory()`, and returns (transport, protocol), as
    ``loop.create_connection``. Arguments as for :func:`open_connection`."""
    fam, delay, inter = _check_connect_args(
        ssl, family, proto, flags, sock, local_addr, server_hostname,
        ssl_handshake_timeout, ssl_shutdown_timeout, happy_eyeballs_delay, interleave,
    )  # fmt: skip
    drv = _driver()
    h = await _connect(drv, *_check_host_port(host, port), fam, delay, inter)
    protocol = protocol_factory()
    return _attach_protocol(drv, h, protocol), protocol


class Server(asyncio.AbstractServer):
    """asyncio.Server's API over a polyio listener."""

    def __init__(
        self, drv: Driver, handles: Sequence[int], on_connection: Callable[[int], None]
    ) -> None:
        self._drv = drv
        self._loop: asyncio.AbstractEventLoop = drv.loop
        self._handles = list(handles)
        self._on_connection = on_connection
        self._serving = False
        self._closed = False
        self._sockets = [s for s in map(drv.socket, self._handles) if s is not None]
        self._serving_forever_fut: Optional[asyncio.Future[None]] = None
        self._waiters: list[asyncio.Future[None]] = []

    def __repr__(self) -> str:
        return f"<polyio.Server sockets={self.sockets!r}>"

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def is_serving(self) -> bool:
        return self._serving

    @property
    def sockets(self) -> tuple[TransportSocket, ...]:
        return () if self._closed else tuple(self._sockets)

    def _start(self) -> None:
        if self._serving or self._closed:
            return
        self._serving = True
        for listener in self._handles:
            self._accept(listener)

    def _accept(self, listener: int) -> None:
        self._drv.accept(listener, lambda h, status: self._accepted(listener, h, status))

    def _accepted(self, listener: int, handle: int, status: int) -> None:
        if self._closed:
            if status == 0:
                self._drv.close_handle(handle)
            return
        if status == STATUS_CANCELED:
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
        self._accept(listener)

    async def start_serving(self) -> None:
        self._start()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._serving = False
        for listener in self._handles:
            self._drv.close_handle(listener)
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


def _check_server_ssl(ssl: Any, ssl_handshake_timeout: Any, ssl_shutdown_timeout: Any) -> None:
    """asyncio's server-side checks of the TLS arguments, in its order: ``ssl`` must be a
    context or None (polyio supports none: NotImplementedError), and the TLS timeouts need
    ``ssl``."""
    if isinstance(ssl, bool):
        raise TypeError("ssl argument must be an SSLContext or None")
    if ssl is not None:
        raise _unsupported("ssl", ssl)
    for name, value in (
        ("ssl_handshake_timeout", ssl_handshake_timeout),
        ("ssl_shutdown_timeout", ssl_shutdown_timeout),
    ):
        if value is not None:
            raise ValueError(f"{name} is only meaningful with ssl")


def _check_server_args(
    family: int,
    flags: int,
    sock: Any,
    ssl: Any,
    reuse_address: Optional[bool],
    ssl_handshake_timeout: Any,
    ssl_shutdown_timeout: Any,
) -> int:
    """asyncio's create_server arguments polyio honours, or NotImplementedError (or
    asyncio's own errors) for the ones it does not; returns the family."""
    _check_server_ssl(ssl, ssl_handshake_timeout, ssl_shutdown_timeout)
    if sock is not None:
        raise _unsupported("sock", sock)
    if flags != socket.AI_PASSIVE:
        raise _unsupported("flags", flags)
    if reuse_address is not None and not reuse_address:
        raise _unsupported("reuse_address", reuse_address)  # polyio always sets SO_REUSEADDR
    return _check_family(family)


async def _listen(
    drv: Driver,
    host: Union[str, Sequence[str], None],
    port: Optional[int],
    family: int,
    backlog: int,
    reuse_port: Optional[bool],
) -> list[int]:
    """Binds as asyncio's create_server: host None or '' is every interface, IPv4 and IPv6
    (one listener each; IPv6 skipped where the machine has none); a sequence binds each
    host; a name binds every address it resolves to. IPv6 listeners are IPv6-only."""
    if host is None and port is None:
        raise ValueError("Neither host/port nor sock were specified")
    port = _port_arg(0 if port is None else port, "bind")
    if host is None or host == "":
        hosts: list[Optional[str]] = [None]
    elif isinstance(host, str) or not isinstance(host, Iterable):
        hosts = [host]
    else:
        hosts = [h for h in host]  # noqa: C416 - list() would trust a __len__ as a size
    for h in hosts:
        if h is not None and not isinstance(h, str):
            raise TypeError(f"host must be a str or a sequence of str, not {type(h).__name__}")
        if h is not None:
            _host_arg(h)
    addrs: list[tuple[str, bool]] = []  # (IP literal, skip if the family is unavailable)
    for h in hosts:
        if h is None or h == "":
            if family in (socket.AF_UNSPEC, socket.AF_INET):
                addrs.append(("0.0.0.0", False))
            if family in (socket.AF_UNSPEC, socket.AF_INET6):
                addrs.append(("::", family == socket.AF_UNSPEC))
            continue
        lit = _literal_family(h)
        if lit is not None and family in (socket.AF_UNSPEC, lit):
            addrs.append((h, False))
            continue
        infos = await getaddrinfo(
            h, port, family=family, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        addrs += [(str(info[4][0]), False) for info in infos]
    handles: list[int] = []
    try:
        for ip, optional in dict.fromkeys(addrs):
            try:
                handles.append(
                    drv.listen(ip, port, _backlog_arg(backlog), bool(reuse_port), True)
                )
            except OSError as e:
                if optional and e.errno not in (errno.EADDRINUSE, errno.EACCES):
                    continue  # no IPv6 on this machine: asyncio skips it too
                sa = (ip, port) if ":" not in ip else (ip, port, 0, 0)
                msg = (e.strerror or str(e)).lower()
                raise OSError(
                    e.errno, f"error while attempting to bind on address {sa!r}: {msg}"
                ) from None
    except BaseException:
        for listener in handles:
            drv.close_handle(listener)
        raise
    return handles


async def start_server(
    client_connected_cb: Callable[[StreamReader, StreamWriter], Optional[Awaitable[None]]],
    host: Union[str, Sequence[str], None] = None,
    port: Optional[int] = None,
    *,
    limit: int = DEFAULT_LIMIT,
    family: int = socket.AF_UNSPEC,
    flags: int = socket.AI_PASSIVE,
    sock: Any = None,
    backlog: int = 100,
    ssl: Any = None,
    reuse_address: Optional[bool] = None,
    reuse_port: Optional[bool] = None,
    ssl_handshake_timeout: Optional[float] = None,
    ssl_shutdown_timeout: Optional[float] = None,
    start_serving: bool = True,
) -> Server:
    """Listens on host:port; calls `client_connected_cb(reader, writer)` per connection (a
    coroutine result becomes a task), as asyncio's start_server.

    ``host`` None or ``''`` binds every interface, IPv4 and IPv6 (a listener each, as
    asyncio; with port 0 each gets its own port, as asyncio); a sequence binds each host.
    ``family`` (``AF_INET`` / ``AF_INET6``) restricts it. ``ssl``, ``sock`` and
    ``reuse_address=False`` are not supported: they raise ``NotImplementedError``."""
    _check_limit(limit)
    fam = _check_server_args(
        family, flags, sock, ssl, reuse_address, ssl_handshake_timeout, ssl_shutdown_timeout
    )
    drv = _driver()
    on_connection = _stream_acceptor(drv, client_connected_cb, limit)
    handles = await _listen(drv, host, port, fam, backlog, reuse_port)
    return await _serve(drv, handles, on_connection, start_serving)


async def create_server(
    protocol_factory: Callable[[], asyncio.BaseProtocol],
    host: Union[str, Sequence[str], None] = None,
    port: Optional[int] = None,
    *,
    family: int = socket.AF_UNSPEC,
    flags: int = socket.AI_PASSIVE,
    sock: Any = None,
    backlog: int = 100,
    ssl: Any = None,
    reuse_address: Optional[bool] = None,
    reuse_port: Optional[bool] = None,
    ssl_handshake_timeout: Optional[float] = None,
    ssl_shutdown_timeout: Optional[float] = None,
    start_serving: bool = True,
) -> Server:
    """Listens on host:port; each connection gets `protocol_factory()` and a transport, as
    asyncio's loop.create_server. Arguments as for :func:`start_server`."""
    fam = _check_server_args(
        family, flags, sock, ssl, reuse_address, ssl_handshake_timeout, ssl_shutdown_timeout
    )
    drv = _driver()
    on_connection = _protocol_acceptor(drv, protocol_factory)
    handles = await _listen(drv, host, port, fam, backlog, reuse_port)
    return await _serve(drv, handles, on_connection, start_serving)


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


class DatagramTransport(asyncio.DatagramTransport, asyncio.Transport):
    """What polyio's datagram transports (``polyio._polyio.Datagram``) report as their
    ``__class__``, so that ``isinstance(transport, asyncio.DatagramTransport)`` holds, as
    for ``Transport`` (and ``asyncio.Transport``, as for asyncio's own datagram transports,
    which share its flow control base). Not instantiated: the transport itself is the
    native class."""

    __slots__ = ()


def _unspecified(family: int) -> str:
    return "::" if family == socket.AF_INET6 else "0.0.0.0"


async def create_datagram_endpoint(
    protocol_factory: Callable[[], _P],
    local_addr: Optional[tuple[str, int]] = None,
    remote_addr: Optional[tuple[str, int]] = None,
    *,
    family: int = 0,
    proto: int = 0,
    flags: int = 0,
    reuse_port: Optional[bool] = None,
    allow_broadcast: Optional[bool] = None,
    sock: Any = None,
) -> tuple[asyncio.DatagramTransport, _P]:
    """A UDP endpoint, as ``loop.create_datagram_endpoint``: binds ``local_addr`` (an
    ephemeral port on the unspecified address when only ``remote_addr`` is given), connects
    to ``remote_addr`` (unless ``allow_broadcast``), and returns ``(transport, protocol)``
    once ``protocol.connection_made`` has run. Names are resolved with the loop's
    ``getaddrinfo``, each address tried in turn. ``sock`` and Unix sockets are not
    supported (``NotImplementedError``)."""
    if sock is not None:
        raise _unsupported("sock", sock)
    if proto not in (0, socket.IPPROTO_UDP):
        raise _unsupported("proto", proto)
    if flags:
        raise _unsupported("flags", flags)
    family = _check_family(family)
    drv = _driver()
    loop = drv.loop
    if not (local_addr or remote_addr):
        if family == 0:
            raise ValueError("unexpected address family")
        pairs: list[tuple[Any, Any]] = [((_unspecified(family), 0), None)]
    else:
        infos: dict[int, list[Optional[tuple[Any, ...]]]] = {}
        for idx, addr in ((0, local_addr), (1, remote_addr)):
            if addr is None:
                continue
            if not (isinstance(addr, tuple) and len(addr) == 2):
                raise TypeError("2-tuple is expected")
            found = await loop.getaddrinfo(
                addr[0], addr[1], family=family, type=socket.SOCK_DGRAM, proto=proto, flags=flags
            )
            if not found:
                raise OSError("getaddrinfo() returned empty list")
            for info in found:
                slots = infos.setdefault(int(info[0]), [None, None])
                if slots[idx] is None:
                    slots[idx] = info[4]
        pairs = []
        for fam, (local, remote) in infos.items():
            if (local_addr and local is None) or (remote_addr and remote is None):
                continue
            pairs.append((local if local is not None else (_unspecified(fam), 0), remote))
        if not pairs:
            raise ValueError("can not get address information")
    errors: list[OSError] = []
    protocol = protocol_factory()
    for local, remote in pairs:
        try:
            transport = drv.udp_endpoint(
                protocol,
                (str(local[0]), int(local[1])),
                (str(remote[0]), int(remote[1])) if remote is not None else None,
                not allow_broadcast,
                bool(reuse_port),
                bool(allow_broadcast),
                remote,
            )
        except OSError as e:
            errors.append(e)
            continue
        break
    else:
        raise errors[0]
    waiter: asyncio.Future[None] = loop.create_future()
    loop.call_soon(protocol.connection_made, transport)  # type: ignore[arg-type]
    loop.call_soon(transport._start)
    loop.call_soon(_set_result_unless_cancelled, waiter, None)
    try:
        await waiter
    except BaseException:
        transport.close()
        raise
    return transport, protocol  # type: ignore[return-value]


def _set_result_unless_cancelled(fut: asyncio.Future[None], result: None) -> None:
    if not fut.cancelled():
        fut.set_result(result)
