"""Unix domain sockets: open_unix_connection / start_unix_server / create_unix_connection /
create_unix_server, compared with asyncio's own on the default loop and on uvloop; then what
only polyio does on Python 3.11 (the socket file removed on close, as asyncio from 3.13)."""

from __future__ import annotations

import asyncio
import os
import pathlib
import shutil
import socket
import tempfile
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any, Optional

import pytest

import polyio
from conftest import finish


async def _aio_create_unix_connection(factory: Any, path: Any = None, **kw: Any) -> Any:
    return await asyncio.get_running_loop().create_unix_connection(factory, path, **kw)


async def _aio_create_unix_server(factory: Any, path: Any = None, **kw: Any) -> Any:
    return await asyncio.get_running_loop().create_unix_server(factory, path, **kw)


# The Unix calls of each API, by the `api` namespace's name (conftest's `compare` passes it).
UNIX = {
    "asyncio": SimpleNamespace(
        open_unix_connection=asyncio.open_unix_connection,
        start_unix_server=asyncio.start_unix_server,
        create_unix_connection=_aio_create_unix_connection,
        create_unix_server=_aio_create_unix_server,
    ),
    "polyio": SimpleNamespace(
        open_unix_connection=polyio.open_unix_connection,
        start_unix_server=polyio.start_unix_server,
        create_unix_connection=polyio.create_unix_connection,
        create_unix_server=polyio.create_unix_server,
    ),
}


class TempDir:
    """A fresh directory; `norm` replaces it with `<dir>` in results, so that two runs
    (asyncio's and polyio's, each in its own directory) compare equal."""

    def __init__(self) -> None:
        self.path = tempfile.mkdtemp(prefix="polyio-py-")

    def __enter__(self) -> TempDir:
        return self

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def sock(self, name: str) -> str:
        return os.path.join(self.path, name)

    def norm(self, v: Any) -> Any:
        if isinstance(v, str):
            return v.replace(self.path, "<dir>")
        if isinstance(v, bytes):
            return v.replace(os.fsencode(self.path), b"<dir>")
        if isinstance(v, (list, tuple)):
            return type(v)(self.norm(x) for x in v)
        return v


_abstract_n = iter(range(1 << 30))


def abstract_name() -> str:
    return f"\0polyio-py-{os.getpid()}-{next(_abstract_n)}"


@pytest.fixture
def tmp() -> Iterator[TempDir]:
    with TempDir() as d:
        yield d


async def echo_handler(r: Any, w: Any) -> None:
    while data := await r.read(65536):
        w.write(data)
        await w.drain()
    w.close()
    await w.wait_closed()


def test_streams_echo_addresses_and_eof(compare: Any) -> None:
    async def scenario(api: SimpleNamespace) -> list[Any]:
        u = UNIX[api.name]
        with TempDir() as d:
            path = d.sock("echo.sock")
            server = await u.start_unix_server(echo_handler, path)
            sock = server.sockets[0]
            r, w = await u.open_unix_connection(path)
            payload = bytes(range(256)) * 1024
            w.write(payload)
            await w.drain()
            got = await r.readexactly(len(payload))
            w.write_eof()
            out = [
                got == payload,
                await r.read(),
                w.get_extra_info("peername"),
                w.get_extra_info("sockname"),
                w.get_extra_info("socket").family,
                sock.family,
                sock.getsockname(),
                os.path.exists(path),
            ]
            await finish(server, w)
            return d.norm(out)

    got = compare(scenario)
    assert got[:4] == [True, b"", "<dir>/echo.sock", ""]


def test_server_side_addresses(compare: Any) -> None:
    async def scenario(api: SimpleNamespace) -> list[Any]:
        u = UNIX[api.name]
        seen: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()

        async def handler(r: Any, w: Any) -> None:
            seen.set_result(
                [w.get_extra_info("peername"), w.get_extra_info("sockname"), await r.read()]
            )
            w.close()

        with TempDir() as d:
            server = await u.start_unix_server(handler, pathlib.Path(d.sock("side.sock")))
            r, w = await u.open_unix_connection(os.fsencode(d.sock("side.sock")))
            w.write(b"hi")
            w.write_eof()
            out = await seen
            out.append(await r.read())
            await finish(server, w)
            return d.norm(out)

    assert compare(scenario) == ["", "<dir>/side.sock", b"hi", b""]


