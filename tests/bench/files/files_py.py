"""The Python worker of ``make bench-files`` (tests/bench/files/run.py drives it): runs one
workload for one row on asyncio's loop and prints ``{"secs", "cpu", "late_ms"}``, every byte
verified; ``late_ms`` is how late a 1 ms periodic timer fired at worst during the run.

Rows: polyio (``read_bytes`` / ``open`` + ``pread`` / ``read`` / ``write`` + ``fsync``; the
backend is ``POLYIO_FS_BACKEND``'s), aiofiles, ``anyio.Path`` / ``anyio.open_file``, and plain
blocking calls inside the coroutine. Usage: files_py.py ROW WORKLOAD DIR COUNT.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

IN_FLIGHT = 64
SMALL = 4096
CHUNK = 65536
PERIOD = 1_048_573


class Data:
    """The bytes and paths of DIR (laid out by run.py)."""

    def __init__(self, d: str, count: int) -> None:
        with open(os.path.join(d, "pattern.bin"), "rb") as f:
            self.pattern = memoryview(f.read())
        with open(os.path.join(d, "offsets.bin"), "rb") as f:
            raw = f.read(8 * count)
        self.offsets = [int.from_bytes(raw[i : i + 8], "little") for i in range(0, len(raw), 8)]
        self.small = [os.path.join(d, "small", str(i)) for i in range(count)]
        self.out = [os.path.join(d, "out", str(i)) for i in range(count)]
        self.big = os.path.join(d, "big")
        self.big_len = os.stat(self.big).st_size
        self.count = count

    def big_at(self, offset: int, n: int) -> memoryview:
        at = offset % PERIOD
        return self.pattern[at : at + n]

    def small_file(self, i: int) -> memoryview:
        at = i * 4099 % PERIOD
        return self.pattern[at : at + SMALL]


def check(got: object, want: object) -> None:
    """Fails the run when a read or write did not give what it should (not an ``assert``: it
    also runs under ``python -O``)."""
    if got != want:
        raise SystemExit("files_py: bytes or counts differ")


async def in_flight(n: int, one: Callable[[int], Awaitable[None]]) -> None:
    """Runs ``one(i)`` for i in range(n), IN_FLIGHT at a time (each worker takes the next)."""
    it = iter(range(n))

    async def worker() -> None:
        for i in it:
            await one(i)

    await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))


# ---- polyio ------------------------------------------------------------------------------


def polyio_rows(d: Data) -> dict[str, Callable[[], Awaitable[None]]]:
    import polyio

    async def read_files() -> None:
        async def one(i: int) -> None:
            check(await polyio.read_bytes(d.small[i]), d.small_file(i))

        await in_flight(d.count, one)

    async def preads() -> None:
        async with polyio.open(d.big, "rb") as opened:
            f = cast(polyio.BinaryFile, opened)  # "rb" opens a BinaryFile

            async def one(i: int) -> None:
                o = d.offsets[i]
                check(await f.pread(SMALL, o), d.big_at(o, SMALL))

            await in_flight(d.count, one)

    async def sequential() -> None:
        async with polyio.open(d.big, "rb") as f:
            for at in range(0, d.big_len, CHUNK):
                check(await f.read(CHUNK), d.big_at(at, CHUNK))

    async def write_fsync() -> None:
        for i in range(d.count):
            async with polyio.open(d.out[i], "wb") as f:
                check(await cast(polyio.BinaryFile, f).write(d.small_file(i)), SMALL)
                await f.fsync()

    return {
        "read_small_files": read_files,
        "random_pread_4k": preads,
        "sequential_64k": sequential,
        "write_fsync_4k": write_fsync,
    }


# ---- aiofiles ----------------------------------------------------------------------------


def aiofiles_rows(d: Data) -> dict[str, Callable[[], Awaitable[None]]]:
    import aiofiles  # type: ignore[import-untyped]
    import aiofiles.os  # type: ignore[import-untyped]

    async def read_files() -> None:
        async def one(i: int) -> None:
            async with aiofiles.open(d.small[i], "rb") as f:
                check(await f.read(), d.small_file(i))

        await in_flight(d.count, one)

    async def preads() -> None:
        # aiofiles has no pread: each of the 64 workers seeks and reads its own file object.
        it = iter(range(d.count))

        async def worker() -> None:
            async with aiofiles.open(d.big, "rb", buffering=0) as f:
                for i in it:
                    o = d.offsets[i]
                    await f.seek(o)
                    check(await f.read(SMALL), d.big_at(o, SMALL))

        await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))

    async def sequential() -> None:
        async with aiofiles.open(d.big, "rb", buffering=0) as f:
            for at in range(0, d.big_len, CHUNK):
                check(await f.read(CHUNK), d.big_at(at, CHUNK))

    fsync = aiofiles.os.wrap(os.fsync)

    async def write_fsync() -> None:
        for i in range(d.count):
            async with aiofiles.open(d.out[i], "wb", buffering=0) as f:
                check(await f.write(d.small_file(i)), SMALL)
                await fsync(f.fileno())

    return {
        "read_small_files": read_files,
        "random_pread_4k": preads,
        "sequential_64k": sequential,
        "write_fsync_4k": write_fsync,
    }


# ---- anyio -------------------------------------------------------------------------------


def anyio_rows(d: Data) -> dict[str, Callable[[], Awaitable[None]]]:
    import anyio
    import anyio.to_thread

    # anyio's default thread limiter is 40 tokens: give it the 64 the workload keeps in flight.
    async def limit() -> None:
        anyio.to_thread.current_default_thread_limiter().total_tokens = IN_FLIGHT

    async def read_files() -> None:
        await limit()

        async def one(i: int) -> None:
            check(await anyio.Path(d.small[i]).read_bytes(), d.small_file(i))

        await in_flight(d.count, one)

    async def preads() -> None:
        # anyio's files have no pread: each of the 64 workers seeks and reads its own file.
        await limit()
        it = iter(range(d.count))

        async def worker() -> None:
            async with await anyio.open_file(d.big, "rb", buffering=0) as f:
                for i in it:
                    o = d.offsets[i]
                    await f.seek(o)
                    check(await f.read(SMALL), d.big_at(o, SMALL))

        await asyncio.gather(*(worker() for _ in range(IN_FLIGHT)))

    async def sequential() -> None:
        async with await anyio.open_file(d.big, "rb", buffering=0) as f:
            for at in range(0, d.big_len, CHUNK):
                check(await f.read(CHUNK), d.big_at(at, CHUNK))

    async def write_fsync() -> None:
        for i in range(d.count):
            async with await anyio.open_file(d.out[i], "wb", buffering=0) as f:
                check(await f.write(d.small_file(i)), SMALL)
                await anyio.to_thread.run_sync(os.fsync, f.wrapped.fileno())

    return {
        "read_small_files": read_files,
        "random_pread_4k": preads,
        "sequential_64k": sequential,
        "write_fsync_4k": write_fsync,
    }


# ---- plain blocking calls inside the coroutine -------------------------------------------


def blocking_rows(d: Data) -> dict[str, Callable[[], Awaitable[None]]]:
    async def read_files() -> None:
        async def one(i: int) -> None:
            with open(d.small[i], "rb") as f:
                check(f.read(), d.small_file(i))

        await in_flight(d.count, one)

    async def preads() -> None:
        fd = os.open(d.big, os.O_RDONLY)
        try:

            async def one(i: int) -> None:
                o = d.offsets[i]
                check(os.pread(fd, SMALL, o), d.big_at(o, SMALL))

            await in_flight(d.count, one)
        finally:
            os.close(fd)

    async def sequential() -> None:
        with open(d.big, "rb", buffering=0) as f:
            for at in range(0, d.big_len, CHUNK):
                check(f.read(CHUNK), d.big_at(at, CHUNK))

    async def write_fsync() -> None:
        for i in range(d.count):
            with open(d.out[i], "wb", buffering=0) as f:
                check(f.write(d.small_file(i)), SMALL)
                os.fsync(f.fileno())

    return {
        "read_small_files": read_files,
        "random_pread_4k": preads,
        "sequential_64k": sequential,
        "write_fsync_4k": write_fsync,
    }


ROWS: dict[str, Callable[[Data], dict[str, Callable[[], Awaitable[None]]]]] = {
    "polyio-uring": polyio_rows,
    "polyio-threads": polyio_rows,
    "aiofiles": aiofiles_rows,
    "anyio": anyio_rows,
    "blocking": blocking_rows,
}


async def run(work: Callable[[], Awaitable[None]]) -> dict[str, Any]:
    """Times `work` while a 1 ms periodic timer records how late it fires at worst."""
    loop = asyncio.get_running_loop()
    late = 0.0
    stop = False

    async def ticker() -> None:
        nonlocal late
        while not stop:
            due = loop.time() + 0.001
            await asyncio.sleep(0.001)
            late = max(late, loop.time() - due)

    tick = asyncio.create_task(ticker())
    await asyncio.sleep(0.002)  # the ticker is running before the work starts
    late = 0.0
    cpu, t = time.process_time(), time.perf_counter()
    await work()
    secs = time.perf_counter() - t
    cpu = time.process_time() - cpu
    stop = True
    await tick
    return {"secs": round(secs, 6), "cpu": round(cpu, 6), "late_ms": round(late * 1e3, 3)}


def main() -> None:
    if len(sys.argv) != 5 or sys.argv[1] not in ROWS:
        sys.exit(f"usage: files_py.py {{{','.join(ROWS)}}} WORKLOAD DIR COUNT")
    row, workload, d, count = sys.argv[1:]
    work = ROWS[row](Data(d, int(count)))[workload]

    async def go() -> dict[str, Any]:
        if row.startswith("polyio-"):
            from polyio._api import _driver

            got = _driver().fs_backend()
            if got != row.removeprefix("polyio-"):
                sys.exit(f"files_py: {row} runs on {got} (POLYIO_FS_BACKEND)")
        return await run(work)

    print(json.dumps(asyncio.run(go())))


if __name__ == "__main__":
    main()
