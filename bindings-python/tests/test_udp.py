"""UDP: create_datagram_endpoint and its transport and protocol callbacks, compared with
asyncio's own loop.create_datagram_endpoint on the default loop and on uvloop."""

from __future__ import annotations

import asyncio
import socket
from types import SimpleNamespace
from typing import Any, Callable, Optional

import pytest

import polyio

HOST = "127.0.0.1"


async def _aio_endpoint(factory: Any, local_addr: Any = None, remote_addr: Any = None, **kw: Any) -> Any:
    return await asyncio.get_running_loop().create_datagram_endpoint(factory, local_addr, remote_addr, **kw)


ASYNCIO = SimpleNamespace(name="asyncio", endpoint=_aio_endpoint)
POLYIO = SimpleNamespace(name="polyio", endpoint=polyio.create_datagram_endpoint)


class Recorder(asyncio.DatagramProtocol):
    """Records every callback, in order."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.transport: Any = None
        self.got: asyncio.Queue[Any] = asyncio.Queue()
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.events.append("made")

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.events.append(("datagram", data))
        self.got.put_nowait((data, addr))

    def error_received(self, exc: Exception) -> None:
        self.events.append(("error", type(exc).__name__))
        self.got.put_nowait(exc)

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self.events.append(("lost", type(exc).__name__ if exc else None))
        self.lost.set_result(None)


class Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport: Any) -> None:
        self.t = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.t.sendto(data, addr)


@pytest.fixture
def compare(run: Callable[[Any], Any]) -> Callable[..., Any]:
    """Runs `scenario(api)` with asyncio's datagram endpoint and with polyio's (on the
    parametrized loop) and asserts the observable results are equal; returns polyio's."""

    def go(scenario: Callable[[SimpleNamespace], Any]) -> Any:
        expected = run(scenario(ASYNCIO))
        got = run(scenario(POLYIO))
        assert got == expected, f"polyio {got!r} != asyncio {expected!r}"
        return got

    return go


def test_echo_in_order_with_source_addresses(compare: Callable[..., Any]) -> None:
    async def scenario(api: SimpleNamespace) -> Any:
        st, _ = await api.endpoint(Echo, local_addr=(HOST, 0))
        port = st.get_extra_info("sockname")[1]
        ct, cp = await api.endpoint(Recorder, remote_addr=(HOST, port))
        assert cp.events == ["made"], "connection_made runs before the endpoint is returned"
        for i in range(20):
            ct.sendto(b"ping %d" % i)
        got = [await asyncio.wait_for(cp.got.get(), 10) for _ in range(20)]
        assert all(addr == (HOST, port) for _, addr in got)
        peername = ct.get_extra_info("peername")
        ct.close()
        assert ct.is_closing()
        await asyncio.wait_for(cp.lost, 10)
        st.close()
        return cp.events, peername == (HOST, port)

    events, _ = compare(scenario)
    assert events[0] == "made" and events[-1] == ("lost", None)
    assert [e[1] for e in events[1:-1]] == [b"ping %d" % i for i in range(20)]


