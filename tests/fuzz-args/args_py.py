"""Fuzzes the argument conversion of every public callable of the ``polyio`` package.

An input is bytes that choose a short program: calls of polyio's public functions, of the
methods of its classes (on live objects: streams and transports on loopback, servers, UDP
endpoints, open files, polyio's loop), each argument a sane value or a hostile one (wrong
types, huge and negative ints, NaN, NUL bytes, lone surrogates, released, readonly and
non-contiguous buffers, objects whose ``__index__`` / ``__fspath__`` / ``__len__`` raise or
lie, buffers mutated during the call, misspelt keywords). The same program runs on asyncio
(or the built-in ``open`` and ``os`` for files), and each polyio outcome is checked:

- never ``SystemError`` or pyo3's ``PanicException``, never a crash (the parent process sees
  the signal), never a hang (a call asyncio finishes must finish);
- an exception of the class asyncio raises for the same input (or a subclass of it, or the
  other way round), or polyio's documented ``NotImplementedError`` for what it does not
  support; ``LISTED`` names the few known, intended differences;
- no file descriptor left open once the loop (and with it polyio's runtime) is closed.

Modes: ``--seed S --runs N`` (random inputs, plus every file of the corpus), ``--replay
FILE...``, ``--atheris [libFuzzer flags] CORPUS_DIR`` (coverage-guided, when atheris is
installed). The parent re-runs itself in a child process and reports a signal, a panic or
fatal message, or a child that stopped answering.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import gc
import inspect
import math
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Optional

HERE = Path(__file__).resolve().parent
CORPUS = HERE.parent.parent / "fuzz" / "corpus" / "py_args"
CALL_TIMEOUT = 0.5  # seconds an awaited call may take before it counts as waiting
MAX_CALLS = 6

# ---- the byte source -----------------------------------------------------------------


class Src:
    """Reads choices from the input bytes; past the end every choice is 0 (the first)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            return 0
        b = self.data[self.pos]
        self.pos += 1
        return b

    def below(self, n: int) -> int:
        return self.byte() % n if n else 0

    def left(self) -> bool:
        return self.pos < len(self.data)


# ---- hostile values --------------------------------------------------------------------


class Boom(Exception):
    """What the lying objects raise."""


class RaisingIndex:
    def __index__(self) -> int:
        raise Boom("__index__")


class LyingIndex:
    def __index__(self) -> int:
        return 2**70


class NegIndex:
    def __index__(self) -> int:
        return -1


class RaisingFspath:
    def __fspath__(self) -> str:
        raise Boom("__fspath__")


class IntFspath:
    def __fspath__(self) -> Any:
        return 42


class RaisingLen:
    def __len__(self) -> int:
        raise Boom("__len__")

    def __iter__(self) -> Iterator[bytes]:
        return iter([b"x"])


class LyingLen:
    def __len__(self) -> int:
        return 2**62

    def __iter__(self) -> Iterator[bytes]:
        return iter([b"x"])


class RaisingStr:
    def __str__(self) -> str:
        raise Boom("__str__")

    __repr__ = object.__repr__


class StrSub(str):
    pass


class IntSub(int):
    pass


class RaisingEq:
    def __eq__(self, other: object) -> bool:
        raise Boom("__eq__")

    def __hash__(self) -> int:
        return 1


def _released() -> memoryview:
    m = memoryview(bytearray(b"released"))
    m.release()
    return m


def _raising_gen() -> Iterator[bytes]:
    yield b"a"
    raise Boom("generator")


def _mutating_lines() -> Iterator[Any]:
    """A writelines argument that shrinks the buffer it handed over while being iterated."""
    buf = bytearray(b"x" * 4096)
    yield buf
    del buf[:]
    yield b"y"


class _Tup(tuple):  # type: ignore[type-arg]
    pass


