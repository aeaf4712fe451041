"""redis-py's asyncio client on polyio's loop against a real redis-server: every reply
verified, with pipelines, transactions, pub/sub and concurrent tasks; the client's socket
is polyio's."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
import redis.asyncio as aioredis

import polyio


async def client(port: int) -> aioredis.Redis:
    r = aioredis.Redis(host="127.0.0.1", port=port)
    assert await r.ping() is True
    return r


async def transport_of(r: aioredis.Redis) -> Any:
    conn = await r.connection_pool.get_connection()
    try:
        await conn.connect()
        return conn._writer.transport  # type: ignore[union-attr]
    finally:
        await r.connection_pool.release(conn)


def test_commands_replies_verified(prun: Callable[..., Any], redis_server: SimpleNamespace) -> None:
    async def main() -> None:
        r = await client(redis_server.port)
        try:
            assert isinstance(await transport_of(r), polyio.Transport)
            await r.flushdb()
            for i in range(300):
                value = bytes([i % 256]) * (i * 37)
                assert await r.set(f"k{i}", value) is True
                assert await r.get(f"k{i}") == value
            big = bytes(range(256)) * 8192  # 2 MiB each way
            assert await r.set("big", big) is True
            assert await r.get("big") == big
            assert await r.strlen("big") == len(big)
            assert await r.incr("n") == 1
            assert await r.incrby("n", 41) == 42
            assert await r.rpush("l", *[str(i) for i in range(100)]) == 100
            assert await r.lrange("l", 0, -1) == [str(i).encode() for i in range(100)]
            assert await r.hset("h", mapping={"a": "1", "b": "2"}) == 2
            assert await r.hgetall("h") == {b"a": b"1", b"b": b"2"}
            assert await r.get("missing") is None
            with pytest.raises(aioredis.ResponseError):
                await r.incr("h")  # WRONGTYPE
            assert await r.dbsize() == 304
        finally:
            await r.aclose()

    prun(main())


def test_pipelines_and_transactions(prun: Callable[..., Any], redis_server: SimpleNamespace) -> None:
    async def main() -> None:
        r = await client(redis_server.port)
        try:
            for transaction in (False, True):
                async with r.pipeline(transaction=transaction) as p:
                    for i in range(2000):
                        p.set(f"p{i}", f"v{i}" * (i % 50))
                    for i in range(2000):
                        p.get(f"p{i}")
                    replies = await p.execute()
                assert replies[:2000] == [True] * 2000
                assert replies[2000:] == [f"v{i}".encode() * (i % 50) for i in range(2000)]
        finally:
            await r.aclose()

    prun(main())


def test_concurrent_tasks(prun: Callable[..., Any], redis_server: SimpleNamespace) -> None:
    async def main() -> None:
        r = await client(redis_server.port)

        async def worker(n: int) -> None:
            for i in range(200):
                key = f"t{n}:{i}"
                assert await r.set(key, f"{n}-{i}") is True
                assert await r.get(key) == f"{n}-{i}".encode()

        try:
            await asyncio.gather(*(worker(n) for n in range(10)))
        finally:
            await r.aclose()

    prun(main())


def test_pubsub(prun: Callable[..., Any], redis_server: SimpleNamespace) -> None:
    async def main() -> None:
        r = await client(redis_server.port)
        pub = await client(redis_server.port)
        ps = r.pubsub()
        try:
            await ps.subscribe("news")
            msg = await ps.get_message(timeout=5)
            assert msg is not None and msg["type"] == "subscribe"
            await ps.psubscribe("sport.*")
            msg = await ps.get_message(timeout=5)
            assert msg is not None and msg["type"] == "psubscribe"
            for i in range(200):
                assert await pub.publish("news", f"n{i}") == 1
                assert await pub.publish("sport.ball", f"s{i}" * 1000) == 1
            got: list[tuple[str, bytes]] = []
            while len(got) < 400:
                m = await ps.get_message(ignore_subscribe_messages=True, timeout=5)
                assert m is not None
                got.append((m["type"], m["data"]))
            assert got[0::2] == [("message", f"n{i}".encode()) for i in range(200)]
            assert got[1::2] == [("pmessage", f"s{i}".encode() * 1000) for i in range(200)]
            await ps.unsubscribe("news")
            await ps.punsubscribe("sport.*")
        finally:
            await ps.aclose()
            await pub.aclose()
            await r.aclose()

    prun(main())


def test_install_puts_redis_on_polyio(redis_server: SimpleNamespace) -> None:
    old = asyncio.get_event_loop_policy()
    polyio.install()
    try:

        async def main() -> Any:
            r = await client(redis_server.port)
            try:
                assert await r.set("installed", "yes") is True
                assert await r.get("installed") == b"yes"
                return await transport_of(r)
            finally:
                await r.aclose()

        assert isinstance(asyncio.run(main()), polyio.Transport)
    finally:
        asyncio.set_event_loop_policy(old)
