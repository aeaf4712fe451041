"""Faults from outside (docs/reliability.md): a peer that trickles a byte at a time, and sends
the kernel refuses (ENOBUFS, forced by tests/faults/inject.c under LD_PRELOAD in a child
process), compared with asyncio on the default loop and on uvloop."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from conftest import finish, port_of

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parents[2]
TRICKLE = b"trickle!"
# Seconds between the trickled bytes (POLYIO_TRICKLE_MS=1000: one a second).
GAP = int(os.environ.get("POLYIO_TRICKLE_MS", "100")) / 1000


def trickler() -> tuple[int, threading.Event, threading.Thread]:
    """A peer on a free port that, once `go` is set, sends TRICKLE a byte at a time, GAP
    apart, then waits for the other side to close."""
    lsock = socket.create_server((HOST, 0))
    go = threading.Event()

    def run() -> None:
        with lsock:
            conn, _ = lsock.accept()
            with conn:
                go.wait(10)
                for b in TRICKLE:
                    time.sleep(GAP)
                    conn.sendall(bytes([b]))
                conn.settimeout(10)
                conn.recv(1)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return int(lsock.getsockname()[1]), go, t


async def echo_handler(r: Any, w: Any) -> None:
    while data := await r.read(65536):
        w.write(data)
        await w.drain()
    w.close()


def test_trickling_peer(compare: Any) -> None:
    async def scenario(api: SimpleNamespace) -> list[Any]:
        port, go, t = trickler()
        server = await api.start_server(echo_handler, HOST, 0)
        other_r, other_w = await api.open_connection(HOST, port_of(server))
        reader, writer = await api.open_connection(HOST, port)
        out: list[Any] = []
        # Nothing sent yet, then a byte every GAP: wait_for ends both with TimeoutError.
        for _ in range(2):
            try:
                await asyncio.wait_for(reader.readexactly(len(TRICKLE)), GAP / 2)
                out.append("read")
            except TimeoutError:
                out.append("TimeoutError")
            go.set()
        # The other connection keeps echoing while the trickle goes on.
        done = asyncio.Event()

        async def echoes() -> bool:
            n = 0
            while not done.is_set() or n == 0:
                other_w.write(b"ping" * 256)
                await other_w.drain()
                if await other_r.readexactly(1024) != b"ping" * 256:
                    return False
                n += 1
                await asyncio.sleep(GAP / 4)
            return True

        async def trickled() -> bytes:
            try:
                return await reader.readexactly(len(TRICKLE))
            finally:
                done.set()

        data, echoed = await asyncio.gather(trickled(), echoes())
        out += [data, echoed]
        await finish(server, writer, other_w)
        await asyncio.to_thread(t.join, 10)
        return out

    got = compare(scenario)
    assert got == ["TimeoutError", "TimeoutError", TRICKLE, True]


@pytest.fixture(scope="module")
def inject_so(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The interposer: POLYIO_INJECT_SO (the Makefile builds it), else built here."""
    so = os.environ.get("POLYIO_INJECT_SO")
    if so:
        return so
    out = tmp_path_factory.mktemp("inject") / "libpolyio_inject.so"
    src = ROOT / "tests" / "faults" / "inject.c"
    cmd = ["cc", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", "-o", str(out), str(src), "-ldl"]
    subprocess.run(cmd, check=True)
    return str(out)


def send_errors(impl: str, so: str) -> dict[str, Any]:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port = s.getsockname()[1]
    env = dict(os.environ, LD_PRELOAD=so, POLYIO_INJECT_ERRNO="ENOBUFS", POLYIO_INJECT_PORT=str(port))
    child = Path(__file__).with_name("send_errors_child.py")
    p = subprocess.run(
        [sys.executable, str(child), impl, str(port)], env=env, capture_output=True, text=True, timeout=60
    )
    assert p.returncode == 0, p.stderr[-4000:]
    assert "inject: " in p.stderr, "the interposer failed no send"
    result: dict[str, Any] = json.loads(p.stdout.strip().splitlines()[-1])
    return result


def test_send_errors_match_asyncio(inject_so: str) -> None:
    """ENOBUFS on a datagram send reaches error_received(OSError(ENOBUFS)) and the endpoint
    stays open; on a stream write it ends the connection: drain, read and wait_closed raise
    it, a protocol's connection_lost gets it. The other connection keeps echoing."""
    expected = send_errors("asyncio", inject_so)
    enobufs = ["OSError", 105]
    assert expected["udp_errors"] == [enobufs] * 3
    assert expected["protocol_lost"] == enobufs
    assert expected["drain"] == enobufs
    for impl in ["polyio-asyncio", "polyio-uvloop"]:
        assert send_errors(impl, inject_so) == expected, impl
    # uvloop agrees but for datagrams: libuv takes ENOBUFS on a UDP send as "try again"
    # and keeps the datagram queued, retrying; the protocol never hears of it.
    uv = send_errors("uvloop", inject_so)
    assert uv == dict(expected, udp_errors=[])
