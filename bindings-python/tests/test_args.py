"""Argument checks the argument fuzzer (tests/fuzz-args/args_py.py) found missing or
different from asyncio's (or the built-in ``open``'s) for the same input: each is the
regression test of a fixed finding."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path
from typing import Any

import pytest

import polyio


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.mark.parametrize("host", [asyncio.Protocol, 5, [b"127.0.0.1"]])
def test_server_host_of_another_type_is_type_error(host: Any) -> None:
    # Was AttributeError ('... has no attribute startswith') from the literal check.
    async def main() -> None:
        with pytest.raises(TypeError):
            await polyio.start_server(lambda r, w: None, host, 0)
        with pytest.raises(TypeError):
            await polyio.create_server(asyncio.Protocol, host, 0)

    run(main())


@pytest.mark.parametrize(
    ("port", "exc"),
    [({}, OSError), (asyncio.Protocol, OSError), (-1, OverflowError), (70000, OverflowError),
     (2**64, OverflowError), ("http\ud800", UnicodeEncodeError), ("nope", socket.gaierror)],
)
def test_port_checked_as_asyncio_checks_it(port: Any, exc: type[BaseException]) -> None:
    # Was a TypeError from int(port), or a message of Rust's conversion, or port {} taken
    # as 0 (`port or 0`): asyncio says OSError('Int or String expected') for another type
    # and OverflowError('...: port must be 0-65535.') out of range.
    async def main() -> None:
        with pytest.raises(exc):
            await polyio.open_connection("127.0.0.1", port)
        with pytest.raises(exc):
            await polyio.start_server(lambda r, w: None, "127.0.0.1", port)
        with pytest.raises(exc):
            await asyncio.open_connection("127.0.0.1", port)

    run(main())


async def _assert_one_listener(server: Any) -> None:
    """`server` listens on exactly one socket; closes it."""
    try:
        assert len(server.sockets) == 1
    finally:
        server.close()
        await server.wait_closed()


def test_loop_create_server_reads_an_iterator_of_hosts_once() -> None:
    # The check of what polyio serves consumed the iterator; the server then bound nothing.
    async def main() -> None:
        loop = asyncio.get_running_loop()
        await _assert_one_listener(
            await loop.create_server(asyncio.Protocol, iter(["127.0.0.1"]), 0)
        )

    with asyncio.Runner(loop_factory=polyio.new_event_loop) as r:
        r.run(main())


def test_write_bytes_takes_no_int(tmp_path: Path) -> None:
    # write_bytes(path, 3) wrote three NUL bytes (bytes(3)); 2**63 would ask for that much.
    path = tmp_path / "f"

    async def main() -> None:
        for data in (3, 2**63):
            with pytest.raises(TypeError):
                await polyio.write_bytes(path, data)  # type: ignore[arg-type]
        assert await polyio.write_bytes(path, memoryview(b"abcdef")[::2]) == 3
        assert path.read_bytes() == b"ace"

    run(main())
    with pytest.raises(TypeError):
        path.write_bytes(3)  # type: ignore[arg-type]


def test_nul_in_a_file_path_is_value_error(tmp_path: Path) -> None:
    # Was OSError(EINVAL) from the kernel's side; the built-in open says ValueError.
    bad = str(tmp_path / "a\0b")

    async def main() -> None:
        for call in (polyio.read_bytes(bad), polyio.stat(bad), polyio.write_bytes(bad, b"x")):
            with pytest.raises(ValueError, match="embedded null byte"):
                await call
        with pytest.raises(ValueError):
            await polyio.open(bad)

    run(main())
    with pytest.raises(ValueError):
        open(bad)  # noqa: SIM115


def test_file_method_arguments_checked_as_io(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"one\ntwo\n")

    async def main() -> None:
        async with polyio.open(path, "r+b") as f:
            with open(path, "r+b") as g:
                for call, ref, exc in (
                    (lambda: f.read(0.5), lambda: g.read(0.5), TypeError),
                    (lambda: f.read(-2), lambda: g.read(-2), ValueError),
                    (lambda: f.read(-(2**63) - 1), lambda: g.read(-(2**63) - 1), OverflowError),
                    (lambda: f.readline(1.0), lambda: g.readline(1.0), TypeError),
                    (lambda: f.readlines(0.5), lambda: g.readlines(0.5), TypeError),
                    (lambda: f.read1(None), lambda: g.read1(None), TypeError),
                    (lambda: f.seek(0, None), lambda: g.seek(0, None), TypeError),
                    (lambda: f.seek(0, "x"), lambda: g.seek(0, "x"), TypeError),
                    (lambda: f.seek(2**63), lambda: g.seek(2**63), ValueError),
                    (lambda: f.truncate(0.5), lambda: g.truncate(0.5), TypeError),
                    (lambda: f.write(3), lambda: g.write(3), TypeError),
                    (lambda: f.pread(1.5, 0), lambda: os.pread(g.fileno(), 1.5, 0), TypeError),
                ):
                    with pytest.raises(exc):
                        ref()
                    with pytest.raises(exc):
                        await call()
        async with polyio.open(path, "r+") as t:
            with open(path, "r+") as u:
                for call, ref, exc in (
                    (lambda: t.seek(-1), lambda: u.seek(-1), ValueError),
                    (lambda: t.seek(0, 2**31), lambda: u.seek(0, 2**31), OverflowError),
                    (lambda: t.read(0.5), lambda: u.read(0.5), TypeError),
                    (lambda: t.readline(float("inf")), lambda: u.readline(float("inf")), TypeError),
                    # None is no size for a text readline (found by atheris; was accepted).
                    (lambda: t.readline(None), lambda: u.readline(None), TypeError),
                ):
                    with pytest.raises(exc):
                        ref()
                    with pytest.raises(exc):
                        await call()

    run(main())


@pytest.mark.parametrize(
    ("kwargs", "exc"),
    [({"encoding": b"utf-8"}, TypeError), ({"newline": 1}, TypeError),
     ({"errors": {}}, TypeError), ({"buffering": Path("x")}, TypeError),
     ({"buffering": 2**31}, OverflowError)],
)
def test_open_argument_types_checked_first(tmp_path: Path, kwargs: dict[str, Any], exc: type[BaseException]) -> None:
    # Was ValueError("binary mode doesn't take an encoding argument") for a bytes encoding,
    # and a buffering of any type was ignored.
    path = tmp_path / "f"
    path.write_bytes(b"x")
    with pytest.raises(exc):
        open(path, "rb", **kwargs)  # noqa: SIM115

    async def main() -> None:
        with pytest.raises(exc):
            await polyio.open(path, "rb", **kwargs)

    run(main())


def test_read_text_decodes_as_the_builtin_open(tmp_path: Path) -> None:
    # A UTF-16 file without its BOM: Path.read_text refuses it; polyio decoded it.
    path = tmp_path / "f"
    path.write_bytes(b"line one\r\n")
    with pytest.raises(UnicodeError):
        path.read_text("utf-16")

    async def main() -> None:
        with pytest.raises(UnicodeError):
            await polyio.read_text(path, "utf-16")
        assert await polyio.read_text(path) == path.read_text() == "line one\n"

    run(main())


class _LyingLen:
    """An iterable of hosts whose __len__ claims 2**62 items."""

    def __len__(self) -> int:
        return 2**62

    def __iter__(self) -> Any:
        return iter(["127.0.0.1"])


def test_hosts_with_a_lying_len_are_read_item_by_item() -> None:
    # list(hosts) took __len__ as the size to allocate: MemoryError (found by atheris).
    async def main() -> None:
        loop = asyncio.get_running_loop()
        for make in (
            lambda: polyio.create_server(asyncio.Protocol, _LyingLen(), 0),  # type: ignore[arg-type]
            lambda: loop.create_server(asyncio.Protocol, _LyingLen(), 0),  # type: ignore[arg-type]
        ):
            await _assert_one_listener(await make())

    with asyncio.Runner(loop_factory=polyio.new_event_loop) as r:
        r.run(main())


def test_nul_in_a_host_is_value_error() -> None:
    # Was socket.gaierror (the core's host rule refused it); asyncio's connect and bind say
    # ValueError (its IP literal check, socket.inet_pton), a lookup gaierror (found by
    # atheris, both ways).
    async def main() -> None:
        for call in (
            lambda: polyio.open_connection("a\0b", 80),
            lambda: polyio.start_server(lambda r, w: None, "\0x", 0),
            lambda: polyio.create_server(asyncio.Protocol, ["127.0.0.1", "a\0"], 0),
            lambda: asyncio.open_connection("a\0b", 80),
        ):
            with pytest.raises(ValueError, match="embedded null"):
                await call()
        loop = asyncio.get_running_loop()
        for lookup in (polyio.getaddrinfo, loop.getaddrinfo):
            with pytest.raises(socket.gaierror):
                await lookup("\0", 80)

    run(main())


def test_backlog_past_a_c_int_is_overflow_error(tmp_path: Path) -> None:
    # Was OSError(EINVAL) for a Unix server; socket.listen, and so asyncio, says
    # OverflowError (found by atheris; asyncio's own start_unix_server leaves its socket
    # unclosed then, so it is not called here).
    async def main() -> None:
        with pytest.raises(OverflowError):
            await polyio.start_unix_server(lambda r, w: None, str(tmp_path / "s"), backlog=2**31)
        with pytest.raises(OverflowError):
            await polyio.start_server(lambda r, w: None, "127.0.0.1", 0, backlog=2**31)

    run(main())
