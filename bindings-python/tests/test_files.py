"""polyio's files against the built-in open(), pathlib and os: on asyncio's loop and uvloop,
and on both file backends (io_uring and the blocking pool, picked by POLYIO_FS_BACKEND when
the loop's runtime is created)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import pathlib
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

import polyio

Run = Callable[[Awaitable[Any]], Any]


@pytest.fixture(params=["uring", "threads"])
def fs(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The file backend under test (the `run` fixture makes a fresh loop, so a fresh runtime
    that reads the variable)."""
    monkeypatch.setenv("POLYIO_FS_BACKEND", request.param)
    yield request.param


def backend() -> str:
    return polyio._api._driver().fs_backend()


def noise(n: int, seed: int = 1) -> bytes:
    out = bytearray()
    h = seed.to_bytes(8, "little")
    while len(out) < n:
        h = hashlib.sha256(h).digest()
        out += h
    return bytes(out[:n])


def test_binary_roundtrip_by_hash(run: Run, fs: str, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "data"
    data = noise(300_000)

    async def main() -> bytes:
        assert backend() == fs
        async with polyio.open(path, "wb") as f:
            assert await f.write(data[:1000]) == 1000
            assert await f.write(memoryview(data)[1000:]) == len(data) - 1000
            assert await f.tell() == len(data)
        f = await polyio.open(path, "rb")
        try:
            head = await f.read(10)
            rest = await f.read()
            assert await f.read() == b""
        finally:
            await f.close()
        assert f.closed
        with pytest.raises(ValueError):
            await f.read()
        return head + rest

    got = run(main())
    with open(path, "rb") as f:
        assert f.read() == data
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()


TEXT = "héllo\nwörld\r\nthird line\rfourth\n\nlast without newline"


@pytest.mark.parametrize("newline", [None, "", "\n", "\r\n"])
def test_text_reads_match_builtin_open(
    run: Run, fs: str, tmp_path: pathlib.Path, newline: Any
) -> None:
    path = tmp_path / "t.txt"
    path.write_bytes(TEXT.encode("utf-8"))

    def builtin() -> tuple[str, list[str], str, list[str]]:
        with open(path, encoding="utf-8", newline=newline) as f:
            all_ = f.read()
        with open(path, encoding="utf-8", newline=newline) as f:
            lines = f.readlines()
        with open(path, encoding="utf-8", newline=newline) as f:
            first, part = f.readline(), f.read(7)
        with open(path, encoding="utf-8", newline=newline) as f:
            it = list(f)
        return all_, lines, first + part, it

    async def ours() -> tuple[str, list[str], str, list[str]]:
        async with polyio.open(path, encoding="utf-8", newline=newline) as f:
            all_ = await f.read()
        async with polyio.open(path, encoding="utf-8", newline=newline) as f:
            lines = await f.readlines()
        async with polyio.open(path, encoding="utf-8", newline=newline) as f:
            first, part = await f.readline(), await f.read(7)
        async with polyio.open(path, encoding="utf-8", newline=newline) as f:
            it = [line async for line in f]
        return all_, lines, first + part, it

    assert run(ours()) == builtin()


def test_text_write_and_encodings(run: Run, fs: str, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "w.txt"

    async def main() -> None:
        async with polyio.open(path, "w", encoding="utf-16") as f:
            assert await f.write("ünïcode\nzwei\n") == 13
        async with polyio.open(path, encoding="utf-16") as f:
            assert await f.readlines() == ["ünïcode\n", "zwei\n"]
        async with polyio.open(path, "a", encoding="latin-1") as f:
            await f.write("x")

    run(main())
    assert path.read_bytes() == "ünïcode\nzwei\n".encode("utf-16") + b"x"


def test_seek_tell_and_binary_lines(run: Run, fs: str, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "lines"
    data = b"alpha\nbeta\n\ngamma"
    path.write_bytes(data)

    async def main() -> list[Any]:
        out: list[Any] = []
        async with polyio.open(path, "rb") as f:
            out.append(await f.readline())
            out.append(await f.tell())
            out.append(await f.seek(2))
            out.append(await f.read(3))
            out.append(await f.seek(-3, os.SEEK_END))
            out.append(await f.read())
            out.append(await f.seek(0))
            out.append([line async for line in f])
            out.append(await f.seek(1, os.SEEK_SET))
            out.append(await f.readlines())
        return out

    def builtin() -> list[Any]:
        out: list[Any] = []
        with open(path, "rb") as f:
            out.append(f.readline())
            out.append(f.tell())
            out.append(f.seek(2))
            out.append(f.read(3))
            out.append(f.seek(-3, os.SEEK_END))
            out.append(f.read())
            out.append(f.seek(0))
            out.append(list(f))
            out.append(f.seek(1, os.SEEK_SET))
            out.append(f.readlines())
        return out

    assert run(main()) == builtin()


def test_read_write_plus_and_append(run: Run, fs: str, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "rw"
    path.write_bytes(b"0123456789")

    async def main() -> None:
        async with polyio.open(path, "r+b") as f:
            await f.seek(4)
            await f.write(b"ab")
            assert await f.tell() == 6
            assert await f.read(2) == b"67"
            assert await f.truncate(8) == 8
            assert await f.tell() == 8
            assert await f.truncate() == 8
        async with polyio.open(path, "ab") as f:
            await f.write(b"89XY")
            await f.write(b"Z")
        async with polyio.open(path, "a+b") as f:
            await f.write(b"!")
            await f.seek(0)
            assert await f.read() == b"0123ab6789XYZ!"

    run(main())
    assert path.read_bytes() == b"0123ab6789XYZ!"


def test_pread_pwrite_like_os(run: Run, fs: str, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "p"
    data = noise(64 * 4096, 5)
    path.write_bytes(data)

    async def main() -> None:
        async with polyio.open(path, "r+b") as f:
            chunks = await asyncio.gather(*(f.pread(4096, i * 4096) for i in range(64)))
            assert b"".join(chunks) == data
            assert await f.pread(100, len(data) - 10) == data[-10:]
            assert await f.pread(100, len(data) + 10) == b""
            assert await f.pwrite(b"hello", 3) == 5
            assert await f.tell() == 0, "pread/pwrite leave the position"
            far = 5 << 30
            assert await f.pwrite(b"end", far) == 3
            assert await f.pread(3, far) == b"end"
            assert (await f.stat()).st_size == far + 3

    run(main())
    fd = os.open(path, os.O_RDONLY)
    try:
        assert os.pread(fd, 8, 0) == data[:3] + b"hello"
        assert os.fstat(fd).st_size == (5 << 30) + 3
    finally:
        os.close(fd)


def test_module_level_functions_match_pathlib(run: Run, fs: str, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "m"
    data = noise(100_000, 9)

    async def main() -> None:
        assert await polyio.write_bytes(path, data) == len(data)
        assert await polyio.read_bytes(path) == path.read_bytes() == data
        assert await polyio.write_text(path, "a\nb\r\nc", encoding="utf-8") == 6
        assert await polyio.read_text(path, encoding="utf-8") == path.read_text(encoding="utf-8")
        assert await polyio.read_bytes(path) == path.read_bytes()
        st = await polyio.stat(path)
        ref = os.stat(path)
        for field in ("st_mode", "st_ino", "st_dev", "st_nlink", "st_uid", "st_gid", "st_size"):
            assert getattr(st, field) == getattr(ref, field), field
        assert st.st_mtime_ns == ref.st_mtime_ns
        assert st.st_mtime == ref.st_mtime
        assert await polyio.read_bytes(tmp_path / "empty") == b"" if (
            (tmp_path / "empty").write_bytes(b"") == 0
        ) else False
        text = await polyio.read_text("/proc/self/status")
        assert text.startswith("Name:")

    run(main())


def test_errors_are_the_builtin_ones(run: Run, fs: str, tmp_path: pathlib.Path) -> None:
    missing = tmp_path / "missing"
    (tmp_path / "exists").write_bytes(b"")

    def builtin(call: Callable[[], Any]) -> tuple[type, int, Any]:
        with pytest.raises(OSError) as e:
            call()
        return type(e.value), e.value.errno, e.value.filename

    async def ours(call: Callable[[], Awaitable[Any]]) -> tuple[type, int, Any]:
        with pytest.raises(OSError) as e:
            await call()
        return type(e.value), e.value.errno, e.value.filename

    async def main() -> None:
        assert await ours(lambda: polyio.open(missing)) == builtin(lambda: open(missing))
        assert await ours(lambda: polyio.open(tmp_path)) == builtin(lambda: open(tmp_path))
        assert await ours(lambda: polyio.open(tmp_path, "w")) == builtin(
            lambda: open(tmp_path, "w")
        )
        x = tmp_path / "exists"
        assert await ours(lambda: polyio.open(x, "x")) == builtin(lambda: open(x, "x"))
        assert await ours(lambda: polyio.read_bytes(missing)) == builtin(missing.read_bytes)
        assert await ours(lambda: polyio.stat(missing)) == builtin(lambda: os.stat(missing))
        with pytest.raises(IsADirectoryError):
            await polyio.read_bytes(tmp_path)
        with pytest.raises(ValueError):
            polyio.open(x, "rw")
        with pytest.raises(ValueError):
            polyio.open(x, "rb", encoding="utf-8")
        async with polyio.open(x, "rb") as f:
            with pytest.raises(OSError):
                await f.write(b"no")  # io.UnsupportedOperation is an OSError

    run(main())


@pytest.mark.skipif(sys.platform != "linux", reason="FIFOs and uids as on Linux")
def test_unreadable_file_is_permission_error(fs: str, tmp_path: pathlib.Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"no")
    secret.chmod(0)
    tmp_path.chmod(0o755)
    # Root reads anything: the child drops to nobody once its imports are done (its
    # interpreter may sit where nobody cannot read).
    code = (
        "import asyncio, os, polyio, sys\n"
        "if os.geteuid() == 0:\n"
        "    os.setgroups([]); os.setgid(65534); os.setuid(65534)\n"
        "async def main():\n"
        "    for call in (lambda: polyio.open(sys.argv[1]), lambda: polyio.read_bytes(sys.argv[1])):\n"
        "        try:\n"
        "            await call()\n"
        "        except PermissionError as e:\n"
        "            assert e.errno == 13 and e.filename == sys.argv[1], e\n"
        "        else:\n"
        "            raise SystemExit('no PermissionError')\n"
        "    print('ok', polyio._api._driver().fs_backend())\n"
        "asyncio.run(main())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(secret)],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["ok", fs]


def _fifo(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return path


def _feed(path: pathlib.Path, data: bytes) -> None:
    fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def test_cancel_and_timeout_of_a_blocked_read(run: Run, fs: str, tmp_path: pathlib.Path) -> None:
    path = _fifo(tmp_path)

    async def main() -> int:
        async with polyio.open(path, "r+b") as f:
            task = asyncio.ensure_future(f.read(16))
            await asyncio.sleep(0.05)
            assert not task.done()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            with pytest.raises(TimeoutError if sys.version_info >= (3, 11) else asyncio.TimeoutError):
                await asyncio.wait_for(f.read(16), 0.02)
            _feed(path, b"x" * 64)
            got = await f.read1(128)
            drv = polyio._api._driver()
            for _ in range(50):
                if drv.stats()[3] == 0:
                    break
                await asyncio.sleep(0.01)
            assert drv.stats()[3] == 0, "the cancelled ops are gone"
            return len(got)

    n = run(main())
    # On the ring both reads were cancelled in the kernel; the blocking pool cannot stop a
    # read that already blocked, so those may have taken bytes.
    assert n == 64 if fs == "uring" else n in (32, 48, 64)


def test_the_loop_keeps_running_during_file_io(run: Run, fs: str, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "big"
    data = noise(4 << 20, 3)
    path.write_bytes(data)

    async def main() -> int:
        ticks = 0
        stop = False

        async def ticker() -> None:
            nonlocal ticks
            while not stop:
                ticks += 1
                await asyncio.sleep(0)

        t = asyncio.ensure_future(ticker())
        for _ in range(5):
            assert await polyio.read_bytes(path) == data
        stop = True
        await t
        return ticks

    assert run(main()) > 5


def test_cached_reads_answer_inline_and_still_yield(
    run: Run, fs: str, tmp_path: pathlib.Path
) -> None:
    """On io_uring, reads of cached bytes come back without a trip through the loop; a
    coroutine reading in a tight loop still lets other tasks run (the inline budget)."""
    path = tmp_path / "cached"
    data = noise(64 * 4096, 9)
    path.write_bytes(data)
    reads = 20_000

    async def main() -> tuple[int, int]:
        ticks = 0
        stop = False

        async def ticker() -> None:
            nonlocal ticks
            while not stop:
                ticks += 1
                await asyncio.sleep(0)

        t = asyncio.ensure_future(ticker())
        await asyncio.sleep(0)
        async with polyio.open(path, "rb") as f:
            drv = polyio._api._driver()
            before, ticks_before = drv.stats()[1], ticks
            for i in range(reads):
                at = (i * 7 % 64) * 4096
                assert await f.pread(4096, at) == data[at : at + 4096]
            ops = drv.stats()[1] - before
            during = ticks - ticks_before
            # Reads through read() at the position, and at the end of the file (short).
            assert await f.read(10) == data[:10]
            assert await f.read() == data[10:]
            assert await f.read(10) == b""
        stop = True
        await t
        return during, ops

    during, ops = run(main())
    assert during > 0, "the ticker ran while the reads went on"
    if fs == "uring":
        assert ops < reads // 4, "most reads answered inline, without an op"
    else:
        assert ops == reads, "the blocking pool runs every read as an op"
