"""An event loop whose networking goes through polyio: uvloop's loop (or asyncio's own when
uvloop is not installed) with ``create_connection``, ``create_server``, their Unix twins,
``create_datagram_endpoint`` and ``getaddrinfo`` served by polyio, and every call polyio
does not support (``ssl=``, ``sock=``, ...) handed to the base loop unchanged.

    polyio.install()            # or: polyio.run(main()), or asyncio.Runner(loop_factory=polyio.new_event_loop)
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import sys
from asyncio import sslproto
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from typing import Any, Optional, TypeVar

from polyio import _api, _unix
from polyio._polyio import Driver

_T = TypeVar("_T")

try:
    import uvloop as _uvloop
except ImportError:  # pragma: no cover - uvloop is a test dependency
    _uvloop = None  # type: ignore[assignment]

_INET = (socket.AF_UNSPEC, socket.AF_INET, socket.AF_INET6)

# The keyword arguments polyio serves for each method; any other (a newer Python's
# `all_errors`, `keep_alive`, ...) sends the call to the base loop.
_CONNECT_KW = frozenset(
    "ssl family proto flags sock local_addr server_hostname ssl_handshake_timeout "
    "ssl_shutdown_timeout happy_eyeballs_delay interleave".split()
)
_SERVER_KW = frozenset(
    "family flags sock backlog ssl reuse_address reuse_port ssl_handshake_timeout "
    "ssl_shutdown_timeout start_serving".split()
)
_UNIX_CONNECT_KW = frozenset(
    "ssl sock server_hostname ssl_handshake_timeout ssl_shutdown_timeout".split()
)
_UNIX_SERVER_KW = frozenset(
    "sock backlog ssl ssl_handshake_timeout ssl_shutdown_timeout start_serving "
    "cleanup_socket".split()
)
_DATAGRAM_KW = frozenset("family proto flags reuse_port allow_broadcast sock".split())
_TLS_ONLY = ("server_hostname", "ssl_handshake_timeout", "ssl_shutdown_timeout")


def _is_port(port: object) -> bool:
    return (isinstance(port, int) and not isinstance(port, bool)) or (
        isinstance(port, str) and port.isdigit()
    )


def _no_tls(kw: Mapping[str, Any]) -> bool:
    """No TLS asked for, and none of the TLS-only arguments (the base loop raises for them)."""
    return not kw.get("ssl") and all(kw.get(k) is None for k in _TLS_ONLY)


def _serves_connection(host: object, port: object, kw: Mapping[str, Any]) -> bool:
    """Whether polyio serves ``create_connection(factory, host, port, **kw)``."""
    return (
        kw.keys() <= _CONNECT_KW
        and _no_tls(kw)
        and kw.get("sock") is None
        and kw.get("local_addr") is None
        and kw.get("proto", 0) in (0, socket.IPPROTO_TCP)
        and not kw.get("flags", 0)
        and kw.get("family", 0) in _INET
        and isinstance(host, str)
        and _is_port(port)
    )


def _serves_server(host: object, port: object, kw: Mapping[str, Any]) -> bool:
    """Whether polyio serves ``create_server(factory, host, port, **kw)``."""
    if isinstance(host, str) or host is None:
        hosts_ok = True
    elif isinstance(host, Iterable):
        hosts_ok = all(isinstance(h, str) for h in host)
    else:
        hosts_ok = False
    return (
        kw.keys() <= _SERVER_KW
        and kw.get("ssl") is None
        and all(kw.get(k) is None for k in _TLS_ONLY[1:])
        and kw.get("sock") is None
        and kw.get("flags", socket.AI_PASSIVE) == socket.AI_PASSIVE
        and kw.get("reuse_address") in (None, True)
        and kw.get("family", 0) in _INET
        and hosts_ok
        and (port is None or _is_port(port))
        and not (host is None and port is None)
    )


_STREAM_FAMILIES = (socket.AF_INET, socket.AF_INET6, socket.AF_UNIX)


def _stream_sock(sock: object) -> Optional[socket.socket]:
    """`sock` if polyio can take it over: a stream socket (TCP or Unix)."""
    if isinstance(sock, socket.socket) and sock.type == socket.SOCK_STREAM:
        if sock.family in _STREAM_FAMILIES and sock.fileno() >= 0:
            return sock
    return None


def _adopts_connection(sock: object, host: object, kw: Mapping[str, Any]) -> bool:
    """Whether polyio takes over ``create_connection(factory, sock=...)`` (or the Unix
    twin's): a connected stream socket, no TLS, no host or port (the base loop raises for
    those)."""
    s = _stream_sock(sock)
    if s is None or host is not None or not _no_tls(kw):
        return False
    try:
        s.getpeername()
    except OSError:
        return False  # not connected: the base loop's transport reports it as asyncio's does
    return True


def _adopts_server(sock: object, host: object, port: object, kw: Mapping[str, Any]) -> bool:
    """Whether polyio takes over ``create_server(factory, sock=...)`` (or the Unix
    twin's): a stream socket, no TLS, no host or port (the base loop raises for those)."""
    return (
        _stream_sock(sock) is not None
        and host is None
        and port is None
        and kw.get("ssl") is None
        and all(kw.get(k) is None for k in _TLS_ONLY[1:])
    )


def _is_path(path: object) -> bool:
    return isinstance(path, (str, bytes, os.PathLike))


def _serves_unix_connection(path: object, kw: Mapping[str, Any]) -> bool:
    return (
        kw.keys() <= _UNIX_CONNECT_KW
        and _no_tls(kw)
        and kw.get("sock") is None
        and _is_path(path)
    )


def _serves_unix_server(path: object, kw: Mapping[str, Any]) -> bool:
    return (
        kw.keys() <= _UNIX_SERVER_KW
        and kw.get("ssl") is None
        and all(kw.get(k) is None for k in _TLS_ONLY[1:])
        and kw.get("sock") is None
        and _is_path(path)
    )


def _is_inet_addr(addr: object) -> bool:
    return addr is None or (
        isinstance(addr, tuple)
        and len(addr) == 2
        and isinstance(addr[0], str)
        and _is_port(addr[1])
    )


def _serves_datagram(local_addr: object, remote_addr: object, kw: Mapping[str, Any]) -> bool:
    return (
        kw.keys() <= _DATAGRAM_KW
        and kw.get("sock") is None
        and kw.get("family", 0) in _INET
        and kw.get("proto", 0) in (0, socket.IPPROTO_UDP)
        and not kw.get("flags", 0)
        and _is_inet_addr(local_addr)
        and _is_inet_addr(remote_addr)
    )


def _adopt_connection(
    protocol_factory: Callable[[], asyncio.BaseProtocol], sock: socket.socket
) -> tuple[asyncio.BaseTransport, asyncio.BaseProtocol]:
    """A connected socket taken over by polyio (its socket object is detached: the
    transport owns the fd), with a new protocol on it."""
    drv = _api._driver()
    h = drv.adopt_stream(sock.detach())
    protocol = protocol_factory()
    return _api._attach_protocol(drv, h, protocol), protocol  # type: ignore[return-value]


class _AdoptedServer(_api.Server):
    """A server on a socket handed over with ``sock=``: polyio listens on a duplicate of
    its fd, and the caller's socket object stays usable (``getsockname()``, ...) until the
    server closes it, as asyncio's server does."""

    def __init__(
        self,
        drv: Driver,
        handle: int,
        on_connection: Callable[[int], None],
        sock: socket.socket,
    ) -> None:
        super().__init__(drv, [handle], on_connection)
        self._given = sock

    def close(self) -> None:
        super().close()
        self._given.close()


async def _adopt_server(
    protocol_factory: Callable[[], asyncio.BaseProtocol], kw: Mapping[str, Any]
) -> asyncio.AbstractServer:
    """A server on a socket taken over by polyio, listening with the backlog asked for (as
    asyncio calls ``listen`` on it)."""
    sock: socket.socket = kw["sock"]
    sock.listen(kw.get("backlog", 100))
    drv = _api._driver()
    h = drv.adopt_listener(os.dup(sock.fileno()))
    server = _AdoptedServer(drv, h, _api._protocol_acceptor(drv, protocol_factory), sock)
    if kw.get("start_serving", True):
        server._start()
        await asyncio.sleep(0)  # as _api._serve: listening before the caller goes on
    return server


class _Buffered(asyncio.Protocol):
    """A ``BufferedProtocol`` (asyncio's TLS protocol is one) behind a polyio transport,
    which delivers ``data_received``: each chunk is copied into the protocol's buffers."""

    def __init__(self, protocol: asyncio.BufferedProtocol) -> None:
        self._p = protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._p.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            buf = memoryview(self._p.get_buffer(len(view))).cast("B")
            if not buf:
                raise RuntimeError("get_buffer() returned an empty buffer")
            n = min(len(buf), len(view))
            buf[:n] = view[:n]
            self._p.buffer_updated(n)
            view = view[n:]

    def eof_received(self) -> Optional[bool]:
        return self._p.eof_received()

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self._p.connection_lost(exc)

    def pause_writing(self) -> None:
        self._p.pause_writing()

    def resume_writing(self) -> None:
        self._p.resume_writing()


class _PolyioNetworking(asyncio.AbstractEventLoop):
    """The methods polyio serves; mixed in front of a concrete loop class, whose own
    methods (reached through ``super()``) serve every call polyio does not."""

    _polyio_base = "asyncio"

    def __repr__(self) -> str:
        return (
            f"<polyio.Loop on {self._polyio_base} running={self.is_running()} "
            f"closed={self.is_closed()} debug={self.get_debug()}>"
        )

    async def create_connection(  # type: ignore[override]
        self,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        host: Any = None,
        port: Any = None,
        **kwargs: Any,
    ) -> tuple[asyncio.BaseTransport, asyncio.BaseProtocol]:
        if _serves_connection(host, port, kwargs):
            t, p = await _api.create_connection(protocol_factory, host, int(port), **kwargs)
            return t, p  # type: ignore[return-value]
        if kwargs.keys() <= _CONNECT_KW and _adopts_connection(kwargs.get("sock"), host, kwargs):
            return _adopt_connection(protocol_factory, kwargs["sock"])
        return await super().create_connection(protocol_factory, host, port, **kwargs)

    async def create_server(  # type: ignore[override]
        self,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        host: Any = None,
        port: Any = None,
        **kwargs: Any,
    ) -> asyncio.AbstractServer:
        if isinstance(host, Iterable) and not isinstance(host, (str, bytes, Sequence)):
            # An iterator of hosts, read once: by the check and the bind (appended one by one:
            # list() would trust a __len__ as an allocation size).
            host = [h for h in host]  # noqa: C416
        if _serves_server(host, port, kwargs):
            p = None if port is None else int(port)
            return await _api.create_server(protocol_factory, host, p, **kwargs)
        if kwargs.keys() <= _SERVER_KW and _adopts_server(kwargs.get("sock"), host, port, kwargs):
            return await _adopt_server(protocol_factory, kwargs)
        return await super().create_server(protocol_factory, host, port, **kwargs)

    async def create_unix_connection(  # type: ignore[override]
        self,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        path: Any = None,
        **kwargs: Any,
    ) -> tuple[asyncio.BaseTransport, asyncio.BaseProtocol]:
        if _serves_unix_connection(path, kwargs):
            t, p = await _unix.create_unix_connection(protocol_factory, path, **kwargs)
            return t, p  # type: ignore[return-value]
        if kwargs.keys() <= _UNIX_CONNECT_KW and _adopts_connection(kwargs.get("sock"), path, kwargs):
            return _adopt_connection(protocol_factory, kwargs["sock"])
        return await super().create_unix_connection(protocol_factory, path, **kwargs)

    async def create_unix_server(  # type: ignore[override]
        self,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        path: Any = None,
        **kwargs: Any,
    ) -> asyncio.AbstractServer:
        if _serves_unix_server(path, kwargs):
            return await _unix.create_unix_server(protocol_factory, path, **kwargs)
        if kwargs.keys() <= _UNIX_SERVER_KW and _adopts_server(kwargs.get("sock"), path, None, kwargs):
            return await _adopt_server(protocol_factory, kwargs)
        return await super().create_unix_server(protocol_factory, path, **kwargs)

    async def create_datagram_endpoint(  # type: ignore[override]
        self,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        local_addr: Any = None,
        remote_addr: Any = None,
        **kwargs: Any,
    ) -> tuple[asyncio.DatagramTransport, asyncio.BaseProtocol]:
        if _serves_datagram(local_addr, remote_addr, kwargs):
            return await _api.create_datagram_endpoint(
                protocol_factory, local_addr, remote_addr, **kwargs
            )
        return await super().create_datagram_endpoint(
            protocol_factory, local_addr, remote_addr, **kwargs
        )

    async def getaddrinfo(
        self,
        host: Any,
        port: Any,
        *,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> list[Any]:
        return await _api.getaddrinfo(
            host, port, family=family, type=type, proto=proto, flags=flags
        )

    async def start_tls(
        self,
        transport: Any,
        protocol: asyncio.BaseProtocol,
        sslcontext: ssl.SSLContext,
        **kwargs: Any,
    ) -> Optional[asyncio.Transport]:
        """TLS over a polyio connection with asyncio's own TLS protocol (as the base loop
        upgrades its own transports); any other transport goes to the base loop."""
        if not isinstance(transport, _api.Transport):
            return await super().start_tls(transport, protocol, sslcontext, **kwargs)
        if not isinstance(sslcontext, ssl.SSLContext):
            raise TypeError(
                f"sslcontext is expected to be an instance of ssl.SSLContext, got {sslcontext!r}"
            )
        server_side = kwargs.pop("server_side", False)
        server_hostname = kwargs.pop("server_hostname", None)
        waiter = self.create_future()
        tls = sslproto.SSLProtocol(
            self, protocol, sslcontext, waiter, server_side, server_hostname,
            call_connection_made=False, **kwargs,
        )  # fmt: skip
        # Paused first, so that no data reaches the TLS protocol before connection_made.
        transport.pause_reading()
        as_protocol = _Buffered(tls) if isinstance(tls, asyncio.BufferedProtocol) else tls
        transport.set_protocol(as_protocol)
        made = self.call_soon(tls.connection_made, transport)
        resume = self.call_soon(transport.resume_reading)
        try:
            await waiter
        except BaseException:
            transport.close()
            made.cancel()
            resume.cancel()
            raise
        return tls._app_transport

    def close(self) -> None:
        if not self.is_running() and not self.is_closed():
            _api._close_driver(self)
        super().close()


class AsyncioLoop(_PolyioNetworking, asyncio.SelectorEventLoop):  # type: ignore[misc]
    """asyncio's default (selector) loop with its networking on polyio."""

    _polyio_base = "asyncio"


if _uvloop is not None:

    class UvLoop(_PolyioNetworking, _uvloop.Loop):  # type: ignore[misc]
        """uvloop's loop with its networking on polyio."""

        _polyio_base = "uvloop"

    _Default: type[asyncio.AbstractEventLoop] = UvLoop
else:  # pragma: no cover - uvloop is a test dependency
    _Default = AsyncioLoop


class Loop(_Default):  # type: ignore[misc,valid-type]
    """polyio's event loop, what ``new_event_loop()`` makes: uvloop's loop when uvloop is
    installed, asyncio's default loop otherwise (``repr`` says which), with its networking
    (``create_connection``, ``create_server``, their Unix twins, ``create_datagram_endpoint``,
    ``getaddrinfo``, ``start_tls``) served by polyio and every call polyio does not support
    handed to the base loop."""


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A new event loop with its networking on polyio: uvloop's loop when uvloop is
    installed, asyncio's default loop otherwise (``repr`` says which)."""
    return Loop()


class EventLoopPolicy(asyncio.DefaultEventLoopPolicy):
    """The event loop policy whose loops are polyio's, as ``uvloop.EventLoopPolicy``:
    ``asyncio.set_event_loop_policy(polyio.EventLoopPolicy())``."""

    def _loop_factory(self) -> asyncio.AbstractEventLoop:
        return new_event_loop()


def install() -> None:
    """Makes polyio's loop asyncio's default: ``asyncio.run``, ``asyncio.new_event_loop``
    and every library that creates a loop get polyio's, as ``uvloop.install()``."""
    asyncio.set_event_loop_policy(EventLoopPolicy())


def run(
    main: Coroutine[Any, Any, _T],
    *,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] = new_event_loop,
    debug: Optional[bool] = None,
) -> _T:
    """Runs `main` to completion on a new polyio loop and closes it, as ``asyncio.run``
    (and ``uvloop.run``)."""
    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=loop_factory, debug=debug) as runner:
            return runner.run(main)
    if not asyncio.iscoroutine(main):  # pragma: no cover - Python 3.9 and 3.10
        raise ValueError(f"a coroutine was expected, got {main!r}")
    loop = loop_factory()  # pragma: no cover
    try:  # pragma: no cover
        asyncio.set_event_loop(loop)
        if debug is not None:
            loop.set_debug(debug)
        return loop.run_until_complete(main)
    finally:  # pragma: no cover
        try:
            tasks = asyncio.all_tasks(loop)
            for t in tasks:
                t.cancel()
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()