def _mk(ctx: "Ctx") -> dict[str, Callable[[], Any]]:
    """Every hostile value by name, made fresh per call (each side gets its own)."""
    return {
        "None": lambda: None,
        "True": lambda: True,
        "False": lambda: False,
        "0": lambda: 0,
        "1": lambda: 1,
        "-1": lambda: -1,
        "-2": lambda: -2,
        "2**16": lambda: 2**16,
        "2**31": lambda: 2**31,
        "2**63": lambda: 2**63,
        "2**64": lambda: 2**64,
        "-2**63-1": lambda: -(2**63) - 1,
        "maxsize+1": lambda: sys.maxsize + 1,
        "IntSub(5)": lambda: IntSub(5),
        "0.0": lambda: 0.0,
        "-0.0": lambda: -0.0,
        "0.01": lambda: 0.01,
        "nan": lambda: math.nan,
        "inf": lambda: math.inf,
        "-inf": lambda: -math.inf,
        "1e308": lambda: 1e308,
        "-1e-300": lambda: -1e-300,
        "''": lambda: "",
        "'a'": lambda: "a",
        "'\\0'": lambda: "\0",
        "'a\\0b'": lambda: "a\0b",
        "'\\ud800'": lambda: "\ud800",
        "'x'*70000": lambda: "x" * 70000,
        "'é'": lambda: "é",
        "'r+b'": lambda: "r+b",
        "'zz'": lambda: "zz",
        "'utf-16'": lambda: "utf-16",
        "'127.0.0.1'": lambda: "127.0.0.1",
        "'::1'": lambda: "::1",
        "'[::1]'": lambda: "[::1]",
        "'localhost'": lambda: "localhost",
        "'999.1.1.1'": lambda: "999.1.1.1",
        "'peername'": lambda: "peername",
        "StrSub('127.0.0.1')": lambda: StrSub("127.0.0.1"),
        "b''": lambda: b"",
        "b'\\0'": lambda: b"\0",
        "b'abc'": lambda: b"abc",
        "b'x'*300000": lambda: b"x" * 300000,
        "b'127.0.0.1'": lambda: b"127.0.0.1",
        "bytearray(b'abc')": lambda: bytearray(b"abc"),
        "memoryview(b'abcdef')[::2]": lambda: memoryview(b"abcdef")[::2],
        "memoryview(bytearray).toreadonly()": lambda: memoryview(bytearray(b"ro")).toreadonly(),
        "memoryview(released)": _released,
        "memoryview 2x2": lambda: memoryview(bytearray(b"abcd")).cast("B", (2, 2)),
        "memoryview('i')": lambda: memoryview(array.array("i", [1, 2])),
        "array('d')": lambda: array.array("d", [1.5]),
        "memoryview(b'')": lambda: memoryview(b""),
        "[]": lambda: [],
        "[b'a', b'b']": lambda: [b"a", b"b"],
        "[b'a', 1]": lambda: [b"a", 1],
        "['a']": lambda: ["a"],
        "[None]": lambda: [None],
        "['127.0.0.1', '::1']": lambda: ["127.0.0.1", "::1"],
        "()": lambda: (),
        "(host,)": lambda: ("127.0.0.1",),
        "(host, 0)": lambda: ("127.0.0.1", 0),
        "(host, udp port)": lambda: ("127.0.0.1", ctx.udp_port),
        "(host, 2**64)": lambda: ("127.0.0.1", 2**64),
        "(host, -1)": lambda: ("127.0.0.1", -1),
        "(None, 0)": lambda: (None, 0),
        "('::1', 0, 0, 0)": lambda: ("::1", 0, 0, 0),
        "(1, 2)": lambda: (1, 2),
        "_Tup((host, 0))": lambda: _Tup(("127.0.0.1", 0)),
        "{}": lambda: {},
        "object()": lambda: object(),
        "RaisingIndex()": RaisingIndex,
        "LyingIndex()": LyingIndex,
        "NegIndex()": NegIndex,
        "RaisingFspath()": RaisingFspath,
        "IntFspath()": IntFspath,
        "RaisingLen()": RaisingLen,
        "LyingLen()": LyingLen,
        "RaisingStr()": RaisingStr,
        "RaisingEq()": RaisingEq,
        "raising generator": _raising_gen,
        "mutating lines": _mutating_lines,
        "iter([b'a'])": lambda: iter([b"a"]),
        "Protocol": lambda: asyncio.Protocol,
        "DatagramProtocol": lambda: asyncio.DatagramProtocol,
        "lambda: None": lambda: (lambda: None),
        "lambda: raise": lambda: _raiser,
        "int": lambda: int,
        "print": lambda: print,
        "coroutine": lambda: _coro(),
        "path: file": lambda: ctx.file,
        "path: bytes file": lambda: os.fsencode(ctx.file),
        "path: Path file": lambda: Path(ctx.file),
        "path: missing": lambda: os.path.join(ctx.dir, "missing", "x"),
        "path: dir": lambda: ctx.dir,
        "path: unix peer": lambda: ctx.unix_path,
        "path: new unix": lambda: os.path.join(ctx.dir, "s%d.sock" % ctx.next()),
        "path: 'a'*5000": lambda: os.path.join(ctx.dir, "a" * 5000),
        "path: '\\0abstract'": lambda: "\0polyio-fuzz-%d-%d" % (os.getpid(), ctx.next()),
        "path: b'\\xff'": lambda: os.path.join(os.fsencode(ctx.dir), b"\xff"),
        "socket.AF_INET": lambda: socket.AF_INET,
        "socket.AF_INET6": lambda: socket.AF_INET6,
        "socket.AF_UNIX": lambda: socket.AF_UNIX,
        "socket.SOCK_STREAM": lambda: socket.SOCK_STREAM,
        "socket.AI_PASSIVE": lambda: socket.AI_PASSIVE,
        "os.SEEK_END": lambda: os.SEEK_END,
        "3": lambda: 3,
        "8": lambda: 8,
        "b'\\n'": lambda: b"\n",
        "b'de'": lambda: b"de",
    }


def _raiser() -> Any:
    raise Boom("factory")


async def _coro() -> None:
    return None


