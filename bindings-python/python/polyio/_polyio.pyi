"""The native half of polyio (``polyio._polyio``). Internal: use the ``polyio`` package.

``Driver`` is one event loop's polyio runtime, driven from the loop's own thread;
``Conn`` is one connection (TCP or Unix): an asyncio transport, and in stream mode the buffer behind
``polyio.StreamReader`` / ``polyio.StreamWriter``.
"""

import asyncio
import socket
from collections.abc import Callable, Coroutine, Generator, Iterable
from typing import Any, Literal, Optional, Union, final

__all__ = [
    "Driver",
    "Conn",
    "Drain",
    "TransportSocket",
    "Datagram",
    "status_error",
    "DEFAULT_LIMIT",
    "STATUS_CODES",
    "STATUS_CANCELED",
    "__version__",
]

__version__: str
DEFAULT_LIMIT: int
STATUS_CODES: dict[str, int]
"""Every polyio status code by its name as Node spells it (``"ECONNREFUSED"``,
``"POLYIO_SHUTDOWN"``); errno-based codes are ``-errno``."""
STATUS_CANCELED: int
"""The status code of a cancelled operation."""

_Buffer = Union[bytes, bytearray, memoryview]

def status_error(code: int, context: Optional[str] = None) -> BaseException:
    """The exception polyio raises for a (negative) status code: the OSError subclass asyncio
    would raise, with ``errno`` set."""

_AddrInfo = tuple[int, int, int, str, Union[tuple[str, int], tuple[str, int, int, int]]]

