"""asyncio's argument surface: where servers bind (host None, '', a sequence, a name,
family), the arguments polyio refuses rather than ignores, get_extra_info, and what a write
after close() does, compared with asyncio's own streams and protocols."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from types import SimpleNamespace
from typing import Any, Optional

import pytest

import polyio
from conftest import finish

HOST = "127.0.0.1"


def has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return int(s.getsockname()[1])


async def echo(r: Any, w: Any) -> None:
    while data := await r.read(65536):
        w.write(data)
    w.close()


def describe(server: Any) -> list[Any]:
    """Each listener's family and address, and whether they share one port."""
    names = [s.getsockname() for s in server.sockets]
    return [
        sorted((s.family.name, n[0]) for s, n in zip(server.sockets, names)),
        len({n[1] for n in names}) == 1,
    ]


@pytest.mark.parametrize("host", [None, ""])
def test_host_none_binds_every_interface_ipv4_and_ipv6(compare: Any, host: Optional[str]) -> None:
    async def scenario(api: SimpleNamespace) -> list[Any]:
        port = free_port()
        server = await api.start_server(echo, host, port)
        out = describe(server)
        for s in server.sockets:  # each listener serves its family
            target = "::1" if s.family == socket.AF_INET6 else HOST
            r, w = await api.open_connection(target, s.getsockname()[1])
            w.write(b"hi")
            out.append(await r.readexactly(2))
            w.close()
            await w.wait_closed()
        await finish(server)
        return out

    got = compare(scenario)
    families = [f for f, _ in got[0]]
    assert families == (["AF_INET", "AF_INET6"] if has_ipv6() else ["AF_INET"])
    assert got[1] is True


def test_host_none_with_port_0_gives_each_listener_its_port_as_asyncio(compare: Any) -> None:
    async def scenario(api: SimpleNamespace) -> list[Any]:
        server = await api.create_server(asyncio.Protocol, None, 0)
        out = [len(server.sockets), sorted(s.family.name for s in server.sockets)]
        server.close()
        await server.wait_closed()
        return out

    compare(scenario)


def test_sequence_of_hosts_and_family(compare: Any) -> None:
    async def scenario(api: SimpleNamespace) -> list[Any]:
        out = []
        hosts = [HOST, "::1"] if has_ipv6() else [HOST]
        for kw in (
            {"host": hosts},
            {"host": None, "family": socket.AF_INET},
            {"host": "", "family": socket.AF_INET6},
            {"host": "localhost"},
            {"host": "localhost", "family": socket.AF_INET},
        ):
            if kw.get("family") == socket.AF_INET6 and not has_ipv6():
                continue
            server = await api.start_server(echo, port=free_port(), **kw)
            out.append(describe(server))
            server.close()
            await server.wait_closed()
        return out

    compare(scenario)


def test_bind_errors_close_what_was_bound(compare: Any) -> None:
    async def scenario(api: SimpleNamespace) -> list[Any]:
        busy = await api.start_server(echo, HOST, 0)
        port = busy.sockets[0].getsockname()[1]
        out: list[Any] = []
        try:
            await api.start_server(echo, ["127.0.0.2", HOST], port)
        except OSError as e:
            out += [type(e).__name__, e.errno, "error while attempting to bind" in str(e)]
        # 127.0.0.2 was bound, then closed again: binding it now works.
        again = await api.start_server(echo, "127.0.0.2", port)
        again.close()
        busy.close()
        await again.wait_closed()
        await busy.wait_closed()
        return out

    assert compare(scenario)[0] == "OSError"


CONNECT_UNSUPPORTED = {
    "ssl": lambda: ssl.create_default_context(),
    "sock": lambda: socket.socket(),
    "local_addr": lambda: (HOST, 0),
    "proto": lambda: socket.IPPROTO_UDP,
    "flags": lambda: socket.AI_CANONNAME,
    "family": lambda: socket.AF_UNIX,
}
SERVER_UNSUPPORTED = {
    "ssl": lambda: ssl.create_default_context(ssl.Purpose.CLIENT_AUTH),
    "sock": lambda: socket.socket(),
    "flags": lambda: 0,
    "reuse_address": lambda: False,
    "family": lambda: socket.AF_UNIX,
}