# Sane values by parameter name (else a hostile one): what a careful caller passes.
SANE: dict[str, Callable[["Ctx"], Any]] = {
    "host": lambda c: "127.0.0.1",
    "port": lambda c: 0 if "server" in c.target_name else c.port,
    "path": lambda c: (
        os.path.join(c.dir, "s%d.sock" % c.next())
        if "unix_server" in c.target_name
        else c.unix_path if c.target_kind == "unix" else c.file
    ),
    "file": lambda c: c.file,
    "protocol_factory": lambda c: asyncio.DatagramProtocol if c.target_kind == "udp" else asyncio.Protocol,
    "client_connected_cb": lambda c: _close_cb,
    "limit": lambda c: 65536,
    "data": lambda c: b"data",
    "b": lambda c: b"data",
    "s": lambda c: "text",
    "n": lambda c: 3,
    "size": lambda c: 3,
    "offset": lambda c: 0,
    "whence": lambda c: 0,
    "mode": lambda c: "r+b",
    "delay": lambda c: 0.001,
    "name": lambda c: "sockname",
    "separator": lambda c: b"\n",
    "local_addr": lambda c: ("127.0.0.1", 0),
    "remote_addr": lambda c: ("127.0.0.1", c.udp_port),
    "addr": lambda c: ("127.0.0.1", c.udp_port),
    "list_of_data": lambda c: [b"a", b"b"],
    "lines": lambda c: [b"a\n"],
    "hint": lambda c: -1,
}

TYPO_KEYWORDS = ["hots", "prot", "limt", "famliy", "sock_", "timeout", "signal"]


def _close_cb(reader: Any, writer: Any) -> None:
    writer.close()


# ---- what is fuzzed ----------------------------------------------------------------------

# Public names that are not polyio's own code, or have nothing to convert.
SKIP_NAMES = {
    "IncompleteReadError": "asyncio's own class, re-exported",
    "LimitOverrunError": "asyncio's own class, re-exported",
    "__version__": "a string",
    "install": "sets the process's event loop policy; no arguments",
    "EventLoopPolicy": "asyncio's DefaultEventLoopPolicy with polyio's loop factory",
    "Transport": "the class polyio's transports report: instances come from create_connection",
    "DatagramTransport": "as Transport, from create_datagram_endpoint",
}

# Classes whose instances come from a fixture, and the methods to leave alone
# (lifecycle methods are called at cleanup; serve_forever waits by design).
FIXTURE_CLASSES = {
    "StreamReader": "stream",
    "StreamWriter": "stream",
    "Transport": "transport",
    "DatagramTransport": "udp",
    "Server": "server",
    "BinaryFile": "bfile",
    "TextFile": "tfile",
    "Loop": "loop",
}
SKIP_METHODS = {"serve_forever", "close", "abort", "wait_closed", "set_protocol", "get_protocol"}

# Methods of the polyio loop that are polyio's code (the rest is uvloop's or asyncio's).
def _loop_methods() -> list[str]:
    from polyio import _loop

    return sorted(
        n
        for n, v in vars(_loop._PolyioNetworking).items()
        if not n.startswith("_") and callable(v) and n not in ("close", "start_tls")
    )


class Target:
    def __init__(self, name: str, kind: str, params: list[inspect.Parameter], fixture: str = "") -> None:
        self.name = name
        self.kind = kind  # "tcp", "unix", "udp", "file", "" (what the sane values should be)
        self.params = params
        self.fixture = fixture

    def __repr__(self) -> str:
        return self.name


def _kind(name: str) -> str:
    if "unix" in name:
        return "unix"
    if "datagram" in name or name.startswith("DatagramTransport."):
        return "udp"
    if name in ("open", "read_bytes", "read_text", "write_bytes", "write_text", "stat"):
        return "file"
    return "tcp"