class Echo(asyncio.Protocol):
    def connection_made(self, transport: Any) -> None:
        self.t = transport

    def data_received(self, data: bytes) -> None:
        self.t.write(data)

    def eof_received(self) -> Optional[bool]:
        return False


class Collect(asyncio.Protocol):
    def __init__(self) -> None:
        self.data = bytearray()
        self.events: list[Any] = []
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: Any) -> None:
        self.events.append("made")

    def data_received(self, data: bytes) -> None:
        self.data += data

    def eof_received(self) -> Optional[bool]:
        self.events.append("eof")
        return None

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self.events.append(("lost", type(exc).__name__ if exc else None))
        self.lost.set_result(None)


def test_protocols_echo_over_an_abstract_name(compare: Any) -> None:
    async def scenario(api: SimpleNamespace) -> list[Any]:
        u = UNIX[api.name]
        name = abstract_name()
        server = await u.create_unix_server(Echo, name)
        t, p = await u.create_unix_connection(Collect, name)
        addrs = [
            t.get_extra_info("peername") == name.encode(),
            t.get_extra_info("sockname"),
            server.sockets[0].getsockname() == name.encode(),
            isinstance(t, asyncio.Transport),
        ]
        t.write(b"abstract " * 1000)
        t.write_eof()
        await p.lost
        out = [bytes(p.data) == b"abstract " * 1000, p.events, *addrs]
        server.close()
        await server.wait_closed()
        # Nobody listens on the name any more.
        try:
            await u.create_unix_connection(Collect, name)
        except OSError as e:
            out += [type(e).__name__, e.errno]
        return out

    # uvloop cannot connect to an abstract name (libuv's uv_pipe_connect takes a C string):
    # asyncio's own loop is the reference.
    got = compare(scenario, uvloop_reference=False)
    assert got[:3] == [True, ["made", "eof", ("lost", None)], True]
    assert got[-2] == "ConnectionRefusedError"


def test_connect_errors(compare: Any) -> None:
    async def scenario(api: SimpleNamespace) -> list[Any]:
        u = UNIX[api.name]
        out: list[Any] = []
        with TempDir() as d:
            dead = d.sock("dead.sock")
            s = socket.socket(socket.AF_UNIX)
            s.bind(dead)
            s.close()
            plain = d.sock("plain")
            pathlib.Path(plain).write_bytes(b"x")
            for path in [d.sock("missing.sock"), dead, plain, "/" + "a" * 200, b"\0" + b"b" * 108]:
                try:
                    await u.open_unix_connection(path)
                    out.append("connected")
                except OSError as e:
                    out.append([type(e).__name__, e.errno, str(e)])
            for kwargs in [
                {},
                {"path": dead, "sock": socket.socket(socket.AF_UNIX)},
                {"path": dead, "ssl_handshake_timeout": 1.0},
                {"path": dead, "server_hostname": "x"},
            ]:
                try:
                    await u.open_unix_connection(**kwargs)
                except ValueError as e:
                    out.append(["ValueError", str(e)])
                finally:
                    if "sock" in kwargs:
                        kwargs["sock"].close()
            try:
                await u.open_unix_connection(1.5)
            except TypeError as e:
                out.append(type(e).__name__)
            return d.norm(out)

    # uvloop hands a too-long path to libuv, which cuts it short: asyncio's own loop (which
    # refuses it, as Python's socket module does) is the reference.
    got = compare(scenario, uvloop_reference=False)
    assert got[0] == ["FileNotFoundError", 2, "[Errno 2] No such file or directory"]
    assert got[1][:2] == ["ConnectionRefusedError", 111]
    assert got[3] == ["OSError", None, "AF_UNIX path too long"]


