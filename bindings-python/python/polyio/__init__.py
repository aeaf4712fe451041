"""polyio for asyncio: asyncio's streams and protocols on polyio's Rust engine.

A drop-in for ``asyncio.open_connection`` / ``start_server`` / ``loop.create_connection`` /
``loop.create_server``, their Unix socket twins (``open_unix_connection``, ...),
``loop.create_datagram_endpoint``, ``loop.getaddrinfo`` and ``asyncio.sleep``, on the
default event loop or uvloop, plus the asynchronous files asyncio lacks (``polyio.open``,
``read_bytes``, ``write_text``, ..., through io_uring). One polyio runtime serves each event
loop and is driven from the loop's own thread: its backend fd is watched with
``loop.add_reader`` and every ready operation completes in one batch, with no thread hop per
read or write.

    reader, writer = await polyio.open_connection("127.0.0.1", 8888)
    server = await polyio.start_server(handle_client, "127.0.0.1", 8888)
"""

from __future__ import annotations

from asyncio import IncompleteReadError, LimitOverrunError

from polyio._api import (
    DatagramTransport,
    Server,
    StreamReader,
    StreamWriter,
    Transport,
    create_connection,
    create_datagram_endpoint,
    create_server,
    getaddrinfo,
    open_connection,
    sleep,
    start_server,
)
from polyio._files import (
    BinaryFile,
    TextFile,
    open,
    read_bytes,
    read_text,
    stat,
    write_bytes,
    write_text,
)
from polyio._loop import EventLoopPolicy, Loop, install, new_event_loop, run
from polyio._polyio import __version__
from polyio._unix import (
    create_unix_connection,
    create_unix_server,
    open_unix_connection,
    start_unix_server,
)

__all__ = [
    "BinaryFile",
    "DatagramTransport",
    "EventLoopPolicy",
    "IncompleteReadError",
    "LimitOverrunError",
    "Loop",
    "Server",
    "StreamReader",
    "StreamWriter",
    "TextFile",
    "Transport",
    "__version__",
    "create_connection",
    "create_datagram_endpoint",
    "create_server",
    "create_unix_connection",
    "create_unix_server",
    "getaddrinfo",
    "install",
    "new_event_loop",
    "open",
    "open_connection",
    "open_unix_connection",
    "read_bytes",
    "read_text",
    "run",
    "sleep",
    "start_server",
    "start_unix_server",
    "stat",
    "write_bytes",
    "write_text",
]
