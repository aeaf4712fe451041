#!/usr/bin/env python3
"""Echo benchmark runner: every server in SERVERS, side by side, in one run.

For each transport x message size x connection count x server it starts the server pinned
to one CPU, drives it with polyio-loadgen pinned to the other, and records req/s, latency and
the CPU each side used. Results land in target/bench/ as echo.json, echo.svg and echo.md
(one table per transport; ratios compare servers on the same transport); the tables are
also printed. Standard library only (Python 3.11). The method: docs/benchmarks.md.

Environment:
  BENCH_TRANSPORTS    transports to run, space or comma separated (default "tcp unix udp"):
                      tcp is 127.0.0.1 on a free port; unix is a Unix stream socket at a
                      fresh path in a temporary folder per cell, removed after it; udp is
                      127.0.0.1 on a free UDP port, one datagram in flight per socket (sizes
                      above 65507 bytes are left out). A server without a mode for a
                      transport (no "argv_unix" / "argv_udp") is skipped on it and listed as
                      such in echo.md
  BENCH_SECS          measured seconds per cell (default 5)
  BENCH_WARMUP_SECS   unmeasured warm-up per cell (default 1)
  BENCH_SERVERS       servers to run, space or comma separated (default: all in SERVERS
                      except those marked "default": False, such as polyio-c-thread)
  BENCH_SIZES         message sizes in bytes, "1k"/"10KiB" allowed (default 1024 10240 102400)
  BENCH_CONNS         connection counts (default 1 10)
  BENCH_SERVER_CPU    CPU the server is pinned to (default 0)
  BENCH_LOADGEN_CPU   CPU the load generator is pinned to (default 1)
  BENCH_RETRIES       times a round is run again when other processes or hypervisor steal
                      disturbed it (default 1; the last attempt is kept either way, and a
                      cell's median comes from its quiet rounds when it has any)
  BENCH_REPEATS       rounds per (size, conns) group (default 1). Each round runs every
                      server once, in an order rotated by one from the last round's, so
                      that no server always runs first; a cell reports the run with the
                      median req/s, and keeps every round's req/s in "samples".
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import html
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

# The servers, by name. Each entry:
#   argv      command template; "{host}", "{port}" and "{root}" are substituted. A first word
#             with a "/" is a path relative to the repo root, otherwise a command on PATH.
#   argv_unix (optional) the same server on a Unix stream socket: "{path}" is the socket's
#             path (which does not exist yet). Without it the server does not run on unix.
#   argv_udp  (optional) its UDP echo twin on "{host}" "{port}": each datagram sent back to
#             its sender. Without it the server does not run on udp; an entry with only
#             argv_udp (no "argv") runs on udp alone.
#   env       (optional) extra environment variables, values templated like argv.
#   cwd       (optional) working directory, relative to the repo root.
#   requires  (optional) paths (relative to the root) that must exist, beyond argv[0];
#             e.g. the script a "python3" entry runs. Missing ones skip the server.
#   note      (optional) one line shown in echo.md.
#   peers     (optional) servers this one is compared with: the table gets a column of
#             req/s ratios for each pair that ran.
# The server must be the process itself (exec, not a wrapper that forks), so that its CPU
# time can be read from /proc/<pid>/stat.
SERVERS: dict[str, dict[str, Any]] = {
    "tokio": {
        "argv": ["target/release/tokio-echo", "{host}", "{port}"],
        "argv_unix": ["target/release/tokio-echo", "--unix", "{path}"],
        "argv_udp": ["target/release/tokio-echo", "--udp", "{host}", "{port}"],
        "note": "raw tokio, current-thread runtime (the ceiling; on udp recv_from/send_to)",
    },
    "uring": {
        "argv": ["target/release/uring-echo", "{host}", "{port}"],
        "argv_unix": ["target/release/uring-echo", "--unix", "{path}"],
        "note": "raw io_uring (tests/bench/uring-echo): multi-shot accept and recv from a "
        "provided-buffer ring, one io_uring_enter per loop (the floor of a ring backend)",
        "default": False,
    },
    "uring-nodefer": {
        "argv": ["target/release/uring-echo", "--no-defer", "{host}", "{port}"],
        "argv_unix": ["target/release/uring-echo", "--no-defer", "--unix", "{path}"],
        "note": "raw io_uring as uring on a ring without DEFER_TASKRUN: completions the kernel "
        "posted on a way back to user space are handled without entering",
        "default": False,
    },
    "uring-epoll": {
        "argv": ["target/release/uring-echo", "--epoll", "{host}", "{port}"],
        "argv_unix": ["target/release/uring-echo", "--epoll", "--unix", "{path}"],
        "note": "raw io_uring as uring, the loop waiting in epoll_wait on the ring fd and "
        "submitting with one io_uring_enter that does not wait (a Python/Node-shaped loop)",
        "default": False,
    },
    "libuv": {
        "argv": ["build/bench/libuv_echo", "{host}", "{port}"],
        "argv_unix": ["build/bench/libuv_echo", "--unix", "{path}"],
        "argv_udp": ["build/bench/libuv_echo", "--udp", "{host}", "{port}"],
        "note": "Debian libuv1, uv_read_start/uv_write (uv_tcp_t; uv_pipe_t on unix; on udp "
        "uv_udp_recv_start/uv_udp_send)",
    },
    "polyio-c": {
        "argv": ["build/release/examples/echo_server", "{host}", "{port}"],
        "argv_unix": ["build/release/examples/echo_server", "--unix", "{path}"],
        "argv_udp": ["build/release/examples/udp_echo_server", "--quiet", "{host}", "{port}"],
        "note": "polyio C example, blocking in polyio_reap, one polyio_read_multishot per "
        "connection, each chunk sent back from its lent payload (on udp udp_echo_server: one "
        "multi-shot receive, each datagram sent back from its lent payload)",
        "peers": ["tokio", "libuv"],
    },
    "polyio-c-poll": {
        "argv": ["build/release/examples/echo_server", "--poll", "{host}", "{port}"],
        "argv_unix": ["build/release/examples/echo_server", "--poll", "--unix", "{path}"],
        "note": "polyio C example driven by a foreign poll() loop",
        "peers": ["tokio", "libuv"],
    },
    "polyio-node": {
        "argv": ["node", "examples/node/echo_server.js", "{host}", "{port}"],
        "argv_unix": ["node", "examples/node/echo_server.js", "--unix", "{path}"],
        "argv_udp": ["node", "examples/node/udp_echo_server.js", "{host}", "{port}"],
        "requires": ["bindings-node/polyio.linux-x64-gnu.node"],
        "note": "polyio Node binding (examples/node/echo_server.js: for await + await write; "
        "on udp udp_echo_server.js: for await over the socket + send)",
        "peers": ["node-net", "node-dgram"],
    },
    "node-net": {
        "argv": ["node", "tests/bench/node_net_echo.js", "{host}", "{port}"],
        "argv_unix": ["node", "tests/bench/node_net_echo.js", "--unix", "{path}"],
        "note": "node:net, socket.on('data', d => socket.write(d)), setNoDelay (on unix: "
        "server.listen(path))",
    },
    "node-dgram": {
        "argv_udp": ["node", "tests/bench/node_net_echo.js", "--udp", "{host}", "{port}"],
        "note": "node:dgram, socket.on('message', (m, r) => socket.send(m, r.port, r.address))",
    },
    "polyio-c-thread": {
        "argv": ["build/release/examples/echo_server", "--backend=thread", "{host}", "{port}"],
        "argv_unix": [
            "build/release/examples/echo_server",
            "--backend=thread",
            "--unix",
            "{path}",
        ],
        "note": "polyio C example on the fallback backend (a reactor thread + eventfd)",
        "peers": ["tokio", "libuv", "polyio-c"],
        "default": False,
    },
}

# Python servers: the venv's interpreter (make python-release builds polyio and the
# pyo3-async-runtimes peer into it) running tests/bench/py_echo.py. On unix each uses the
# *_unix_server twin of its call (start_unix_server, create_unix_server).
_PY_NOTES = {
    "polyio-py-streams": ("polyio-streams", "polyio streams (open_connection/start_server API) on uvloop"),
    "polyio-py-protocol": ("polyio-protocol", "polyio create_server + asyncio.Protocol on uvloop"),
    "asyncio-streams": ("asyncio-streams", "asyncio.start_server, default loop"),
    "asyncio-protocol": ("asyncio-protocol", "loop.create_server + Protocol, default loop"),
    "uvloop-streams": ("uvloop-streams", "asyncio.start_server on uvloop"),
    "uvloop-protocol": ("uvloop-protocol", "loop.create_server + Protocol on uvloop"),
    "pyo3-async-runtimes": (
        "pyo3-async-runtimes",
        "one pyo3-async-runtimes future_into_py per read and write (unshipped, tests/bench/)",
    ),
}
_PY_PEERS = {
    "polyio-py-streams": ["uvloop-streams", "asyncio-streams", "pyo3-async-runtimes"],
    "polyio-py-protocol": ["uvloop-protocol", "asyncio-protocol"],
}
for _name, (_kind, _note) in _PY_NOTES.items():
    SERVERS[_name] = {
        "argv": [".venv/bin/python", "tests/bench/py_echo.py", _kind, "{host}", "{port}"],
        "requires": ["tests/bench/py_echo.py"],
        "note": _note,
        "peers": _PY_PEERS.get(_name, []),
    }
    if _kind != "pyo3-async-runtimes":  # its listener is TCP only
        SERVERS[_name]["argv_unix"] = [
            ".venv/bin/python",
            "tests/bench/py_echo.py",
            _kind,
            "--unix",
            "{path}",
        ]
    if _kind.endswith("-protocol"):  # on udp: create_datagram_endpoint + DatagramProtocol
        SERVERS[_name]["note"] += " (on udp: create_datagram_endpoint + DatagramProtocol)"
        SERVERS[_name]["argv_udp"] = [
            ".venv/bin/python",
            "tests/bench/py_echo.py",
            _kind,
            "--udp",
            "{host}",
            "{port}",
        ]
SERVERS["polyio-py-streams-asyncio"] = {
    "argv": [".venv/bin/python", "tests/bench/py_echo.py", "polyio-streams", "{host}", "{port}"],
    "argv_unix": [
        ".venv/bin/python",
        "tests/bench/py_echo.py",
        "polyio-streams",
        "--unix",
        "{path}",
    ],
    "env": {"POLYIO_LOOP": "asyncio"},
    "requires": ["tests/bench/py_echo.py"],
    "note": "polyio streams on asyncio's default loop",
    "peers": ["asyncio-streams"],
    "default": False,
}

# The chart's bars are relative to the first of these that ran on the same transport.
REFERENCES = ("tokio", "libuv")

TRANSPORTS = ("tcp", "unix", "udp")

# The largest UDP payload over IPv4: larger message sizes are left out on udp.
MAX_DATAGRAM = 65507

DEFAULT_SIZES = (1024, 10240, 102400)
DEFAULT_CONNS = (1, 10)
HOST = "127.0.0.1"
READY_TIMEOUT_S = 10.0
LOADGEN_BOUND = 0.95  # loadgen CPU / wall seconds at or above this flags the cell
NOISY = 0.10  # other processes' CPU on the pinned CPUs / wall at or above this flags the cell
# Hypervisor steal on the pinned CPUs / wall at or above this flags the cell: on a shared
# host, a run whose virtual CPUs waited for the real ones measures the neighbours.
STOLEN = 0.10


class BenchError(Exception):
    """A cell could not be measured; the message says why."""


@dataclass
class Cell:
    """One measurement: a server on one transport at one (size, conns)."""

    server: str
    transport: str
    size: int
    conns: int
    result: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


# ---------------------------------------------------------------------------- configuration


def env_list(name: str) -> list[str] | None:
    """Splits an environment variable on spaces and commas; None when unset or empty."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    return [w for w in re.split(r"[\s,]+", raw) if w]


