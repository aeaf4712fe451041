"""polyio's event loop: new_event_loop, EventLoopPolicy, install and run as uvloop offers them;
its networking methods served by polyio, and every call polyio does not support served by
the base loop (uvloop's or asyncio's) unchanged."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import uvloop

import polyio
from polyio import _api, _loop

@pytest.fixture
def restore_policy() -> Iterator[None]:
    old = asyncio.get_event_loop_policy()
    try:
        yield
    finally:
        asyncio.set_event_loop_policy(old)


class Echo(asyncio.Protocol):
    """Echoes what it receives; records what happened to it."""

    def __init__(self) -> None:
        self.transport: Any = None
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(exc)


class Collect(asyncio.Protocol):
    def __init__(self) -> None:
        self.data = b""
        self.got = asyncio.Event()
        self.lost = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.data += data
        self.got.set()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(exc)


async def roundtrip(transport: Any, proto: Collect, payload: bytes) -> bytes:
    transport.write(payload)
    while len(proto.data) < len(payload):
        proto.got.clear()
        await proto.got.wait()
    return proto.data


# ---- the entry points -------------------------------------------------------------------


def test_new_event_loop_is_uvloop_based_and_says_so() -> None:
    loop = polyio.new_event_loop()
    try:
        assert isinstance(loop, uvloop.Loop)
        assert isinstance(loop, polyio.Loop)
        assert repr(loop).startswith("<polyio.Loop on uvloop running=False closed=False")
    finally:
        loop.close()
    assert "closed=True" in repr(loop)


def test_asyncio_based_loop_says_so() -> None:
    loop = _loop.AsyncioLoop()
    try:
        assert isinstance(loop, asyncio.SelectorEventLoop)
        assert not isinstance(loop, uvloop.Loop)
        assert repr(loop).startswith("<polyio.Loop on asyncio running=False")
    finally:
        loop.close()


def test_policy_makes_polyio_loops(restore_policy: None) -> None:
    asyncio.set_event_loop_policy(polyio.EventLoopPolicy())
    loop = asyncio.new_event_loop()
    try:
        assert isinstance(loop, polyio.Loop)
    finally:
        loop.close()


def test_install_makes_asyncio_run_use_polyio(restore_policy: None) -> None:
    polyio.install()
    assert isinstance(asyncio.get_event_loop_policy(), polyio.EventLoopPolicy)

    async def main() -> str:
        return repr(asyncio.get_running_loop())

    assert asyncio.run(main()).startswith("<polyio.Loop on uvloop running=True")


def test_run_returns_the_result_and_closes_the_loop() -> None:
    seen: list[asyncio.AbstractEventLoop] = []

    async def main() -> int:
        loop = asyncio.get_running_loop()
        seen.append(loop)
        assert loop.get_debug()
        return 42

    assert polyio.run(main(), debug=True) == 42
    assert isinstance(seen[0], polyio.Loop) and seen[0].is_closed()


def test_run_propagates_exceptions() -> None:
    async def main() -> None:
        raise KeyError("x")

    with pytest.raises(KeyError):
        polyio.run(main())


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("base", ["asyncio", "uvloop"])
def test_close_closes_polyio_connections_left_open(base: str) -> None:
    """``loop.close()`` closes the sockets polyio opened for the loop, even without
    ``shutdown_asyncgens`` first (no fd leak; the transports left open warn, as asyncio's
    do)."""
    cls = _loop.AsyncioLoop if base == "asyncio" else _loop.UvLoop

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        await loop.create_connection(Collect, "127.0.0.1", port)
        await asyncio.sleep(0.01)

    cls().close()  # the base loop's own once-per-process fds (uvloop keeps a pipe)
    fds_before = len(os.listdir("/proc/self/fd"))
    loop = cls()
    loop.run_until_complete(main())
    loop.close()
    assert len(os.listdir("/proc/self/fd")) <= fds_before


# ---- what polyio serves ------------------------------------------------------------------


def test_create_server_and_connection_go_through_polyio(prun: Callable[..., Any]) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        assert isinstance(server, polyio.Server)
        assert isinstance(server, asyncio.AbstractServer)
        assert server.is_serving() and server.get_loop() is loop
        port = server.sockets[0].getsockname()[1]
        t, p = await loop.create_connection(Collect, "127.0.0.1", str(port))
        assert isinstance(t, polyio.Transport)
        assert await roundtrip(t, p, b"x" * 100_000) == b"x" * 100_000
        t.close()
        await p.lost
        async with server:
            pass
        assert not server.is_serving() and server.sockets == ()
        await server.wait_closed()

    prun(main())


def test_serve_forever_stops_on_cancel(prun: Callable[..., Any]) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Echo, "127.0.0.1", 0, start_serving=False)
        assert not server.is_serving()
        task = asyncio.ensure_future(server.serve_forever())
        await asyncio.sleep(0)
        assert server.is_serving()
        port = server.sockets[0].getsockname()[1]
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"ping")
        assert await r.readexactly(4) == b"ping"
        w.close()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not server.is_serving()

    prun(main())


def test_asyncio_streams_on_the_loop_go_through_polyio(prun: Callable[..., Any]) -> None:
    async def main() -> None:
        async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            assert isinstance(w.transport, polyio.Transport)
            w.write(await r.readline())
            await w.drain()
            w.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        assert isinstance(server, polyio.Server)
        port = server.sockets[0].getsockname()[1]
        r, w = await asyncio.open_connection("127.0.0.1", port)
        assert isinstance(r, asyncio.StreamReader)  # asyncio's streams on polyio's transport
        assert isinstance(w.transport, polyio.Transport)
        w.write(b"hello\n")
        assert await r.readline() == b"hello\n"
        assert await r.read() == b""
        w.close()
        await w.wait_closed()
        server.close()
        await server.wait_closed()

    prun(main())


def test_unix_server_and_connection_go_through_polyio(prun: Callable[..., Any]) -> None:
    async def main(path: str) -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_unix_server(Echo, path)
        assert isinstance(server, polyio.Server)
        t, p = await loop.create_unix_connection(Collect, path)
        assert isinstance(t, polyio.Transport)
        assert await roundtrip(t, p, b"unix") == b"unix"
        r, w = await asyncio.open_unix_connection(path)
        assert isinstance(w.transport, polyio.Transport)
        w.close()
        t.close()
        server.close()
        await server.wait_closed()

    with tempfile.TemporaryDirectory() as d:
        prun(main(os.path.join(d, "s")))


def test_datagram_endpoint_goes_through_polyio(prun: Callable[..., Any]) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        got: asyncio.Future[tuple[bytes, Any]] = loop.create_future()

        class Recv(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: Any) -> None:
                got.set_result((data, addr))

        st, _ = await loop.create_datagram_endpoint(Recv, local_addr=("127.0.0.1", 0))
        assert isinstance(st, polyio.DatagramTransport)
        addr = st.get_extra_info("sockname")
        ct, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, remote_addr=addr)
        assert isinstance(ct, polyio.DatagramTransport)
        ct.sendto(b"dgram")
        data, _ = await got
        assert data == b"dgram"
        ct.close()
        st.close()

    prun(main())


def test_getaddrinfo_goes_through_polyio(
    prun: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Any] = []
    real = _api.getaddrinfo

    async def spy(*args: Any, **kw: Any) -> Any:
        calls.append(args)
        return await real(*args, **kw)

    monkeypatch.setattr(_api, "getaddrinfo", spy)

    async def main() -> Any:
        return await asyncio.get_running_loop().getaddrinfo(
            "localhost", 80, family=socket.AF_INET, type=socket.SOCK_STREAM
        )

    infos = prun(main())
    assert calls == [("localhost", 80)]
    assert infos == socket.getaddrinfo("localhost", 80, socket.AF_INET, socket.SOCK_STREAM)


# ---- what falls through to the base loop ----------------------------------------------------


def test_connection_with_sock_is_taken_over(prun: Callable[..., Any]) -> None:
    """A connected socket handed to create_connection becomes a polyio connection (as
    aiohttp's client hands over the sockets it connects with aiohappyeyeballs)."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setblocking(False)
        t, p = await loop.create_connection(Collect, sock=sock)
        assert isinstance(t, polyio.Transport)
        assert sock.fileno() == -1  # the transport owns the fd now
        assert t.get_extra_info("peername") == ("127.0.0.1", port)
        assert await roundtrip(t, p, b"via sock" * 10_000) == b"via sock" * 10_000
        t.close()
        await p.lost
        server.close()
        await server.wait_closed()

    prun(main())


def test_connection_with_a_datagram_sock_falls_through(prun: Callable[..., Any]) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            with pytest.raises(ValueError, match="A Stream Socket was expected"):
                await loop.create_connection(Collect, sock=sock)

    prun(main())


def test_connection_with_local_addr_falls_through(prun: Callable[..., Any]) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        t, p = await loop.create_connection(
            Collect, "127.0.0.1", port, local_addr=("127.0.0.1", 0)
        )
        assert not isinstance(t, polyio.Transport)
        assert await roundtrip(t, p, b"local") == b"local"
        t.close()
        server.close()
        await server.wait_closed()

    prun(main())


def test_connection_with_ssl_falls_through(prun: Callable[..., Any]) -> None:
    """ssl= goes to the base loop's TLS (a handshake against a plain server fails there),
    where polyio alone would refuse it with NotImplementedError."""

    async def main() -> None:
        async def garbage(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            w.write(b"HTTP/1.0 400 not TLS\r\n\r\n" * 10)
            await w.drain()
            w.close()

        server = await asyncio.start_server(garbage, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        ctx = ssl.create_default_context()
        with pytest.raises((ssl.SSLError, ConnectionError)):
            await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="x")
        server.close()
        await server.wait_closed()

    prun(main())


def test_server_with_sock_is_taken_over(prun: Callable[..., Any]) -> None:
    """A socket handed to create_server (bound; listening or not, as asyncio listens on it)
    becomes a polyio listener (as gunicorn's and uvicorn's workers hand theirs over)."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        lsock = socket.socket()
        lsock.bind(("127.0.0.1", 0))
        port = lsock.getsockname()[1]
        server = await loop.create_server(Echo, sock=lsock)
        assert isinstance(server, polyio.Server)
        assert server.sockets[0].getsockname() == ("127.0.0.1", port)
        assert lsock.getsockname() == ("127.0.0.1", port)  # still the caller's to look at
        t, p = await loop.create_connection(Collect, "127.0.0.1", port)
        assert await roundtrip(t, p, b"adopted") == b"adopted"
        t.close()
        server.close()
        await server.wait_closed()
        assert lsock.fileno() == -1  # closing the server closed it, as asyncio's does
        with pytest.raises(ConnectionRefusedError):
            await loop.create_connection(Collect, "127.0.0.1", port)

    prun(main())


def test_unix_server_with_sock_is_taken_over(prun: Callable[..., Any]) -> None:
    async def main(path: str) -> None:
        loop = asyncio.get_running_loop()
        lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        lsock.bind(path)
        server = await loop.create_unix_server(Echo, sock=lsock)
        assert isinstance(server, polyio.Server)
        t, p = await loop.create_unix_connection(Collect, path)
        assert await roundtrip(t, p, b"unix adopted") == b"unix adopted"
        t.close()
        server.close()
        await server.wait_closed()

    with tempfile.TemporaryDirectory() as d:
        prun(main(os.path.join(d, "s")))


def test_server_with_reuse_address_false_falls_through(prun: Callable[..., Any]) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Echo, "127.0.0.1", 0, reuse_address=False)
        assert not isinstance(server, polyio.Server)
        server.close()
        await server.wait_closed()

    prun(main())


def test_unix_connection_with_sock_is_taken_over(prun: Callable[..., Any]) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        t, p = await loop.create_unix_connection(Collect, sock=a)
        assert isinstance(t, polyio.Transport)
        b.sendall(b"pair")
        await p.got.wait()
        assert p.data == b"pair"
        t.close()
        await p.lost
        assert b.recv(10) == b""  # closing the transport closed the fd it took over
        b.close()

    prun(main())


def test_datagram_with_sock_falls_through(prun: Callable[..., Any]) -> None:
    async def main(path: str) -> None:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        sock.setblocking(False)
        t, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, sock=sock)
        assert not isinstance(t, polyio.DatagramTransport)
        assert t.get_extra_info("sockname") == path
        t.close()

    with tempfile.TemporaryDirectory() as d:
        prun(main(os.path.join(d, "u")))


def test_unknown_keyword_is_not_ignored(prun: Callable[..., Any]) -> None:
    """A keyword polyio does not know goes to the base loop, which decides (3.11's raises
    TypeError for one it does not know either)."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        with pytest.raises(TypeError):
            await loop.create_connection(Collect, "127.0.0.1", 1, no_such_option=1)
        with pytest.raises(TypeError):
            await loop.create_server(Echo, "127.0.0.1", 0, no_such_option=1)

    prun(main())


def test_tls_only_arguments_raise_the_base_loops_error(prun: Callable[..., Any]) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        with pytest.raises(ValueError, match="server_hostname is only meaningful with ssl"):
            await loop.create_connection(Collect, "127.0.0.1", 1, server_hostname="x")

    prun(main())


def test_subprocess_and_pipes_run_on_the_base_loop(prun: Callable[..., Any]) -> None:
    async def main() -> None:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "import sys; sys.stdout.write(sys.stdin.read().upper())",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await proc.communicate(b"piped")
        assert out == b"PIPED"
        assert proc.returncode == 0

    prun(main())


def _tls_contexts() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server and a client context over the installed CPython's test certificate."""
    utils = pytest.importorskip("test.test_asyncio.utils")
    return utils.simple_server_sslcontext(), utils.simple_client_sslcontext()


def test_tls_server_falls_through_and_start_tls_upgrades_polyio(prun: Callable[..., Any]) -> None:
    """``create_server(ssl=...)`` is the base loop's; ``start_tls`` upgrades a polyio
    connection with asyncio's own TLS protocol; ``open_connection(ssl=...)`` is the base
    loop's. Every byte goes through TLS both ways."""
    server_ctx, client_ctx = _tls_contexts()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Echo, "127.0.0.1", 0, ssl=server_ctx)
        assert not isinstance(server, polyio.Server)
        port = server.sockets[0].getsockname()[1]
        t, p = await loop.create_connection(Collect, "127.0.0.1", port)
        assert isinstance(t, polyio.Transport)
        tls = await loop.start_tls(t, p, client_ctx)
        assert tls is not None and tls.get_extra_info("ssl_object") is not None
        payload = os.urandom(1 << 20)
        assert await roundtrip(tls, p, payload) == payload
        tls.close()
        await p.lost
        r, w = await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx)
        assert not isinstance(w.transport, polyio.Transport)
        w.write(b"tls\n")
        assert await r.readline() == b"tls\n"
        w.close()
        await w.wait_closed()
        server.close()
        await server.wait_closed()

    prun(main())


def test_start_tls_rejects_a_non_context(prun: Callable[..., Any]) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        t, p = await loop.create_connection(Collect, "127.0.0.1", server.sockets[0].getsockname()[1])
        with pytest.raises(TypeError, match="sslcontext is expected"):
            await loop.start_tls(t, p, object())  # type: ignore[arg-type]
        t.close()
        server.close()
        await server.wait_closed()

    prun(main())