def _params(fn: Any) -> list[inspect.Parameter]:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return []
    return [p for p in sig.parameters.values() if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def targets() -> list[Target]:
    """Every public callable of ``polyio`` (from ``__all__``) and every public method of its
    classes, so that a new name is fuzzed without a change here (or fails ``covered()``)."""
    import polyio
    from polyio import _polyio

    out: list[Target] = []
    for name in polyio.__all__:
        if name in SKIP_NAMES and name not in FIXTURE_CLASSES:
            continue
        obj = getattr(polyio, name)
        if inspect.isclass(obj):
            fixture = FIXTURE_CLASSES.get(name)
            if fixture is None:
                out.append(Target(name, _kind(name), _params(obj)))
                continue
            if name == "Loop":
                methods = _loop_methods()
                src: Any = obj
            elif name == "Transport":
                src, methods = _polyio.Conn, [m for m in dir(obj) if not m.startswith("_")]
            elif name == "DatagramTransport":
                src, methods = _polyio.Datagram, [m for m in dir(obj) if not m.startswith("_")]
            else:
                src, methods = obj, [m for m in dir(obj) if not m.startswith("_")]
            for m in methods:
                if m in SKIP_METHODS:
                    continue
                fn = getattr(src, m, None)
                if fn is None or not callable(fn) or isinstance(fn, property):
                    continue
                full = f"{name}.{m}"
                params = _params(fn)
                if not params and name in ("Transport", "DatagramTransport"):
                    params = _native_params(m)
                out.append(Target(full, _kind(full) if name != "Loop" else _kind(m), params, fixture))
        elif callable(obj):
            out.append(Target(name, _kind(name), _params(obj)))
    return out


def _native_params(method: str) -> list[inspect.Parameter]:
    """Parameters of native methods (pyo3 gives no signature for some), from asyncio's."""
    fn = getattr(asyncio.DatagramTransport, method, None) or getattr(asyncio.Transport, method, None)
    return _params(fn) if fn is not None else []


# ---- one input ----------------------------------------------------------------------------


class Ctx:
    """What one side's session has: the peer's addresses, a temp dir, its fixtures."""

    def __init__(self, peer: "Peer", tmp: str) -> None:
        self.port = peer.port
        self.udp_port = peer.udp_port
        self.unix_path = peer.unix_path
        self.dir = tmp
        self.file = os.path.join(tmp, "data.bin")
        self.counter = 0
        self.target_kind = ""
        self.target_name = ""
        self.values = _mk(self)

    def next(self) -> int:
        self.counter += 1
        return self.counter


def plan(data: bytes, tgts: list[Target]) -> list[tuple[Target, list[tuple[str, str]], list[str]]]:
    """The program an input encodes: (target, [(param, value name)], extra keywords)."""
    src = Src(data)
    names = HOSTILE_NAMES
    calls = []
    ncalls = 1 + src.below(MAX_CALLS)
    for _ in range(ncalls):
        t = tgts[(src.byte() << 8 | src.byte()) % len(tgts)]
        # One hostile argument per call (the rest sane, or left out when they have a
        # default): each outcome then says how that one argument is checked.
        hostile = src.below(len(t.params) + 1)
        args: list[tuple[str, str]] = []
        for i, p in enumerate(t.params):
            if i == hostile:
                args.append((p.name, names[src.byte() % len(names)]))
            elif p.default is not p.empty and p.name not in SANE and src.byte() >= 64:
                args.append((p.name, "<omit>"))
            else:
                args.append((p.name, "<sane>"))
        extra = []
        if src.byte() >= 248:
            extra.append(TYPO_KEYWORDS[src.below(len(TYPO_KEYWORDS))])
        calls.append((t, args, extra))
        if not src.left():
            break
    return calls


HOSTILE_NAMES: list[str] = []


class Peer:
    """Loopback peers in a thread of their own (not polyio, not the loop under test): a TCP
    and a Unix server that send a few lines then EOF and discard what they read, a UDP
    socket that discards datagrams."""

    GREETING = b"abc\ndef\n" + b"z" * 100

    def __init__(self, tmp: str) -> None:
        self.tcp = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port = self.tcp.getsockname()[1]
        self.unix_path = os.path.join(tmp, "peer.sock")
        self.unix = socket.socket(socket.AF_UNIX)
        self.unix.bind(self.unix_path)
        self.unix.listen(128)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.udp_port = self.udp.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        import selectors

        sel = selectors.DefaultSelector()
        for s in (self.tcp, self.unix, self.udp):
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ)
        while not self.stop:
            for key, _ in sel.select(0.05):
                s = key.fileobj
                try:
                    if s is self.udp:
                        self.udp.recvfrom(70000)
                    elif s in (self.tcp, self.unix):
                        c, _ = s.accept()  # type: ignore[union-attr]
                        c.setblocking(True)
                        try:
                            c.sendall(self.GREETING)
                            c.shutdown(socket.SHUT_WR)
                        except OSError:
                            pass
                        c.setblocking(False)
                        sel.register(c, selectors.EVENT_READ)
                    else:
                        if not s.recv(1 << 20):  # type: ignore[union-attr]
                            sel.unregister(s)
                            s.close()  # type: ignore[union-attr]
                except OSError:
                    try:
                        sel.unregister(s)
                        if s not in (self.tcp, self.unix, self.udp):
                            s.close()  # type: ignore[union-attr]
                    except (KeyError, ValueError, OSError):
                        pass


def _fds() -> set[str]:
    gc.collect()
    return set(os.listdir("/proc/self/fd"))


def _outcome(exc: Optional[BaseException]) -> str:
    if exc is None:
        return "ok"
    t = type(exc)
    return f"{t.__module__}.{t.__qualname__}" if t.__module__ != "builtins" else t.__qualname__


