"""Name lookups: polyio.getaddrinfo against the running loop's own loop.getaddrinfo (results,
errors), cancellation and timeouts of a slow lookup (the POLYIO_TEST_LOOKUP_DELAY_MS hook),
and connecting by name with asyncio's happy_eyeballs_delay and interleave."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

import polyio
from conftest import finish

# (host, port, keyword arguments): lookups that need no DNS server.
CASES: list[tuple[Any, Any, dict[str, int]]] = [
    ("localhost", 80, {}),
    ("localhost", "80", {"type": socket.SOCK_STREAM}),
    ("localhost", "http", {"type": socket.SOCK_STREAM}),
    ("localhost", None, {"flags": socket.AI_CANONNAME}),
    ("127.0.0.1", 0, {}),
    ("127.0.0.1", 8080, {"family": socket.AF_INET, "type": socket.SOCK_DGRAM}),
    ("::1", 443, {"family": socket.AF_INET6, "type": socket.SOCK_STREAM}),
    ("[::1]".strip("[]"), 443, {"proto": socket.IPPROTO_TCP}),
    (None, 80, {"flags": socket.AI_PASSIVE, "type": socket.SOCK_STREAM}),
    (b"localhost", b"80", {}),
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_getaddrinfo_as_the_loop(run: Any, case: int) -> None:
    host, port, kw = CASES[case]

    async def main() -> None:
        want = await asyncio.get_running_loop().getaddrinfo(host, port, **kw)
        got = await polyio.getaddrinfo(host, port, **kw)
        assert got == want
        # The same types: enum members where socket.getaddrinfo gives them.
        assert [(type(g[0]), type(g[1])) for g in got] == [(type(w[0]), type(w[1])) for w in want]

    run(main())


ERRORS: list[tuple[Any, Any, dict[str, int]]] = [
    ("no-such-host.invalid", 80, {"flags": socket.AI_NUMERICHOST}),
    ("localhost", "no-such-service", {}),
    ("localhost", 80, {"family": 12345}),
    ("", 80, {}),
    ("a" * 64 + ".com", 80, {}),
    ("bad..name", 80, {"flags": socket.AI_NUMERICHOST}),
    (None, None, {}),
]


def outcome(e: BaseException) -> tuple[str, Any]:
    return type(e).__name__, getattr(e, "errno", None)


@pytest.mark.parametrize("case", range(len(ERRORS)))
def test_getaddrinfo_errors_as_asyncio(run: Any, case: int) -> None:
    host, port, kw = ERRORS[case]

    async def main() -> None:
        with pytest.raises(Exception) as want:
            await asyncio.get_running_loop().getaddrinfo(host, port, **kw)
        with pytest.raises(Exception) as got:
            await polyio.getaddrinfo(host, port, **kw)
        # asyncio's loop is the reference (uvloop words some of these differently).
        if not isinstance(asyncio.get_running_loop(), asyncio.BaseEventLoop):
            with pytest.raises(Exception) as want:
                socket.getaddrinfo(host, port, **kw)
        assert outcome(got.value) == outcome(want.value)

    run(main())


@pytest.fixture
def slow_lookups() -> Iterator[None]:
    """Lookups of loops created while this is active wait 60 s (unless abandoned)."""
    os.environ["POLYIO_TEST_LOOKUP_DELAY_MS"] = "60000"
    try:
        yield
    finally:
        del os.environ["POLYIO_TEST_LOOKUP_DELAY_MS"]


def test_cancel_and_timeout_end_a_slow_lookup(run: Any, slow_lookups: None) -> None:
    async def main() -> None:
        task = asyncio.ensure_future(polyio.getaddrinfo("localhost", 80))
        await asyncio.sleep(0.01)
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(polyio.getaddrinfo("localhost", 80), 0.05)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(polyio.open_connection("localhost", 80), 0.05)
        await asyncio.sleep(0)  # the cancels' completions settle
        drv = polyio._api._driver()
        assert drv.stats()[3] == 0  # nothing in flight

    run(main())


def test_loop_closes_with_slow_lookups_pending(run: Any, slow_lookups: None) -> None:
    """A loop that ends with lookups and connects by name pending: asyncio.Runner cancels
    the tasks (each cancels its core op, none waited for), and closing the driver after
    that returns at once (a generous guard: each lookup would take 60 s)."""

    async def main() -> Any:
        for _ in range(50):
            asyncio.ensure_future(polyio.getaddrinfo("localhost", 80))
            asyncio.ensure_future(polyio.open_connection("localhost", 80))
        await asyncio.sleep(0.01)
        drv = polyio._api._driver()
        assert drv.stats()[3] == 100  # all in flight
        return drv

    drv = run(main())
    assert drv.stats()[3] == 0  # the Runner's cancels reached the core
    start = time.monotonic()
    drv.close()
    assert time.monotonic() - start < 5


async def echo(r: Any, w: Any) -> None:
    while data := await r.read(65536):
        w.write(data)
    w.close()


@pytest.mark.parametrize(
    "kw",
    [{}, {"happy_eyeballs_delay": 0.25}, {"happy_eyeballs_delay": 0.1, "interleave": 2}, {"interleave": 1}],
)
def test_connect_by_name_with_happy_eyeballs_arguments(compare: Any, kw: dict[str, Any]) -> None:
    async def scenario(api: Any) -> list[Any]:
        server = await api.start_server(echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        r, w = await api.open_connection("localhost", port, **kw)
        w.write(b"ping")
        got = [await r.readexactly(4), w.get_extra_info("peername")[0]]
        await finish(server, w)
        return got

    # uvloop's create_connection has neither argument: asyncio's own loop is the reference.
    compare(scenario, uvloop_reference=False)


def test_happy_eyeballs_rejects_a_negative_delay(run: Any) -> None:
    async def main() -> None:
        with pytest.raises(ValueError):
            await polyio.open_connection("localhost", 9, happy_eyeballs_delay=-1.0)

    run(main())


@pytest.mark.parametrize("host", ["", "has space", "a..b", "x" * 64 + ".com"])
def test_connect_to_a_malformed_name_fails_as_asyncio(run: Any, host: str) -> None:
    async def main() -> None:
        with pytest.raises(Exception) as want:
            await asyncio.open_connection(host, 80)
        with pytest.raises(Exception) as got:
            await polyio.open_connection(host, 80)
        assert outcome(got.value) == outcome(want.value)

    run(main())
