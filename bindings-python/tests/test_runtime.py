"""Delivery and lifetime: one driver per loop, no thread hop, sleep and cancellation of the
core operation, several loops in several threads, and exit safety."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import polyio
from polyio._api import _driver
from conftest import cancellers, finish, port_of

HOST = "127.0.0.1"


async def echo(r: Any, w: Any) -> None:
    while data := await r.read(65536):
        w.write(data)
    w.close()


def test_sleep_returns_its_result_and_takes_its_time(run: Any) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        assert await polyio.sleep(0.05, "done") == "done"
        assert loop.time() - t0 >= 0.045
        assert await polyio.sleep(0) is None
        assert await polyio.sleep(-1, 7) == 7
        results = await asyncio.gather(*(polyio.sleep(0.01 * (i % 5), i) for i in range(50)))
        assert results == list(range(50))

    run(main())


def test_cancelling_sleep_cancels_the_core_timer(run: Any) -> None:
    async def main() -> None:
        task: asyncio.Future[None] = asyncio.ensure_future(polyio.sleep(30))
        await asyncio.sleep(0.01)
        drv = _driver()
        assert drv.stats()[3] == 1  # one op in flight: the timer
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.01):
                await polyio.sleep(30)
        await asyncio.sleep(0.01)
        assert drv.stats()[3] == 0

    run(main())


CANCELLERS = cancellers(0.05)


@pytest.mark.parametrize("how", sorted(CANCELLERS))
def test_cancelling_sleep_by_any_means_cancels_the_core_timer(run: Any, how: str) -> None:
    async def main() -> None:
        drv = _driver()
        await CANCELLERS[how](polyio.sleep(30))
        assert drv.stats()[3] == 0

    run(main())


@pytest.mark.parametrize("how", sorted(CANCELLERS))
@pytest.mark.parametrize("call", ["open_connection", "create_connection"])
def test_cancelling_connect_cancels_the_core_connect(run: Any, how: str, call: str) -> None:
    async def main() -> None:
        drv = _driver()
        # A TEST-NET address: the SYN goes nowhere (or fails at once without a route).
        aw: Any
        if call == "open_connection":
            aw = polyio.open_connection("192.0.2.1", 9)
        else:
            aw = polyio.create_connection(asyncio.Protocol, "192.0.2.1", 9)
        try:
            await CANCELLERS[how](aw)
        except OSError:
            pass  # no route: failed before the cancel
        await asyncio.sleep(0.01)
        assert drv.stats()[3] == 0

    run(main())


def test_one_driver_per_loop_driven_without_threads(run: Any) -> None:
    async def main() -> None:
        threads = threading.active_count()
        server = await polyio.start_server(echo, HOST, 0)
        drv = _driver()
        assert _driver() is drv
        assert drv.backend() == "epoll"
        r, w = await polyio.open_connection(HOST, port_of(server))
        for i in range(200):
            w.write(b"m%d" % i)
            assert await r.readexactly(len(b"m%d" % i)) == b"m%d" % i
        # The runtime is driven from this thread: no reactor thread, no pool for TCP.
        assert threading.active_count() == threads
        _, completions, turns, _ = drv.stats()
        assert turns > 0
        # Writes the kernel takes at once need no core operation: the completions are the
        # reads of both sides, the accept and the connect.
        assert completions <= 2 * 200 + 10
        await finish(server, w)

    run(main())


def test_several_loops_in_several_threads(run: Any) -> None:
    async def work(i: int) -> int:
        server = await polyio.start_server(echo, HOST, 0)
        r, w = await polyio.open_connection(HOST, port_of(server))
        total = 0
        for n in range(50):
            msg = bytes([i]) * (1 + n * 100)
            w.write(msg)
            total += len(await r.readexactly(len(msg)))
        await polyio.sleep(0.01)
        await finish(server, w)
        return total

    def in_thread(i: int) -> int:
        return asyncio.run(work(i))

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(in_thread, range(4)))
    assert results == [sum(1 + n * 100 for n in range(50))] * 4
    # And the calling thread's loop works alongside.
    assert run(work(9)) == results[0]


EXIT_SCRIPT = r"""
import asyncio, os, signal, sys
import polyio

MODE = sys.argv[1]

async def main():
    async def handler(r, w):
        await r.read()  # pending read at exit
    server = await polyio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    r, w = await polyio.open_connection("127.0.0.1", port)
    pending = [asyncio.ensure_future(r.read()), asyncio.ensure_future(polyio.sleep(30))]
    await polyio.sleep(0.001)
    if MODE == "exit":
        sys.exit(3)
    if MODE == "raise":
        raise RuntimeError("boom")
    if MODE == "sigint":
        os.kill(os.getpid(), signal.SIGINT)
        await polyio.sleep(30)
    if MODE == "os_exit":
        os._exit(4)

if MODE == "fall":
    # Fall off the end with the loop never closed and ops in flight.
    loop = asyncio.new_event_loop()
    loop.run_until_complete(asyncio.wait_for(main(), 5))
else:
    asyncio.run(main())