def test_server_errors_and_a_stale_socket_file(compare: Any) -> None:
    async def scenario(api: SimpleNamespace) -> list[Any]:
        u = UNIX[api.name]
        out: list[Any] = []
        with TempDir() as d:
            # A stale socket file is removed before binding.
            stale = d.sock("stale.sock")
            s = socket.socket(socket.AF_UNIX)
            s.bind(stale)
            s.close()
            server = await u.start_unix_server(echo_handler, stale)
            r, w = await u.open_unix_connection(stale)
            w.write(b"ping")
            out.append(await r.readexactly(4))
            await finish(server, w)
            # A file that is not a socket is left alone: the address is in use.
            plain = d.sock("plain")
            pathlib.Path(plain).write_bytes(b"x")
            for path in [plain, d.sock("no/such/dir.sock"), "/" + "a" * 200]:
                try:
                    await u.start_unix_server(echo_handler, path)
                    out.append("listening")
                except OSError as e:
                    out.append([type(e).__name__, e.errno, str(e)])
            out.append(pathlib.Path(plain).read_bytes())
            for kwargs in [
                {},
                {"path": plain, "sock": socket.socket(socket.AF_UNIX)},
                {"path": plain, "ssl_handshake_timeout": 1.0},
            ]:
                try:
                    await u.create_unix_server(Echo, **kwargs)
                except ValueError as e:
                    out.append(["ValueError", str(e)])
                finally:
                    if "sock" in kwargs:
                        kwargs["sock"].close()
            try:
                await u.create_unix_server(Echo, plain, ssl=True)
            except TypeError as e:
                out.append(["TypeError", str(e)])
            # An abstract name in use.
            name = abstract_name()
            first = await u.create_unix_server(Echo, name)
            try:
                await u.create_unix_server(Echo, name)
            except OSError as e:
                out.append([type(e).__name__, e.errno])
            first.close()
            await first.wait_closed()
            return d.norm(out)

    got = compare(scenario)
    assert got[0] == b"ping"
    assert got[1] == ["OSError", 98, "[Errno 98] Address '<dir>/plain' is already in use"]
    assert got[2][:2] == ["FileNotFoundError", 2]


def test_start_serving_false_then_serve(compare: Any) -> None:
    async def scenario(api: SimpleNamespace) -> list[Any]:
        u = UNIX[api.name]
        with TempDir() as d:
            path = d.sock("later.sock")
            server = await u.start_unix_server(
                echo_handler, path, start_serving=False, backlog=5
            )
            out: list[Any] = [server.is_serving()]
            await server.start_serving()
            r, w = await u.open_unix_connection(path, limit=10)
            w.write(b"0123456789abc\n")
            try:
                await r.readline()
            except ValueError as e:
                out.append(type(e).__name__)
            out.append(server.is_serving())
            await finish(server, w)
            return out

    assert compare(scenario) == [False, "ValueError", True]


# ---- what polyio does beyond asyncio 3.11 ---------------------------------------------


def test_closing_the_server_removes_its_socket_file(run: Any, tmp: TempDir) -> None:
    async def main() -> list[bool]:
        path = tmp.sock("gone.sock")
        server = await polyio.start_unix_server(echo_handler, path)
        before = os.path.exists(path)
        server.close()
        await server.wait_closed()
        kept = tmp.sock("kept.sock")
        server = await polyio.create_unix_server(Echo, kept, cleanup_socket=False)
        server.close()
        await server.wait_closed()
        # Replaced by another file while serving: not ours to remove.
        replaced = tmp.sock("replaced.sock")
        server = await polyio.start_unix_server(echo_handler, replaced)
        os.remove(replaced)
        pathlib.Path(replaced).write_bytes(b"mine")
        server.close()
        await server.wait_closed()
        return [before, os.path.exists(path), os.path.exists(kept), os.path.exists(replaced)]

    assert run(main()) == [True, False, True, True]


def test_a_cancelled_open_leaks_nothing(run: Any) -> None:
    async def main() -> None:
        name = abstract_name()
        server = await polyio.start_unix_server(echo_handler, name)
        task = asyncio.ensure_future(polyio.open_unix_connection(name))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        r, w = await polyio.open_unix_connection(name)
        w.write(b"still fine")
        assert await r.readexactly(10) == b"still fine"
        await finish(server, w)

    run(main())