@pytest.mark.parametrize("name", sorted(CONNECT_UNSUPPORTED))
def test_unsupported_connect_arguments_raise(run: Any, name: str) -> None:
    async def main() -> None:
        value: Any = CONNECT_UNSUPPORTED[name]()
        kw: dict[str, Any] = {name: value}
        try:
            with pytest.raises(NotImplementedError, match=name):
                await polyio.open_connection(HOST, 9, **kw)
            with pytest.raises(NotImplementedError, match=name):
                await polyio.create_connection(asyncio.Protocol, HOST, 9, **kw)
        finally:
            if isinstance(value, socket.socket):
                value.close()

    run(main())


@pytest.mark.parametrize("name", sorted(SERVER_UNSUPPORTED))
def test_unsupported_server_arguments_raise(run: Any, name: str) -> None:
    async def main() -> None:
        value: Any = SERVER_UNSUPPORTED[name]()
        kw: dict[str, Any] = {name: value}
        try:
            with pytest.raises(NotImplementedError, match=name):
                await polyio.start_server(echo, HOST, 0, **kw)
            with pytest.raises(NotImplementedError, match=name):
                await polyio.create_server(asyncio.Protocol, HOST, 0, **kw)
        finally:
            if isinstance(value, socket.socket):
                value.close()

    run(main())


def test_default_and_meaningless_arguments_as_asyncio(compare: Any) -> None:
    async def scenario(api: SimpleNamespace) -> list[Any]:
        server = await api.start_server(
            echo, HOST, 0, family=socket.AF_INET, flags=socket.AI_PASSIVE, ssl=None,
            reuse_address=True, sock=None,
        )  # fmt: skip
        port = server.sockets[0].getsockname()[1]
        out: list[Any] = []
        r, w = await api.open_connection(
            "localhost", port, family=socket.AF_INET, proto=socket.IPPROTO_TCP, flags=0,
            ssl=None, sock=None, local_addr=None,
        )  # fmt: skip
        w.write(b"ok")
        out.append(await r.readexactly(2))
        for kw in ({"server_hostname": "x"}, {"ssl_handshake_timeout": 1.0}):
            try:
                await api.open_connection(HOST, port, **kw)
            except ValueError as e:
                out.append(str(e))
        try:
            await api.start_server(echo, HOST, 0, ssl=True)
        except TypeError as e:
            out.append(str(e))
        try:
            await api.open_connection(HOST, port, family=socket.AF_INET6)
        except OSError as e:
            out.append(type(e).__name__)
        try:
            await api.start_server(echo)
        except ValueError as e:
            out.append(str(e))
        await finish(server, w)
        return out

    assert compare(scenario)[0] == b"ok"


def test_get_extra_info_socket(compare: Any) -> None:
    async def scenario(api: SimpleNamespace) -> list[Any]:
        server = await api.start_server(echo, HOST, 0)
        r, w = await api.open_connection(HOST, server.sockets[0].getsockname()[1])
        s = w.get_extra_info("socket")
        s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        out = [
            s.family,
            s.type,
            s.getsockname() == w.get_extra_info("sockname"),
            s.getpeername() == w.get_extra_info("peername"),
            s.fileno() >= 0,
            s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0,  # set, as asyncio
            s.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) != 0,
            w.get_extra_info("nonsense", "dflt"),
            server.sockets[0].family,
        ]
        await finish(server, w)
        return out

    compare(scenario)


def test_get_extra_info_after_the_connection_is_gone_keeps_its_values(compare: Any) -> None:
    async def scenario(api: SimpleNamespace) -> list[Any]:
        server = await api.start_server(echo, HOST, 0)
        r, w = await api.open_connection(HOST, server.sockets[0].getsockname()[1])
        before = [w.get_extra_info(k) for k in ("peername", "sockname")]
        w.transport.abort()
        await asyncio.sleep(0.01)
        s = w.get_extra_info("socket", "gone")
        after = [w.get_extra_info(k) for k in ("peername", "sockname")]
        out = [after == before, s != "gone", s.fileno(), s.family]
        await finish(server, w)
        return out

    # uvloop's transports forget their socket once closed; asyncio's keep it (fd -1).
    assert compare(scenario, uvloop_reference=False) == [True, True, -1, socket.AF_INET]


