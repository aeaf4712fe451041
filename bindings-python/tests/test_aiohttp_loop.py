"""aiohttp's server and client on polyio's loop, and curl against the server: large bodies
both ways, keep-alive, many requests, every body verified; the server's and the client's
connections are polyio's."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web

import polyio

BIG = 8 * 1024 * 1024


def pattern(n: int) -> bytes:
    block = hashlib.sha256(b"polyio").digest() * 128  # 4 KiB, not one repeated byte
    return (block * (n // len(block) + 1))[:n]


class App:
    """A small aiohttp application that records the transport and peer of each request."""

    def __init__(self) -> None:
        self.transports: list[Any] = []
        self.peers: list[Any] = []
        self.app = web.Application(client_max_size=4 * BIG)
        self.app.router.add_get("/hello", self.hello)
        self.app.router.add_post("/echo", self.echo)
        self.app.router.add_get("/big/{n}", self.big)

    def seen(self, request: web.Request) -> None:
        self.transports.append(request.transport)
        self.peers.append(request.transport.get_extra_info("peername"))  # type: ignore[union-attr]

    async def hello(self, request: web.Request) -> web.Response:
        self.seen(request)
        return web.Response(text="Hello, World!")

    async def echo(self, request: web.Request) -> web.Response:
        self.seen(request)
        return web.Response(body=await request.read())

    async def big(self, request: web.Request) -> web.Response:
        self.seen(request)
        return web.Response(body=pattern(int(request.match_info["n"])))


@asynccontextmanager
async def serving() -> AsyncIterator[tuple[App, str]]:
    app = App()
    runner = web.AppRunner(app.app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield app, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def test_many_requests_on_one_keep_alive_connection(prun: Callable[..., Any]) -> None:
    async def main() -> None:
        async with serving() as (app, url):
            conn = aiohttp.TCPConnector(limit=1)
            async with aiohttp.ClientSession(connector=conn) as s:
                for _ in range(300):
                    async with s.get(url + "/hello") as resp:
                        assert resp.status == 200
                        assert await resp.text() == "Hello, World!"
            assert len(app.peers) == 300
            assert len(set(app.peers)) == 1  # keep-alive: one connection served them all
            assert all(isinstance(t, polyio.Transport) for t in app.transports)

    prun(main())


def test_concurrent_requests(prun: Callable[..., Any]) -> None:
    async def main() -> None:
        async with serving() as (app, url):
            async with aiohttp.ClientSession() as s:

                async def get(i: int) -> bytes:
                    async with s.post(url + "/echo", data=str(i).encode() * 100) as resp:
                        return await resp.read()

                bodies = await asyncio.gather(*(get(i) for i in range(200)))
            assert bodies == [str(i).encode() * 100 for i in range(200)]

    prun(main())


def test_large_bodies_both_ways(prun: Callable[..., Any]) -> None:
    async def main() -> None:
        async with serving() as (app, url):
            async with aiohttp.ClientSession() as s:
                body = pattern(BIG)
                async with s.post(url + "/echo", data=io.BytesIO(body)) as resp:
                    assert await resp.read() == body
                async with s.get(url + f"/big/{BIG}") as resp:
                    assert resp.content_length == BIG
                    # The client's socket (connected by aiohappyeyeballs) is polyio's too.
                    assert resp.connection is not None
                    assert isinstance(resp.connection.transport, polyio.Transport)
                    assert await resp.read() == body
            assert all(isinstance(t, polyio.Transport) for t in app.transports)

    prun(main())


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed (make deps-test)")
def test_curl_against_the_server(prun: Callable[..., Any]) -> None:
    async def curl(*args: str) -> bytes:
        proc = await asyncio.create_subprocess_exec(
            "curl", "-sS", "--fail", *args, stdout=asyncio.subprocess.PIPE
        )
        out, _ = await proc.communicate()
        assert proc.returncode == 0
        return out

    async def main(tmp: str) -> None:
        async with serving() as (app, url):
            # Two URLs in one curl: the second reuses the connection (0 new connects).
            out = await curl("-w", "|%{num_connects}\n", url + "/hello", url + "/hello")
            assert out == b"Hello, World!|1\nHello, World!|0\n"
            assert len(set(app.peers)) == 1
            src, dst = os.path.join(tmp, "up"), os.path.join(tmp, "down")
            with open(src, "wb") as f:
                f.write(pattern(BIG))
            await curl("--data-binary", "@" + src, "-o", dst, url + "/echo")
            with open(dst, "rb") as f:
                assert f.read() == pattern(BIG)
            assert await curl(url + f"/big/{BIG}") == pattern(BIG)
            assert all(isinstance(t, polyio.Transport) for t in app.transports)

    with tempfile.TemporaryDirectory() as tmp:
        prun(main(tmp))