def parse_size(word: str) -> int:
    """Parses "1024", "10k", "100KiB" into bytes."""
    m = re.fullmatch(r"(\d+)\s*(k|K|KiB|kib|KB|kb)?", word)
    if not m or int(m.group(1)) <= 0:
        raise ValueError(f"invalid size {word!r} (bytes, or a number with a k/KiB suffix)")
    return int(m.group(1)) * (1024 if m.group(2) else 1)


def env_number(name: str, default: float) -> float:
    """Reads a positive float from the environment."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SystemExit(f"run.py: {name}={raw!r} is not a number") from None
    if value < 0:
        raise SystemExit(f"run.py: {name} must not be negative")
    return value


def expand(template: str, host: str, port: int, path: str = "") -> str:
    """Substitutes {host}, {port}, {path} and {root} in one template string."""
    return template.format(host=host, port=port, path=path, root=ROOT)


def resolve_program(word: str) -> str | None:
    """A server's first word as an absolute path, or None when it does not exist."""
    if "/" in word:
        # Absolute, but symlinks kept: a venv's bin/python must stay the venv's.
        path = Path(os.path.abspath(ROOT / word))
        return str(path) if path.is_file() and os.access(path, os.X_OK) else None
    return shutil.which(word)


# Each transport's key in a server entry, and what its absence means.
ARGV_KEYS = {
    "tcp": ("argv", "a TCP mode (no argv)"),
    "unix": ("argv_unix", "a Unix-socket mode (no argv_unix)"),
    "udp": ("argv_udp", "a UDP mode (no argv_udp)"),
}