class Session:
    """Runs a plan on one side ("polyio" or "asyncio") and records each call's outcome."""

    def __init__(self, side: str, peer: Peer, loop_kind: str) -> None:
        self.side = side
        self.peer = peer
        self.loop_kind = loop_kind
        self.outcomes: list[tuple[str, Optional[BaseException]]] = []
        self.owned: list[Any] = []
        self.fixtures: dict[str, Any] = {}

    def run(self, calls: list[Any]) -> None:
        import polyio

        tmp = tempfile.mkdtemp(prefix=f"pf-{self.side}-")
        cwd = os.getcwd()
        try:
            os.chdir(tmp)
            with open(os.path.join(tmp, "data.bin"), "wb") as f:
                f.write(b"line one\nline two\n" + bytes(range(128)) + "\u00e9t\u00e9\n".encode())
            os.mkdir(os.path.join(tmp, "sub"))
            self.ctx = Ctx(self.peer, tmp)
            if self.side == "polyio":
                factory = polyio.new_event_loop if self.loop_kind == "polyio" else asyncio.new_event_loop
            elif self.loop_kind == "polyio":
                import uvloop  # what polyio's loop is made on: its reference

                factory = uvloop.new_event_loop
            else:
                factory = asyncio.new_event_loop
            with asyncio.Runner(loop_factory=factory) as r:
                r.get_loop().set_exception_handler(lambda loop, ctx: None)
                r.run(self._main(calls))
        finally:
            os.chdir(cwd)
            shutil.rmtree(tmp, ignore_errors=True)

    async def _main(self, calls: list[Any]) -> None:
        try:
            for t, args, extra in calls:
                self.ctx.target_kind = t.kind
                self.ctx.target_name = t.name
                exc: Optional[BaseException]
                try:
                    fn = await self._callable(t)
                except _NoFixture:
                    self.outcomes.append((t.name, _NoReference()))
                    continue
                pos, kw = self._args(t, args, extra)
                try:
                    r = fn(*pos, **kw)
                    if inspect.isawaitable(r):
                        r = await asyncio.wait_for(_aw(r), CALL_TIMEOUT)
                    self._own(r)
                    exc = None
                except asyncio.TimeoutError:
                    exc = _Waited()
                except asyncio.CancelledError:
                    raise
                except BaseException as e:  # noqa: BLE001 - the outcome is what is checked
                    if isinstance(e, (KeyboardInterrupt, SystemExit)):
                        raise
                    exc = e
                self.outcomes.append((t.name, exc))
        finally:
            await self._cleanup()

    async def _callable(self, t: Target) -> Callable[..., Any]:
        if not t.fixture:
            return self._function(t.name)
        obj = await self._fixture(t.fixture, t.name.split(".")[0])
        method = t.name.split(".", 1)[1]
        fn = getattr(obj, method, None)
        if fn is None:
            raise _NoFixture(t.name)  # no such method on asyncio's (or io's) object
        return fn  # type: ignore[no-any-return]

    def _function(self, name: str) -> Callable[..., Any]:
        import polyio

        if self.side == "polyio":
            return getattr(polyio, name)  # type: ignore[no-any-return]
        ref = ASYNCIO_REFERENCE.get(name)
        if ref is None:
            raise _NoFixture(name)
        return ref()

    async def _fixture(self, fixture: str, cls: str) -> Any:
        key = fixture + ("/w" if cls == "StreamWriter" else "")
        if key in self.fixtures:
            return self.fixtures[key]
        import polyio

        c = self.ctx
        p = self.side == "polyio"
        loop = asyncio.get_running_loop()
        try:
            if fixture == "stream":
                r, w = await (polyio.open_connection if p else asyncio.open_connection)("127.0.0.1", c.port)
                self.owned.append(w)
                self.fixtures["stream"] = r
                self.fixtures["stream/w"] = w
            elif fixture == "transport":
                if p:
                    t, _ = await polyio.create_connection(asyncio.Protocol, "127.0.0.1", c.port)
                else:
                    t, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", c.port)
                self.owned.append(t)
                self.fixtures[key] = t
            elif fixture == "udp":
                f = polyio.create_datagram_endpoint if p else loop.create_datagram_endpoint
                t, _ = await f(asyncio.DatagramProtocol, remote_addr=("127.0.0.1", c.udp_port))
                self.owned.append(t)
                self.fixtures[key] = t
            elif fixture == "server":
                s = await (polyio.start_server if p else asyncio.start_server)(_close_cb, "127.0.0.1", 0)
                self.owned.append(s)
                self.fixtures[key] = s
            elif fixture in ("bfile", "tfile"):
                mode = "r+b" if fixture == "bfile" else "r+"
                f2 = await polyio.open(c.file, mode) if p else open(c.file, mode)  # noqa: SIM115
                self.owned.append(f2)
                self.fixtures[key] = f2
            elif fixture == "loop":
                if p and not hasattr(loop, "_polyio_networking"):
                    from polyio import _loop

                    if not isinstance(loop, _loop._PolyioNetworking):
                        raise _NoFixture("loop")
                self.fixtures[key] = loop
        except _NoFixture:
            raise
        except Exception as e:  # noqa: BLE001
            raise RuntimeError(f"fixture {fixture} failed on {self.side}: {e!r}") from e
        return self.fixtures[key]

    def _args(self, t: Target, args: list[tuple[str, str]], extra: list[str]) -> tuple[list[Any], dict[str, Any]]:
        pos: list[Any] = []
        kw: dict[str, Any] = {}
        params = {p.name: p for p in t.params}
        skipped = False
        for name, value in args:
            p = params[name]
            if value == "<omit>":
                skipped = True
                continue
            if value == "<sane>":
                make = SANE.get(name)
                if make is not None:
                    v = make(self.ctx)
                elif p.default is not p.empty:
                    v = p.default
                else:
                    v = None
            else:
                v = self.ctx.values[value]()
            if p.kind == p.KEYWORD_ONLY or (skipped and p.kind == p.POSITIONAL_OR_KEYWORD):
                kw[name] = v
            elif p.kind == p.POSITIONAL_ONLY and skipped:
                break
            else:
                pos.append(v)
        for e in extra:
            kw[e] = 1
        return pos, kw

    def _own(self, r: Any) -> None:
        for v in r if isinstance(r, tuple) else (r,):
            if isinstance(v, asyncio.AbstractEventLoop):
                if v is not asyncio.get_running_loop():
                    v.close()
            elif hasattr(v, "close") and not isinstance(v, type):
                self.owned.append(v)

    async def _cleanup(self) -> None:
        for o in reversed(self.owned):
            try:
                r = o.close()
                if inspect.isawaitable(r):
                    await asyncio.wait_for(_aw(r), 2)
                w = getattr(o, "wait_closed", None)
                if w is not None and isinstance(o, asyncio.AbstractServer):
                    await asyncio.wait_for(w(), 2)
            except Exception:  # noqa: BLE001 - closing what a hostile call left behind
                pass
        await asyncio.sleep(0)


