"""Fixtures: every behavioural test runs on the default loop and on uvloop, and scenarios
that asyncio also implements run against asyncio's own streams/protocols too."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import uvloop

import polyio
from polyio import _loop

LOOPS = {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


@pytest.fixture(params=sorted(LOOPS))
def run(request: pytest.FixtureRequest) -> Callable[[Awaitable[Any]], Any]:
    """Runs a coroutine to completion on a fresh loop of the parametrized kind."""
    factory = LOOPS[request.param]

    def runner(coro: Awaitable[Any]) -> Any:
        with asyncio.Runner(loop_factory=factory) as r:
            return r.run(coro)  # type: ignore[arg-type]

    return runner


async def _aio_create_connection(factory: Any, host: str, port: int) -> Any:
    return await asyncio.get_running_loop().create_connection(factory, host, port)


async def _aio_create_server(factory: Any, host: str, port: int, **kw: Any) -> Any:
    return await asyncio.get_running_loop().create_server(factory, host, port, **kw)


ASYNCIO = SimpleNamespace(
    name="asyncio",
    open_connection=asyncio.open_connection,
    start_server=asyncio.start_server,
    create_connection=_aio_create_connection,
    create_server=_aio_create_server,
    sleep=asyncio.sleep,
)
POLYIO = SimpleNamespace(
    name="polyio",
    open_connection=polyio.open_connection,
    start_server=polyio.start_server,
    create_connection=polyio.create_connection,
    create_server=polyio.create_server,
    sleep=polyio.sleep,
)


@pytest.fixture(params=["polyio", "asyncio"])
def api(request: pytest.FixtureRequest) -> SimpleNamespace:
    """The API under test: polyio's, or asyncio's own (the reference)."""
    return POLYIO if request.param == "polyio" else ASYNCIO


@pytest.fixture
def compare(run: Callable[[Awaitable[Any]], Any], request: pytest.FixtureRequest) -> Callable[..., Any]:
    """Runs `scenario(api)` with asyncio's API and with polyio's (on the parametrized loop)
    and asserts the observable results are equal; returns polyio's. With
    `uvloop_reference=False` the reference is asyncio's own loop even when polyio runs on
    uvloop (for scenarios where uvloop's transports differ from asyncio's)."""

    def go(scenario: Callable[[SimpleNamespace], Awaitable[Any]], uvloop_reference: bool = True) -> Any:
        if uvloop_reference or request.node.callspec.params["run"] == "asyncio":
            expected = run(scenario(ASYNCIO))
        else:
            with asyncio.Runner(loop_factory=asyncio.new_event_loop) as r:
                expected = r.run(scenario(ASYNCIO))  # type: ignore[arg-type]
        got = run(scenario(POLYIO))
        assert got == expected, f"polyio {got!r} != asyncio {expected!r}"
        return got

    return go


def port_of(server: Any) -> int:
    return int(server.sockets[0].getsockname()[1])


async def finish(server: Any, *writers: Any) -> None:
    """Closes the writers and the server, then lets every other task (the connection
    handlers) finish, so that neither implementation leaves a transport for the GC."""
    for w in writers:
        w.close()
    for w in writers:
        try:
            await w.wait_closed()
        except ConnectionError:
            pass
    server.close()
    await server.wait_closed()
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    await asyncio.wait_for(asyncio.gather(*others, return_exceptions=True), 10)


def cancellers(delay: float) -> dict[str, Callable[[Any], Awaitable[None]]]:
    """The three ways asyncio cancels an awaitable, each after `delay` seconds:
    ``task.cancel()``, ``asyncio.wait_for`` and ``asyncio.timeout``; each requires the
    cancellation (or the timeout it becomes) to reach the caller."""

    async def by_task(aw: Any) -> None:
        task = asyncio.ensure_future(aw)
        await asyncio.sleep(delay)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    async def by_wait_for(aw: Any) -> None:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(aw, delay)

    async def by_timeout(aw: Any) -> None:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(delay):
                await aw

    return {"task.cancel": by_task, "wait_for": by_wait_for, "timeout": by_timeout}


# ---- polyio's loop (for tests/test_*_loop.py) ---------------------------------------------

POLYIO_LOOPS = {"polyio-asyncio": _loop.AsyncioLoop, "polyio-uvloop": _loop.UvLoop}


@pytest.fixture(params=sorted(POLYIO_LOOPS))
def prun(request: pytest.FixtureRequest) -> Callable[[Awaitable[Any]], Any]:
    """Runs a coroutine on a fresh polyio loop over the parametrized base."""
    cls = POLYIO_LOOPS[request.param]

    def runner(coro: Awaitable[Any]) -> Any:
        return polyio.run(coro, loop_factory=cls)  # type: ignore[arg-type]

    return runner


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _redis_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """A real ``redis-server`` (Debian's; ``make deps-test`` installs it) on a free
    127.0.0.1 port, its files in a temp dir, no persistence; stopped after the session.
    Gives ``host``, ``port`` and ``url``. Tests share it: each flushes what it uses."""
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.fail("redis-server is not installed: `make deps-test` installs it")
    workdir: Path = tmp_path_factory.mktemp("redis")
    for _ in range(5):  # the free port may be taken before redis-server binds it
        port = _free_port()
        args = [exe, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(workdir)]
        args += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
        log = open(workdir / "redis.log", "wb")
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while proc.poll() is None and time.monotonic() < deadline and not _redis_ping(port):
            time.sleep(0.02)
        if proc.poll() is None and _redis_ping(port):
            break
        proc.kill()
        proc.wait()
        log.close()
    else:
        pytest.fail(f"redis-server did not start: {(workdir / 'redis.log').read_text()}")
    try:
        yield SimpleNamespace(host="127.0.0.1", port=port, url=f"redis://127.0.0.1:{port}/0")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