def server_argv(spec: dict[str, Any], transport: str) -> list[str] | None:
    """A server entry's command template on `transport`; None when it has no such mode."""
    argv: list[str] | None = spec.get(ARGV_KEYS[transport][0])
    return argv


def transport_sizes(transport: str, sizes: list[int]) -> list[int]:
    """The message sizes a transport runs: on udp, those that fit in one datagram."""
    return [s for s in sizes if transport != "udp" or s <= MAX_DATAGRAM]


def missing_parts(spec: dict[str, Any], transport: str = "tcp") -> list[str]:
    """What a server entry needs on `transport` that is not there (empty when it can run)."""
    argv = server_argv(spec, transport)
    if argv is None:
        return [ARGV_KEYS[transport][1]]
    missing = []
    if resolve_program(argv[0]) is None:
        missing.append(argv[0])
    for req in spec.get("requires", []):
        if not (ROOT / req).exists():
            missing.append(req)
    return missing


# ---------------------------------------------------------------------------- processes


def free_port(host: str, kind: int = socket.SOCK_STREAM) -> int:
    """A port that was free a moment ago (bound to port 0, then closed)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Endpoint:
    """Where a server under test listens: host:port on tcp and udp, a socket path on unix."""

    transport: str
    host: str = HOST
    port: int = 0
    path: str = ""

    def __str__(self) -> str:
        if self.transport == "udp":
            return f"udp:{self.host}:{self.port}"
        return self.path if self.transport == "unix" else f"{self.host}:{self.port}"

    def argv(self, template: list[str]) -> list[str]:
        """A command template with this endpoint (and the repo root) substituted."""
        return [expand(a, self.host, self.port, self.path) for a in template]

    def loadgen_args(self) -> list[str]:
        """polyio-loadgen's options that point it here."""
        if self.transport == "unix":
            return ["--unix", self.path]
        if self.transport == "udp":
            return ["--udp", "--host", self.host, "--port", str(self.port)]
        return ["--host", self.host, "--port", str(self.port)]

    def try_connect(self) -> bool:
        """Whether a connection to the server succeeds now (it is closed at once); on udp,
        whether a probe datagram comes back."""
        try:
            if self.transport == "udp":
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    s.settimeout(0.5)
                    s.connect((self.host, self.port))
                    s.send(b"probe")
                    return s.recv(16) == b"probe"
            if self.transport == "unix":
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                    s.settimeout(0.5)
                    s.connect(self.path)
            else:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    pass
        except OSError:
            return False
        return True


