"""Slow readers: a writer that ignores backpressure against a peer that accepts and never
reads (a plain socket), compared with asyncio's streams and transports on the default loop
and on uvloop. The write buffer holds exactly what was handed over and the kernel did not
take; `drain()` waits above the high-water mark; `pause_writing` / `resume_writing` come
once per crossing of the water marks."""

from __future__ import annotations

import asyncio
import fcntl
import socket
import struct
import termios
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import pytest

HOST = "127.0.0.1"
CHUNK = 1 << 16


def _ioctl_int(fd: int, request: int) -> int:
    return int(struct.unpack("i", fcntl.ioctl(fd, request, b"\0\0\0\0"))[0])


def chunk(i: int) -> bytes:
    """The i-th chunk written: its bytes name its place, so reordering shows."""
    return bytes([i % 251]) * CHUNK


@contextmanager
def listener() -> Iterator[socket.socket]:
    lsock = socket.socket()
    try:
        lsock.bind((HOST, 0))
        lsock.listen()
        yield lsock
    finally:
        lsock.close()


class Peer:
    """The accepted end: a plain non-blocking socket that reads only when told to."""

    def __init__(self, lsock: socket.socket) -> None:
        self.sock, _ = lsock.accept()
        self.sock.setblocking(False)
        self.data = bytearray()

    def read(self, n: int) -> int:
        """Reads up to `n` bytes of what is there now; returns how many."""
        got = 0
        while got < n:
            try:
                b = self.sock.recv(min(n - got, 1 << 20))
            except BlockingIOError:
                break
            if not b:
                break
            self.data += b
            got += len(b)
        return got

    def kernel_held(self, writer_fd: int) -> int:
        """Bytes the kernel holds between the two ends: the writer's send queue (unsent and
        unacknowledged) plus the peer's receive queue."""
        return _ioctl_int(writer_fd, termios.TIOCOUTQ) + _ioctl_int(self.sock.fileno(), termios.FIONREAD)

    def close(self) -> None:
        self.sock.close()


async def accounted(t: Any, peer: Peer, fd: int, handed: int) -> bool:
    """Waits (a bounded number of loop turns) until everything handed over is either in the
    transport's write buffer, with the kernel, or read by the peer, byte for byte. (An
    acknowledgement in flight counts a segment on both ends for a moment, hence the wait.)"""
    for _ in range(300):
        if handed == t.get_write_buffer_size() + peer.kernel_held(fd) + len(peer.data):
            return True
        await asyncio.sleep(0.01)
    return False


async def settle(t: Any) -> None:
    """Lets the loop run until the write buffer stops changing for a few turns."""
    last, same = -1, 0
    for _ in range(300):
        await asyncio.sleep(0.01)
        size = t.get_write_buffer_size()
        same = same + 1 if size == last else 0
        last = size
        if same == 3:
            return


def test_write_buffer_holds_what_the_kernel_did_not_take(compare: Any) -> None:
    """`write()` without `drain()`: the buffer grows by exactly what was handed over minus
    what the kernel took, at every step; `drain()` waits while it is above the high-water
    mark and returns once the peer's reads bring it to the low-water mark; every byte
    arrives, in order."""

    async def scenario(api: SimpleNamespace) -> list[Any]:
        with listener() as lsock:
            r, w = await api.open_connection(HOST, lsock.getsockname()[1])
            peer = Peer(lsock)
            t = w.transport
            fd = t.get_extra_info("socket").fileno()
            low, high = t.get_write_buffer_limits()
            facts: dict[str, bool] = {}
            handed = 0
            exact = True
            for i in range(256):  # 16 MiB: far more than the kernel buffers hold
                before = t.get_write_buffer_size() + peer.kernel_held(fd)
                w.write(chunk(i))
                handed += CHUNK
                grew = t.get_write_buffer_size() + peer.kernel_held(fd) - before
                # What the kernel took during the write, plus what the buffer grew by, is
                # the chunk (the send queue only moves to the peer's receive queue).
                exact &= grew == CHUNK or await accounted(t, peer, fd, handed)
            facts["every write accounted"] = exact
            facts["above high after the loop"] = t.get_write_buffer_size() > high
            facts["accounted before the loop runs"] = await accounted(t, peer, fd, handed)
            drain = asyncio.ensure_future(w.drain())
            await settle(t)
            facts["accounted while the peer does not read"] = await accounted(t, peer, fd, handed)
            facts["drain waits while the peer does not read"] = not drain.done()
            # The peer reads a little at a time: the buffer shrinks by what the kernel then
            # takes, and drain waits until it is at the low-water mark.
            steps_ok = True
            for _ in range(3000):
                if drain.done():
                    break
                if peer.read(1 << 20) == 0:
                    await asyncio.sleep(0.01)
                    continue
                await settle(t)
                steps_ok &= await accounted(t, peer, fd, handed)
                steps_ok &= not (drain.done() and t.get_write_buffer_size() > low)
                if len(peer.data) == handed:
                    await asyncio.wait_for(drain, 10)
            facts["accounted at each read of the peer"] = steps_ok
            facts["below low once drained"] = t.get_write_buffer_size() <= low
            await drain
            w.write_eof()
            for _ in range(1000):
                if len(peer.data) >= handed:
                    break
                if peer.read(1 << 24) == 0:
                    await asyncio.sleep(0.01)
            facts["every byte, in order"] = bytes(peer.data) == b"".join(chunk(i) for i in range(256))
            w.close()
            await w.wait_closed()
            peer.close()
            return sorted(facts.items())

    got = compare(scenario)
    assert all(ok for _, ok in got), got


