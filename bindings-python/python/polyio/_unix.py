"""Unix domain sockets: asyncio's ``open_unix_connection`` / ``start_unix_server`` /
``loop.create_unix_connection`` / ``loop.create_unix_server`` over polyio's connections.

Paths are ``str``, ``bytes`` or ``os.PathLike``; a leading NUL names a Linux abstract socket.
Addresses come back as Python's ``socket`` module gives them for ``AF_UNIX``.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import stat
from collections.abc import Awaitable, Callable
from typing import Any, Optional, TypeVar, Union

from polyio._api import (
    Server,
    StreamReader,
    StreamWriter,
    _backlog_arg,
    _attach_protocol,
    _check_limit,
    _check_server_ssl,
    _driver,
    _protocol_acceptor,
    _serve,
    _stream_acceptor,
    _stream_pair,
    _unsupported,
)
from polyio._polyio import DEFAULT_LIMIT, Conn, Driver

_P = TypeVar("_P", bound=asyncio.BaseProtocol)

_Path = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]

# sockaddr_un.sun_path on Linux: 107 bytes and a NUL for a filesystem path, 108 for an
# abstract name (its leading NUL included).
_SUN_PATH = 108

logger = logging.getLogger("polyio")


def _path_bytes(path: Union[str, bytes]) -> bytes:
    """`path` (already ``os.fspath``'d) as the bytes the kernel gets, checked as Python's
    ``socket`` module checks an ``AF_UNIX`` address."""
    b = os.fsencode(path)
    abstract = b[:1] == b"\0"
    if len(b) > _SUN_PATH or (not abstract and len(b) >= _SUN_PATH):
        raise OSError("AF_UNIX path too long")
    if not abstract and b"\0" in b:
        raise ValueError("embedded null byte")
    return b


def _os_error(e: OSError) -> OSError:
    """The error as Python's socket calls word it: ``OSError(errno, strerror)`` (the subclass
    for the errno), as asyncio raises from ``sock_connect`` / ``bind``."""
    if e.errno is None:
        return e
    return OSError(e.errno, os.strerror(e.errno))


def _check_connect_args(
    ssl: Any,
    sock: Any,
    server_hostname: Any,
    ssl_handshake_timeout: Any,
    ssl_shutdown_timeout: Any,
) -> None:
    """asyncio's create_unix_connection checks, in its order; NotImplementedError for ssl."""
    if ssl:
        raise _unsupported("ssl", ssl)
    for name, value in (
        ("server_hostname", server_hostname),
        ("ssl_handshake_timeout", ssl_handshake_timeout),
        ("ssl_shutdown_timeout", ssl_shutdown_timeout),
    ):
        if value is not None:
            raise ValueError(f"{name} is only meaningful with ssl")


async def _connect(path: Optional[_Path], sock: Any) -> tuple[Driver, int]:
    """Connects to `path` (asyncio's rules for `path` and `sock`); returns the handle."""
    if path is None:
        if sock is None:
            raise ValueError("no path and sock were specified")
        raise _unsupported("sock", sock)
    if sock is not None:
        raise ValueError("path and sock can not be specified at the same time")
    b = _path_bytes(os.fspath(path))
    drv = _driver()
    fut, user_data = drv.unix_connect(b)
    try:
        return drv, await fut
    except asyncio.CancelledError:
        if fut.done() and not fut.cancelled() and fut.exception() is None:
            # Connected before the cancel reached this task: do not leak the connection.
            drv.close_handle(fut.result())
        else:
            drv.cancel(user_data)  # cancels the core connect
        raise
    except OSError as e:
        raise _os_error(e) from None


async def open_unix_connection(
    path: Optional[_Path] = None,
    *,
    limit: int = DEFAULT_LIMIT,
    ssl: Any = None,
    sock: Any = None,
    server_hostname: Any = None,
    ssl_handshake_timeout: Optional[float] = None,
    ssl_shutdown_timeout: Optional[float] = None,
) -> tuple[StreamReader, StreamWriter]:
    """Connects to the Unix socket at `path` and returns a (StreamReader, StreamWriter)
    pair, as ``asyncio.open_unix_connection``. ``ssl`` and ``sock`` are not supported:
    they raise ``NotImplementedError``."""
    _check_limit(limit)
    _check_connect_args(ssl, sock, server_hostname, ssl_handshake_timeout, ssl_shutdown_timeout)
    drv, h = await _connect(path, sock)
    return _stream_pair(drv, h, limit)