@contextlib.contextmanager
def fresh_endpoint(transport: str) -> Iterator[Endpoint]:
    """A free port on HOST (tcp), or a path in a new temporary folder that is removed
    afterwards with whatever the server left in it (unix)."""
    if transport == "tcp":
        yield Endpoint("tcp", HOST, free_port(HOST))
        return
    if transport == "udp":
        yield Endpoint("udp", HOST, free_port(HOST, socket.SOCK_DGRAM))
        return
    with tempfile.TemporaryDirectory(prefix="polyio-bench-") as tmp:
        yield Endpoint("unix", path=str(Path(tmp) / "echo.sock"))


def pinned(cpu: str | None, argv: list[str]) -> list[str]:
    """argv run under `taskset -c CPU` (taskset execs, so the pid stays the program's)."""
    if cpu is None:
        return argv
    return ["taskset", "-c", cpu, *argv]


def proc_cpu_secs(pid: int) -> float:
    """utime + stime of a live process, in seconds, from /proc/<pid>/stat."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError as e:
        raise BenchError(f"cannot read CPU time of pid {pid}: {e}") from None
    # The command name (field 2) may contain spaces; fields after it start at ")".
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def parse_cpu_list(spec: str | None) -> list[int]:
    """CPU numbers of a taskset list such as "0", "1,3" or "0-2"; empty when unparsable."""
    cpus: list[int] = []
    for part in (spec or "").split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not m:
            return []
        lo = int(m.group(1))
        cpus.extend(range(lo, int(m.group(2) or lo) + 1))
    return cpus


def cpu_ticks(cpus: list[int]) -> tuple[int, int]:
    """(busy, steal) clock ticks so far, summed over `cpus`, from /proc/stat.

    busy is user + nice + system + irq + softirq: what ran on those CPUs, whoever it was.
    steal is time the hypervisor ran something else while these virtual CPUs wanted to run.
    """
    busy = steal = 0
    wanted = {f"cpu{c}" for c in cpus}
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            f = line.split()
            if f and f[0] in wanted:
                user, nice, system, _idle, _iowait, irq, softirq, st = map(int, f[1:9])
                busy += user + nice + system + irq + softirq
                steal += st
    except (OSError, ValueError):
        pass
    return busy, steal


def children_cpu_secs() -> float:
    """CPU seconds of all reaped child processes so far (getrusage RUSAGE_CHILDREN)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def tail(path: Path, lines: int = 8) -> str:
    """The last lines of a log file, indented, for error messages."""
    try:
        text = path.read_text(errors="replace").strip().splitlines()[-lines:]
    except OSError:
        return ""
    return "".join(f"\n    | {line}" for line in text)