class LostWrites(logging.Handler):
    """Counts asyncio's warning for writes to a lost connection."""

    def __init__(self) -> None:
        super().__init__()
        self.n = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == "socket.send() raised exception.":
            self.n += 1

    def __enter__(self) -> LostWrites:
        logging.getLogger("asyncio").addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("asyncio").removeHandler(self)


async def _collecting_server(api: SimpleNamespace, gate: asyncio.Event, got: list[bytes]) -> Any:
    async def handler(r: Any, w: Any) -> None:
        await gate.wait()
        got.append(await r.read())
        w.close()

    return await api.start_server(handler, HOST, 0)


def test_write_after_close_is_dropped_once_everything_was_sent(compare: Any) -> None:
    async def scenario(api: SimpleNamespace) -> list[Any]:
        gate, got = asyncio.Event(), list[bytes]()
        gate.set()
        server = await _collecting_server(api, gate, got)
        r, w = await api.open_connection(HOST, server.sockets[0].getsockname()[1])
        with LostWrites() as lost:
            w.write(b"sent")
            w.close()
            for _ in range(7):
                w.write(b"dropped")
            w.write(b"")
            await w.wait_closed()
            for _ in range(2):
                w.write(b"dropped")
        out: list[Any] = [lost.n, w.is_closing()]
        try:
            w.write_eof()  # ignored once closing, as asyncio
        except Exception as e:
            out.append(type(e).__name__)
        await finish(server)
        return out + got

    # uvloop's own transports raise on write after close: asyncio's loop is the reference.
    assert compare(scenario, uvloop_reference=False) == [5, True, b"sent"]


def test_write_after_close_with_data_still_buffered_is_sent(compare: Any) -> None:
    async def scenario(api: SimpleNamespace) -> list[Any]:
        gate, got = asyncio.Event(), list[bytes]()
        server = await _collecting_server(api, gate, got)
        r, w = await api.open_connection(HOST, server.sockets[0].getsockname()[1])
        big = b"x" * (32 << 20)  # more than the kernel buffers hold: some stays queued
        with LostWrites() as lost:
            w.write(big)
            w.close()
            w.write(b"TAIL")
            gate.set()
            await asyncio.wait_for(w.wait_closed(), 20)
        await finish(server)
        return [lost.n, len(got[0]), got[0][-4:]]

    assert compare(scenario, uvloop_reference=False) == [0, (32 << 20) + 4, b"TAIL"]


def test_protocol_writes_after_close_and_after_loss(compare: Any) -> None:
    async def scenario(api: SimpleNamespace) -> list[Any]:
        gate, got = asyncio.Event(), list[bytes]()
        gate.set()
        server = await _collecting_server(api, gate, got)
        port = server.sockets[0].getsockname()[1]
        out: list[Any] = []
        lost_fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        class P(asyncio.Protocol):
            def connection_lost(self, exc: Optional[BaseException]) -> None:
                lost_fut.set_result(exc)

        with LostWrites() as lost:
            t, _ = await api.create_connection(P, HOST, port)
            t.write(b"one")
            t.close()
            t.write(b"late")
            await lost_fut
            for _ in range(5):
                t.write(b"later")
            out.append(lost.n)
            # write_eof, then write: RuntimeError, as asyncio
            t2, _ = await api.create_connection(asyncio.Protocol, HOST, port)
            t2.write_eof()
            try:
                t2.write(b"x")
            except RuntimeError as e:
                out.append(str(e))
            try:
                t2.write("text")
            except TypeError:
                out.append("TypeError first")
            t2.close()
            # Aborted (the connection is lost): counted and dropped from the start.
            t3, _ = await api.create_connection(asyncio.Protocol, HOST, port)
            t3.abort()
            for _ in range(6):
                t3.write(b"x")
            out.append(lost.n)
        await asyncio.sleep(0.05)
        await finish(server)
        return out + sorted(got)

    compare(scenario, uvloop_reference=False)