@final
class Driver:
    """One event loop's polyio runtime. Create with ``Driver(loop)``, then ``start()``."""

    def __new__(cls, event_loop: asyncio.AbstractEventLoop) -> Driver: ...
    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop this driver serves."""
    def start(self) -> None:
        """Registers the backend fd with ``loop.add_reader``."""
    def fileno(self) -> int:
        """The backend fd (-1 once closed)."""
    def backend(self) -> str:
        """``"epoll"`` or ``"thread"`` (the portable fallback)."""
    def run(self) -> None:
        """One bounded turn that settles every ready completion (the add_reader callback)."""
    def flush(self) -> None:
        """Flushes buffered writes (scheduled once per loop iteration)."""
    def _on_timer(self) -> None: ...
    def stats(self) -> tuple[int, int, int, int]:
        """(inline completions, completions, turns, operations in flight)."""
    def connect(
        self,
        host: str,
        port: int,
        happy_eyeballs_delay: Optional[float] = None,
        interleave: int = 0,
        family: int = 0,
    ) -> tuple[asyncio.Future[int], int]:
        """Starts a connect: (future of the connection handle, user_data for ``cancel``). A
        name's addresses (of ``family``, 0 for any) are tried one after another, or with
        Happy Eyeballs when ``happy_eyeballs_delay`` (seconds) is given, reordered by
        ``interleave``, as asyncio's arguments of those names."""
    def getaddrinfo(
        self,
        host: Optional[str],
        service: Optional[str],
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> tuple[asyncio.Future[list[_AddrInfo]], int]:
        """Starts a name lookup (``host`` already IDNA-encoded): (future of
        ``(family, type, proto, canonname, sockaddr)`` tuples, user_data for ``cancel``). A
        host polyio's host rule rejects raises ``OSError(EINVAL)``."""
    def unix_connect(self, path: bytes) -> tuple[asyncio.Future[int], int]:
        """Starts a connect to the Unix socket at ``path`` (a leading NUL: an abstract name):
        (future of the connection handle, user_data for ``cancel``)."""
    def unix_listen(self, path: bytes, backlog: int, cleanup: bool) -> int:
        """Binds the Unix socket ``path`` and listens; returns the listener handle. Closing
        it removes the socket file unless ``cleanup`` is false."""
    def sleep(self, delay: float, result: Any) -> tuple[asyncio.Future[Any], int]:
        """Starts a timer: (future resolving to ``result``, user_data for ``cancel``)."""
    def fs_backend(self) -> str:
        """The file backend: "uring" or "threads" (chosen now if no file op did yet)."""
    def fs_open(self, path: bytes, flags: int, mode: int) -> tuple[asyncio.Future[int], int]:
        """Opens a file; the future resolves to its handle."""
    def fs_read(self, handle: int, n: int, offset: int) -> tuple[asyncio.Future[bytes], int]:
        """Reads up to n bytes at offset (-1: the file position)."""
    def fs_try_pread(self, handle: int, n: int, offset: int) -> Optional[bytes]:
        """The n bytes at offset now when the page cache holds them all, else None."""
    def fs_write(self, handle: int, data: bytes, offset: int) -> tuple[asyncio.Future[int], int]:
        """Writes data at offset (-1: the file position); resolves to the count."""
    def fs_fsync(self, handle: int, datasync: bool) -> tuple[asyncio.Future[None], int]: ...
    def fs_fstat(self, handle: int) -> tuple[asyncio.Future[tuple[int, ...]], int]: ...
    def fs_stat(self, path: bytes) -> tuple[asyncio.Future[tuple[int, ...]], int]: ...
    def fs_truncate(self, handle: int, len: int) -> tuple[asyncio.Future[None], int]: ...
    def fs_close(self, handle: int) -> tuple[asyncio.Future[None], int]: ...
    def fs_read_file(self, path: bytes) -> tuple[asyncio.Future[bytes], int]: ...
    def fs_write_file(
        self, path: bytes, data: bytes, flags: int, mode: int
    ) -> tuple[asyncio.Future[int], int]: ...
    def cancel(self, user_data: int) -> None:
        """Cancels the core operation submitted with ``user_data``."""
    def socket(self, handle: int) -> Optional[TransportSocket]:
        """The socket of a handle (a listener's, for ``Server.sockets``), or None once closed."""
    def listen(
        self, host: str, port: int, backlog: int, reuse_port: bool, ipv6_only: bool
    ) -> int:
        """Binds and listens; returns the listener handle. ``ipv6_only`` sets ``IPV6_V6ONLY``
        on an IPv6 listener, as asyncio's create_server does."""
    def adopt_stream(self, fd: int) -> int:
        """Takes over the connected stream socket ``fd`` (TCP or Unix; its owner gave it up
        with ``socket.detach()``): returns its connection handle. The fd is closed on an
        error."""
    def adopt_listener(self, fd: int) -> int:
        """Takes over the listening stream socket ``fd`` (TCP or Unix; its owner gave it up
        with ``socket.detach()``): returns its listener handle. The fd is closed on an
        error."""
    def accept(self, listener: int, callback: Callable[[int, int], None]) -> int:
        """Submits one accept; ``callback(handle, status)`` gets its outcome."""
    def close_handle(self, handle: int) -> None:
        """Closes a listener (or an unwrapped connection)."""
    def local_addr(self, handle: int) -> Any:
        """The handle's local address, as ``socket.getsockname()`` gives it."""
    def stream(self, handle: int, limit: int) -> Conn:
        """Wraps a connection in stream mode (reading starts at once)."""
    def transport(self, handle: int, protocol: asyncio.BaseProtocol) -> Conn:
        """Wraps a connection as ``protocol``'s transport (reading starts with ``start()``)."""
    def udp_endpoint(
        self,
        protocol: asyncio.BaseProtocol,
        local: tuple[str, int],
        remote: Optional[tuple[str, int]],
        connect: bool,
        reuse_port: bool,
        allow_broadcast: bool,
        address: Any,
    ) -> Datagram:
        """Opens a UDP socket bound to ``local`` (an IP literal and port) for ``protocol``;
        with ``remote``, sends without an address go there (connected with ``connect``);
        ``address`` is what ``sendto`` compares against. Reading starts with ``_start()``."""
    def close(self) -> None:
        """Cancels everything, closes every socket, unregisters from the loop."""
    def is_closed(self) -> bool: ...

@final
class Conn:
    """A TCP or Unix connection: asyncio's transport API, plus the stream-reader operations (each
    returns ``bytes`` when the buffer can answer now, else a future of them).

    Its ``__class__`` attribute is ``polyio.Transport``, a subclass of ``asyncio.Transport``,
    so that ``isinstance(conn, asyncio.Transport)`` holds."""

    def write(self, data: _Buffer) -> None:
        """Buffers ``data``; the loop iteration's flush sends it. A ``bytes`` of 16 KiB or more
        with nothing buffered or queued goes to the kernel at once; only what the kernel does
        not take is buffered. A smaller ``bytes`` with nothing ahead of it is held, not
        copied, until the flush."""
    def writelines(self, list_of_data: Iterable[_Buffer]) -> None: ...
    def write_eof(self) -> None:
        """Shuts down the write side once the buffer is flushed."""
    def can_write_eof(self) -> bool: ...
    def close(self) -> None:
        """Stops reading; closes once the write buffer is flushed."""
    def abort(self) -> None:
        """Closes now, discarding buffered data."""
    def is_closing(self) -> bool: ...
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def _deliver_stash(self) -> None: ...
    def is_reading(self) -> bool: ...
    def get_write_buffer_size(self) -> int: ...
    def set_write_buffer_limits(self, high: Optional[int] = None, low: Optional[int] = None) -> None: ...
    def get_write_buffer_limits(self) -> tuple[int, int]: ...
    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """``"peername"``, ``"sockname"`` and ``"socket"`` (a :class:`TransportSocket`);
        anything else, or any of these once the connection is closed, gives ``default``."""
    def get_protocol(self) -> Optional[asyncio.BaseProtocol]: ...
    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None: ...
    def start(self) -> None:
        """Begins reading (after ``protocol.connection_made``)."""
    def handle(self) -> int: ...
    def read(self, n: int = -1) -> Union[bytes, asyncio.Future[bytes]]: ...
    def readline(self) -> Union[bytes, asyncio.Future[bytes]]: ...
    def readexactly(self, n: int) -> Union[bytes, asyncio.Future[bytes]]: ...
    def readuntil(self, separator: Optional[_Buffer] = None) -> Union[bytes, asyncio.Future[bytes]]: ...
    def _cancelled(self, fut: asyncio.Future[bytes]) -> None:
        """The task awaiting ``fut`` was cancelled: the call stops waiting (reading ahead goes
        on, as asyncio's); bytes ``fut`` was resolved with go back to the buffer."""
    def at_eof(self) -> bool: ...
    def exception(self) -> Optional[BaseException]: ...
    def buffered(self) -> int:
        """Bytes buffered for the reader."""
    def unread(self) -> bytearray:
        """A copy of the unread bytes (``StreamReader._buffer``)."""
    def waiter(self) -> Optional[asyncio.Future[bytes]]:
        """The future a waiting read call awaits (``StreamReader._waiter``)."""
    def eof_received(self) -> bool:
        """No more bytes will come (``StreamReader._eof``)."""
    def stream_limit(self) -> int:
        """The stream's limit (``StreamReader._limit``)."""
    def driver(self) -> Optional[Driver]:
        """The driver the connection was made on."""
    def lose(self, exc: Optional[BaseException] = None) -> None:
        """Ends the stream as a lost connection does: with ``exc``, reads raise it; without,
        they see EOF. The socket is closed."""
    def keep_writer(self, writer: Any) -> None:
        """Keeps a server connection's StreamWriter alive until the connection is lost."""
    def drain(self) -> Drain:
        """StreamWriter.drain: an awaitable that ends at once when the write buffer is at or
        below the high-water mark, else once it drops below the low-water mark. Awaiting it
        raises the reader's error, or ConnectionResetError once the connection is lost."""
    def wait_closed(self) -> Optional[asyncio.Future[None]]: ...

@final
class Drain(Coroutine[Any, Any, None]):
    """What ``StreamWriter.drain()`` returns: await it, or hand it to ``create_task``."""
    def __await__(self) -> Generator[Any, None, None]: ...
    def __iter__(self) -> Drain: ...
    def __next__(self) -> Any: ...
    def send(self, value: Any) -> Any: ...
    def throw(self, typ: Any, val: Any = None, _tb: Any = None) -> Any: ...
    def close(self) -> None: ...

@final
class TransportSocket:
    """A polyio connection's or listener's socket, the part of asyncio's ``TransportSocket``
    polyio offers. polyio keeps owning the socket: nothing here closes it."""

    @property
    def family(self) -> socket.AddressFamily:
        """``socket.AF_INET``, ``socket.AF_INET6`` or ``socket.AF_UNIX``."""
    @property
    def type(self) -> socket.SocketKind:
        """``socket.SOCK_STREAM`` (``socket.SOCK_DGRAM`` for a UDP socket)."""
    @property
    def proto(self) -> int:
        """``socket.IPPROTO_TCP`` (``IPPROTO_UDP`` for a UDP socket, 0 for a Unix one)."""
    def fileno(self) -> int:
        """The socket's fd (owned by polyio: do not close it), or -1 once closed."""
    def getsockname(self) -> Any:
        """The local address, as ``socket.getsockname()`` gives it."""
    def getpeername(self) -> Any:
        """The peer's address, as ``socket.getpeername()`` gives it."""
    def getsockopt(self, level: int, optname: int, buflen: int = ...) -> Any:
        """``socket.getsockopt`` on the underlying socket."""
    def setsockopt(self, level: int, optname: int, value: Any) -> None:
        """``socket.setsockopt`` on the underlying socket."""

@final
class Datagram:
    """A UDP endpoint's transport: asyncio's ``DatagramTransport`` API. Its ``__class__``
    attribute is ``polyio.DatagramTransport``, a subclass of ``asyncio.DatagramTransport``.
    Made by ``polyio.create_datagram_endpoint``."""

    def _start(self) -> None:
        """Starts receiving (after ``protocol.connection_made``)."""
    def sendto(self, data: Union[bytes, bytearray, memoryview], addr: Any = None) -> None:
        """Sends ``data`` as one datagram to ``addr`` (or the remote address)."""
    def close(self) -> None: ...
    def abort(self) -> None: ...
    def _call_connection_lost(self, exc: Optional[BaseException]) -> None: ...
    def is_closing(self) -> bool: ...
    def get_write_buffer_size(self) -> int: ...
    def set_write_buffer_limits(self, high: Optional[int] = None, low: Optional[int] = None) -> None: ...
    def get_write_buffer_limits(self) -> tuple[int, int]: ...
    def get_extra_info(self, name: str, default: Any = None) -> Any: ...
    def get_protocol(self) -> Optional[asyncio.BaseProtocol]: ...
    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None: ...