"""

EXPECTED = {"fall": 0, "exit": 3, "raise": 1, "sigint": 130, "os_exit": 4}


@pytest.mark.timeout(300)
def test_exit_with_operations_pending_is_clean_300_times(tmp_path: Path) -> None:
    script = tmp_path / "exit_script.py"
    script.write_text(EXIT_SCRIPT)
    modes = sorted(EXPECTED)
    runs = [modes[i % len(modes)] for i in range(300)]
    env = dict(os.environ, PYTHONWARNINGS="ignore")

    def one(mode: str) -> tuple[str, int, str]:
        p = subprocess.run(
            [sys.executable, str(script), mode], capture_output=True, text=True, timeout=30, env=env
        )
        rc = p.returncode if p.returncode >= 0 else 128 - p.returncode
        return mode, rc, p.stderr

    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(one, runs))
    bad = [(m, rc, err[-300:]) for m, rc, err in results if rc != EXPECTED[m]]
    assert not bad, bad[:3]
    for m, _, err in results:
        assert "Fatal Python error" not in err and "panicked" not in err, err


def test_a_write_the_kernel_takes_at_once_still_resumes_a_paused_writer(run: Any) -> None:
    # A buffered write above the high-water mark (a bytearray: copied, not written through)
    # pauses the writer until the loop's flush; when the kernel takes all of it then (no
    # core operation, no completion), the writer resumes.
    async def main() -> None:
        server = await polyio.start_server(echo, HOST, 0)
        r, w = await polyio.open_connection(HOST, port_of(server))
        big = bytearray(b"z" * (100 << 10))
        w.write(big)
        await asyncio.wait_for(w.drain(), 5)
        assert await asyncio.wait_for(r.readexactly(len(big)), 5) == big

        calls: list[str] = []

        class Writer(asyncio.Protocol):
            def pause_writing(self) -> None:
                calls.append("pause")

            def resume_writing(self) -> None:
                calls.append("resume")

        t, _ = await polyio.create_connection(Writer, HOST, port_of(server))
        # bytes this large, with nothing queued, go to the kernel at once, as asyncio's
        # transports write: no pause when it takes them.
        t.write(bytes(big))
        assert calls == [] and t.get_write_buffer_size() == 0
        t.write(big)
        assert calls == ["pause"]
        for _ in range(100):
            if calls == ["pause", "resume"]:
                break
            await asyncio.sleep(0.01)
        assert calls == ["pause", "resume"]
        assert t.get_write_buffer_size() == 0
        t.close()
        await finish(server, w)

    run(main())


def test_a_held_write_counts_in_the_write_buffer_until_the_flush(run: Any) -> None:
    # bytes under the write-through size, with nothing ahead, are held (not copied) until
    # the loop's flush: they count in get_write_buffer_size and pause a writer above its
    # high-water mark, and the flush that sends them resumes it.
    async def main() -> None:
        server = await polyio.start_server(echo, HOST, 0)
        calls: list[str] = []

        class Writer(asyncio.Protocol):
            def __init__(self) -> None:
                self.data = bytearray()

            def data_received(self, data: bytes) -> None:
                self.data += data

            def pause_writing(self) -> None:
                calls.append("pause")

            def resume_writing(self) -> None:
                calls.append("resume")

        t, p = await polyio.create_connection(Writer, HOST, port_of(server))
        t.set_write_buffer_limits(high=4000)
        held = b"h" * 5000
        t.write(held)
        assert t.get_write_buffer_size() == 5000 and calls == ["pause"]
        t.write(b"after")
        assert t.get_write_buffer_size() == 5005
        for _ in range(100):
            if len(p.data) == 5005:
                break
            await asyncio.sleep(0.01)
        assert bytes(p.data) == held + b"after"
        assert calls == ["pause", "resume"] and t.get_write_buffer_size() == 0
        t.close()
        server.close()
        await server.wait_closed()

    run(main())


def test_a_reader_that_does_not_read_stops_reading_ahead(run: Any) -> None:
    # Reading runs ahead of the StreamReader (one multi-shot core read) until 2 * limit bytes
    # are buffered, then stops: the peer's writes back up into its own buffer, and no byte
    # is lost when the reader catches up.
    limit = 1 << 14
    got: asyncio.Queue[Any] = asyncio.Queue()

    async def main() -> None:
        async def hold(r: Any, w: Any) -> None:
            await got.put(r)
            await got.put(w)

        server = await polyio.start_server(hold, HOST, 0, limit=limit)
        r, w = await polyio.open_connection(HOST, port_of(server))
        sr, sw = await got.get(), await got.get()
        sent = bytearray()
        for i in range(4000):
            chunk = bytes([i % 251]) * 4096
            w.write(chunk)
            sent += chunk
            try:
                await asyncio.wait_for(w.drain(), 0.2)
            except TimeoutError:
                break  # the kernel buffers are full: the server stopped reading
        else:
            pytest.fail("the writer never had to wait")
        await asyncio.sleep(0.05)
        buffered = sr._c.buffered()
        # Chunks read before the stop took effect may come on top (at most a few 64 KiB).
        assert 2 * limit < buffered <= 2 * limit + 4 * (1 << 16), buffered
        received = bytearray()
        while len(received) < len(sent):
            received += await asyncio.wait_for(sr.read(1 << 16), 5)
        assert received == sent
        sw.close()
        await finish(server, w)

    run(main())


def test_a_loop_with_its_own_futures_gets_them_used() -> None:
    # polyio calls asyncio.Future directly only when the loop's create_future makes exactly
    # that; a loop with its own future type keeps getting asked for its futures.
    class MyFuture(asyncio.Future[Any]):
        pass

    made = []

    class MyLoop(asyncio.SelectorEventLoop):
        def create_future(self) -> asyncio.Future[Any]:
            f = MyFuture(loop=self)
            made.append(f)
            return f

    async def main() -> None:
        server = await polyio.start_server(echo, HOST, 0)
        r, w = await polyio.open_connection(HOST, port_of(server))
        before = len(made)
        w.write(b"ping")
        assert await r.readexactly(4) == b"ping"
        assert len(made) > before
        await finish(server, w)

    loop = MyLoop()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