def wait_ready(proc: subprocess.Popen[bytes], ep: Endpoint, log: Path) -> None:
    """Returns once the server accepts a connection; raises after READY_TIMEOUT_S."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        code = proc.poll()
        if code is not None:
            raise BenchError(f"server exited with status {code} before accepting{tail(log)}")
        if ep.try_connect():
            return
        if time.monotonic() >= deadline:
            raise BenchError(
                f"server did not accept a connection on {ep} "
                f"within {READY_TIMEOUT_S:g} s{tail(log)}"
            )
        time.sleep(0.05)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stops a server: SIGTERM, then SIGKILL after 2 s."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=2)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass
class Settings:
    """What every cell shares."""

    loadgen: str
    secs: float
    warmup: float
    server_cpu: str | None
    loadgen_cpu: str | None
    repeats: int = 1


def run_cell(
    ep: Endpoint, name: str, spec: dict[str, Any], size: int, conns: int, st: Settings
) -> dict[str, Any]:
    """Measures one server listening at `ep` at one (size, conns); raises BenchError on
    failure."""
    template = server_argv(spec, ep.transport)
    if template is None:
        raise BenchError(f"{name} has no {ep.transport} mode")
    argv = ep.argv(template)
    argv[0] = resolve_program(argv[0]) or argv[0]
    env = dict(os.environ)
    env.update({k: ep.argv([str(v)])[0] for k, v in spec.get("env", {}).items()})
    cwd = ROOT / spec["cwd"] if spec.get("cwd") else ROOT

    with tempfile.NamedTemporaryFile(prefix=f"bench-{name}-", suffix=".log") as logf:
        log = Path(logf.name)
        proc = subprocess.Popen(
            pinned(st.server_cpu, argv),
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=logf,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_ready(proc, ep, log)
            cpu0 = proc_cpu_secs(proc.pid)
            lg_argv = [
                st.loadgen,
                *ep.loadgen_args(),
                *("--conns", str(conns)),
                *("--size", str(size), "--secs", str(st.secs)),
                *("--warmup-secs", str(st.warmup)),
            ]
            pinned_cpus = sorted(
                set(parse_cpu_list(st.server_cpu) + parse_cpu_list(st.loadgen_cpu))
            )
            ticks0, kids0 = cpu_ticks(pinned_cpus), children_cpu_secs()
            t0 = time.monotonic()
            try:
                lg = subprocess.run(
                    pinned(st.loadgen_cpu, lg_argv),
                    capture_output=True,
                    text=True,
                    timeout=st.secs + st.warmup + 30,
                )
            except subprocess.TimeoutExpired:
                raise BenchError("load generator did not finish in time") from None
            wall = time.monotonic() - t0
            # The load generator is the only child reaped during its run.
            ticks1, lg_total = cpu_ticks(pinned_cpus), children_cpu_secs() - kids0
            if proc.poll() is not None:
                raise BenchError(
                    f"server died during the run (status {proc.returncode}){tail(log)}"
                )
            cpu1 = proc_cpu_secs(proc.pid)
        finally:
            stop(proc)

        lines = lg.stdout.strip().splitlines()
        if lg.returncode != 0 or not lines:
            err = lg.stderr.strip() or "(no message)"
            raise BenchError(f"load generator failed (status {lg.returncode}): {err}{tail(log)}")
        try:
            res = json.loads(lines[-1])
        except json.JSONDecodeError as e:
            raise BenchError(f"load generator printed bad JSON ({e}): {lines[-1]!r}") from None

    server_cpu = cpu1 - cpu0
    loadgen_cpu = res.get("cpu_secs")
    lg_util = loadgen_cpu / res["secs"] if loadgen_cpu is not None and res["secs"] > 0 else None
    # Whatever else ran on the benchmark's CPUs meanwhile (builds, tests, other servers).
    hz = os.sysconf("SC_CLK_TCK")
    other_cpu = max(0.0, (ticks1[0] - ticks0[0]) / hz - server_cpu - lg_total)
    steal = (ticks1[1] - ticks0[1]) / hz
    noisy = bool(pinned_cpus) and wall > 0 and other_cpu / wall >= NOISY
    stolen = bool(pinned_cpus) and wall > 0 and steal / wall >= STOLEN
    return {
        "server": name,
        "transport": ep.transport,
        "size": size,
        "conns": conns,
        "rps": res["rps"],
        "p50_us": res["p50_us"],
        "p99_us": res["p99_us"],
        # Server CPU seconds over the whole load-generator run (warm-up included) ...
        "server_cpu": round(server_cpu, 3),
        "server_cpu_util": round(server_cpu / wall, 3) if wall > 0 else None,
        # Server CPU per request (warm-up included at the measured rate): steadier across
        # runs than req/s on a noisy machine, and what a server costs where CPU is the limit.
        "server_cpu_us_per_req": (
            round(server_cpu / (res["rps"] * wall) * 1e6, 2) if res["rps"] > 0 and wall > 0 else None
        ),
        # ... and the load generator's own, over its measured window only.
        "loadgen_cpu": loadgen_cpu,
        "loadgen_cpu_util": round(lg_util, 3) if lg_util is not None else None,
        "loadgen_bound": bool(lg_util is not None and lg_util >= LOADGEN_BOUND),
        # CPU seconds used by other processes on the pinned CPUs, and hypervisor steal.
        "other_cpu": round(other_cpu, 3) if pinned_cpus else None,
        "steal": round(steal, 3) if pinned_cpus else None,
        "noisy": noisy or stolen,
        "stolen": stolen,
        "wall": round(wall, 3),
        "p90_us": res.get("p90_us"),
        "p999_us": res.get("p999_us"),
        "requests": res["requests"],
        "errors": res["errors"],
        "secs": res["secs"],
    }


# ---------------------------------------------------------------------------- reporting


def fmt_size(size: int) -> str:
    """1024 -> "1 KiB"; sizes that are not whole KiB stay in bytes."""
    return f"{size // 1024} KiB" if size % 1024 == 0 else f"{size} B"


def fmt_rps(v: float) -> str:
    return f"{v:,.0f}"


def marks(r: dict[str, Any]) -> str:
    """"*" for a loadgen-bound cell, "!" for one disturbed by other processes."""
    return ("*" if r["loadgen_bound"] else "") + ("!" if r.get("noisy") else "")


LEGEND = (
    "`*` = the load generator used >= 95% of its CPU (the figure may be its limit, not the "
    "server's); `!` = other processes or the hypervisor (steal) took >= 10% of a CPU from the "
    "benchmark's CPUs in every round (rerun it)"
)


def table_rows(
    cells: list[Cell], servers: list[str], sizes: list[int], conns: list[int]
) -> tuple[list[str], list[list[str]]]:
    """Header and rows: size, conns, req/s per server, ratios to peers, p50/p99."""
    ok = {(c.server, c.size, c.conns): c.result for c in cells if c.error is None}
    ratio_cols = [(s, p) for s in servers for p in SERVERS[s].get("peers", []) if p in servers]
    header = ["size", "conns"]
    header += [f"{s} req/s" for s in servers]
    header += [f"{s}/{r}" for s, r in ratio_cols]
    header += [f"{s} p50/p99 us" for s in servers]
    rows = []
    for size in sizes:
        for n in conns:
            row = [fmt_size(size), str(n)]
            for s in servers:
                r = ok.get((s, size, n))
                row.append(fmt_rps(r["rps"]) + marks(r) if r else "-")
            for s, ref in ratio_cols:
                a, b = ok.get((s, size, n)), ok.get((ref, size, n))
                row.append(f"{a['rps'] / b['rps']:.2f}" if a and b and b["rps"] > 0 else "-")
            for s in servers:
                r = ok.get((s, size, n))
                row.append(f"{r['p50_us']}/{r['p99_us']}" if r else "-")
            rows.append(row)
    return header, rows


def cost_rows(
    cells: list[Cell], servers: list[str], sizes: list[int], conns: list[int]
) -> tuple[list[str], list[list[str]]]:
    """Header and rows: the server's CPU microseconds per request (median over rounds)."""
    ok = {(c.server, c.size, c.conns): c.result for c in cells if c.error is None}
    header = ["server", *(f"{fmt_size(s)} x{n}" for s in sizes for n in conns)]
    rows = []
    for name in servers:
        row = [name]
        for size in sizes:
            for n in conns:
                v = (ok.get((name, size, n)) or {}).get("median_cpu_us_per_req")
                row.append(f"{v:.1f}" if v is not None else "-")
        rows.append(row)
    return header, rows