def test_transport_api(compare: Callable[..., Any]) -> None:
    async def scenario(api: SimpleNamespace) -> Any:
        t, p = await api.endpoint(Recorder, local_addr=(HOST, 0))
        port = t.get_extra_info("sockname")[1]
        peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        peer.bind((HOST, 0))
        peer.settimeout(10)
        try:
            if api is POLYIO:
                # Beyond asyncio (whose selector transport is not one, nor is uvloop's).
                assert isinstance(t, asyncio.DatagramTransport)
                assert isinstance(t, polyio.DatagramTransport)
            facts = [
                t.get_extra_info("peername"),
                t.get_extra_info("sockname")[0],
                t.get_extra_info("nope", "dflt"),
                t.get_write_buffer_size(),
                t.is_closing(),
                t.get_protocol() is p,
            ]
            # A datagram from a plain socket arrives with that socket's address.
            peer.sendto(b"from peer", (HOST, port))
            data, addr = await asyncio.wait_for(p.got.get(), 10)
            facts += [data, addr == peer.getsockname()]
            # sendto an address reaches it; bytearray and memoryview work too.
            t.sendto(b"one", peer.getsockname())
            t.sendto(bytearray(b"two"), peer.getsockname())
            t.sendto(memoryview(b"three"), peer.getsockname())
            loop = asyncio.get_running_loop()
            for _ in range(3):
                d, a = await loop.run_in_executor(None, peer.recvfrom, 100)
                facts.append((d, a[1] == port))
            with pytest.raises(TypeError) as e:
                t.sendto("text", peer.getsockname())
            facts.append(type(e.value).__name__)
            t.set_write_buffer_limits(high=1000)
            facts.append(t.get_write_buffer_limits())
            t.abort()
            facts.append(t.is_closing())
            await asyncio.wait_for(p.lost, 10)
            t.abort()  # a second abort changes nothing
            await asyncio.sleep(0.01)
            facts.append(p.events)
            return facts
        finally:
            peer.close()

    compare(scenario)


def test_connected_endpoint_rejects_other_addresses_and_drops_sends_after_close(
    compare: Callable[..., Any],
) -> None:
    async def scenario(api: SimpleNamespace) -> Any:
        st, sp = await api.endpoint(Recorder, local_addr=(HOST, 0))
        port = st.get_extra_info("sockname")[1]
        ct, cp = await api.endpoint(Recorder, remote_addr=(HOST, port))
        facts: list[Any] = [ct.get_extra_info("peername") == (HOST, port), ct.get_extra_info("sockname")[0]]
        ct.sendto(b"explicit", (HOST, port))  # its own remote address is allowed
        with pytest.raises(ValueError) as e:
            ct.sendto(b"x", (HOST, port + 1 if port < 65535 else port - 1))
        facts.append(type(e.value).__name__)
        data, addr = await asyncio.wait_for(sp.got.get(), 10)
        facts += [data, addr == ct.get_extra_info("sockname")]
        # Another sender's datagram never reaches a connected endpoint.
        other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        other.sendto(b"stranger", ct.get_extra_info("sockname"))
        other.close()
        st.sendto(b"from server", addr)
        facts.append((await asyncio.wait_for(cp.got.get(), 10))[0])
        ct.close()
        ct.sendto(b"after close")  # dropped silently
        await asyncio.wait_for(cp.lost, 10)
        for _ in range(3):
            ct.sendto(b"after lost")
        await asyncio.sleep(0.05)
        facts.append(sp.got.qsize())
        facts.append(cp.events)
        st.close()
        await asyncio.wait_for(sp.lost, 10)
        return facts

    compare(scenario)


def test_icmp_port_unreachable_reaches_error_received(compare: Callable[..., Any]) -> None:
    async def scenario(api: SimpleNamespace) -> Any:
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.bind((HOST, 0))
        dead = probe.getsockname()
        probe.close()
        t, p = await api.endpoint(Recorder, remote_addr=dead)
        t.sendto(b"anyone?")
        first = await asyncio.wait_for(p.got.get(), 10)
        facts: list[Any] = [type(first).__name__, getattr(first, "errno", None)]
        # The endpoint lives on: the next send is refused again (on send or receive).
        t.sendto(b"still?")
        await asyncio.sleep(0.05)
        t.sendto(b"still?")
        second = await asyncio.wait_for(p.got.get(), 10)
        facts.append(type(second).__name__)
        facts.append(t.is_closing())
        t.close()
        await asyncio.wait_for(p.lost, 10)
        facts.append(p.events[-1])
        return facts

    facts = compare(scenario)
    assert facts[0] == "ConnectionRefusedError"


def test_ipv6(compare: Callable[..., Any]) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")

    async def scenario(api: SimpleNamespace) -> Any:
        st, _ = await api.endpoint(Echo, local_addr=("::1", 0))
        port = st.get_extra_info("sockname")[1]
        ct, cp = await api.endpoint(Recorder, remote_addr=("::1", port))
        ct.sendto(b"six")
        data, addr = await asyncio.wait_for(cp.got.get(), 10)
        facts = [data, addr[0], addr[1] == port, len(addr), ct.get_extra_info("peername")[0]]
        ct.close()
        st.close()
        await asyncio.wait_for(cp.lost, 10)
        return facts

    compare(scenario)