@pytest.mark.parametrize(
    "limits",
    [{}, {"high": 1 << 20}, {"low": 1 << 12}, {"high": 3 << 16, "low": 1 << 16}],
    ids=["default", "high", "low", "both"],
)
def test_pause_and_resume_once_per_crossing(compare: Any, limits: dict[str, int]) -> None:
    """A protocol that ignores `pause_writing` and writes on: `pause_writing` comes once,
    when the buffer first passes the high-water mark; `resume_writing` once, when the
    peer's reads bring it to the low-water mark; three times over."""

    async def scenario(api: SimpleNamespace) -> list[Any]:
        calls: list[tuple[str, bool]] = []

        class Writer(asyncio.Protocol):
            def connection_made(self, transport: Any) -> None:
                self.t = transport

            def pause_writing(self) -> None:
                low, high = self.t.get_write_buffer_limits()
                calls.append(("pause", self.t.get_write_buffer_size() > high))

            def resume_writing(self) -> None:
                low, high = self.t.get_write_buffer_limits()
                calls.append(("resume", self.t.get_write_buffer_size() <= low))

        with listener() as lsock:
            t, _ = await api.create_connection(Writer, HOST, lsock.getsockname()[1])
            peer = Peer(lsock)
            t.set_write_buffer_limits(**limits)
            out: list[Any] = [t.get_write_buffer_limits()]
            i = 0
            for _ in range(3):
                while len(calls) % 2 == 0:  # writes until it pauses
                    t.write(chunk(i))
                    i += 1
                for _ in range(16):  # ignores the pause: no second pause_writing
                    t.write(chunk(i))
                    i += 1
                await settle(t)
                for _ in range(3000):  # the peer reads until the writer resumes
                    if len(calls) % 2 == 0:
                        break
                    if peer.read(1 << 20) == 0:
                        await asyncio.sleep(0.01)
            t.write_eof()
            for _ in range(3000):
                if len(peer.data) >= i * CHUNK:
                    break
                if peer.read(1 << 24) == 0:
                    await asyncio.sleep(0.01)
            out.append(bytes(peer.data) == b"".join(chunk(k) for k in range(i)))
            # Once per crossing: the calls alternate, each at the right side of its mark.
            out.append(all(c == ("pause", "resume")[k % 2] for k, (c, _) in enumerate(calls)))
            out.append(all(ok for _, ok in calls) and len(calls) >= 6 and len(calls) % 2 == 0)
            t.close()
            peer.close()
            return out

    assert compare(scenario)[1:] == [True, True, True]


def test_write_buffer_limits_as_asyncio(compare: Any) -> None:
    """`set_write_buffer_limits` / `get_write_buffer_limits` on a stream's transport: the
    defaults, each mark derived from the other, and the error, as asyncio's. (uvloop's own
    transports start with a low-water mark of 16 bytes until the first set, where asyncio's
    start at 16 KiB: the reference is asyncio's loop.)"""

    async def scenario(api: SimpleNamespace) -> list[Any]:
        with listener() as lsock:
            r, w = await api.open_connection(HOST, lsock.getsockname()[1])
            peer = Peer(lsock)
            t = w.transport
            out: list[Any] = [t.get_write_buffer_limits()]
            for kw in ({"high": 1000}, {"low": 100}, {"high": 10, "low": 10}, {"high": 0}, {}):
                t.set_write_buffer_limits(**kw)
                out.append(t.get_write_buffer_limits())
            for bad in ({"high": 10, "low": 20}, {"high": -1}, {"low": -4}):
                try:
                    t.set_write_buffer_limits(**bad)
                except ValueError as e:
                    out.append(str(e))
            out.append(t.get_write_buffer_limits())
            w.close()
            await w.wait_closed()
            peer.close()
            return out

    compare(scenario, uvloop_reference=False)
