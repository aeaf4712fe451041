"""redis-py's asyncio client on polyio's streams, as a user tries them under a library: with
``asyncio.open_connection`` patched to ``polyio.open_connection``, against a real
``redis-server``, every reply compared with the same run on asyncio's own streams (on the
default loop and on uvloop)."""

from __future__ import annotations

import asyncio
import random
from types import SimpleNamespace
from typing import Any

import pytest
import redis.asyncio as aioredis

import polyio
from conftest import POLYIO


def _values() -> dict[str, bytes]:
    rng = random.Random(12)
    out = {f"k{i}": rng.randbytes(rng.randrange(0, 2000)) for i in range(200)}
    for i in range(8):  # 100 KiB values: many reads per reply, and write backpressure
        out[f"big{i}"] = rng.randbytes(100 * 1024)
    return out


def test_redis_py_on_polyio_streams(
    compare: Any, redis_server: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = _values()

    async def scenario(api: SimpleNamespace) -> list[Any]:
        opened = 0

        async def counting_open(*args: Any, **kwargs: Any) -> Any:
            nonlocal opened
            opened += 1
            if api is POLYIO:
                return await polyio.open_connection(*args, **kwargs)
            return await original(*args, **kwargs)

        original = asyncio.open_connection
        monkeypatch.setattr(asyncio, "open_connection", counting_open)
        out: list[Any] = []
        client = aioredis.Redis(host=redis_server.host, port=redis_server.port, max_connections=10)
        try:
            await client.flushdb()
            out.append(await client.ping())

            # GET/SET of many keys, ten tasks at a time, every reply checked.
            keys = sorted(values)
            for i in range(0, len(keys), 10):
                batch = keys[i : i + 10]
                sets = await asyncio.gather(*(client.set(k, values[k]) for k in batch))
                assert all(sets)
                gets = await asyncio.gather(*(client.get(k) for k in batch))
                assert gets == [values[k] for k in batch]
            out.append(await client.dbsize())
            out.append(await client.mget(["big0", "k1", "missing"]) == [values["big0"], values["k1"], None])

            # A pipeline (a transaction): replies in order.
            async with client.pipeline(transaction=True) as pipe:
                pipe.set("counter", 1).incrby("counter", 41).get("counter")
                pipe.rpush("list", *[str(i) for i in range(100)]).lrange("list", 0, -1)
                pipe.delete("big7").exists("big7")
                replies = await pipe.execute()
            out.append(replies[:3] + [replies[3], len(replies[4]), replies[5], replies[6]])
            assert replies[4] == [str(i).encode() for i in range(100)]

            # Connection pool reuse: sequential commands open no new connection.
            before = opened
            for i in range(100):
                assert await client.get(f"k{i}") == values[f"k{i}"]
            out.append(opened - before)
            out.append(1 <= opened <= 10)

            # Pub/sub: get_message with a timeout cancels reads (polyio's must keep the
            # stream reading ahead), then the messages published meanwhile all arrive.
            pubsub = client.pubsub()
            await pubsub.subscribe("news")
            confirm = await pubsub.get_message(timeout=5)
            out.append((confirm or {}).get("type"))
            out.append(await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.05))
            payloads = [f"m{i}".encode() * (i + 1) for i in range(50)] + [values["big1"]]
            for p in payloads:
                await client.publish("news", p)
            got: list[bytes] = []
            while len(got) < len(payloads):
                msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
                assert msg is not None, f"{len(got)} of {len(payloads)} messages"
                got.append(msg["data"])
            out.append(got == payloads)
            await pubsub.unsubscribe("news")
            await pubsub.aclose()

            # A pooled connection the server dropped is noticed on checkout (redis-py reads
            # StreamReader._buffer and at_eof()); the next command still succeeds.
            other = aioredis.Redis(host=redis_server.host, port=redis_server.port)
            killed = await other.client_kill_filter(_type="normal", skipme=True)
            await other.aclose()
            out.append(killed >= 1)
            out.append(await client.get("k3") == values["k3"])
            await client.flushdb()
        finally:
            await client.aclose()
            monkeypatch.setattr(asyncio, "open_connection", original)
        out.append(opened >= 1)
        return out

    assert compare(scenario) == [
        True, 208, True, [True, 42, b"42", 100, 100, 1, 0], 0, True,
        "subscribe", None, True, True, True, True,
    ]  # fmt: skip