def text_table(header: list[str], rows: list[list[str]]) -> str:
    """A right-aligned plain-text table."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]
    out = ["  ".join(h.rjust(w) for h, w in zip(header, widths))]
    out.append("  ".join("-" * w for w in widths))
    out += ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(out)


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """The same table in Markdown."""
    out = ["| " + " | ".join(header) + " |", "|" + "---:|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7"]


def svg_chart(
    cells: list[Cell], plan: dict[str, list[str]], sizes: list[int], conns: list[int]
) -> str:
    """A grouped bar chart of req/s relative to the reference server of the same transport,
    one group per (transport, size, conns); `plan` lists each transport's servers."""
    ok = {(c.server, c.transport, c.size, c.conns): c.result for c in cells if c.error is None}
    servers = list(dict.fromkeys(s for names in plan.values() for s in names))
    refs = {t: next((r for r in REFERENCES if r in names), names[0]) for t, names in plan.items()}
    groups = [(t, s, n) for t in plan for s in transport_sizes(t, sizes) for n in conns]
    ratios: dict[tuple[str, str, int, int], float] = {}
    for t, size, n in groups:
        base = ok.get((refs[t], t, size, n))
        for s in plan[t]:
            r = ok.get((s, t, size, n))
            if r and base and base["rps"] > 0:
                ratios[(s, t, size, n)] = r["rps"] / base["rps"]
    top = max([1.2, *(v * 1.1 for v in ratios.values())])
    step = 0.25 if top <= 2 else 0.5 if top <= 4 else 1.0
    one_ref = len(set(refs.values())) == 1
    ref = next(iter(refs.values())) if one_ref else "reference"
    title_ref = ref if one_ref else ", ".join(f"{r} on {t}" for t, r in refs.items())
    # With several transports each group's label gets a second line naming its transport.
    label_lines = 2 if len(plan) > 1 else 1

    bar_w, gap, left, right, top_pad, plot_h = 18, 28, 60, 20, 50, 300
    bars_w = bar_w * len(servers)
    group_w = max(bars_w + gap, 96)  # room for the group's label
    width = max(left + group_w * len(groups) + right, 640)  # room for the title
    legend_h = 22 * ((len(servers) + 3) // 4)
    height = top_pad + plot_h + 36 + 14 * label_lines + legend_h

    def y(v: float) -> float:
        return top_pad + plot_h - v / top * plot_h

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14">'
        f"Echo req/s relative to {html.escape(title_ref)} (higher is better; * = loadgen-bound, "
        "! = noisy)</text>",
    ]
    v = 0.0
    while v <= top + 1e-9:
        out.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
            f'stroke="#ddd"/><text x="{left - 6}" y="{y(v) + 4:.1f}" '
            f'text-anchor="end">{v:.2f}</text>'
        )
        v += step
    out.append(
        f'<text transform="translate(14 {top_pad + plot_h / 2}) rotate(-90)" '
        f'text-anchor="middle">req/s / {html.escape(ref)} req/s</text>'
    )
    out.append(
        f'<line x1="{left}" x2="{width - right}" y1="{y(1):.1f}" y2="{y(1):.1f}" '
        'stroke="#333" stroke-dasharray="4 3"/>'
    )
    for gi, (t, size, n) in enumerate(groups):
        gx = left + gi * group_w + (group_w - bars_w) / 2
        for si, s in enumerate(servers):
            val = ratios.get((s, t, size, n))
            if val is None:
                continue
            x = gx + si * bar_w
            res = ok[(s, t, size, n)]
            tip = f"{s} {t} {fmt_size(size)} x{n}: {fmt_rps(res['rps'])} req/s ({val:.2f}x)"
            out.append(
                f'<rect x="{x:.1f}" y="{y(val):.1f}" width="{bar_w - 2}" '
                f'height="{y(0) - y(val):.1f}" fill="{PALETTE[si % len(PALETTE)]}">'
                f"<title>{html.escape(tip)}</title></rect>"
            )
            mark = marks(res)
            out.append(
                f'<text x="{x + (bar_w - 2) / 2:.1f}" y="{y(val) - 3:.1f}" text-anchor="middle" '
                f'font-size="8">{val:.2f}{mark}</text>'
            )
        out.append(
            f'<text x="{gx + bars_w / 2:.1f}" y="{y(0) + 16:.1f}" '
            f'text-anchor="middle">{fmt_size(size)} x{n}</text>'
        )
        if label_lines > 1:
            out.append(
                f'<text x="{gx + bars_w / 2:.1f}" y="{y(0) + 30:.1f}" '
                f'text-anchor="middle">{html.escape(t)}</text>'
            )
    out.append(
        f'<line x1="{left}" x2="{width - right}" y1="{y(0):.1f}" y2="{y(0):.1f}" stroke="#333"/>'
    )
    ly = top_pad + plot_h + 26 + 14 * label_lines
    for si, s in enumerate(servers):
        lx = left + (si % 4) * 160
        row_y = ly + (si // 4) * 22
        out.append(
            f'<rect x="{lx}" y="{row_y - 10}" width="12" height="12" '
            f'fill="{PALETTE[si % len(PALETTE)]}"/>'
            f'<text x="{lx + 18}" y="{row_y}">{html.escape(s)}</text>'
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def uname_srm() -> str:
    try:
        return subprocess.run(
            ["uname", "-srm"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        u = platform.uname()
        return f"{u.system} {u.release} {u.machine}"


def command_line() -> str:
    """How this run was started, with the BENCH_* variables that shaped it."""
    env = [f"{k}={shlex.quote(v)}" for k, v in sorted(os.environ.items()) if k.startswith("BENCH_")]
    script = os.path.relpath(Path(__file__).resolve(), ROOT)
    return " ".join([*env, "python3", shlex.quote(script), *map(shlex.quote, sys.argv[1:])])


# Each transport's table heading.
TRANSPORT_TITLES = {
    "tcp": f"TCP on {HOST}",
    "unix": "Unix stream sockets (a fresh socket path per cell)",
    "udp": f"UDP on {HOST} (one datagram in flight per socket)",
}


def write_markdown(
    path: Path,
    tables: str,
    cells: list[Cell],
    plan: dict[str, list[str]],
    skipped: dict[tuple[str, str], list[str]],
    st: Settings,
) -> None:
    lines = [
        "# Echo benchmark",
        "",
        f"- date: {dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M:%S UTC')}",
        f"- system: `{uname_srm()}`",
        f"- CPU: {cpu_model()} ({os.cpu_count()} CPUs)",
        f"- command: `{command_line()}`",
        f"- {st.secs:g} s measured after {st.warmup:g} s warm-up per cell; server on CPU "
        f"{st.server_cpu}, load generator on CPU {st.loadgen_cpu}",
        f"- {st.repeats} round(s) per cell, each running every server once in rotated "
        "order; a cell shows its median round",
        "",
        "Servers:",
        "",
    ]
    servers = list(dict.fromkeys(s for names in plan.values() for s in names))
    for s in servers:
        on = ", ".join(t for t, names in plan.items() if s in names)
        lines.append(f"- `{s}` ({on}): {SERVERS[s].get('note', '')}")
    lines += [f"- `{s}` on {t}: skipped, missing {', '.join(m)}" for (s, t), m in skipped.items()]
    lines += [
        "",
        tables,
        LEGEND + ".",
        "",
        "Ratios are req/s over the named server's on the same transport, measured in the same "
        "run. Latencies in microseconds.",
        "1-connection cells mostly measure process wake-up; judge designs at 10 connections.",
    ]
    failed = [c for c in cells if c.error]
    if failed:
        lines += ["", "Failed cells:", ""]
        lines += [
            f"- {c.server} {c.transport} {fmt_size(c.size)} x{c.conns}: {c.error}" for c in failed
        ]
    lines += ["", "Chart: `echo.svg`; raw numbers: `echo.json`.", ""]
    path.write_text("\n".join(lines))


def median_cell(name: str, runs: list[Cell]) -> Cell:
    """One server's cell from its runs of a group: the run with the median req/s (the lower
    middle one of an even count) among the quiet runs (all runs, if none was quiet), with
    every run's req/s in "samples"."""
    mine = [c for c in runs if c.server == name]
    good = sorted((c for c in mine if c.error is None), key=lambda c: c.result["rps"])
    if not good:
        return mine[-1]
    quiet = [c for c in good if not c.result.get("noisy")]
    if quiet:
        good = quiet
    pick = good[(len(good) - 1) // 2]
    pick.result["samples"] = [c.result["rps"] for c in mine if c.error is None]
    pick.result["quiet_samples"] = len(quiet)
    costs = sorted(
        c.result["server_cpu_us_per_req"]
        for c in good
        if c.result.get("server_cpu_us_per_req") is not None
    )
    # The median of each server's CPU per request, over all its rounds.
    pick.result["median_cpu_us_per_req"] = costs[(len(costs) - 1) // 2] if costs else None
    return pick


def measure(name: str, transport: str, size: int, conns: int, st: Settings) -> Cell:
    """Runs one cell and prints a progress line; failures are kept in the cell."""
    cell = Cell(name, transport, size, conns)
    head = f"  {name:>14} {transport:>4} {fmt_size(size):>8} x{conns:<3}"
    try:
        with fresh_endpoint(transport) as ep:
            r = cell.result = run_cell(ep, name, SERVERS[name], size, conns, st)
    except BenchError as e:
        cell.error = str(e)
        print(f"{head} FAILED: {e}", file=sys.stderr)
        return cell
    flag = "  LOADGEN-BOUND" if r["loadgen_bound"] else ""
    if r["noisy"]:
        flag += f"  NOISY (others used {r['other_cpu']} s CPU, steal {r['steal']} s)"
    print(
        f"{head} {fmt_rps(r['rps']):>10} req/s  p50 {r['p50_us']} us  p99 {r['p99_us']} us"
        f"  cpu server {r['server_cpu_util']} loadgen {r['loadgen_cpu_util']}{flag}",
        file=sys.stderr,
    )
    return cell


# ---------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(
        description="Run the echo benchmark side by side.",
        epilog="Environment:" + (__doc__ or "").split("Environment:", 1)[-1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "--loadgen",
        default="target/release/polyio-loadgen",
        help="load generator binary, relative to the repo root (default %(default)s)",
    )
    ap.add_argument(
        "--out", default="target/bench", help="results folder, relative to the repo root"
    )
    opts = ap.parse_args()

    loadgen = (ROOT / opts.loadgen).resolve()
    if not (loadgen.is_file() and os.access(loadgen, os.X_OK)):
        print(
            f"run.py: load generator {loadgen} not found; build it with\n"
            "  cargo build --release -p polyio-loadgen",
            file=sys.stderr,
        )
        return 2

    names = env_list("BENCH_SERVERS") or [n for n, s in SERVERS.items() if s.get("default", True)]
    unknown = [n for n in names if n not in SERVERS]
    if unknown:
        print(
            f"run.py: unknown server(s) {', '.join(unknown)}; known: {', '.join(SERVERS)}",
            file=sys.stderr,
        )
        return 2
    transports = list(dict.fromkeys(env_list("BENCH_TRANSPORTS") or TRANSPORTS))
    if any(t not in TRANSPORTS for t in transports):
        print(
            f"run.py: BENCH_TRANSPORTS: known transports are {', '.join(TRANSPORTS)}",
            file=sys.stderr,
        )
        return 2
    try:
        sizes = [parse_size(w) for w in env_list("BENCH_SIZES") or map(str, DEFAULT_SIZES)]
        conns = [int(w) for w in env_list("BENCH_CONNS") or map(str, DEFAULT_CONNS)]
    except ValueError as e:
        print(f"run.py: BENCH_SIZES/BENCH_CONNS: {e}", file=sys.stderr)
        return 2
    if any(c <= 0 for c in conns):
        print("run.py: BENCH_CONNS must be positive", file=sys.stderr)
        return 2

    pin = shutil.which("taskset") is not None
    if not pin:
        print("run.py: warning: taskset not found, processes are not pinned", file=sys.stderr)
    st = Settings(
        loadgen=str(loadgen),
        secs=env_number("BENCH_SECS", 5.0),
        warmup=env_number("BENCH_WARMUP_SECS", 1.0),
        server_cpu=os.environ.get("BENCH_SERVER_CPU", "0") if pin else None,
        loadgen_cpu=os.environ.get("BENCH_LOADGEN_CPU", "1") if pin else None,
    )
    retries = int(env_number("BENCH_RETRIES", 1))
    st.repeats = repeats = max(1, int(env_number("BENCH_REPEATS", 1)))
    if st.secs <= 0:
        print("run.py: BENCH_SECS must be positive", file=sys.stderr)
        return 2

    # The servers each transport runs, in BENCH_SERVERS order.
    plan: dict[str, list[str]] = {}
    skipped: dict[tuple[str, str], list[str]] = {}
    for t in transports:
        for name in dict.fromkeys(names):
            missing = missing_parts(SERVERS[name], t)
            if missing:
                skipped[(name, t)] = missing
                print(
                    f"run.py: skipping {name} on {t}: {', '.join(missing)} not found",
                    file=sys.stderr,
                )
            else:
                plan.setdefault(t, []).append(name)
    if not plan:
        print("run.py: no server to run", file=sys.stderr)
        return 1

    total = sum(len(transport_sizes(t, sizes)) * len(s) for t, s in plan.items())
    total *= len(conns) * repeats
    runs = sum(len(servers) for servers in plan.values())
    print(
        f"echo benchmark: {runs} server run(s) on {', '.join(plan)} x {len(sizes)} size(s) x "
        f"{len(conns)} conn count(s) x {repeats} round(s), {st.secs:g} s each "
        f"(+{st.warmup:g} s warm-up), ~{total * (st.secs + st.warmup + 0.5):.0f} s",
        file=sys.stderr,
    )
    cells: list[Cell] = []
    for t, servers in plan.items():
        for size in transport_sizes(t, sizes):
            for n in conns:
                rounds: list[list[Cell]] = []
                for k in range(repeats):
                    order = servers[k % len(servers) :] + servers[: k % len(servers)]
                    # All servers of one round run back to back; if other processes disturbed
                    # any of them, the whole round runs again so its ratios stay side by side.
                    for attempt in range(retries + 1):
                        group = [measure(name, t, size, n, st) for name in order]
                        if not any(c.result.get("noisy") for c in group) or attempt == retries:
                            break
                        print(
                            f"  {'':>14} {t:>4} {fmt_size(size):>8} x{n:<3} noisy, running again",
                            file=sys.stderr,
                        )
                    rounds.append(group)
                cells += [median_cell(name, [c for g in rounds for c in g]) for name in servers]

    out = ROOT / opts.out
    out.mkdir(parents=True, exist_ok=True)
    md_tables = []
    for t, servers in plan.items():
        mine = [c for c in cells if c.transport == t]
        header, rows = table_rows(mine, servers, transport_sizes(t, sizes), conns)
        cost_header, costs = cost_rows(mine, servers, transport_sizes(t, sizes), conns)
        cost_title = "Server CPU per request, microseconds (median over rounds; lower is better):"
        print(f"\n{TRANSPORT_TITLES[t]}:\n")
        print(text_table(header, rows))
        print(f"\n{cost_title}")
        print(text_table(cost_header, costs))
        md_tables.append(
            f"## {TRANSPORT_TITLES[t]}\n\n{markdown_table(header, rows)}\n\n{cost_title}\n\n"
            f"{markdown_table(cost_header, costs)}\n"
        )
    print()
    print(LEGEND.replace("`", ""))
    (out / "echo.json").write_text(
        json.dumps([c.result for c in cells if c.error is None], indent=1) + "\n"
    )
    (out / "echo.svg").write_text(svg_chart(cells, plan, sizes, conns))
    write_markdown(out / "echo.md", "\n".join(md_tables), cells, plan, skipped, st)
    print(f"\nwrote {os.path.relpath(out, Path.cwd())}/echo.{{json,svg,md}}")

    failed = [c for c in cells if c.error]
    if failed:
        print(f"run.py: {len(failed)} cell(s) failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