async def _aw(r: Any) -> Any:
    return await r


class _NoFixture(Exception):
    pass


class _NoReference(Exception):
    """asyncio has no counterpart of this call: nothing to compare with."""


class _Waited(Exception):
    """The call was still waiting after CALL_TIMEOUT (not an error by itself)."""


def _ref_file_fn(name: str) -> Callable[[], Callable[..., Any]]:
    def read_bytes(path: Any) -> bytes:
        with open(os.fspath(path), "rb") as f:
            return f.read()

    def read_text(path: Any, encoding: Any = None, errors: Any = None) -> str:
        with open(os.fspath(path), encoding=_enc(encoding), errors=errors) as f:
            return f.read()

    def write_bytes(path: Any, data: Any) -> int:
        view = memoryview(data)
        with open(os.fspath(path), "wb") as f:
            return f.write(view)

    def write_text(path: Any, data: Any, encoding: Any = None, errors: Any = None, newline: Any = None) -> int:
        if not isinstance(data, str):
            raise TypeError("data must be str, not %s" % data.__class__.__name__)
        with open(os.fspath(path), "w", encoding=_enc(encoding), errors=errors, newline=newline) as f:
            return f.write(data)

    def path_open(file: Any, *a: Any, **k: Any) -> Any:
        # polyio.open takes a path, not the built-in's fd number (documented).
        return open(os.fspath(file), *a, **k)

    fns = {
        "read_bytes": read_bytes,
        "read_text": read_text,
        "write_bytes": write_bytes,
        "write_text": write_text,
        "stat": lambda path: os.stat(os.fspath(path)),
        "open": path_open,
    }
    return lambda: fns[name]


def _enc(encoding: Any) -> Any:
    return "utf-8" if encoding is None else encoding


def _loop_fn(name: str) -> Callable[[], Callable[..., Any]]:
    return lambda: getattr(asyncio.get_running_loop(), name)


ASYNCIO_REFERENCE: dict[str, Callable[[], Callable[..., Any]]] = {
    "open_connection": lambda: asyncio.open_connection,
    "start_server": lambda: asyncio.start_server,
    "open_unix_connection": lambda: asyncio.open_unix_connection,
    "start_unix_server": lambda: asyncio.start_unix_server,
    "create_connection": _loop_fn("create_connection"),
    "create_server": _loop_fn("create_server"),
    "create_unix_connection": _loop_fn("create_unix_connection"),
    "create_unix_server": _loop_fn("create_unix_server"),
    "create_datagram_endpoint": _loop_fn("create_datagram_endpoint"),
    "getaddrinfo": _loop_fn("getaddrinfo"),
    "sleep": lambda: asyncio.sleep,
    "new_event_loop": lambda: asyncio.new_event_loop,
    "run": lambda: asyncio.run,
    "Loop": lambda: asyncio.SelectorEventLoop,
    **{n: _ref_file_fn(n) for n in ("read_bytes", "read_text", "write_bytes", "write_text", "stat", "open")},
}

# Known, intended differences from asyncio: (what, test of (name, polyio's, asyncio's)).
LISTED: list[tuple[str, Callable[[str, Any, Any], bool]]] = [
    (
        "A str separator is the wrong type: polyio's readuntil says TypeError before it looks"
        " at the length (asyncio: ValueError for '' and TypeError for any other str)",
        lambda n, p, a: n == "StreamReader.readuntil" and isinstance(p, TypeError),
    ),
    (
        "asyncio's read(n) compares n without __index__ (TypeError for an int-like object);"
        " polyio takes any integer (__index__), OverflowError past 64 bits",
        lambda n, p, a: n == "StreamReader.read" and isinstance(p, OverflowError),
    ),
    (
        "asyncio computes with an int-like object as given (TypeError from an operator);"
        " polyio takes its integer (__index__) and checks that",
        lambda n, p, a: isinstance(a, TypeError) and "Index" in str(a) and (p is None or isinstance(p, (ValueError, OverflowError))),
    ),
    (
        "An int past 64 bits: polyio says OverflowError before it checks the range (asyncio:"
        " ValueError from the range check)",
        lambda n, p, a: isinstance(p, OverflowError) and isinstance(a, ValueError),
    ),
    (
        "A float where an int is documented: polyio says TypeError (asyncio compares the float"
        " first and may say ValueError)",
        lambda n, p, a: isinstance(p, TypeError) and "'float'" in str(p) and isinstance(a, (ValueError, OverflowError)),
    ),
    (
        "A float port: polyio refuses it as getaddrinfo does (OSError 'Int or String"
        " expected'); asyncio's create_server passes it on and fails its range check",
        lambda n, p, a: "Int or String" in str(p) and isinstance(a, OverflowError),
    ),
    (
        "A NUL inside a Unix socket path: polyio says ValueError('embedded null byte'), as"
        " for a file path (asyncio hands the kernel the path cut at the NUL)",
        lambda n, p, a: "unix" in n and "embedded null byte" in str(p),
    ),
    (
        "writelines of a released memoryview: str.join sees no items (a CPython quirk), io's"
        " writelines raises",
        lambda n, p, a: n.endswith(".writelines") and p is None and "released" in str(a),
    ),
    (
        "A write after the peer's EOF closed asyncio's transport: uvloop raises RuntimeError;"
        " polyio ignores it, as asyncio's own loop does (with a warning)",
        lambda n, p, a: n.startswith("Transport.") and p is None and isinstance(a, RuntimeError),
    ),
]