def test_arguments(compare: Callable[..., Any]) -> None:
    async def scenario(api: SimpleNamespace) -> Any:
        facts = []
        for kw in ({}, {"family": socket.AF_INET6, "local_addr": (HOST, 0)}):
            try:
                await api.endpoint(Recorder, **kw)
            except (ValueError, OSError) as e:
                facts.append(type(e).__name__)
        # Two endpoints share a port with reuse_port.
        a, _ = await api.endpoint(Recorder, local_addr=(HOST, 0), reuse_port=True)
        port = a.get_extra_info("sockname")[1]
        b, _ = await api.endpoint(Recorder, local_addr=(HOST, port), reuse_port=True)
        facts.append(b.get_extra_info("sockname")[1] == port)
        # allow_broadcast sets SO_BROADCAST.
        c, _ = await api.endpoint(Recorder, local_addr=(HOST, 0), allow_broadcast=True)
        csock = c.get_extra_info("socket")
        facts.append(bool(csock.getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST)))
        facts += [csock.family, csock.type]  # proto: asyncio's is 17, uvloop's 0
        for t in (a, b, c):
            t.close()
        await asyncio.sleep(0.01)
        return facts

    assert compare(scenario)[0] == "ValueError"


def test_unsupported_arguments_raise_not_implemented(run: Callable[[Any], Any]) -> None:
    async def scenario() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            with pytest.raises(NotImplementedError):
                await polyio.create_datagram_endpoint(Recorder, sock=s)
        with pytest.raises(NotImplementedError):
            await polyio.create_datagram_endpoint(Recorder, local_addr=(HOST, 0), family=socket.AF_UNIX)
        with pytest.raises(NotImplementedError):
            await polyio.create_datagram_endpoint(Recorder, local_addr=(HOST, 0), flags=socket.AI_PASSIVE)

    run(scenario())


def test_many_datagrams_from_many_senders(run: Callable[[Any], Any]) -> None:
    """Every datagram of 10 senders arrives once, each sender's in order."""

    async def scenario() -> None:
        st, sp = await polyio.create_datagram_endpoint(Recorder, local_addr=(HOST, 0))
        port = st.get_extra_info("sockname")[1]
        clients = [await polyio.create_datagram_endpoint(Recorder, remote_addr=(HOST, port)) for _ in range(10)]
        seen: dict[Any, list[int]] = {}
        for i in range(100):
            # One round in flight at a time: UDP may drop what overflows a socket buffer.
            for n, (ct, _) in enumerate(clients):
                ct.sendto(b"%d:%d" % (n, i))
            for _ in clients:
                data, addr = await asyncio.wait_for(sp.got.get(), 10)
                seen.setdefault(addr, []).append(int(data.split(b":")[1]))
        assert len(seen) == 10
        assert all(v == list(range(100)) for v in seen.values())
        for ct, _ in clients:
            ct.close()
        st.close()
        await asyncio.sleep(0.01)

    run(scenario())


def test_a_refused_send_goes_to_error_received(compare: Callable[..., Any]) -> None:
    """A send the kernel refuses (a broadcast without allow_broadcast) reaches
    error_received, and the endpoint lives on."""

    async def scenario(api: SimpleNamespace) -> Any:
        t, p = await api.endpoint(Recorder, local_addr=(HOST, 0))
        t.sendto(b"to all", ("255.255.255.255", 9))
        exc = await asyncio.wait_for(p.got.get(), 10)
        facts = [type(exc).__name__, getattr(exc, "errno", None), t.is_closing()]
        t.close()
        await asyncio.wait_for(p.lost, 10)
        facts.append(p.events)
        return facts

    assert compare(scenario)[0] == "PermissionError"