async def create_unix_connection(
    protocol_factory: Callable[[], _P],
    path: Optional[_Path] = None,
    *,
    ssl: Any = None,
    sock: Any = None,
    server_hostname: Any = None,
    ssl_handshake_timeout: Optional[float] = None,
    ssl_shutdown_timeout: Optional[float] = None,
) -> tuple[Conn, _P]:
    """Connects to the Unix socket at `path`, calls `protocol_factory()`, and returns
    (transport, protocol), as ``loop.create_unix_connection``. Arguments as for
    :func:`open_unix_connection`."""
    _check_connect_args(ssl, sock, server_hostname, ssl_handshake_timeout, ssl_shutdown_timeout)
    drv, h = await _connect(path, sock)
    protocol = protocol_factory()
    return _attach_protocol(drv, h, protocol), protocol


def _listen(
    drv: Driver,
    path: Optional[_Path],
    sock: Any,
    ssl: Any,
    ssl_handshake_timeout: Any,
    ssl_shutdown_timeout: Any,
    backlog: int,
    cleanup_socket: bool,
) -> int:
    """Binds and listens as asyncio's create_unix_server: its argument checks, in its order,
    and a stale socket file at a filesystem path removed first."""
    _check_server_ssl(ssl, ssl_handshake_timeout, ssl_shutdown_timeout)
    if path is None:
        if sock is None:
            raise ValueError("path was not specified, and no sock specified")
        raise _unsupported("sock", sock)
    if sock is not None:
        raise ValueError("path and sock can not be specified at the same time")
    p = os.fspath(path)
    b = _path_bytes(p)
    if b[:1] != b"\0":
        try:
            if stat.S_ISSOCK(os.stat(b).st_mode):
                os.remove(b)
        except FileNotFoundError:
            pass
        except OSError as err:
            # The directory may allow creating the socket but not checking it.
            logger.error("Unable to check or remove stale UNIX socket %r: %r", p, err)
    backlog = _backlog_arg(backlog)
    try:
        return drv.unix_listen(b, backlog, cleanup_socket)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise OSError(errno.EADDRINUSE, f"Address {p!r} is already in use") from None
        raise _os_error(e) from None


async def start_unix_server(
    client_connected_cb: Callable[[StreamReader, StreamWriter], Optional[Awaitable[None]]],
    path: Optional[_Path] = None,
    *,
    limit: int = DEFAULT_LIMIT,
    sock: Any = None,
    backlog: int = 100,
    ssl: Any = None,
    ssl_handshake_timeout: Optional[float] = None,
    ssl_shutdown_timeout: Optional[float] = None,
    start_serving: bool = True,
    cleanup_socket: bool = True,
) -> Server:
    """Listens on the Unix socket `path`; calls `client_connected_cb(reader, writer)` per
    connection (a coroutine result becomes a task), as ``asyncio.start_unix_server``.

    A stale socket file at `path` is removed first, as asyncio does; closing the server
    removes the socket file (if it is still the one bound here) unless ``cleanup_socket`` is
    false, as asyncio does from Python 3.13 (the keyword is accepted on every version).
    ``ssl`` and ``sock`` are not supported: they raise ``NotImplementedError``."""
    _check_limit(limit)
    drv = _driver()
    on_connection = _stream_acceptor(drv, client_connected_cb, limit)
    listener = _listen(
        drv, path, sock, ssl, ssl_handshake_timeout, ssl_shutdown_timeout, backlog, cleanup_socket
    )
    return await _serve(drv, [listener], on_connection, start_serving)


async def create_unix_server(
    protocol_factory: Callable[[], asyncio.BaseProtocol],
    path: Optional[_Path] = None,
    *,
    sock: Any = None,
    backlog: int = 100,
    ssl: Any = None,
    ssl_handshake_timeout: Optional[float] = None,
    ssl_shutdown_timeout: Optional[float] = None,
    start_serving: bool = True,
    cleanup_socket: bool = True,
) -> Server:
    """Listens on the Unix socket `path`; each connection gets `protocol_factory()` and a
    transport, as ``loop.create_unix_server``. Arguments as for :func:`start_unix_server`."""
    drv = _driver()
    on_connection = _protocol_acceptor(drv, protocol_factory)
    listener = _listen(
        drv, path, sock, ssl, ssl_handshake_timeout, ssl_shutdown_timeout, backlog, cleanup_socket
    )
    return await _serve(drv, [listener], on_connection, start_serving)