def _listed(name: str, p: Any, a: Any) -> bool:
    return any(test(name, p, a) for _, test in LISTED)


# What asyncio raises when it checks an argument: polyio must raise the same (or a
# subclass, or a superclass). Anything else asyncio raises (AttributeError, AssertionError,
# the caller's own exception) is asyncio not checking: polyio may do better.
CHECKED = (TypeError, ValueError, OverflowError, OSError, NotImplementedError, RuntimeError)


def _allowed(p: BaseException) -> bool:
    """An outcome polyio may have whatever asyncio did: a checked error, or the caller's
    own exception passing through."""
    return isinstance(p, (*CHECKED, Boom, asyncio.IncompleteReadError, asyncio.LimitOverrunError))


def _verdict(p: Optional[BaseException], a: Optional[BaseException]) -> Optional[str]:
    """None when polyio's outcome `p` is right beside asyncio's `a`, else the kind of
    finding."""
    if isinstance(a, _NoReference):
        return None if p is None or _allowed(p) or isinstance(p, _Waited) else "unchecked"
    if type(p) is type(a) or isinstance(p, Boom):
        return None  # the same, or the caller's own exception passing through
    if isinstance(p, _Waited):
        return "hang"
    if p is not None and not _allowed(p):
        return "unchecked"
    if isinstance(p, NotImplementedError) and "polyio does not support" in str(p):
        return None  # documented: what polyio does not implement
    if a is None or isinstance(a, _Waited) or not isinstance(a, CHECKED):
        return None  # asyncio accepted (polyio is stricter) or did not check
    if p is None:
        return "accepts"
    if isinstance(p, type(a)) or isinstance(a, type(p)):
        return None
    return "differs"


FORBIDDEN = ("SystemError", "pyo3_runtime.PanicException")


class Finding(Exception):
    pass


def _describe(calls: list[Any]) -> str:
    return "; ".join(f"{t.name}({', '.join(f'{n}={v}' for n, v in args)}{''.join(', ' + e + '=1' for e in extra)})" for t, args, extra in calls)


def one_input(data: bytes, peer: Peer, tgts: list[Target], stats: dict[str, int]) -> None:
    """Runs one input on polyio and on asyncio; raises Finding on a broken oracle."""
    calls = plan(data, tgts)
    loop_kind = "polyio" if (data[:1] and data[0] & 1) or any(t.fixture == "loop" for t, _, _ in calls) else "asyncio"
    before = _fds()
    ps = Session("polyio", peer, loop_kind)
    ps.run(calls)
    after = _fds()
    leaked = after - before
    for _ in range(5):
        if not leaked:
            break
        time.sleep(0.05)
        leaked = {fd for fd in _fds() - before if os.path.exists(f"/proc/self/fd/{fd}")}
    desc = _describe(calls)
    if leaked:
        targets_ = {os.readlink(f"/proc/self/fd/{fd}") for fd in leaked if os.path.exists(f"/proc/self/fd/{fd}")}
        raise Finding(f"fds left open after the loop closed: {sorted(targets_)}\n  program: {desc}")
    # The references: asyncio's loop, and uvloop too when polyio runs on its own loop (a
    # uvloop subclass): an outcome that matches either is right.
    refs = []
    for kind in ("asyncio", "polyio") if loop_kind == "polyio" else ("asyncio",):
        rs = Session("asyncio", peer, kind)
        rs.run(calls)
        refs.append(rs.outcomes)
    for i, (name, p) in enumerate(ps.outcomes):
        stats["calls"] = stats.get("calls", 0) + 1
        po = _outcome(p)
        if po in FORBIDDEN:
            raise Finding(f"{name} raised {po}: {p!r}\n  program: {desc}\n" + "".join(traceback.format_exception(p)))
        verdicts = []
        for outcomes in refs:
            if i >= len(outcomes):
                continue
            a = outcomes[i][1]
            if a is not None and a.__class__ is TypeError and "unexpected keyword argument" in str(a):
                a = _NoReference()  # a newer asyncio's argument: Python 3.11 has no counterpart
            verdicts.append((_verdict(p, a), a))
        if not verdicts or any(k is None or _listed(name, p, a) for k, a in verdicts):
            if p is not None and any(a is None for _, a in verdicts):
                stats["stricter"] = stats.get("stricter", 0) + 1
            continue
        kind, a = verdicts[0]
        detail = "".join(traceback.format_exception(p)) if p is not None and not isinstance(p, _Waited) else ""
        raise Finding(
            f"{kind}: {name}: polyio {po} ({p!r:.200}), asyncio {_outcome(a)} ({a!r:.200})\n  program: {desc}\n{detail}"
        )


# ---- drivers ------------------------------------------------------------------------------


def _setup() -> tuple[Peer, list[Target]]:
    HOSTILE_NAMES.extend(sorted(_mk(Ctx.__new__(Ctx)).keys()))
    tmp = tempfile.mkdtemp(prefix="pf-peer-")
    return Peer(tmp), targets()


def child(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=lambda s: int(s, 0), default=1)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--replay", nargs="*", default=None)
    ap.add_argument("--no-corpus", action="store_true")
    ap.add_argument("--secs", type=float, default=0, help="random inputs until this many seconds passed")
    args = ap.parse_args(argv)
    import faulthandler

    faulthandler.enable()
    peer, tgts = _setup()
    stats: dict[str, int] = {}
    inputs: list[tuple[str, bytes]] = []
    if args.replay is not None:
        inputs += [(f, Path(f).read_bytes()) for f in args.replay]
    else:
        if not args.no_corpus and CORPUS.is_dir():
            inputs += [(str(f), f.read_bytes()) for f in sorted(CORPUS.iterdir())]
        rng = random.Random(args.seed)
        for i in range(args.runs):
            n = rng.randrange(1, 96)
            inputs.append((f"seed {args.seed:#x} run {i}", bytes(rng.randrange(256) for _ in range(n))))
    _warm_up(peer, tgts)
    findings = 0
    if args.secs:
        rng = random.Random(args.seed)
        end = time.monotonic() + args.secs

        def more() -> Iterator[tuple[str, bytes]]:
            yield from inputs
            i = 0
            while time.monotonic() < end:
                n = rng.randrange(1, 96)
                yield f"seed {args.seed:#x} run {i}", bytes(rng.randrange(256) for _ in range(n))
                i += 1

        source: Any = more()
    else:
        source = inputs
    for label, data in source:
        faulthandler.dump_traceback_later(60, exit=True)
        try:
            one_input(data, peer, tgts, stats)
        except Finding as f:
            findings += 1
            print(f"FINDING in {label} (input {data.hex()}):\n{f}", flush=True)
        stats["execs"] = stats.get("execs", 0) + 1
    faulthandler.cancel_dump_traceback_later()
    print(f"py_args: {stats.get('execs', 0)} inputs, {stats.get('calls', 0)} calls, {findings} findings", flush=True)
    return 1 if findings else 0


def _warm_up(peer: Peer, tgts: list[Target]) -> None:
    """Calls every target once with sane arguments, so that what the process makes once on
    first use (thread pools, io_uring probes) is there before fds are counted."""
    calls = [(t, [(p.name, "<sane>") for p in t.params], []) for t in tgts]
    for kind in ("polyio", "asyncio"):
        Session("polyio", peer, kind).run(calls)


def atheris_main(argv: list[str]) -> int:
    import atheris  # noqa: PLC0415 - only `make fuzz` installs it

    with atheris.instrument_imports(include=["polyio"]):
        import polyio  # noqa: F401

    peer, tgts = _setup()
    _warm_up(peer, tgts)
    stats: dict[str, int] = {}

    def test_one(data: bytes) -> None:
        one_input(data, peer, tgts, stats)

    atheris.Setup([sys.argv[0], *argv], test_one)
    atheris.Fuzz()
    return 0


def parent(argv: list[str], timeout: float) -> int:
    """Runs the child and reports what a process dying can tell: a signal, a panic text."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", *argv]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        print(out)
        print(f"FINDING: the fuzzing process hung (no end after {timeout:.0f} s)")
        return 1
    sys.stdout.write(p.stdout)
    bad = [ln for ln in p.stderr.splitlines() if "panicked" in ln or "Fatal Python error" in ln or "fatal runtime error" in ln]
    if p.returncode < 0:
        print(p.stderr[-4000:])
        print(f"FINDING: the fuzzing process died of {signal.Signals(-p.returncode).name}")
        return 1
    if bad:
        print(p.stderr[-4000:])
        print(f"FINDING: {bad[0]}")
        return 1
    if "\npy_args: " not in "\n" + p.stdout:
        print(p.stderr[-4000:])
        print(f"FINDING: the fuzzing process ended (status {p.returncode}) before its summary")
        return 1
    if p.returncode != 0:
        print(p.stderr[-4000:])
    return p.returncode


def main() -> int:
    argv = sys.argv[1:]
    if argv[:1] == ["--child"]:
        return child(argv[1:])
    if argv[:1] == ["--atheris"]:
        return atheris_main(argv[1:])
    if argv[:1] == ["--targets"]:
        _setup()
        for t in targets():
            print(t.name, [p.name for p in t.params])
        return 0
    timeout = float(os.environ.get("FUZZ_CHILD_TIMEOUT", "900"))
    return parent(argv, timeout)


if __name__ == "__main__":
    sys.exit(main())
